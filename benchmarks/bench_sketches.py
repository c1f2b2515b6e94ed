"""Segment sketches (issue 36): their cost inside a run, pairwise overlap of 1,000 segments
from sketches against the exact one pass, and the estimates' accuracy.

(a) The 50-segment run of ``bench_segments`` on the Contoso lake with its theta sketches
    against the same run without them (the sketch aggregate a constant, no sketch
    commit), best of 3 taken in turns: forced with unchanged memberships (the nightly
    case: nothing published, nothing to sketch), and with 10 of 50 memberships changing
    (as-of one day on, then back): their 10 sketches come from the aggregation that
    fills the publishing cache. Goal: no measurable cost.
(b) 1,000 synthetic segments of 1% to 50% of ``size`` customers (independent hash
    draws), sketched into a scratch ``segment_sketches`` table; the full pairwise
    matrix (499,500 pairs) from it, the table's read included (best of 3), against the
    exact one pass (``insights.overlap.segment_overlap``, bitmask) over 50 of the same
    segments written as Delta tables, the most it takes in one pass. Covering the
    499,500 pairs with 50-segment passes takes at least 499,500 / 1,225 = 408 of them, so
    the exact side is extrapolated as 408 one passes (20 passes, every table read once
    and most pairs missing, is also shown as a floor).
(c) Accuracy on 20 of those segments: every size and pairwise intersection estimate
    against the exact pass's counts: the worst relative error, and how many fall
    outside their stated 3-sigma bounds (goal: none).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

import segmentation.run as segment_run
from benchmarks._harness import row, scratch_dir, time_call, time_interleaved
from benchmarks.bench_segments import AS_OF, fifty_segments
from cohortlake.lake import Lake
from cohortlake.sketches import SketchRow, latest_sketches, record_sketches, sketch_agg, sketched
from insights.overlap import segment_overlap
from insights.theta import sketch_overlap
from segmentation.run import RunOptions, run_segments

__all__ = ["run"]

log = logging.getLogger(__name__)

KEY = "CustomerId"
SEGMENTS = 1_000
EXACT = 50  # the one pass's limit
ACCURACY = 20
PER_PASS = 50
_EMPTY_SKETCH = bytes.fromhex("01030300001e0000")


def _member(i: int) -> Column:
    """Segment i: an independent draw of 1% to 50% of the customers."""
    permille = 10 + (i * 37) % 490
    return (F.abs(F.xxhash64(F.col(KEY), F.lit(i))) % 1000) < permille


def _cost_in_a_run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    with fifty_segments(spark, workdir, size) as ctx:
        real_agg, real_record = segment_run.sketch_agg, segment_run.record_sketches
        days = [0]

        def forced(step: int = 0) -> None:
            days[0] = (days[0] + step) % 2  # step 1: one day on, then back: 10 of 50 change
            as_of = AS_OF + dt.timedelta(days=days[0])
            run_segments(ctx, as_of=as_of, options=RunOptions(force=True))

        def without(step: int = 0) -> None:
            segment_run.sketch_agg = lambda _keys: F.first(F.lit(_EMPTY_SKETCH))  # type: ignore[assignment]
            segment_run.record_sketches = lambda _lake, _rows: None  # type: ignore[assignment]
            try:
                forced(step)
            finally:
                segment_run.sketch_agg, segment_run.record_sketches = real_agg, real_record

        forced()  # the first run publishes and sketches all 50
        t_with, t_without = time_interleaved([(forced, 3), (without, 3)])
        changed = time_interleaved([(lambda: forced(1), 3), (lambda: without(1), 3)])
        t_read = time_call(lambda: sketched(ctx.lake), repeat=3)
    note = "best of 3 in turns; without = the sketch aggregate a constant, no sketch commit"
    return [
        row("sketches", "run of 50, unchanged: with sketches / without", t_with / t_without, "<= 1.1x",
            f"{note}; {t_with:.1f}s vs {t_without:.1f}s; forced re-run, nothing to sketch"),
        row("sketches", "run of 50, 10 changed: with sketches / without", changed[0] / changed[1], "<= 1.1x",
            f"{note}; {changed[0]:.1f}s vs {changed[1]:.1f}s; as-of one day on and back, 10 sketched"),
        row("sketches", "reading the sketched versions, per run (s)", t_read, "",
            "segment_sketches' Segment and TableVersion (both arms above pay it)"),
    ]  # fmt: skip


def _sketch_lake(spark: SparkSession, size: int, workdir: str) -> tuple[Lake, float]:
    """1,000 segments' sketches in a scratch lake (made once per size), and the seconds."""
    lake = Lake(spark, str(Path(scratch_dir(workdir, size, "sketches")) / "lake"))
    found = latest_sketches(lake)
    if len(found) == SEGMENTS:
        return lake, float("nan")
    started = time.perf_counter()
    ids = spark.range(size).select(F.format_string("C%07d", F.col("id") + 1).alias(KEY))
    rows: list[SketchRow] = []
    for first in range(0, SEGMENTS, PER_PASS):
        chosen = range(first, min(SEGMENTS, first + PER_PASS))
        aggs = [F.sum(_member(i).cast("long")).alias(f"n{i}") for i in chosen]
        aggs += [sketch_agg(F.when(_member(i), F.col(KEY))).alias(f"s{i}") for i in chosen]
        got = ids.agg(*aggs).first()
        assert got is not None
        rows += [
            SketchRow(f"S{i}", "bench", 0, int(got[f"n{i}"]), bytes(got[f"s{i}"])) for i in chosen
        ]
    record_sketches(lake, rows)
    return lake, time.perf_counter() - started


