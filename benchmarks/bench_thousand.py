"""Issue 32: a thousand segments in one run.

Definitions come from a seeded generator over the Contoso catalog: four dependency
levels (600, 250, 100 and 50 segments), attribute and measure leaves, related leaves over
Purchases with several aggregates and windows, and segment leaves naming the level
below. Every run is a first run: the output tables are removed before it.

(a) Scale in segments: one run of 1,000 against one run of the first 10, and the
    marginal cost of a segment, (t1000 - t10) / 990.
(b) The floor: read the inputs once (profile, measures, one aggregation of Purchases)
    and write every membership row the run wrote once, into a Delta table partitioned
    by segment. The run against it.
(c) Peak JVM heap during the 1,000-segment run (the heap pools' peak usage, reset just
    before it), to compare across sizes.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks._harness import row, scratch_dir
from benchmarks.bench_segments import AS_OF, definitions_conf
from cohortlake.context import Context
from segmentation.run import run_segments

__all__ = ["SPARK_CONF", "levelled", "run", "thousand"]

# The shipped default (conf/lakehouse.yaml), not the benchmarks' 8 GB: the goal is that
# a thousand segments complete at it.
SPARK_CONF = {"spark.driver.memory": "4g"}

LEVELS = (600, 250, 100, 50)
_TASK = 2_000_000  # rows per write task, as memberships' publication sizes them
_OUTPUTS = ("memberships", "segment_runs", "segment_sketches")
STATES = ["California", "Texas", "New York", "Florida", "Washington", "Illinois", "Ohio"]
TIERS = ["low", "medium", "high"]
OCCUPATIONS = ["Teacher", "Engineer", "Nurse", "Student", "Retired"]


def _leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(8)
    if kind == 0:
        return {"attribute": "State", "op": "eq", "value": rng.choice(STATES)}
    if kind == 1:
        low = rng.randrange(20_000, 120_000, 5_000)
        return {"attribute": "Income", "op": "between", "value": [low, low + 30_000]}
    if kind == 2:
        return {"attribute": "LoyaltyTier", "op": "in", "value": rng.sample(TIERS, 2)}
    if kind == 3:
        return {"attribute": "LifetimeSpend", "op": "gt", "value": rng.randrange(100, 3_000, 50)}
    if kind == 4:
        return {"attribute": "AverageWebPurchase", "op": "gte", "value": rng.randrange(40, 200, 5)}
    channel = {"attribute": "Channel", "op": "eq", "value": rng.choice(["web", "store"])}
    within = {"n": rng.choice([30, 60, 90, 180, 365]), "unit": "days"}
    if kind == 5:
        having = {"agg": "count", "op": "gte", "value": rng.randrange(1, 6)}
    elif kind == 6:
        having = {
            "agg": "sum",
            "attribute": "Amount",
            "op": "gt",
            "value": rng.randrange(50, 800, 25),
        }
    else:
        having = {
            "agg": "count_distinct",
            "attribute": "Product",
            "op": "gte",
            "value": rng.randrange(1, 4),
        }
    return {"related": "Purchases", "where": channel, "within": within, "having": having}  # fmt: skip


def levelled(
    leaf: Callable[[random.Random], dict[str, Any]],
    seed: int,
    levels: tuple[int, ...],
    prefix: str,
) -> list[dict[str, Any]]:
    """Generated definitions in dependency order, ``leaf`` drawing each condition leaf:
    level 0 one leaf or two under all/any; level k > 0 names level k - 1 (sometimes
    negated) beside a leaf, sometimes or-ed with another of level k - 1."""
    rng = random.Random(seed)
    defs: list[dict[str, Any]] = []
    below: list[str] = []
    for depth, count in enumerate(levels):
        here: list[str] = []
        for i in range(count):
            output = f"{prefix}{depth}Segment{i}"
            if depth == 0:
                shape = rng.randrange(3)
                where: dict[str, Any] = (
                    leaf(rng)
                    if shape == 0
                    else {"all" if shape == 1 else "any": [leaf(rng), leaf(rng)]}
                )
            else:
                named = {"segment": rng.choice(below)}
                if rng.random() < 0.3:
                    named = {"not": named}
                where = {"all": [named, leaf(rng)]}
                if rng.random() < 0.3:
                    where = {"any": [where, {"segment": rng.choice(below)}]}
            defs.append({"name": output, "output": output, "where": where})
            here.append(output)
        below = here
    return defs


def thousand(seed: int = 32, levels: tuple[int, ...] = LEVELS) -> list[dict[str, Any]]:
    """The benchmark's definitions (see ``levelled``), named ``L<level>Segment<i>``."""
    return levelled(_leaf, seed, levels, "L")


