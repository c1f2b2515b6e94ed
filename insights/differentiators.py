"""Differentiators: how a primary segment differs from another group, field by field.

Every field gets a difference score in [0.5, 1]:

* numeric (number, integer, date, timestamp): ``max(AUC, 1 - AUC)`` where AUC is the
  probability that a random primary member has the larger value, ties counting half
  (the Mann–Whitney U of the primary side over ``n1 * n2``); p-value from the
  two-sided Mann–Whitney normal approximation with tie and continuity correction
  (scipy's ``method="asymptotic"``);
* categorical (string, boolean): ``0.5 + TVD / 2``, TVD the total variation distance
  between the two category distributions; p-value from Pearson's chi-square on the
  2 × k table (no Yates correction).

Nulls are left out of scores, means, medians and distributions and counted per side.

Exact AUC without collecting customers: one pass turns the customer rows into counts
per (field, distinct value) for each side, cached. U needs, for every value v, how
many other-side values lie below v. The values of each field are cut into ``BUCKETS``
equal-width range buckets; a window ordered by value *inside each (field, bucket)*
gives the counts below v within the bucket (so the sort is spread over buckets, not
funnelled into one partition), and the per-bucket totals — fields × buckets rows —
give each bucket's offset on the driver. With ``lt_o(v)`` the other-side count below
v, ``2U = Σ_v 2·n_p(v)·lt_o(v) + n_p(v)·n_o(v)``, summed as exact 64-bit integers.
Exact medians come from the same cumulative counts; tie sizes Σ(t³ − t) for the
p-value from the value counts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import FieldRef
from insights.distributions import (
    BINS,
    DistRow,
    GroupTotals,
    bin_of,
    category_rows,
    distributions,
    numeric_rows,
    top_categories,
)
from insights.significance import chi_square_p, mann_whitney_p
from insights.values import field_names, is_numeric, long_values

__all__ = [
    "BUCKETS",
    "OTHER_SIDE",
    "PRIMARY_SIDE",
    "Differentiators",
    "FieldScore",
    "differentiate",
    "mann_whitney_p",
]

log = logging.getLogger(__name__)

BUCKETS = 64
COLLECT_CATEGORIES = 1000
PRIMARY_SIDE = "primary"
OTHER_SIDE = "other"


@dataclass(frozen=True)
class FieldScore:
    """One field's difference between the primary side and the other side."""

    field: str
    display: str
    field_type: str
    kind: str  # numeric | categorical
    score: float | None
    auc: float | None
    tvd: float | None
    p_value: float | None
    test: str  # mann_whitney | chi_square
    primary_count: int
    other_count: int
    primary_nulls: int
    other_nulls: int
    primary_mean: float | None
    other_mean: float | None
    primary_median: float | None
    other_median: float | None
    categories: int | None
    rank: int = 0


@dataclass(frozen=True)
class Differentiators:
    """Scores ranked best first, and every field's side-by-side distribution."""

    scores: list[FieldScore]
    distributions: list[DistRow]


def _side_counts(sides: DataFrame, fields: tuple[FieldRef, ...]) -> DataFrame:
    """(Field, Num, Cat) -> Np, No: customers per distinct value on each side (nulls included)."""
    long = long_values(sides, fields, ["IsPrimary"], by_index=True)
    p = F.col("IsPrimary").cast("long")
    counts = long.groupBy("Field", "Num", "Cat").agg(
        F.sum(p).alias("Np"), F.sum(F.lit(1).cast("long") - p).alias("No")
    )
    return counts.select(
        field_names(F.col("Field"), fields).alias("Field"), "Num", "Cat", "Np", "No"
    )


