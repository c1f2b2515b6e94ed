"""The one place a SparkSession is built: Delta configured, UTC, local jars or --packages.

Under ``spark-submit`` the launcher's master, jars and packages win and nothing here
overrides them; in the embedded default the session runs ``local[*]`` with the jars
fetched once into ``.jars/``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession

from cohortlake.errors import RunFailure
from cohortlake.jars import DELTA_ARTIFACT, default_jars_dir, jar_files

__all__ = ["get_spark", "stop_spark"]

log = logging.getLogger(__name__)

_BASE_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.enabled": "true",
    # Spark keeps 100 generated classes by default; one suggestions run makes more, so
    # each warm LifetimeSpend run at 1M in the same session compiled 43-59 classes
    # again (0.75-0.93 s of compile time); with 1,000 it compiles none.
    "spark.sql.codegen.cache.maxEntries": "1000",
    # PySpark 4 records the Python call site of every Column and DataFrame call for error
    # messages: 4-5 Py4J calls and a stack walk each. A warm LifetimeSpend run at 1M (a
    # few hundred such calls) took 0.44-0.64 s less without it (minimums and medians of 8
    # runs taken in turns). Set it to true in conf/lakehouse.yaml to debug a failing job.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}


def _launched_by_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(
    app_name: str = "cohortlake",
    master: str | None = None,
    conf: Mapping[str, Any] | None = None,
) -> SparkSession:
    """Get or create the Delta-enabled session (``master`` and ``conf`` override defaults)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers use this interpreter
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name)
    settings: dict[str, str] = dict(_BASE_CONF)
    settings["spark.ui.showConsoleProgress"] = "true" if sys.stderr.isatty() else "false"
    user = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (conf or {}).items()}
    submitted = _launched_by_spark_submit()
    if not submitted:
        settings["spark.master"] = master or user.pop("spark.master", None) or "local[*]"
        if "spark.jars.packages" not in user and "spark.jars" not in user:
            jars = jar_files()
            if not jars:
                raise RunFailure(
                    f"Delta jars not found in {default_jars_dir()}: run `make jars` "
                    f"(or pass spark.jars.packages={DELTA_ARTIFACT})"
                )
            settings["spark.jars"] = ",".join(str(j) for j in jars)
    elif master:
        settings["spark.master"] = master
    settings.update(user)
    for k, v in settings.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("COHORTLAKE_SPARK_LOG_LEVEL", "WARN"))
    log.info("spark %s on %s", spark.version, spark.sparkContext.master)
    return spark


def stop_spark() -> None:
    """Stop the active session, if any."""
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