def _exact_tables(spark: SparkSession, size: int, workdir: str) -> list[str]:
    base = Path(scratch_dir(workdir, size, "sketches")) / "segments"
    ids = spark.range(size).select(F.format_string("C%07d", F.col("id") + 1).alias(KEY))
    paths = []
    for i in range(EXACT):
        path = str(base / f"S{i}")
        if not (Path(path) / "_delta_log").exists():
            ids.where(_member(i)).write.format("delta").mode("overwrite").save(path)
        paths.append(path)
    return paths


def _pairwise_rows(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    lake, built = _sketch_lake(spark, size, workdir)
    paths = _exact_tables(spark, size, workdir)
    names = tuple(f"S{i}" for i in range(EXACT))

    def from_sketches() -> None:
        rows = sorted(latest_sketches(lake).values(), key=lambda r: int(r.segment[1:]))
        assert len(rows) == SEGMENTS
        sketch_overlap(rows).pairs()

    def exact_pass() -> None:
        tables = [spark.read.format("delta").load(p) for p in paths]
        _, regions = segment_overlap(spark, tables, names, KEY)
        regions.unpersist()

    t_sketch = time_call(from_sketches, repeat=3)
    t_exact = time_call(exact_pass, repeat=2)
    passes = math.ceil(SEGMENTS * (SEGMENTS - 1) / (EXACT * (EXACT - 1)))
    note = f"{size} customers, {SEGMENTS} segments, {SEGMENTS * (SEGMENTS - 1) // 2} pairs"
    out = [
        row("sketches", "pairwise matrix of 1,000 from sketches (s)", t_sketch, "<= 30",
            f"{note}; the latest sketches read from Delta, decoded, all pairs with bounds"
            + ("" if built != built else f"; sketches built in {built:.0f}s (20 passes of 50)")),
        row("sketches", "exact one pass of 50 (s)", t_exact, "", f"{size} customers, 1,225 pairs, bitmask"),
        row("sketches", "exact, extrapolated / sketches", passes * t_exact / t_sketch, ">= 100x",
            f"{passes} one passes of 50 cover the pairs at best: {passes * t_exact:.0f}s vs {t_sketch:.1f}s"),
        row("sketches", "exact floor (20 passes) / sketches", 20 * t_exact / t_sketch, "",
            f"every table read once, most pairs missing: {20 * t_exact:.0f}s vs {t_sketch:.1f}s"),
    ]  # fmt: skip
    out += _accuracy(spark, lake, paths[:ACCURACY], size)
    return out


def _accuracy(spark: SparkSession, lake: Lake, paths: list[str], size: int) -> list[dict[str, Any]]:
    names = tuple(f"S{i}" for i in range(len(paths)))
    exact, regions = segment_overlap(
        spark, [spark.read.format("delta").load(p) for p in paths], names, KEY
    )
    regions.unpersist()
    found = latest_sketches(lake, list(names))
    o = sketch_overlap([found[n.lower()] for n in names])
    k = len(names)
    truth = np.array([[exact.pair(i, j) for j in range(k)] for i in range(k)], dtype=np.float64)
    iu = np.triu_indices(k, 1)
    shared, low, high = o.shared[iu], o.shared_low[iu], o.shared_high[iu]
    real = truth[iu]
    sizes = np.array(exact.sizes, dtype=np.float64)
    outside = int(np.sum((real < low) | (real > high)))
    outside_sizes = int(np.sum((sizes < o.size_low) | (sizes > o.size_high)))
    worst = float(np.max(np.abs(shared - real) / np.maximum(real, 1)))
    worst_size = float(np.max(np.abs(o.sizes - sizes) / np.maximum(sizes, 1)))
    note = f"{size} customers, {k} segments of 1-50%, {len(real)} pairs"
    return [
        row("sketches", "intersections outside 3-sigma bounds", outside + outside_sizes, "<= 0",
            f"{note}: {outside} of {len(real)} pairs, {outside_sizes} of {k} sizes"),
        row("sketches", "worst relative error, intersections", worst, "",
            f"{note}; smallest exact intersection {int(real.min()):,}"),
        row("sketches", "worst relative error, sizes", worst_size, "", f"{note}; 1/sqrt(4096) = 0.016"),
    ]  # fmt: skip


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    rows = _cost_in_a_run(spark, size, workdir)
    rows += _pairwise_rows(spark, size, workdir)
    return rows
