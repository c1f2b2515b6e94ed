"""Measures: per-customer aggregates declared in the catalog, in one aggregation.

Every measure becomes one conditional aggregate of a single ``groupBy(CustomerId)`` over
every activity table, so adding measures adds columns, not scans or joins. The profile's
keys are then joined once on the left, so every customer of the profile gets a row
(counts and sums 0 without activity; averages, minima and maxima null) and activity of
customers missing from the profile is dropped.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.changes import NotIncremental, catalog_hash, flipped, gather, table_changes
from cohortlake.commits import table_lock
from cohortlake.conditions.compile import aggregate, compile_entity_condition
from cohortlake.conditions.model import Node, uses_as_of
from cohortlake.lake import Lake
from cohortlake.merging import merge_rows
from cohortlake.sources import activity_ref, profile_ref, read_activity, read_profile, ref_version

__all__ = [
    "activity_measures",
    "compute_measures",
    "measure_frame",
    "measures_by_source",
]

log = logging.getLogger(__name__)


def measures_by_source(catalog: Catalog) -> dict[str, list[str]]:
    """Measure names grouped by their (canonical) activity entity."""
    out: dict[str, list[str]] = {}
    for name, m in catalog.measures.items():
        found = catalog.activity(m.source)
        assert found is not None, "validated catalog"
        out.setdefault(found[0], []).append(name)
    return out


_ZERO_WHEN_EMPTY = ("count", "count_distinct", "sum")


def _value(catalog: Catalog, name: str, as_of: dt.datetime) -> Column:
    """The per-row value a measure aggregates: its attribute (1 for counts), null outside ``where``."""
    m = catalog.measures[name]
    value = F.col(catalog.activity_attribute(m.source, m.attribute)[0]) if m.attribute else F.lit(1)  # type: ignore[index]
    if m.where is not None:
        value = F.when(compile_entity_condition(_where(catalog, name), as_of), value)
    return value


def activity_measures(
    lake: Lake,
    catalog: Catalog,
    as_of: dt.datetime | None = None,
    versions: Mapping[str, int | None] | None = None,
    customers: DataFrame | None = None,
) -> DataFrame | None:
    """Every declared measure of the customers with activity, in one aggregation.

    Each activity row is projected to one value column per measure of its table (null
    where the measure does not apply); the projections are unioned and grouped by the
    key once. So any number of measures over any number of activity tables costs one
    scan of each table and one aggregation. A customer with no activity at all has no
    row; one with activity in another table only gets counts of 0 and nulls for the
    rest. ``None`` when no measure is declared. ``versions`` pins tables
    (``activity/<Entity>``); ``customers`` (a frame of keys) limits the rows read.
    """
    as_of = as_of or dt.datetime.now(dt.UTC)
    key = catalog.key
    parts: list[DataFrame] = []
    aggregates: list[Column] = []
    for entity, names in sorted(measures_by_source(catalog).items()):
        values: list[Column] = []
        for name in names:
            column = f"__value{len(aggregates)}"
            values.append(_value(catalog, name, as_of).alias(column))
            aggregates.append(aggregate(catalog.measures[name].agg, F.col(column)).alias(name))
        rows = read_activity(lake, catalog, entity, (versions or {}).get(f"activity/{entity}"))
        if customers is not None:
            rows = rows.join(customers, key, "left_semi")
        parts.append(rows.select(key, *values))
    if not parts:
        return None
    rows = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    return rows.groupBy(key).agg(*aggregates)


def measure_frame(
    lake: Lake,
    catalog: Catalog,
    as_of: dt.datetime | None = None,
    versions: Mapping[str, int | None] | None = None,
    customers: DataFrame | None = None,
) -> DataFrame:
    """Every declared measure as a column, one row per profile customer.

    ``activity_measures`` left-joined onto the profile's keys: one scan of each activity
    table, one aggregation and one join. (Unioning the profile's keys into the
    aggregation instead, which saves the join, made the job 1.6x slower at 1M
    customers: see ``benchmarks/bench_measures.py``.)
    """
    key = catalog.key
    aggregated = activity_measures(lake, catalog, as_of, versions, customers)
    keys = read_profile(lake, catalog, (versions or {}).get("profile")).select(key)
    if customers is not None:
        keys = keys.join(customers, key, "left_semi")
    if aggregated is None:
        return keys
    # A hash join: the aggregate comes out partitioned by the key, so only the profile's
    # keys move, and neither side is sorted.
    grouped = keys.join(aggregated.hint("shuffle_hash"), key, "left")
    return grouped.select(
        key,
        *[
            F.coalesce(F.col(n), F.lit(0)).alias(n) if m.agg in _ZERO_WHEN_EMPTY else F.col(n)
            for n, m in catalog.measures.items()
        ],
    )


def compute_measures(
    spark: SparkSession,
    lake: Lake,
    catalog: Catalog,
    as_of: dt.datetime | None = None,
    incremental: bool = False,
) -> int:
    """Write ``measures/CustomerMeasures`` in one commit; returns the table version.

    The commit's metadata records the as-of instant, the catalog's hash and the input
    versions. ``incremental`` recomputes only the customers whose inputs changed since
    the last commit (``_incremental``), or computes all when that cannot be proven.
    """
    del spark  # the lake carries the session; kept for a uniform job signature
    started = time.perf_counter()
    as_of = as_of or dt.datetime.now(dt.UTC)
    versions: dict[str, int | None] = {"profile": ref_version(lake, profile_ref(lake, catalog))}
    for entity in measures_by_source(catalog):
        versions[f"activity/{entity}"] = ref_version(lake, activity_ref(lake, catalog, entity))
    record = json.dumps(
        {"as_of": as_of.isoformat(), "catalog": catalog_hash(catalog), "tables": versions},
        sort_keys=True,
    )
    version: int | None = None
    if incremental:
        try:
            version = _incremental(lake, catalog, as_of, versions, record)
        except NotIncremental as exc:
            log.info("incremental measures not possible, full computation: %s", exc)
    if version is None:
        frame = measure_frame(lake, catalog, as_of, versions)
        version = lake.overwrite(frame, lake.measures_path(), metadata=record, change_feed=True)
    log.info(
        "measures: %d declared over %d activities, version %d, %.1fs",
        len(catalog.measures),
        len(measures_by_source(catalog)),
        version,
        time.perf_counter() - started,
    )
    return version


def _incremental(
    lake: Lake,
    catalog: Catalog,
    as_of: dt.datetime,
    versions: dict[str, int | None],
    record: str,
) -> int:
    """Recompute the measures of the customers whose inputs changed; one MERGE commit
    (none when no customer changed). Raises ``NotIncremental`` with the reason."""
    path, key = lake.measures_path(), catalog.key
    latest = lake.version(path)
    if latest is None:
        raise NotIncremental("there is no measures table yet")
    try:
        last = json.loads(lake.user_metadata(path, latest) or "")
        recorded: dict[str, int | None] = last["tables"]
        before = dt.datetime.fromisoformat(last["as_of"])
    except (ValueError, KeyError, TypeError):
        raise NotIncremental("the measures table's last commit recorded no inputs") from None
    if last.get("catalog") != catalog_hash(catalog):
        raise NotIncremental("the catalog changed")
    parts: list[DataFrame] = []
    for table, now in sorted(versions.items()):
        start = recorded.get(table)
        if start is None or now is None:
            raise NotIncremental(f"{table} has no Delta version to start from")
        if now != start:
            parts.append(table_changes(lake, catalog, table, start, now))
    if before != as_of:
        tests: dict[str, list[Callable[[dt.datetime], Column]]] = {}
        for name, m in catalog.measures.items():
            if m.where is not None and uses_as_of(_where(catalog, name)):
                entity = catalog.activity(m.source)[0]  # type: ignore[index]
                tests.setdefault(f"activity/{entity}", []).append(
                    functools.partial(compile_entity_condition, _where(catalog, name))
                )
        parts += flipped(lake, catalog, tests, before, as_of, versions.get)
    if not parts:
        log.info("incremental measures: no input changed since version %d", latest)
        return latest
    customers, count = gather(parts)
    try:
        log.info("incremental measures: %d customers to recompute", count)
        new = measure_frame(lake, catalog, as_of, versions, customers)
        gone = customers.join(new.select(key), key, "left_anti")
        with lake.commit_metadata(record), table_lock(path):
            merge_rows(DeltaTable.forPath(lake.spark, path), new, gone, [key])
    finally:
        customers.unpersist()
    return lake.version_after_write(path, record)


def _where(catalog: Catalog, name: str) -> Node:
    from cohortlake.conditions.validate import parse_entity_condition

    m = catalog.measures[name]
    return parse_entity_condition(
        m.where, catalog, m.source, catalog.file, f"measures.{name}.where"
    )
