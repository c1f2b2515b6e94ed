"""Shared pieces of the incremental-run tests (#37): a run that records its ``segment_runs``
rows, memberships and log lines, and a six-customer lakehouse with hand-counted memberships.

The tiny lakehouse, at ``T0`` (2026-03-31 12:00 UTC)::

    customer  City  Score   orders (At, Amount)
    k1        Oslo  5.0     03-30 09:00 10.0, 03-20 09:00 5.0
    k2        Oslo  1.0     03-25 09:00 4.0
    k3        Lima  7.0     03-29 00:00 8.0, 03-28 09:00 1.0, 2025-12-01 09:00 50.0
    k4        Rome  null    -
    k5        Oslo  3.0     2025-11-01 09:00 3.0
    k6        Lima  2.0     03-31 10:00 2.0

    Oslo        City eq Oslo (projects Score)                  k1 k2 k5
    Frequent    2+ orders within 30 days (from 03-01 12:00)    k1 k3
    OsloCasual  Oslo and not Frequent                          k2 k5
    Fresh       latest order in the last 3 days (03-28 12:00)  k1 k3 k6
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deltalake
import pandas as pd
import yaml
from pyspark.sql import DataFrame, SparkSession

from cohortlake.context import Context, load_context
from cohortlake.lake import Lake, SegmentRun
from segmentation.run import RunOptions, run_segments

__all__ = [
    "BASELINE",
    "ORDERS_SCHEMA",
    "PROFILE_SCHEMA",
    "T0",
    "TINY_CATALOG",
    "Ran",
    "build_tiny",
    "cdf_save",
    "copy_lakehouse",
    "delta_version",
    "run",
    "tiny_segments",
    "write_segments",
]

T0 = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)

TINY_CATALOG = """
profile:
  entity: Customer
  key: CustomerId
  attributes:
    City: {type: string}
    Score: {type: number}
activities:
  Orders:
    event_time: At
    attributes:
      At: {type: timestamp}
      Amount: {type: number}
"""

_CUSTOMERS = [
    ("k1", "Oslo", 5.0),
    ("k2", "Oslo", 1.0),
    ("k3", "Lima", 7.0),
    ("k4", "Rome", None),
    ("k5", "Oslo", 3.0),
    ("k6", "Lima", 2.0),
]
_ORDERS = [
    ("k1", dt.datetime(2026, 3, 30, 9, 0), 10.0),
    ("k1", dt.datetime(2026, 3, 20, 9, 0), 5.0),
    ("k2", dt.datetime(2026, 3, 25, 9, 0), 4.0),
    ("k3", dt.datetime(2026, 3, 29, 0, 0), 8.0),
    ("k3", dt.datetime(2026, 3, 28, 9, 0), 1.0),
    ("k3", dt.datetime(2025, 12, 1, 9, 0), 50.0),
    ("k5", dt.datetime(2025, 11, 1, 9, 0), 3.0),
    ("k6", dt.datetime(2026, 3, 31, 10, 0), 2.0),
]
PROFILE_SCHEMA = "CustomerId string, City string, Score double"
ORDERS_SCHEMA = "CustomerId string, At timestamp, Amount double"

# Hand-counted memberships at T0 (see the module docstring).
BASELINE = {
    "Oslo": {"k1", "k2", "k5"},
    "Frequent": {"k1", "k3"},
    "OsloCasual": {"k2", "k5"},
    "Fresh": {"k1", "k3", "k6"},
}


def tiny_segments(frequent_at_least: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "name": "Oslo",
            "where": {"attribute": "City", "op": "eq", "value": "Oslo"},
            "project": ["Score"],
        },
        {
            "name": "Frequent",
            "where": {
                "related": "Orders",
                "within": {"n": 30, "unit": "days"},
                "having": {"agg": "count", "op": "gte", "value": frequent_at_least},
            },
        },
        {
            "name": "OsloCasual",
            "where": {"all": [{"segment": "Oslo"}, {"not": {"segment": "Frequent"}}]},
        },
        {
            "name": "Fresh",
            "where": {
                "related": "Orders",
                "having": {
                    "agg": "max",
                    "attribute": "At",
                    "op": "in_last",
                    "value": {"n": 3, "unit": "days"},
                },
            },
        },
    ]


def cdf_save(df: DataFrame, path: str) -> None:
    """Write a new input table with Delta's change data feed on."""
    df.write.format("delta").option("delta.enableChangeDataFeed", "true").save(path)