def differentiate(
    spark: SparkSession,
    sides: DataFrame,
    fields: tuple[FieldRef, ...],
    collect_categories: int = COLLECT_CATEGORIES,
) -> Differentiators:
    """Score ``fields`` between ``IsPrimary = 1`` and ``IsPrimary = 0`` rows of ``sides``.

    ``sides`` has one row per (customer, side) with the field columns; a customer in
    both compared segments appears once on each side. Categorical fields with at most
    ``collect_categories`` categories are finished on the driver from their category
    counts (bounded by categories); fields with more are aggregated in Spark.
    """
    started = time.monotonic()
    counts = _side_counts(sides, fields).persist()
    try:
        totals, ranges = _totals(counts)
        log.info(
            "differentiators: %d fields, value counts in %.1fs",
            len(fields),
            time.monotonic() - started,
        )
        numeric = [f for f in fields if is_numeric(f)]
        categorical = [f for f in fields if not is_numeric(f)]
        side_totals = {
            (f, side): GroupTotals(
                t[0] if side == PRIMARY_SIDE else t[1], t[2] if side == PRIMARY_SIDE else t[3]
            )
            for f, t in totals.items()
            for side in (PRIMARY_SIDE, OTHER_SIDE)
        }
        scored: list[FieldScore] = []
        dists: list[DistRow] = []
        if numeric:
            found, rows = _numeric_scores(spark, counts, numeric, totals, ranges, side_totals)
            scored.extend(found)
            dists.extend(rows)
        if categorical:
            many = max(totals.get(f.name, _NO_TOTALS)[6] for f in categorical) > collect_categories
            if many:
                scored.extend(_categorical_scores(spark, counts, categorical, totals))
                dists.extend(_categorical_distributions(spark, counts, categorical, side_totals))
            else:
                found, rows = _categorical_on_driver(counts, categorical, totals, side_totals)
                scored.extend(found)
                dists.extend(rows)
    finally:
        counts.unpersist()
    ranked = sorted(scored, key=lambda s: (s.score is None, -(s.score or 0.0), s.field))
    result = [_with_rank(s, i + 1) for i, s in enumerate(ranked)]
    log.info("differentiators: scored %d fields in %.1fs", len(result), time.monotonic() - started)
    return Differentiators(result, dists)


def _categorical_distributions(
    spark: SparkSession,
    counts: DataFrame,
    fields: list[FieldRef],
    side_totals: dict[tuple[str, str], GroupTotals],
) -> list[DistRow]:
    long_counts = counts.select(
        "Field",
        "Num",
        "Cat",
        F.explode(
            F.array(
                F.struct(F.lit(PRIMARY_SIDE).alias("Group"), F.col("Np").alias("N")),
                F.struct(F.lit(OTHER_SIDE).alias("Group"), F.col("No").alias("N")),
            )
        ).alias("_g"),
    ).select("Field", "Num", "Cat", "_g.Group", "_g.N")
    return distributions(
        spark,
        long_counts.where(F.col("N") > 0),
        [],
        [f.name for f in fields],
        [PRIMARY_SIDE, OTHER_SIDE],
        side_totals,
    )


def _categorical_on_driver(
    counts: DataFrame,
    fields: list[FieldRef],
    totals: _Totals,
    side_totals: dict[tuple[str, str], GroupTotals],
) -> tuple[list[FieldScore], list[DistRow]]:
    """TVD, chi-square and shares from the (few) category counts of each field."""
    names = [f.name for f in fields]
    rows = (
        counts.where(F.col("Field").isin(names) & F.col("Cat").isNotNull())
        .select("Field", "Cat", "Np", "No")
        .collect()
    )
    per: dict[str, dict[str, tuple[int, int]]] = {n: {} for n in names}
    for r in rows:
        per[r["Field"]][r["Cat"]] = (int(r["Np"]), int(r["No"]))
    scores = []
    got: dict[tuple[str, str, str], int] = {}
    shown: dict[str, list[str]] = {}
    for f in fields:
        n_p, n_o, null_p, null_o, _, _, _ = totals.get(f.name, _NO_TOTALS)
        cats = per[f.name]
        tvd = score = p = None
        if n_p and n_o:
            tvd = min(max(0.5 * sum(abs(a / n_p - b / n_o) for a, b in cats.values()), 0.0), 1.0)
            score = 0.5 + tvd / 2.0
            n = n_p + n_o
            chi2 = 0.0
            for a, b in cats.values():
                e_p, e_o = (a + b) * n_p / n, (a + b) * n_o / n
                chi2 += (a - e_p) ** 2 / e_p + (b - e_o) ** 2 / e_o
            p = chi_square_p(chi2, len(cats))
        scores.append(
            FieldScore(
                f.name, f.display, f.type, "categorical", score, None, tvd, p, "chi_square",
                n_p, n_o, null_p, null_o, None, None, None, None, len(cats),
            )
        )  # fmt: skip
        shown[f.name] = top_categories({c: a + b for c, (a, b) in cats.items()})
        for c, (a, b) in cats.items():
            got[(f.name, c, PRIMARY_SIDE)] = a
            got[(f.name, c, OTHER_SIDE)] = b
    return scores, category_rows(names, got, shown, [PRIMARY_SIDE, OTHER_SIDE], side_totals)


