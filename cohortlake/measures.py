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
import logging
import time

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.conditions.compile import aggregate
from cohortlake.lake import Lake
from cohortlake.sources import read_activity, read_profile

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
    from cohortlake.conditions.compile import compile_entity_condition
    from cohortlake.conditions.validate import parse_entity_condition

    m = catalog.measures[name]
    value = F.col(catalog.activity_attribute(m.source, m.attribute)[0]) if m.attribute else F.lit(1)  # type: ignore[index]
    if m.where is not None:
        node = parse_entity_condition(
            m.where, catalog, m.source, catalog.file, f"measures.{name}.where"
        )
        value = F.when(compile_entity_condition(node, as_of), value)
    return value


def activity_measures(
    lake: Lake, catalog: Catalog, as_of: dt.datetime | None = None
) -> DataFrame | None:
    """Every declared measure of the customers with activity, in one aggregation.

    Each activity row is projected to one value column per measure of its table (null
    where the measure does not apply); the projections are unioned and grouped by the
    key once. So any number of measures over any number of activity tables costs one
    scan of each table and one aggregation. A customer with no activity at all has no
    row; one with activity in another table only gets counts of 0 and nulls for the
    rest. ``None`` when no measure is declared.
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
        parts.append(read_activity(lake, catalog, entity).select(key, *values))
    if not parts:
        return None
    rows = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
    return rows.groupBy(key).agg(*aggregates)


def measure_frame(lake: Lake, catalog: Catalog, as_of: dt.datetime | None = None) -> DataFrame:
    """Every declared measure as a column, one row per profile customer.

    ``activity_measures`` left-joined onto the profile's keys: one scan of each activity
    table, one aggregation and one join. (Unioning the profile's keys into the
    aggregation instead, which saves the join, made the job 1.6x slower at 1M
    customers: see ``benchmarks/bench_measures.py``.)
    """
    key = catalog.key
    aggregated = activity_measures(lake, catalog, as_of)
    keys = read_profile(lake, catalog).select(key)
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
    spark: SparkSession, lake: Lake, catalog: Catalog, as_of: dt.datetime | None = None
) -> int:
    """Write ``measures/CustomerMeasures`` in one commit; returns the table version."""
    del spark  # the lake carries the session; kept for a uniform job signature
    started = time.perf_counter()
    version = lake.overwrite(measure_frame(lake, catalog, as_of), lake.measures_path())
    log.info(
        "measures: %d declared over %d activities, version %d, %.1fs",
        len(catalog.measures),
        len(measures_by_source(catalog)),
        version,
        time.perf_counter() - started,
    )
    return version