def _fresh(ctx: Context) -> None:
    for name in _OUTPUTS:
        shutil.rmtree(ctx.lake.path(name), ignore_errors=True)


def _first_run(ctx: Context) -> tuple[float, int]:
    """Seconds, and the membership rows written."""
    _fresh(ctx)
    started = time.perf_counter()
    runs = run_segments(ctx, as_of=AS_OF)
    return time.perf_counter() - started, sum(r.members for r in runs)


def _reset_heap_peaks(spark: SparkSession) -> list[Any]:
    jvm = spark._jvm
    assert jvm is not None
    pools = [
        p
        for p in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
        if str(p.getType().toString()) == "Heap memory"
    ]
    for p in pools:
        p.resetPeakUsage()
    return pools


def _floor(spark: SparkSession, ctx: Context, out: str, rows_written: int) -> tuple[float, int]:
    """Read the inputs once and write every membership row once, in tasks of at most
    2M rows as the run writes them (a partitioned write sorts each task's rows: 40M
    rows in one task ran out of a 4 GB heap); seconds and rows."""
    lake = ctx.lake
    started = time.perf_counter()
    purchases = (
        lake.read(lake.activity_path("Purchases"))
        .groupBy("CustomerId")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("Amount").alias("spend"))
    )
    inputs = (
        lake.read(lake.profile_path("Customer"))
        .join(lake.read(lake.measures_path()), "CustomerId", "left")
        .join(purchases, "CustomerId", "left")
    )
    inputs.write.format("noop").mode("overwrite").save()
    rows = lake.read(lake.path("memberships")).select("Segment", "CustomerId")
    tasks = max(int(spark.conf.get("spark.sql.shuffle.partitions") or 1), -(-rows_written // _TASK))
    shutil.rmtree(out, ignore_errors=True)
    rows.repartition(tasks, "Segment").write.format("delta").partitionBy("Segment").save(out)
    seconds = time.perf_counter() - started
    return seconds, lake.read(out).count()


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    defs = thousand()
    rows: list[dict[str, Any]] = []
    with definitions_conf(spark, workdir, size, defs[:10]) as small:
        _first_run(small)  # warm-up: the JVM's first run compiles most of what both need
        t10, _ = _first_run(small)
    with definitions_conf(spark, workdir, size, defs) as ctx:
        pools = _reset_heap_peaks(spark)
        t1000, members = _first_run(ctx)
        peak_mb = sum(int(p.getPeakUsage().getUsed()) for p in pools) / 2**20
        out = scratch_dir(workdir, size, "thousand-floor")
        t_floor, written = _floor(spark, ctx, out, members)
        shutil.rmtree(out, ignore_errors=True)
        _fresh(ctx)
    marginal = (t1000 - t10) / (len(defs) - 10)
    rows += [
        row("thousand", "1,000 segments / 10 segments, one first run each", t1000 / t10, "<= 3x",
            f"{t1000:.1f}s vs {t10:.1f}s; 4 levels (600/250/100/50)"),
        row("thousand", "marginal seconds per segment", marginal, "<= 0.05",
            f"(t1000 - t10) / 990 = ({t1000:.1f} - {t10:.1f}) / 990"),
        row("thousand", "1,000 segments / floor (read inputs once, write every membership row once)",
            t1000 / t_floor, "<= 2x", f"{t1000:.1f}s vs {t_floor:.1f}s; {written:,} membership rows"),
        row("thousand", "peak JVM heap MB, 1,000 segments", peak_mb, "",
            "sum of the heap pools' peak usage during the run; compare across --size"),
    ]  # fmt: skip
    return rows