def _with_rank(s: FieldScore, rank: int) -> FieldScore:
    return FieldScore(**{**s.__dict__, "rank": rank})


_Totals = dict[str, tuple[int, int, int, int, float | None, float | None, int]]
_NO_TOTALS: tuple[int, int, int, int, float | None, float | None, int] = (0, 0, 0, 0, None, None, 0)


def _totals(counts: DataFrame) -> tuple[_Totals, dict[str, tuple[float, float]]]:
    """field -> (n_primary, n_other, nulls_primary, nulls_other, sum_primary, sum_other, categories),
    and field -> (min, max) of the numeric fields' values."""
    has = F.col("Num").isNotNull() | F.col("Cat").isNotNull()
    rows = (
        counts.groupBy("Field")
        .agg(
            F.sum(F.when(has, F.col("Np")).otherwise(0)).alias("TotP"),
            F.sum(F.when(has, F.col("No")).otherwise(0)).alias("TotO"),
            F.sum(F.when(has, 0).otherwise(F.col("Np"))).alias("NullP"),
            F.sum(F.when(has, 0).otherwise(F.col("No"))).alias("NullO"),
            F.sum(F.col("Num") * F.col("Np")).alias("SumP"),
            F.sum(F.col("Num") * F.col("No")).alias("SumO"),
            F.count("Cat").alias("K"),
            F.min("Num").alias("Lo"),
            F.max("Num").alias("Hi"),
        )
        .collect()
    )
    totals = {
        r["Field"]: (
            int(r["TotP"]),
            int(r["TotO"]),
            int(r["NullP"]),
            int(r["NullO"]),
            r["SumP"],
            r["SumO"],
            int(r["K"]),
        )
        for r in rows
    }
    ranges = {r["Field"]: (float(r["Lo"]), float(r["Hi"])) for r in rows if r["Lo"] is not None}
    return totals, ranges


def _mean(total: float | None, n: int) -> float | None:
    return float(total) / n if n and total is not None else None


