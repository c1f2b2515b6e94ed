"""Run insight definitions: validate, check inputs, compute, write Delta tables and charts.

Tables (one Delta commit each; every row carries ``Insight`` (the display name),
``RunId`` and ``AsOf``):

``insights/<Output>`` for an overlap — long format, ``Kind`` says what a row is:

* ``segment_size``: ``SegmentA``, ``Members``;
* ``pair`` (each unordered pair once): ``SegmentA``, ``SegmentB``, ``Members`` (shared),
  ``ShareOfA``/``ShareOfB`` (shared ÷ that segment's size), ``Jaccard``;
* ``exclusive``: ``SegmentA``, ``Members`` in no other chosen segment, ``ShareOfA``;
* ``all``: ``Members`` in every chosen segment, ``Segments``, ``Degree``;
* ``region``: one row per non-empty exact intersection — ``Segments`` (array), ``Degree``, ``Members``;
* ``field_distribution``: ``Field``, ``Group`` (``all`` = members of every segment, or a
  segment's name = its exclusive members; ``SegmentA`` repeats it), ``Bin``, ``BinLow``,
  ``BinHigh`` (numeric) or ``Category`` (categorical), ``Members``, ``Share``.

Shares and Jaccard are null when their denominator is 0 (an empty segment).

``insights/<Output>`` for differentiators — one row per field, best first: ``Rank``,
``Field``, ``Display``, ``FieldType``, ``Kind`` (numeric|categorical), ``Score`` (0.5..1),
``AUC`` (numeric), ``TVD`` (categorical), ``PValue``, ``Test`` (mann_whitney|chi_square),
``PrimaryCount``/``OtherCount`` (non-null values), ``PrimaryNulls``/``OtherNulls``,
``PrimaryMean``/``OtherMean``/``PrimaryMedian``/``OtherMedian`` (numeric; dates as days and
timestamps as seconds since 1970-01-01), ``Categories`` (categorical), ``Primary``,
``CompareTo`` (a segment or ``all_others``).

``insights/<Output>Distributions`` — ``Field``, ``Side`` (primary|other), ``Bin``,
``BinLow``, ``BinHigh`` (20 equal-width bins) or ``Category`` (top 20 and ``(other)``),
``Members``, ``Share`` (of the side's non-null values).

Charts: ``<root>/reports/insights/<Output>/*.png`` (local roots only).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.context import Context, parse_as_of
from cohortlake.errors import InputError, Problem
from cohortlake.lake import Lake, new_run_id
from cohortlake.memberships import latest_runs, read_membership
from insights.charts import differentiator_charts, overlap_charts
from insights.differentiators import Differentiators, differentiate
from insights.distributions import DistRow
from insights.model import (
    ALL_OTHERS,
    DifferentiatorsDefinition,
    EstimatedOverlapDefinition,
    InsightDefinition,
    OverlapDefinition,
    load_insights,
)
from insights.overlap import ALL_GROUP, Overlap, region_rows, segment_overlap
from insights.sketch_insight import run_estimated_overlap
from insights.values import customer_rows

__all__ = [
    "DIFFERENTIATORS_SCHEMA",
    "DISTRIBUTIONS_SCHEMA",
    "OVERLAP_SCHEMA",
    "InsightResult",
    "run_insights",
]

log = logging.getLogger(__name__)

_S, _L, _D, _I = T.StringType(), T.LongType(), T.DoubleType(), T.IntegerType()


def _schema(*cols: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(n, t, True) for n, t in cols])


_RUN = (("RunId", _S), ("AsOf", T.TimestampType()))
OVERLAP_SCHEMA = _schema(
    ("Insight", _S), ("Kind", _S), ("SegmentA", _S), ("SegmentB", _S), ("Segments", T.ArrayType(_S)),
    ("Degree", _I), ("Members", _L), ("ShareOfA", _D), ("ShareOfB", _D), ("Jaccard", _D),
    ("Field", _S), ("Group", _S), ("Bin", _I), ("BinLow", _D), ("BinHigh", _D), ("Category", _S), ("Share", _D),
    *_RUN,
)  # fmt: skip
DIFFERENTIATORS_SCHEMA = _schema(
    ("Insight", _S), ("Rank", _I), ("Field", _S), ("Display", _S), ("FieldType", _S), ("Kind", _S),
    ("Score", _D), ("AUC", _D), ("TVD", _D), ("PValue", _D), ("Test", _S),
    ("PrimaryCount", _L), ("OtherCount", _L), ("PrimaryNulls", _L), ("OtherNulls", _L),
    ("PrimaryMean", _D), ("OtherMean", _D), ("PrimaryMedian", _D), ("OtherMedian", _D), ("Categories", _I),
    ("Primary", _S), ("CompareTo", _S), *_RUN,
)  # fmt: skip
DISTRIBUTIONS_SCHEMA = _schema(
    ("Insight", _S), ("Field", _S), ("Side", _S), ("Bin", _I), ("BinLow", _D), ("BinHigh", _D),
    ("Category", _S), ("Members", _L), ("Share", _D), *_RUN,
)  # fmt: skip


@dataclass
class InsightResult:
    """What one insight run wrote: table paths with their Delta versions, and charts."""

    output: str
    name: str
    kind: str
    run_id: str
    tables: dict[str, int] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    overlap: Overlap | None = None
    differentiators: Differentiators | None = None


def _select(
    definitions: list[InsightDefinition], outputs: list[str] | None
) -> list[InsightDefinition]:
    if not outputs:
        return definitions
    by_lower = {d.output.lower(): d for d in definitions}
    problems = [
        Problem(
            "--only",
            f"[{i}]",
            f"no insight with output {o!r} (known: {', '.join(sorted(d.output for d in definitions)) or 'none'})",
        )
        for i, o in enumerate(outputs)
        if o.lower() not in by_lower
    ]
    if problems:
        raise InputError(problems)
    chosen = {o.lower() for o in outputs}
    return [d for d in definitions if d.output.lower() in chosen]


def _segments_of(d: InsightDefinition) -> list[str]:
    if isinstance(d, OverlapDefinition):
        return list(d.segments)
    if isinstance(d, EstimatedOverlapDefinition):
        return []  # reads sketches only (checked when it runs)
    return [d.primary] + ([d.compare_to] if d.compare_to else [])


def _check_inputs(ctx: Context, chosen: list[InsightDefinition]) -> None:
    """Every referenced table must exist before anything is written (exit 2 otherwise)."""
    needs = [f for d in chosen for f in d.fields]
    ctx.check_tables(
        profile=bool(needs) or any(isinstance(d, DifferentiatorsDefinition) for d in chosen),
        measures=any(f.source == "measure" for f in needs),
        segments=[s for d in chosen for s in _segments_of(d)],
    )


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def _reports_folder(lake: Lake, output: str) -> Path | None:
    root = lake.reports_dir()
    if "://" in root and not root.startswith("file:"):
        return None
    return Path(root.removeprefix("file:")) / "insights" / output


def run_insights(
    ctx: Context,
    outputs: list[str] | None = None,
    as_of: dt.datetime | str | None = None,
    *,
    charts: bool = True,
) -> list[InsightResult]:
    """Run every insight of ``<conf>/insights`` (or those named in ``outputs``).

    Definitions and ``outputs`` are validated before Spark starts (InputError); a
    segment, profile or measures table that does not exist yet is a RunFailure
    raised before anything is written.
    """
    definitions = load_insights(ctx.conf_dir, ctx.catalog)
    chosen = _select(definitions, outputs)
    when = _aware(as_of) if isinstance(as_of, dt.datetime) else parse_as_of(as_of)
    if not chosen:
        log.info("no insight definitions in %s", ctx.conf_dir / "insights")
        return []
    lake = ctx.lake
    _check_inputs(ctx, chosen)
    results = []
    for d in chosen:
        started = time.monotonic()
        run_id = new_run_id()
        if isinstance(d, OverlapDefinition):
            result = _run_overlap(ctx, lake, d, run_id, when, charts)
        elif isinstance(d, EstimatedOverlapDefinition):
            folder = _reports_folder(lake, d.output) if charts else None
            tables, made, _ = run_estimated_overlap(ctx, d, run_id, when, folder)
            result = InsightResult(d.output, d.name, d.kind, run_id, tables, made)
        else:
            result = _run_differentiators(ctx, lake, d, run_id, when, charts)
        log.info(
            "insight %s (%s) done in %.1fs: %s",
            d.output,
            d.kind,
            time.monotonic() - started,
            result.tables,
        )
        results.append(result)
    return results


def _dist_values(
    d: DistRow,
) -> tuple[str, int | None, float | None, float | None, str | None, int, float | None]:
    return (d.field, d.bin, d.low, d.high, d.category, d.members, d.share)


def _run_overlap(
    ctx: Context, lake: Lake, d: OverlapDefinition, run_id: str, when: dt.datetime, charts: bool
) -> InsightResult:
    key = ctx.catalog.key
    runs = latest_runs(lake)
    tables = [read_membership(lake, s, key, runs=runs).select(key) for s in d.segments]
    customers = customer_rows(lake, ctx.catalog, d.fields) if d.fields else None
    result, regions = segment_overlap(ctx.spark, tables, d.segments, key, customers, d.fields)
    try:
        k = len(d.segments)
        none = (None,) * 7  # Field .. Share
        rows: list[tuple[object, ...]] = []
        for i, s in enumerate(d.segments):
            rows.append(
                (
                    d.name,
                    "segment_size",
                    s,
                    None,
                    None,
                    None,
                    result.sizes[i],
                    None,
                    None,
                    None,
                    *none,
                )
            )
        for i in range(k):
            for j in range(i + 1, k):
                rows.append(
                    (d.name, "pair", d.segments[i], d.segments[j], None, None, result.pair(i, j),
                     result.share(i, j), result.share(j, i), result.jaccard(i, j), *none)
                )  # fmt: skip
        for i, s in enumerate(d.segments):
            share = result.exclusive[i] / result.sizes[i] if result.sizes[i] else None
            rows.append(
                (
                    d.name,
                    "exclusive",
                    s,
                    None,
                    None,
                    None,
                    result.exclusive[i],
                    share,
                    None,
                    None,
                    *none,
                )
            )
        rows.append(
            (d.name, "all", None, None, list(d.segments), k, result.in_all, None, None, None, *none)
        )
        for dist in result.distributions:
            seg = None if dist.group == ALL_GROUP else dist.group
            f, b, lo, hi, cat, n, share = _dist_values(dist)
            rows.append(
                (
                    d.name,
                    "field_distribution",
                    seg,
                    None,
                    None,
                    None,
                    n,
                    None,
                    None,
                    None,
                    f,
                    dist.group,
                    b,
                    lo,
                    hi,
                    cat,
                    share,
                )
            )
        rows = [(*r, run_id, when) for r in rows]
        summary = ctx.spark.createDataFrame(rows, OVERLAP_SCHEMA)
        region_df = region_rows(regions, d.segments).select(
            F.lit(d.name).alias("Insight"), F.lit("region").alias("Kind"), *[F.lit(None).cast(_S).alias(c) for c in ("SegmentA", "SegmentB")],
            "Segments", "Degree", "Members", *[F.lit(None).cast(_D).alias(c) for c in ("ShareOfA", "ShareOfB", "Jaccard")],
            F.lit(None).cast(_S).alias("Field"), F.lit(None).cast(_S).alias("Group"), F.lit(None).cast(_I).alias("Bin"),
            F.lit(None).cast(_D).alias("BinLow"), F.lit(None).cast(_D).alias("BinHigh"), F.lit(None).cast(_S).alias("Category"),
            F.lit(None).cast(_D).alias("Share"), F.lit(run_id).alias("RunId"), F.lit(when).cast(T.TimestampType()).alias("AsOf"),
        )  # fmt: skip
        table: DataFrame = summary.unionByName(region_df)
        path = lake.insight_path(d.output)
        version = lake.overwrite(table, path, metadata=run_id)
    finally:
        regions.unpersist()
    out = InsightResult(d.output, d.name, d.kind, run_id, {path: version}, overlap=result)
    folder = _reports_folder(lake, d.output) if charts else None
    if folder is not None:
        out.charts = overlap_charts(result, folder, d.name)
    log.info(
        "overlap %s: sizes %s, %d in all; wrote %s v%d",
        d.output,
        result.sizes,
        result.in_all,
        path,
        version,
    )
    return out


def _sides(ctx: Context, lake: Lake, d: DifferentiatorsDefinition) -> DataFrame:
    key = ctx.catalog.key
    customers = customer_rows(lake, ctx.catalog, d.fields)
    primary = read_membership(lake, d.primary, key).select(key).distinct()
    if d.compare_to is None:
        flagged = primary.select(key, F.lit(1).alias("IsPrimary"))
        return customers.join(flagged, key, "left").withColumn(
            "IsPrimary", F.coalesce(F.col("IsPrimary"), F.lit(0))
        )
    other = read_membership(lake, d.compare_to, key).select(key).distinct()
    membership = primary.select(key, F.lit(1).alias("IsPrimary")).unionByName(
        other.select(key, F.lit(0).alias("IsPrimary"))
    )
    return membership.join(customers, key, "inner")


def _run_differentiators(
    ctx: Context,
    lake: Lake,
    d: DifferentiatorsDefinition,
    run_id: str,
    when: dt.datetime,
    charts: bool,
) -> InsightResult:
    result = differentiate(ctx.spark, _sides(ctx, lake, d), d.fields)
    compare = d.compare_to or ALL_OTHERS
    rows = [
        (d.name, s.rank, s.field, s.display, s.field_type, s.kind, s.score, s.auc, s.tvd, s.p_value, s.test,
         s.primary_count, s.other_count, s.primary_nulls, s.other_nulls, s.primary_mean, s.other_mean,
         s.primary_median, s.other_median, s.categories, d.primary, compare, run_id, when)
        for s in result.scores
    ]  # fmt: skip
    dist_rows = [
        (
            d.name,
            x.field,
            x.group,
            x.bin,
            x.low,
            x.high,
            x.category,
            x.members,
            x.share,
            run_id,
            when,
        )
        for x in result.distributions
    ]
    dist_path = lake.insight_path(d.distributions_output)
    path = lake.insight_path(d.output)
    versions = {
        dist_path: lake.overwrite(
            ctx.spark.createDataFrame(dist_rows, DISTRIBUTIONS_SCHEMA), dist_path, metadata=run_id
        ),
        path: lake.overwrite(
            ctx.spark.createDataFrame(rows, DIFFERENTIATORS_SCHEMA), path, metadata=run_id
        ),
    }
    out = InsightResult(d.output, d.name, d.kind, run_id, versions, differentiators=result)
    folder = _reports_folder(lake, d.output) if charts else None
    if folder is not None:
        other = d.compare_to or "all other customers"
        out.charts = differentiator_charts(
            result.scores, result.distributions, folder, d.name, d.primary, other
        )
    top = result.scores[0] if result.scores else None
    log.info(
        "differentiators %s: top field %s (score %s); wrote %s",
        d.output,
        top.field if top else None,
        top.score if top else None,
        versions,
    )
    return out
