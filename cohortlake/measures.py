"""Measures: per-customer aggregates declared in the catalog, one pass per activity table.

Every measure over the same activity becomes one conditional aggregate of a single
``groupBy(CustomerId)``, so adding measures adds columns, not scans. Every customer of
the profile gets a row: counts and sums are 0 without activity, averages, minima and
maxima null.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.errors import RunFailure
from cohortlake.lake import Lake

__all__ = ["compute_measures", "measure_frame", "measures_by_source"]

log = logging.getLogger(__name__)


def measures_by_source(catalog: Catalog) -> dict[str, list[str]]:
    """Measure names grouped by their (canonical) activity entity."""
    out: dict[str, list[str]] = {}
    for name, m in catalog.measures.items():
        found = catalog.activity(m.source)
        assert found is not None, "validated catalog"
        out.setdefault(found[0], []).append(name)
    return out


def _expression(catalog: Catalog, name: str, as_of: dt.datetime) -> tuple[Column, bool]:
    from segmentation.compile import compile_entity_condition
    from segmentation.validate import parse_entity_condition

    m = catalog.measures[name]
    value = F.col(catalog.activity_attribute(m.source, m.attribute)[0]) if m.attribute else F.lit(1)  # type: ignore[index]
    if m.where is not None:
        node = parse_entity_condition(
            m.where, catalog, m.source, catalog.file, f"measures.{name}.where"
        )
        value = F.when(compile_entity_condition(node, as_of), value)
    expr = {
        "count": F.count(value),
        "count_distinct": F.count_distinct(value),
        "sum": F.sum(value),
        "avg": F.avg(value),
        "min": F.min(value),
        "max": F.max(value),
    }[m.agg]
    return expr.alias(name), m.agg in ("count", "count_distinct", "sum")


def measure_frame(lake: Lake, catalog: Catalog, as_of: dt.datetime | None = None) -> DataFrame:
    """Profile keys ⟕ one aggregate frame per activity: every declared measure as a column."""
    as_of = as_of or dt.datetime.now(dt.UTC)
    key = catalog.key
    profile_path = lake.profile_path(catalog.profile_entity)
    if not lake.exists(profile_path):
        raise RunFailure(
            f"profile table missing: {profile_path} (run `cohortlake generate` or load your data)"
        )
    frame = lake.read(profile_path).select(key)
    zero: list[str] = []
    for entity, names in sorted(measures_by_source(catalog).items()):
        path = lake.activity_path(entity)
        if not lake.exists(path):
            raise RunFailure(f"activity table missing: {path}")
        exprs = [_expression(catalog, n, as_of) for n in names]
        zero += [n for n, (_, z) in zip(names, exprs, strict=True) if z]
        grouped = lake.read(path).groupBy(key).agg(*[e for e, _ in exprs])
        frame = frame.join(grouped, key, "left")
    for name in zero:
        frame = frame.withColumn(name, F.coalesce(F.col(name), F.lit(0)))
    return frame.select(key, *catalog.measures)


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