def _numeric_scores(
    spark: SparkSession,
    counts: DataFrame,
    fields: list[FieldRef],
    totals: _Totals,
    ranges: dict[str, tuple[float, float]],
    side_totals: dict[tuple[str, str], GroupTotals],
) -> tuple[list[FieldScore], list[DistRow]]:
    names = [f.name for f in fields]
    values = counts.where(F.col("Field").isin(names) & F.col("Num").isNotNull())
    bounds_rows = []
    for name in names:
        if name not in ranges:
            continue
        n_p, n_o = totals[name][0], totals[name][1]
        lo, hi = ranges[name]
        # 0-based positions of the lower and upper middle values, for exact medians.
        bounds_rows.append(
            (
                name, lo, (hi - lo) / BUCKETS, (hi - lo) / BINS,
                (n_p - 1) // 2, n_p // 2, (n_o - 1) // 2, n_o // 2,
            )
        )  # fmt: skip
    found: dict[str, dict[str, float | None]] = {}
    hist: dict[tuple[str, str, int], int] = {}
    if bounds_rows:
        schema = T.StructType(
            [
                T.StructField("Field", T.StringType()),
                T.StructField("Lo", T.DoubleType()),
                T.StructField("Width", T.DoubleType()),
                T.StructField("BinWidth", T.DoubleType()),
            ]
            + [T.StructField(c, T.LongType()) for c in ("K1p", "K2p", "K1o", "K2o")]
        )
        bounds = spark.createDataFrame(bounds_rows, schema)
        bucketed = values.join(F.broadcast(bounds), "Field").withColumn(
            "Bucket", bin_of(F.col("Num"), F.col("Lo"), F.col("Width"), BUCKETS)
        )
        # One query gives the range buckets' totals (for offsets) and the display bins.
        per_bucket = (
            bucketed.withColumn("Bin", bin_of(F.col("Num"), F.col("Lo"), F.col("BinWidth"), BINS))
            .groupBy("Field", "Bucket", "Bin")
            .agg(F.sum("Np").alias("Np"), F.sum("No").alias("No"))
            .collect()
        )
        bucket_sums: dict[tuple[str, int], tuple[int, int]] = {}
        for r in per_bucket:
            field, bucket, n_p, n_o = r["Field"], int(r["Bucket"]), int(r["Np"]), int(r["No"])
            prior = bucket_sums.get((field, bucket), (0, 0))
            bucket_sums[(field, bucket)] = (prior[0] + n_p, prior[1] + n_o)
            hist[(field, PRIMARY_SIDE, int(r["Bin"]))] = (
                hist.get((field, PRIMARY_SIDE, int(r["Bin"])), 0) + n_p
            )
            hist[(field, OTHER_SIDE, int(r["Bin"]))] = (
                hist.get((field, OTHER_SIDE, int(r["Bin"])), 0) + n_o
            )
        offsets_rows = []
        by_field: dict[str, list[tuple[int, int, int]]] = {}
        for (field, bucket), (n_p, n_o) in bucket_sums.items():
            by_field.setdefault(field, []).append((bucket, n_p, n_o))
        for name, items in by_field.items():
            below_p = below_o = 0
            for bucket, n_p, n_o in sorted(items):
                offsets_rows.append((name, bucket, below_p, below_o))
                below_p += n_p
                below_o += n_o
        offsets = spark.createDataFrame(
            offsets_rows,
            T.StructType(
                [
                    T.StructField("Field", T.StringType()),
                    T.StructField("Bucket", T.IntegerType()),
                    T.StructField("OffP", T.LongType()),
                    T.StructField("OffO", T.LongType()),
                ]
            ),
        )
        before = (
            Window.partitionBy("Field", "Bucket")
            .orderBy("Num")
            .rowsBetween(Window.unboundedPreceding, -1)
        )
        # Only the columns the window needs are sorted; the bounds are joined back after it.
        # An even number of sort tasks per core (AQE would pick an odd few on small data).
        keyed = bucketed.select("Field", "Bucket", "Num", "Np", "No").repartition(
            2 * spark.sparkContext.defaultParallelism, "Field", "Bucket"
        )
        ranked = (
            keyed.withColumn("BeforeP", F.coalesce(F.sum("Np").over(before), F.lit(0).cast("long")))
            .withColumn("BeforeO", F.coalesce(F.sum("No").over(before), F.lit(0).cast("long")))
            .join(F.broadcast(offsets), ["Field", "Bucket"])
            .join(F.broadcast(bounds.select("Field", "K1p", "K2p", "K1o", "K2o")), "Field")
            .withColumn("LtP", F.col("OffP") + F.col("BeforeP"))
            .withColumn("LtO", F.col("OffO") + F.col("BeforeO"))
        )
        t = (F.col("Np") + F.col("No")).cast("double")
        le_p = F.col("LtP") + F.col("Np")
        le_o = F.col("LtO") + F.col("No")
        rows = (
            ranked.groupBy("Field")
            .agg(
                F.sum(F.lit(2) * F.col("Np") * F.col("LtO") + F.col("Np") * F.col("No")).alias(
                    "U2"
                ),
                F.sum(t * t * t - t).alias("Ties"),
                F.min(F.when(le_p > F.col("K1p"), F.col("Num"))).alias("P1"),
                F.min(F.when(le_p > F.col("K2p"), F.col("Num"))).alias("P2"),
                F.min(F.when(le_o > F.col("K1o"), F.col("Num"))).alias("O1"),
                F.min(F.when(le_o > F.col("K2o"), F.col("Num"))).alias("O2"),
            )
            .collect()
        )
        for r in rows:
            found[r["Field"]] = {
                "U2": int(r["U2"]),
                "Ties": float(r["Ties"]),
                "PrimaryMedian": (r["P1"] + r["P2"]) / 2.0
                if r["P1"] is not None and r["P2"] is not None
                else None,
                "OtherMedian": (r["O1"] + r["O2"]) / 2.0
                if r["O1"] is not None and r["O2"] is not None
                else None,
            }
    out = []
    for f in fields:
        n_p, n_o, null_p, null_o, sum_p, sum_o, _ = totals.get(f.name, (0, 0, 0, 0, None, None, 0))
        got = found.get(f.name, {})
        auc = p = score = None
        if n_p and n_o and got:
            u = (got["U2"] or 0.0) / 2.0
            auc = u / (n_p * n_o)
            score = max(auc, 1.0 - auc)
            p = mann_whitney_p(u, n_p, n_o, got["Ties"] or 0.0)
        out.append(
            FieldScore(
                f.name, f.display, f.type, "numeric", score, auc, None, p, "mann_whitney",
                n_p, n_o, null_p, null_o, _mean(sum_p, n_p), _mean(sum_o, n_o),
                got.get("PrimaryMedian"), got.get("OtherMedian"), None,
            )
        )  # fmt: skip
    present = {n: ranges[n] for n in names if n in ranges}
    return out, numeric_rows(present, hist, [PRIMARY_SIDE, OTHER_SIDE], side_totals)


