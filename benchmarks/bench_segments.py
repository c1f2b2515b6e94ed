"""Issue 3: compiled segment plans vs hand-written Spark SQL, and 50 segments in one run.

(a) A 6-leaf tree with one related leaf: the compiled Column plan vs the same logic
written by hand in Spark SQL (constants only; no user values), each counted.
(b) 50 segments in one run vs 50 separate runs of one segment each.
(c) 50 segments in one run vs the floor: one scan of profile + measures + one
aggregation of Purchases, joined and fully materialised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks._harness import REPO, lake_root, row, run_to_noop, time_call
from cohortlake.context import Context, load_context
from cohortlake.lake import Lake
from cohortlake.measures import compute_measures
from segmentation.compile import CustomerFrame
from segmentation.run import RunOptions, run_segments
from segmentation.validate import parse_definitions

__all__ = ["run"]

log = logging.getLogger(__name__)

AS_OF = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
SIX_LEAVES = {
    "all": [
        {"attribute": "State", "op": "in", "value": ["California", "Texas", "New York"]},
        {"attribute": "Income", "op": "gt", "value": 50000},
        {"attribute": "LoyaltyTier", "op": "ne", "value": "low"},
        {"any": [
            {"attribute": "AverageWebPurchase", "op": "gte", "value": 120},
            {"attribute": "EmailSubscriber", "op": "eq", "value": True},
        ]},
        {"related": "Purchases", "where": {"attribute": "Channel", "op": "eq", "value": "store"},
         "within": {"n": 180, "unit": "days"}, "having": {"agg": "count", "op": "gte", "value": 2}},
    ]
}  # fmt: skip
HAND_SQL = """
WITH p AS (
  SELECT CustomerId, COUNT(*) AS n FROM purchases
  WHERE Channel = 'store' AND PurchaseDate >= TIMESTAMP '2026-01-02 00:00:00' AND PurchaseDate <= TIMESTAMP '2026-07-01 00:00:00'
  GROUP BY CustomerId
)
SELECT c.CustomerId FROM customer c
LEFT JOIN measures m ON c.CustomerId = m.CustomerId
LEFT JOIN p ON c.CustomerId = p.CustomerId
WHERE c.State IN ('California', 'Texas', 'New York') AND c.Income > 50000 AND c.LoyaltyTier <> 'low'
  AND (m.AverageWebPurchase >= 120 OR c.EmailSubscriber = true) AND COALESCE(p.n, 0) >= 2
