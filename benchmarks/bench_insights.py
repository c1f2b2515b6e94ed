"""Insights benchmarks: one-pass overlap vs a join per pair; differentiators in one pass vs per field.

* overlap of 20 segments over ``size`` customers: ``segment_overlap`` (membership
  bitmask, one pass) against one inner join + count per pair (190 pairs, plus a count
  per segment) — goal ≥ 20× faster — and against one full scan of the 20 segment
  tables (a union count) — goal ≤ 2×; for reference also against joins that return
  what the one pass returns (the pairs and sizes above, plus each segment's members in
  no other segment as an anti join against the union of the other 19, and the members
  in all 20 as one 20-way join; only the list of regions has no join form), whose
  counts are checked against the one pass's; and, to show where the time goes, each
  side's query planning alone (Delta lists every table's files with a Spark job, per
  query: 20 tables for the one pass, 400 for the 210 count queries of the joins);
  and two floors, the one pass's own first steps run alone into Spark's ``noop`` sink:
  its shuffle of the memberships by customer, and that shuffle with each customer's
  ``bit_or`` mask; the joins per pair over the first bound what any one pass that
  shuffles each membership once by customer can reach here;
* differentiators on 10 fields (7 numeric, 3 categorical) of a segment against all
  other customers: one ``differentiate`` call against one call per field (each a
  separate scan) — goal ≥ 3× faster.

Inputs are synthetic Delta tables written to the harness's scratch folder before timing; every timing is
wall-clock in this process, the best of 3-5 runs taken in turns with the run it is
compared with, after a warm-up run (the 190 joins: one run, after the other timings
warmed the session).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks._harness import run_to_noop, scratch_dir, time_call, time_interleaved
from cohortlake.catalog import FieldRef
from insights.differentiators import differentiate
from insights.overlap import Overlap, member_masks, memberships, segment_overlap

__all__ = ["run"]

log = logging.getLogger(__name__)

N_SEGMENTS = 20
KEY = "CustomerId"
NUMERIC = [
    "Income",
    "RewardPoints",
    "Age",
    "LifetimeSpend",
    "AverageWebPurchase",
    "AverageStorePurchase",
    "Visits",
]
CATEGORICAL = ["State", "LoyaltyTier", "EmailSubscriber"]


def _customers(spark: SparkSession, size: int) -> DataFrame:
    ids = spark.range(size).withColumnRenamed("id", KEY)
    r = lambda seed: F.rand(seed)  # noqa: E731 - seeded column generator
    return ids.select(
        KEY,
        F.round(r(1) * 150_000, 0).alias("Income"),
        (r(2) * 5_000).cast("int").alias("RewardPoints"),
        (18 + r(3) * 60).cast("int").alias("Age"),
        F.round(r(4) * 3_000, 2).alias("LifetimeSpend"),
        F.round(50 + r(5) * 200, 2).alias("AverageWebPurchase"),
        F.round(40 + r(6) * 150, 2).alias("AverageStorePurchase"),
        (r(7) * 100).cast("int").alias("Visits"),
        F.element_at(
            F.array(*[F.lit(s) for s in ("California", "Texas", "Washington", "Ohio", "Oregon")]),
            (r(8) * 5).cast("int") + 1,
        ).alias("State"),
        F.element_at(
            F.array(F.lit("low"), F.lit("medium"), F.lit("high")), (r(9) * 3).cast("int") + 1
        ).alias("LoyaltyTier"),
        (r(10) < 0.4).alias("EmailSubscriber"),
    )


def _write(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("overwrite").save(path)


def _prepare(spark: SparkSession, size: int, workdir: str) -> tuple[str, list[str]]:
    base = Path(scratch_dir(workdir, size, "insights"))
    customers_path = str(base / "customers")
    _write(_customers(spark, size), customers_path)
    segment_paths = []
    ids = spark.range(size).withColumnRenamed("id", KEY)
    for i in range(N_SEGMENTS):
        rate = 0.05 + 0.4 * (i % 7) / 6
        path = str(base / f"segment{i}")
        _write(ids.where(F.rand(100 + i) < rate), path)
        segment_paths.append(path)
    return customers_path, segment_paths


def _overlap_rows(
    spark: SparkSession, size: int, segment_paths: list[str]
) -> list[dict[str, object]]:
    def tables() -> list[DataFrame]:
        return [spark.read.format("delta").load(p) for p in segment_paths]

    names = tuple(f"S{i}" for i in range(N_SEGMENTS))

    def one_pass() -> Overlap:
        overlap, regions = segment_overlap(spark, tables(), names, KEY)
        regions.unpersist()
        return overlap

    def per_pair() -> tuple[list[int], list[int]]:
        ts = tables()
        sizes = [t.count() for t in ts]
        return sizes, [a.join(b, KEY).count() for a, b in itertools.combinations(ts, 2)]

    def same_output() -> tuple[list[int], list[int], list[int], int]:
        sizes, pairs = per_pair()
        ts = [t.select(KEY) for t in tables()]
        exclusive = [
            t.join(
                functools.reduce(DataFrame.unionByName, ts[:i] + ts[i + 1 :]), KEY, "left_anti"
            ).count()
            for i, t in enumerate(ts)
        ]
        in_all = functools.reduce(lambda a, b: a.join(b, KEY), ts).count()
        return sizes, pairs, exclusive, in_all

    def full_scan() -> None:
        ts = tables()
        union = ts[0]
        for t in ts[1:]:
            union = union.unionByName(t)
        union.count()

    def shuffle_alone() -> None:
        run_to_noop(memberships(tables(), KEY))

    def masks_alone() -> None:
        run_to_noop(member_masks(tables(), KEY))

    def plan(df: DataFrame) -> None:
        df._jdf.queryExecution().executedPlan()  # optimize and plan, run nothing

    def one_pass_planning() -> None:
        plan(member_masks(tables(), KEY).groupBy("Mask").count())

    def per_pair_planning() -> None:
        ts = tables()
        for t in ts:
            plan(t.groupBy().count())
        for a, b in itertools.combinations(ts, 2):
            plan(a.join(b, KEY).groupBy().count())

    t_scan, t_one, t_shuffle, t_masks = time_interleaved(
        [(full_scan, 5), (one_pass, 5), (shuffle_alone, 5), (masks_alone, 5)]
    )
    t_pairs = time_call(per_pair, repeat=1, warmup=0)  # 190 joins: warm after the others
    t_one_plan = time_call(one_pass_planning, repeat=3)
    t_pairs_plan = time_call(per_pair_planning, repeat=1, warmup=0)
    note = f"{size} customers, {N_SEGMENTS} segments, {N_SEGMENTS * (N_SEGMENTS - 1) // 2} pairs"
    started = time.perf_counter()
    sizes, pairs, exclusive, in_all = same_output()
    t_same = time.perf_counter() - started
    got = one_pass()
    pairs_one = [got.pair(i, j) for i, j in itertools.combinations(range(N_SEGMENTS), 2)]
    if (sizes, pairs, exclusive, in_all) != (got.sizes, pairs_one, got.exclusive, got.in_all):
        raise AssertionError("the joins and the one pass disagree on the overlap counts")
    shuffle_note = (
        "floor: the one pass's shuffle alone (the 20 tables' keys, bit i for table i, "
        "repartitioned by customer), run into Spark's noop sink"
    )
    masks_note = (
        "floor: the one pass's first half alone (that shuffle and each customer's bit_or "
        "mask), run into Spark's noop sink; no region counted, nothing fetched"
    )
    same_note = (
        f"{note}: sizes, pairs, 20 anti joins (members in no other segment), one 20-way join "
        "(members in all); counts equal the one pass's"
    )
    return [
        {
            "benchmark": "insights_overlap",
            "metric": "one_pass_seconds",
            "value": t_one,
            "goal": "",
            "note": note,
        },
        {
            "benchmark": "insights_overlap",
            "metric": "join_per_pair_seconds",
            "value": t_pairs,
            "goal": "",
            "note": note,
        },
        {
            "benchmark": "insights_overlap",
            "metric": "full_scan_seconds",
            "value": t_scan,
            "goal": "",
            "note": note,
        },
        {
            "benchmark": "insights_overlap",
            "metric": "speedup_vs_join_per_pair",
            "value": t_pairs / t_one,
            "goal": ">= 20x",
            "note": note,
        },
        {
            "benchmark": "insights_overlap",
            "metric": "one_pass_planning_seconds",
            "value": t_one_plan,
            "goal": "",
            "note": f"{note}: the one pass's query planned, not run (Delta lists each table's "
            "files, one Spark job per table)",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "join_per_pair_planning_seconds",
            "value": t_pairs_plan,
            "goal": "",
            "note": f"{note}: the 210 count queries of the joins per pair planned, not run",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "speedup_vs_join_per_pair_after_planning",
            "value": (t_pairs - t_pairs_plan) / (t_one - t_one_plan),
            "goal": "",
            "note": f"{note}: where the time goes: both sides' times less their planning",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "shuffle_alone_seconds",
            "value": t_shuffle,
            "goal": "",
            "note": f"{note}: {shuffle_note}",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "masks_alone_seconds",
            "value": t_masks,
            "goal": "",
            "note": f"{note}: {masks_note}",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "join_per_pair_over_shuffle_alone",
            "value": t_pairs / t_shuffle,
            "goal": "",
            "note": f"{note}: the most a one pass that shuffles each membership once by customer "
            "could reach here",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "join_per_pair_over_masks_alone",
            "value": t_pairs / t_masks,
            "goal": "",
            "note": f"{note}: the most a one pass built on per-customer masks could reach here",
        },
        {
            "benchmark": "insights_overlap",
            "metric": "joins_same_output_seconds",
            "value": t_same,
            "goal": "",
            "note": same_note,
        },
        {
            "benchmark": "insights_overlap",
            "metric": "speedup_vs_joins_same_output",
            "value": t_same / t_one,
            "goal": "",
            "note": same_note,
        },
        {
            "benchmark": "insights_overlap",
            "metric": "one_pass_over_full_scan",
            "value": t_one / t_scan,
            "goal": "<= 2x",
            "note": note,
        },
    ]


def _differentiator_rows(
    spark: SparkSession, size: int, customers_path: str, primary_path: str
) -> list[dict[str, object]]:
    fields = tuple(
        [
            FieldRef(
                n, "integer" if n in ("RewardPoints", "Age", "Visits") else "number", n, "profile"
            )
            for n in NUMERIC
        ]
        + [
            FieldRef(n, "boolean" if n == "EmailSubscriber" else "string", n, "profile")
            for n in CATEGORICAL
        ]
    )

    def sides() -> DataFrame:
        customers = spark.read.format("delta").load(customers_path)
        primary = (
            spark.read.format("delta").load(primary_path).select(KEY, F.lit(1).alias("IsPrimary"))
        )
        return customers.join(primary, KEY, "left").withColumn(
            "IsPrimary", F.coalesce("IsPrimary", F.lit(0))
        )

    def together() -> None:
        differentiate(spark, sides(), fields)

    def per_field() -> None:
        for f in fields:
            differentiate(spark, sides(), (f,))

    t_one, t_each = time_interleaved([(together, 5), (per_field, 3)])
    note = f"{size} customers, {len(fields)} fields ({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical), vs all others"
    return [
        {
            "benchmark": "insights_differentiators",
            "metric": "one_pass_seconds",
            "value": t_one,
            "goal": "",
            "note": note,
        },
        {
            "benchmark": "insights_differentiators",
            "metric": "query_per_field_seconds",
            "value": t_each,
            "goal": "",
            "note": note,
        },
        {
            "benchmark": "insights_differentiators",
            "metric": "speedup_vs_query_per_field",
            "value": t_each / t_one,
            "goal": ">= 3x",
            "note": note,
        },
    ]


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, object]]:
    """Prepare the Delta inputs under ``workdir``, then time both comparisons."""
    started = time.perf_counter()
    customers_path, segment_paths = _prepare(spark, size, workdir)
    log.info(
        "insights bench: inputs for %d customers written in %.1fs",
        size,
        time.perf_counter() - started,
    )
    rows = _overlap_rows(spark, size, segment_paths)
    rows += _differentiator_rows(spark, size, customers_path, segment_paths[3])
    for r in rows:
        log.info("%s %s = %.3f %s", r["benchmark"], r["metric"], r["value"], r["goal"])
    return [{**r, "value": float(r["value"])} for r in rows]  # type: ignore[arg-type]
