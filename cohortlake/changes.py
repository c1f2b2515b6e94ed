"""What changed in an input table between two versions, from Delta's change data feed.

Incremental runs (segments and measures) re-evaluate only the customers whose rows
changed. This module finds their keys in a table's change feed, and refuses
(``NotIncremental``, one line saying why) when the feed does not describe a change of
rows: the table was overwritten, replaced, restored or truncated, its schema changed, or
its feed is off or gone. Table names are ``profile``, ``measures`` and
``activity/<Entity>``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable

from py4j.protocol import Py4JJavaError
from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.errors import RunFailure
from cohortlake.lake import Lake
from cohortlake.sources import activity_key, activity_ref, profile_ref, read_activity, read_profile
from cohortlake.tables import TableRef

__all__ = [
    "NotIncremental",
    "catalog_hash",
    "first_line",
    "flipped",
    "gather",
    "read_input",
    "table_changes",
]

# Operations after which a table's change feed does not describe a change of rows.
_REWRITES = {
    "CREATE OR REPLACE TABLE",
    "CREATE OR REPLACE TABLE AS SELECT",
    "REPLACE TABLE",
    "REPLACE TABLE AS SELECT",
    "RESTORE",
    "TRUNCATE",
}


class NotIncremental(Exception):
    """Why a run cannot be incremental (one line); the run is then a full one."""


def catalog_hash(catalog: Catalog) -> str:
    """A hash of the catalog's validated content: a changed catalog is a full run."""
    return hashlib.sha256(catalog.model.model_dump_json().encode()).hexdigest()[:16]


def _ref(lake: Lake, catalog: Catalog, table: str) -> tuple[TableRef, str]:
    if table == "profile":
        return profile_ref(lake, catalog), catalog.key
    if table == "measures":
        return TableRef(lake.measures_path()), catalog.key
    entity = table.removeprefix("activity/")
    return activity_ref(lake, catalog, entity), activity_key(catalog, entity)


def read_input(lake: Lake, catalog: Catalog, table: str, version: int | None) -> DataFrame:
    """An input table at a version, as the runs read it (key named as the profile's)."""
    if table == "profile":
        return read_profile(lake, catalog, version)
    if table == "measures":
        return lake.read(lake.measures_path(), version)
    return read_activity(lake, catalog, table.removeprefix("activity/"), version)


def table_changes(lake: Lake, catalog: Catalog, table: str, start: int, now: int) -> DataFrame:
    """The keys (named as the profile's key) of the rows of ``table`` changed after
    version ``start`` up to ``now``; ``NotIncremental`` when the feed cannot say."""
    if now < start:
        raise NotIncremental(f"{table} is at version {now}, older than the last run's {start}")
    ref, column = _ref(lake, catalog, table)
    spark = lake.spark
    try:
        for version, operation, mode in ref.operations(spark, start, now):
            if operation in _REWRITES or mode.lower() == "overwrite":
                raise NotIncremental(f"{table} was rewritten ({operation}) at version {version}")
        if ref.read(spark, start).schema != ref.read(spark, now).schema:
            raise NotIncremental(f"the schema of {table} changed after version {start}")
        feed = ref.read_changes(spark, start + 1, now)
    except (AnalysisException, Py4JJavaError) as exc:
        raise NotIncremental(f"{table}'s change feed cannot be read: {first_line(exc)}") from None
    if column not in feed.columns:
        raise RunFailure(f"{ref}: no key column {column}")
    return feed.select(F.col(column).alias(catalog.key))


def flipped(
    lake: Lake,
    catalog: Catalog,
    tests: dict[str, list[Callable[[dt.datetime], Column]]],
    before: dt.datetime,
    as_of: dt.datetime,
    version: Callable[[str], int | None],
) -> list[DataFrame]:
    """Keys of the rows (per table, at the version read now) on which some relative test
    gives another answer at ``as_of`` than at ``before``: who crossed a window's edge."""
    frames = []
    for table, built in sorted(tests.items()):
        differs = [test(before) != test(as_of) for test in built]
        rows = read_input(lake, catalog, table, version(table))
        condition = differs[0]
        for d in differs[1:]:
            condition = condition | d
        frames.append(rows.filter(condition).select(catalog.key))
    return frames


def gather(parts: list[DataFrame]) -> tuple[DataFrame, int]:
    """The distinct keys of ``parts`` (at least one), persisted, and how many there are.
    A change feed whose files are gone fails only here, as ``NotIncremental``."""
    keys = functools.reduce(DataFrame.unionByName, parts).distinct()
    try:  # Delta reports a feed that was off when the query is planned: in persist
        keys = keys.persist(StorageLevel.MEMORY_AND_DISK)
        return keys, keys.count()
    except (AnalysisException, Py4JJavaError) as exc:
        keys.unpersist()
        raise NotIncremental(f"a change feed could not be read: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an error's message; of its root cause for a JVM error (a missing
    file rather than "An error occurred while calling o586.count")."""
    text = str(exc)
    if isinstance(exc, Py4JJavaError):
        cause = exc.java_exception
        for _ in range(20):
            deeper = cause.getCause()
            if deeper is None:
                break
            cause = deeper
        text = str(cause.toString())
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
