"""Read memberships the way the layout doc tells users to, independently of Cohortlake.

Every segment's members live in ``<root>/memberships``, partitioned by ``Segment``. A
segment's latest version is the newest commit whose actions touch its partition, found
here from the ``_delta_log`` JSON files themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import deltalake
import pandas as pd
from pyspark.sql import DataFrame, SparkSession

KEY = "CustomerId"


def table(root: str | Path) -> str:
    return f"{root}/memberships"


def spark_members(
    spark: SparkSession, root: str | Path, output: str, version: int | None = None
) -> DataFrame:
    """One segment's rows (Segment, key, every column of the table) with Spark."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table(root)).where(f"Segment = '{output}'")


def keys(
    spark: SparkSession, root: str | Path, output: str, version: int | None = None
) -> set[Any]:
    return {r[0] for r in spark_members(spark, root, output, version).select(KEY).collect()}


def rs_members(root: str | Path, output: str, version: int | None = None) -> pd.DataFrame:
    """One segment's rows with delta-rs (no JVM), filtered on the partition column."""
    dt = deltalake.DeltaTable(table(root), version=version)
    return dt.to_pandas(filters=[("Segment", "=", output)])


def commits(root: str | Path) -> dict[int, list[dict[str, Any]]]:
    log = Path(table(root)) / "_delta_log"
    if not log.exists():
        return {}
    return {
        int(p.stem): [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for p in sorted(log.glob("*.json"))
    }


def touching(root: str | Path, output: str) -> list[int]:
    """Versions whose commit adds or removes files of ``output``'s partition."""
    found = []
    for version, actions in commits(root).items():
        for action in actions:
            body = action.get("add") or action.get("remove") or action.get("cdc") or {}
            if (body.get("partitionValues") or {}).get("Segment") == output:
                found.append(version)
                break
    return found


def latest_version(root: str | Path, output: str) -> int | None:
    versions = touching(root, output)
    return max(versions) if versions else None


def changes(spark: SparkSession, root: str | Path, output: str, version: int) -> pd.DataFrame:
    """The Change Data Feed of one version, for one segment (the documented read)."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", version)
        .option("endingVersion", version)
        .load(table(root))
        .where(f"Segment = '{output}'")
        .toPandas()
    )


def newest_version(root: str | Path) -> int | None:
    """The table's newest version (any segment), from the commit files."""
    found = commits(root)
    return max(found) if found else None


def run_ids(root: str | Path, output: str) -> dict[int, str | None]:
    """The ``userMetadata`` (run id) of every commit touching ``output``, by version."""
    found = commits(root)
    out: dict[int, str | None] = {}
    for version in touching(root, output):
        info: dict[str, Any] = next(
            (a["commitInfo"] for a in found[version] if "commitInfo" in a), {}
        )
        out[version] = info.get("userMetadata")
    return out


def user_metadata(root: str | Path) -> dict[int, str | None]:
    """{version: the commit's ``userMetadata``} of every commit, from the ``_delta_log`` JSON."""
    return {
        version: next(
            (a["commitInfo"].get("userMetadata") for a in actions if "commitInfo" in a), None
        )
        for version, actions in commits(root).items()
    }


def table_rows(spark: SparkSession, root: str | Path, version: int | None = None) -> pd.DataFrame:
    """Every segment's rows at once (one Spark read of the whole table), for tests that
    check hundreds of segments: one read instead of one per segment."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table(root)).toPandas()