"""
STATES = [
    "California",
    "Texas",
    "New York",
    "Florida",
    "Washington",
    "Illinois",
    "Oregon",
    "Georgia",
    "Ohio",
    "Arizona",
]


def _fifty() -> list[dict[str, Any]]:
    defs: list[dict[str, Any]] = []
    for i in range(50):
        state = STATES[i % len(STATES)]
        kind = i % 5
        if kind == 0:
            where: dict[str, Any] = {"attribute": "State", "op": "eq", "value": state}
        elif kind == 1:
            where = {"all": [{"attribute": "Income", "op": "between", "value": [20000 + 2000 * i, 60000 + 2000 * i]},
                             {"attribute": "LoyaltyTier", "op": "in", "value": ["medium", "high"]}]}  # fmt: skip
        elif kind == 2:
            where = {"any": [{"attribute": "AverageStorePurchase", "op": "gte", "value": 90 + i},
                             {"not": {"attribute": "State", "op": "eq", "value": state}}]}  # fmt: skip
        elif kind == 3:
            where = {"related": "Purchases", "where": {"attribute": "Channel", "op": "eq", "value": "web"},
                     "within": {"n": 30 + 10 * (i % 4), "unit": "days"}, "having": {"agg": "count", "op": "gte", "value": 1 + i % 3}}  # fmt: skip
        else:
            where = {"all": [{"attribute": "LifetimeSpend", "op": "gt", "value": 500 + 20 * i},
                             {"attribute": "Occupation", "op": "ne", "value": "Teacher"}]}  # fmt: skip
        defs.append({"name": f"Bench segment {i}", "where": where})
    return defs


def _floor(spark: SparkSession, lake: Lake) -> None:
    """Read every column of profile and measures and aggregate Purchases once, joined per
    customer and fully materialised (noop sink), so no join or column can be pruned."""
    del spark
    profile = lake.read(lake.profile_path("Customer"))
    measures = lake.read(lake.measures_path())
    purchases = (
        lake.read(lake.activity_path("Purchases"))
        .groupBy("CustomerId")
        .agg(F.count(F.lit(1)).alias("Purchases"), F.max("PurchaseDate").alias("LastPurchase"))
    )
    joined = profile.join(measures, "CustomerId", "left").join(purchases, "CustomerId", "left")
    run_to_noop(joined)


def _paired(
    a: Callable[[], object], b: Callable[[], object], rounds: int
) -> tuple[float, float, float]:
    """Median seconds of ``a`` and ``b`` and median of their per-round ratio, timed in
    alternating order round by round after one warm-up call each: on this shared
    machine the same query's time drifted by up to 40% between minutes, which a ratio
    of two separately timed minima absorbed as noise."""
    a()
    b()
    times_a: list[float] = []
    times_b: list[float] = []
    for n in range(rounds):
        for fn, out in ((a, times_a), (b, times_b))[:: 1 if n % 2 == 0 else -1]:
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    ratios = [x / y for x, y in zip(times_a, times_b, strict=True)]
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


@contextlib.contextmanager
def definitions_conf(
    spark: SparkSession, workdir: str, size: int, defs: list[dict[str, Any]]
) -> Iterator[Context]:
    """A throw-away conf of ``defs`` over the generated lake, its measures computed once
    (the same setup for every benchmark that runs generated segments)."""
    conf = Path(tempfile.mkdtemp(prefix="bench-conf-"))
    try:
        shutil.copy(REPO / "conf" / "catalog.yaml", conf / "catalog.yaml")
        root = lake_root(workdir, size)
        (conf / "lakehouse.yaml").write_text(yaml.safe_dump({"root": root}))
        (conf / "segments").mkdir()
        (conf / "segments" / "generated.yaml").write_text(yaml.safe_dump({"segments": defs}))
        ctx = load_context(conf, spark=spark)
        if not ctx.lake.exists(ctx.lake.measures_path()):
            compute_measures(spark, ctx.lake, ctx.catalog, AS_OF)
        yield ctx
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def fifty_segments(
    spark: SparkSession, workdir: str, size: int
) -> contextlib.AbstractContextManager[Context]:
    """The ``_fifty`` segments over the generated lake (see ``definitions_conf``)."""
    return definitions_conf(spark, workdir, size, _fifty())


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    with fifty_segments(spark, workdir, size) as ctx:
        lake = ctx.lake
        rows: list[dict[str, Any]] = []

        # (a) compiled plan vs hand-written SQL, same answer first.
        (d,) = parse_definitions(
            [("bench", {"name": "Six leaves", "where": SIX_LEAVES})], ctx.catalog
        )
        frame = CustomerFrame(ctx.catalog, AS_OF)
        cond = frame.condition(d.where)

        def compiled() -> int:
            return frame.build(lake).filter(cond).count()

        lake.read(lake.profile_path("Customer")).createOrReplaceTempView("customer")
        lake.read(lake.measures_path()).createOrReplaceTempView("measures")
        lake.read(lake.activity_path("Purchases")).createOrReplaceTempView("purchases")

        def hand() -> int:
            return spark.sql(HAND_SQL).count()

        assert compiled() == hand(), "compiled plan and hand-written SQL disagree"
        t_compiled, t_hand, ratio = _paired(compiled, hand, rounds=5)
        rows.append(row("segments", "6-leaf tree: compiled / hand-written SQL", ratio, "<= 1.1x",
                        f"median of 5 paired rounds; {t_compiled:.2f}s vs {t_hand:.2f}s"))  # fmt: skip

        # (b) and (c): 50 segments in one run, vs 50 runs, vs the floor.
        outputs = [f"BenchSegment{i}" for i in range(50)]
        t_one, t_floor, floor_ratio = _paired(
            lambda: run_segments(ctx, as_of=AS_OF, options=RunOptions(force=True)),
            lambda: _floor(spark, lake),
            rounds=3,
        )
        t_separate = time_call(
            lambda: [
                run_segments(ctx, only=[o], as_of=AS_OF, options=RunOptions(force=True))
                for o in outputs
            ],
            repeat=1,
            warmup=0,
        )
        rows.append(row("segments", "50 separate runs / one run of 50", t_separate / t_one, ">= 10x",
                        f"{t_separate:.1f}s vs {t_one:.1f}s; forced re-run, memberships unchanged"))  # fmt: skip
        rows.append(row("segments", "one run of 50 / floor scan", floor_ratio, "<= 2x",
                        f"median of 3 paired rounds; {t_one:.1f}s vs {t_floor:.1f}s; forced re-run, memberships unchanged"))  # fmt: skip

        # (d) the nightly case where time moves on: one day later the 10 segments with a
        # related window change members (all in one MERGE), the 40 others do not.
        changed: list[int] = []

        def next_day() -> None:
            runs = run_segments(
                ctx, as_of=AS_OF + dt.timedelta(days=1), options=RunOptions(force=True)
            )
            changed.append(sum(r.joined + r.left > 0 for r in runs))

        t_changed = time_call(next_day, repeat=1, warmup=0)
        rows.append(row("segments", "one run of 50, next day / floor scan", t_changed / t_floor, "",
                        f"{t_changed:.1f}s vs {t_floor:.1f}s; {changed[0]} of 50 memberships changed"))  # fmt: skip
        return rows
