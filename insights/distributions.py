"""Side-by-side distributions of fields across groups, from aggregated value counts.

Input is a count table ``(Field, Num, Cat, Group, N)`` — customers already grouped by
value — so every query here scans distinct values, never customers, and returns rows
bounded by fields × groups × (bins or shown categories). Numeric fields get
``BINS`` equal-width bins over the field's range across all groups (the last bin is
closed; a constant field has one bin); categorical fields show the ``TOP``
categories by total count and fold the rest into ``(other)``. Shares are of the
group's non-null values; nulls are counted separately.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

__all__ = [
    "BINS",
    "OTHER",
    "TOP",
    "DistRow",
    "GroupTotals",
    "bin_of",
    "distributions",
    "group_totals",
]

BINS = 20
TOP = 20
OTHER = "(other)"


@dataclass(frozen=True)
class DistRow:
    """One bar of a distribution: a numeric bin (``bin``/``low``/``high``) or a category."""

    field: str
    group: str
    bin: int | None
    low: float | None
    high: float | None
    category: str | None
    members: int
    share: float | None


@dataclass(frozen=True)
class GroupTotals:
    """Non-null values and nulls of one field in one group."""

    values: int
    nulls: int


def bin_of(value: Column, lo: Column, width: Column, bins: int) -> Column:
    """Equal-width bin index in [0, bins-1]; a zero width (constant field) is bin 0."""
    raw = F.floor((value - lo) / width).cast("int")
    return F.when(width > 0, F.least(F.greatest(raw, F.lit(0)), F.lit(bins - 1))).otherwise(
        F.lit(0)
    )


def group_totals(
    counts: DataFrame,
) -> tuple[dict[tuple[str, str], GroupTotals], dict[str, tuple[float, float]]]:
    """(field, group) -> non-null and null counts; and field -> (min, max) of numeric values."""
    has_value = F.col("Num").isNotNull() | F.col("Cat").isNotNull()
    rows = (
        counts.groupBy("Field", "Group")
        .agg(
            F.sum(F.when(has_value, F.col("N")).otherwise(0)).alias("Values"),
            F.sum(F.when(has_value, 0).otherwise(F.col("N"))).alias("Nulls"),
            F.min("Num").alias("Lo"),
            F.max("Num").alias("Hi"),
        )
        .collect()
    )
    totals = {
        (r["Field"], r["Group"]): GroupTotals(int(r["Values"]), int(r["Nulls"])) for r in rows
    }
    ranges: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r["Lo"] is not None:
            lo, hi = ranges.get(r["Field"], (float(r["Lo"]), float(r["Hi"])))
            ranges[r["Field"]] = (min(lo, float(r["Lo"])), max(hi, float(r["Hi"])))
    return totals, ranges


def _ranges(counts: DataFrame) -> dict[str, tuple[float, float]]:
    rows = (
        counts.where(F.col("Num").isNotNull())
        .groupBy("Field")
        .agg(F.min("Num").alias("Lo"), F.max("Num").alias("Hi"))
        .collect()
    )
    return {r["Field"]: (float(r["Lo"]), float(r["Hi"])) for r in rows}


def distributions(
    spark: SparkSession,
    counts: DataFrame,
    numeric: list[str],
    categorical: list[str],
    groups: list[str],
    totals: dict[tuple[str, str], GroupTotals],
    bins: int = BINS,
    top: int = TOP,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> list[DistRow]:
    """Every group's histogram (numeric fields) or category shares (categorical fields).

    ``ranges`` (field -> min, max) saves a query when the caller knows them already.
    """
    out: list[DistRow] = []
    if numeric:
        numbers = counts.where(F.col("Field").isin(numeric))
        known = (
            {f: r for f, r in (ranges or {}).items() if f in numeric}
            if ranges is not None
            else _ranges(numbers)
        )
        out.extend(_numeric(spark, numbers, known, groups, totals, bins))
    if categorical:
        out.extend(
            _categorical(
                counts.where(F.col("Field").isin(categorical)), categorical, groups, totals, top
            )
        )
    return out


def _share(n: int, total: int) -> float | None:
    return n / total if total else None


def _numeric(
    spark: SparkSession,
    counts: DataFrame,
    ranges: dict[str, tuple[float, float]],
    groups: list[str],
    totals: dict[tuple[str, str], GroupTotals],
    bins: int,
) -> list[DistRow]:
    if not ranges:
        return []
    schema = T.StructType(
        [
            T.StructField("Field", T.StringType()),
            T.StructField("Lo", T.DoubleType()),
            T.StructField("Width", T.DoubleType()),
        ]
    )
    bounds = spark.createDataFrame(
        [(f, lo, (hi - lo) / bins) for f, (lo, hi) in ranges.items()], schema
    )
    binned = (
        counts.where(F.col("Num").isNotNull())
        .join(F.broadcast(bounds), "Field")
        .withColumn("Bin", bin_of(F.col("Num"), F.col("Lo"), F.col("Width"), bins))
        .groupBy("Field", "Group", "Bin")
        .agg(F.sum("N").alias("N"))
        .collect()
    )
    got = {(r["Field"], r["Group"], int(r["Bin"])): int(r["N"]) for r in binned}
    return numeric_rows(ranges, got, groups, totals, bins)


def numeric_rows(
    ranges: dict[str, tuple[float, float]],
    got: dict[tuple[str, str, int], int],
    groups: list[str],
    totals: dict[tuple[str, str], GroupTotals],
    bins: int = BINS,
) -> list[DistRow]:
    """Histogram rows from (field, group, bin) -> count, every bin present (zeros too)."""
    out: list[DistRow] = []
    for field, (lo, hi) in sorted(ranges.items()):
        width = (hi - lo) / bins
        n_bins = bins if width > 0 else 1
        for group in groups:
            total = totals.get((field, group), GroupTotals(0, 0)).values
            for b in range(n_bins):
                n = got.get((field, group, b), 0)
                low = lo + b * width
                high = hi if b == n_bins - 1 else lo + (b + 1) * width
                out.append(DistRow(field, group, b, low, high, None, n, _share(n, total)))
    return out


def top_categories(per_category: dict[str, int], top: int = TOP) -> list[str]:
    """The ``top`` categories by total count, ties broken by name."""
    return sorted(per_category, key=lambda c: (-per_category[c], c))[:top]


def category_rows(
    fields: list[str],
    got: dict[tuple[str, str, str], int],
    shown: dict[str, list[str]],
    groups: list[str],
    totals: dict[tuple[str, str], GroupTotals],
) -> list[DistRow]:
    """Share rows for the ``shown`` categories of each field, the rest as ``(other)``."""
    out: list[DistRow] = []
    for field in sorted(fields):
        cats = shown.get(field, [])
        for group in groups:
            total = totals.get((field, group), GroupTotals(0, 0)).values
            seen = 0
            for i, cat in enumerate(cats):
                n = got.get((field, cat, group), 0)
                seen += n
                out.append(DistRow(field, group, i, None, None, cat, n, _share(n, total)))
            if total - seen > 0:
                rest = total - seen
                out.append(
                    DistRow(field, group, len(cats), None, None, OTHER, rest, _share(rest, total))
                )
    return out


def _categorical(
    counts: DataFrame,
    fields: list[str],
    groups: list[str],
    totals: dict[tuple[str, str], GroupTotals],
    top: int,
) -> list[DistRow]:
    per = (
        counts.where(F.col("Cat").isNotNull())
        .groupBy("Field", "Cat", "Group")
        .agg(F.sum("N").alias("N"))
    )
    by_total = Window.partitionBy("Field").orderBy(F.desc("Total"), F.asc("Cat"))
    ranked = (
        per.withColumn("Total", F.sum("N").over(Window.partitionBy("Field", "Cat")))
        .withColumn("Rank", F.dense_rank().over(by_total))
        .where(F.col("Rank") <= top)
        .collect()
    )
    got: dict[tuple[str, str, str], int] = {}
    order: dict[str, dict[str, int]] = defaultdict(dict)
    for r in ranked:
        got[(r["Field"], r["Cat"], r["Group"])] = int(r["N"])
        order[r["Field"]][r["Cat"]] = int(r["Rank"])
    shown = {
        f: [c for c, _ in sorted(ranks.items(), key=lambda cr: cr[1])] for f, ranks in order.items()
    }
    return category_rows(fields, got, shown, groups, totals)