def _categorical_scores(
    spark: SparkSession,
    counts: DataFrame,
    fields: list[FieldRef],
    totals: _Totals,
) -> list[FieldScore]:
    both = [
        (f.name, totals[f.name][0], totals[f.name][1])
        for f in fields
        if f.name in totals and totals[f.name][0] and totals[f.name][1]
    ]
    found: dict[str, tuple[float, float, int]] = {}
    if both:
        sizes = spark.createDataFrame(
            both,
            T.StructType(
                [
                    T.StructField("Field", T.StringType()),
                    T.StructField("TotP", T.LongType()),
                    T.StructField("TotO", T.LongType()),
                ]
            ),
        )
        c_p, c_o = F.col("Np").cast("double"), F.col("No").cast("double")
        tot_p, tot_o = F.col("TotP").cast("double"), F.col("TotO").cast("double")
        row_total = c_p + c_o
        e_p = row_total * tot_p / (tot_p + tot_o)
        e_o = row_total * tot_o / (tot_p + tot_o)
        rows = (
            counts.where(F.col("Cat").isNotNull())
            .join(F.broadcast(sizes), "Field")
            .groupBy("Field")
            .agg(
                (F.sum(F.abs(c_p / tot_p - c_o / tot_o)) / 2.0).alias("TVD"),
                F.sum((c_p - e_p) * (c_p - e_p) / e_p + (c_o - e_o) * (c_o - e_o) / e_o).alias(
                    "Chi2"
                ),
                F.count(F.lit(1)).alias("K"),
            )
            .collect()
        )
        found = {r["Field"]: (float(r["TVD"]), float(r["Chi2"]), int(r["K"])) for r in rows}
    out = []
    for f in fields:
        n_p, n_o, null_p, null_o, _, _, k = totals.get(f.name, (0, 0, 0, 0, None, None, 0))
        tvd = score = p = None
        if f.name in found:
            tvd, chi2, k = found[f.name]
            tvd = min(max(tvd, 0.0), 1.0)
            score = 0.5 + tvd / 2.0
            p = chi_square_p(chi2, k)
        out.append(
            FieldScore(
                f.name, f.display, f.type, "categorical", score, None, tvd, p, "chi_square",
                n_p, n_o, null_p, null_o, None, None, None, None, k,
            )
        )  # fmt: skip
    return out
