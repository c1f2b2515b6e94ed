"""The one place a SparkSession is built: Delta configured, UTC, local jars or --packages.

Under ``spark-submit`` the launcher's master, jars and packages win and nothing here
overrides them; in the embedded default the session runs ``local[*]`` with the jars
fetched once into ``.jars/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from cohortlake.class_archive import archive_options
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
    # Every sort, hash aggregate and hash join of a stage takes at least one page, 64 MB at
    # a 4 GB driver: a plan of 500 generated segments needed more pages than the heap
    # held (OutOfMemoryError at 3,000 customers). A larger record still gets its own page.
    "spark.buffer.pageSize": "2m",
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


_LOG4J2 = Path(__file__).with_name("log4j2.properties")
# What the JVM prints on every start that says nothing to a user (Spark 4 always adds the
# incubating vector module, and the JVM announces it on stderr, before any logger exists;
# with a Hive metastore, its Derby/DataNucleus stack prints a restricted-mode notice).
_JVM_NOISE = (
    b"WARNING: Using incubator modules",
    b"Warning: Java versions > Java 11 can only operate in restricted mode",
)


def _launched_by_spark_submit() -> bool:
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _launcher_settings() -> set[str]:
    """The settings spark-submit gave the driver JVM (its system properties)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return {k for k, _ in SparkConf().getAll()}


def _spark_log_level() -> str:
    """Spark's console level: none unless the CLI asked for -v (WARN) or -vv (INFO).

    A failure reaches the user as the CLI's one line (``failed: COMMAND: cause``); Spark's
    own ERROR records would print the Java stack traces before it.
    """
    chosen = os.environ.get("COHORTLAKE_SPARK_LOG_LEVEL")
    if chosen:
        return chosen
    ours = logging.getLogger("cohortlake")
    return (
        "INFO"
        if ours.isEnabledFor(logging.DEBUG)
        else "WARN"
        if ours.isEnabledFor(logging.INFO)
        else "OFF"
    )


def _with_log4j2(options: str | None) -> str:
    """``spark.driver.extraJavaOptions`` with Cohortlake's quiet log4j2 file, unless one is set."""
    if options and "log4j2.configurationFile" in options:
        return options
    ours = f"-Dlog4j2.configurationFile={_LOG4J2.as_uri()}"
    return f"{ours} {options}" if options else ours


def _forward(source: int, target: int) -> None:
    """Copy ``source`` to ``target`` until EOF, dropping the JVM's start-up noise lines."""
    pending = b""
    while True:
        try:
            chunk = os.read(source, 65536)
        except OSError:
            return
        if not chunk:
            return
        pending += chunk
        while pending:
            end = pending.find(b"\n")
            line = pending if end < 0 else pending[: end + 1]
            noise = any(n.startswith(line[: len(n)]) for n in _JVM_NOISE)
            if end < 0 and noise:
                break  # may be the start of a noise line: wait for the rest
            if not (noise and end >= 0):
                with contextlib.suppress(OSError):
                    os.write(target, line)
            pending = pending[len(line) :]


@contextlib.contextmanager
def _quiet_jvm_stderr() -> Iterator[None]:
    """The JVM started inside inherits a filtered stderr (a pipe and a forwarding thread)."""
    try:
        real = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        yield
        return
    threading.Thread(target=_forward, args=(read_end, real), name="jvm-stderr", daemon=True).start()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_end)


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
        configured = user.pop("spark.master", None)  # else it would override --master below
        settings["spark.master"] = master or configured or "local[*]"
        if "spark.jars.packages" not in user and "spark.jars" not in user:
            jars = jar_files()
            if not jars:
                raise RunFailure(
                    f"Delta jars not found in {default_jars_dir()}: run `make jars` "
                    f"(or pass spark.jars.packages={DELTA_ARTIFACT})"
                )
            settings["spark.jars"] = ",".join(str(j) for j in jars)
        key = "spark.driver.extraJavaOptions"
        archive = archive_options(default_jars_dir(), user.get(key))
        user[key] = _with_log4j2(user.get(key)) + (f" {archive}" if archive else "")
    else:
        # spark-submit's --master, --conf and spark-defaults.conf win over the configuration
        # folder's settings; an explicit --master given to the job wins over everything.
        launched = _launcher_settings()
        user = {k: v for k, v in user.items() if k not in launched}
        if master:
            settings["spark.master"] = master
    settings.update(user)
    for k, v in settings.items():
        builder = builder.config(k, v)
    quiet = not submitted and _spark_log_level() in ("ERROR", "FATAL", "OFF")
    with _quiet_jvm_stderr() if quiet else contextlib.nullcontext():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(_spark_log_level())
    log.info("spark %s on %s", spark.version, spark.sparkContext.master)
    return spark


def stop_spark() -> None:
    """Stop the active session, if any."""
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