def _utc(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [
        tuple(v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v for v in r)
        for r in rows
    ]


def build_tiny(spark: SparkSession, base: Path) -> Path:
    """The tiny lakehouse's configuration folder (its lake under ``base / "lake"``)."""
    conf = base / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "catalog.yaml").write_text(TINY_CATALOG)
    (conf / "lakehouse.yaml").write_text(f"root: {base / 'lake'}\n")
    write_segments(conf, tiny_segments())
    lake = Lake(spark, str(base / "lake"))
    cdf_save(spark.createDataFrame(_CUSTOMERS, PROFILE_SCHEMA), lake.profile_path("Customer"))
    cdf_save(spark.createDataFrame(_utc(_ORDERS), ORDERS_SCHEMA), lake.activity_path("Orders"))
    return conf


def write_segments(conf: Path, docs: list[dict[str, Any]]) -> None:
    (conf / "segments" / "segments.yaml").write_text(
        yaml.safe_dump({"segments": docs}, sort_keys=False)
    )


def copy_lakehouse(conf: Path, into: Path) -> Path:
    """A copy of a lakehouse (configuration and lake) under ``into``: its own conf folder."""
    root = yaml.safe_load((conf / "lakehouse.yaml").read_text())["root"]
    shutil.copytree(root, into / "lake")
    shutil.copytree(conf, into / "conf")
    (into / "conf" / "lakehouse.yaml").write_text(f"root: {into / 'lake'}\n")
    return into / "conf"


def delta_version(path: str | Path) -> int:
    """A Delta table's latest version, from its log's file names (not through Delta)."""
    return max(int(p.stem) for p in (Path(path) / "_delta_log").glob("*.json"))


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _captured(name: str) -> Iterator[list[str]]:
    """The INFO lines of logger ``name`` while inside (usable from module fixtures too)."""
    logger, handler = logging.getLogger(name), _Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class Ran:
    """One run: what it returned, its ``segment_runs`` rows (by output), every membership
    (output -> its rows, as read from the table) and the run's log lines."""

    results: list[SegmentRun]
    rows: dict[str, dict[str, Any]]
    memberships: pd.DataFrame
    log: list[str]

    def members(self, output: str) -> set[str]:
        found = self.memberships[self.memberships["Segment"] == output]
        return set(found["CustomerId"])

    def modes(self) -> dict[str, str | None]:
        return {s: r["Mode"] for s, r in self.rows.items()}

    def fallback(self) -> str | None:
        """The reason of the log line "incremental run not possible, full run: <reason>"."""
        prefix = "incremental run not possible, full run: "
        found = [line.removeprefix(prefix) for line in self.log if line.startswith(prefix)]
        assert len(found) <= 1, found
        return found[0] if found else None

    def scope(self) -> int | None:
        """N of the log line "incremental run: N customers may have changed membership ..."."""
        found = [line for line in self.log if line.startswith("incremental run: ")]
        assert len(found) <= 1, found
        return int(found[0].split()[2]) if found else None


def run(
    ctx: Context | Path,
    as_of: dt.datetime,
    options: RunOptions | None = None,
    spark: SparkSession | None = None,
    only: list[str] | None = None,
) -> Ran:
    """``run_segments`` with ``options`` (incremental by default), and what it left."""
    if isinstance(ctx, Path):
        assert spark is not None
        ctx = load_context(ctx, spark=spark)
    options = options or RunOptions(incremental=True)
    with _captured("segmentation.run") as lines:
        results = run_segments(ctx, only=only, as_of=as_of, options=options)
    (run_id,) = {r.run_id for r in results}
    # Read with delta-rs: the same tables, no Spark job (a second each through Spark).
    lake = ctx.lake
    runs = deltalake.DeltaTable(lake.segment_runs_path()).to_pandas(
        filters=[("RunId", "=", run_id)]
    )
    memberships = deltalake.DeltaTable(lake.path("memberships")).to_pandas()
    rows = {str(r["Segment"]): r for r in runs.to_dict("records")}
    return Ran(results, rows, memberships, list(lines))
