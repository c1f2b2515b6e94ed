"""Issue 37: an incremental run against a full run, one day later.

50 generated segments over the Contoso catalog, in three dependency levels (30, 12
and 8): attribute leaves, related leaves over Purchases with ``within`` windows, and
segment leaves naming the level below. No measures: a full ``cohortlake measures``
overwrites its table, after which a segment reading it runs in full anyway.

The inputs (profile, Purchases) are copied, with Delta's change data feed on, into a
private lake under the scratch folder (the generated lake is left as it is), and a full
run at ``AS_OF`` there is the baseline; its ``memberships`` has deletion vectors on. For each share of customers (0.1%, 1%), two
copies of that lake get the same new purchases, one each for that share of customers
(a seeded choice), dated within the day after ``AS_OF``. With the as-of one day later,
copy B runs in full (forced), then copy A incrementally. Every segment's fingerprint
must be the same in both, and both ``memberships`` tables must hold the same rows. One
such day with other customers first warms up both (the baseline ran no MERGE).

Rows: incremental / full seconds at each share (goal <= 0.1x at 0.1%), the seconds of
each, and the customers the incremental run re-evaluated; the note splits the
incremental run's time by its log lines: history, settling and change feeds (up to
the scope's count), evaluation (with the scope's old rows), the MERGE, and the rest
(sketches redrawn from the table, run rows).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from benchmarks._harness import row, scratch_dir
from benchmarks.bench_segments import AS_OF, definitions_conf
from benchmarks.bench_thousand import levelled
from cohortlake.context import Context, load_context
from cohortlake.lake import Lake, SegmentRun
from cohortlake.memberships import SEGMENT, memberships_path
from lab.contoso import PRODUCTS
from segmentation.run import RunOptions, run_segments

__all__ = ["SHARES", "mixed_fifty", "run"]

SHARES = (0.001, 0.01)
LEVELS = (30, 12, 8)
WINDOWS = (30, 90, 365)  # days; each one's boundary moves past ~2.7% of customers a day
NEXT_DAY = AS_OF + dt.timedelta(days=1)
STATES = ["California", "Texas", "New York", "Florida", "Washington", "Illinois", "Ohio"]
TIERS = ["low", "medium", "high"]
OCCUPATIONS = ["Teacher", "Engineer", "Nurse", "Student", "Retired"]
_PROFILE, _PURCHASES = "Customer", "Purchases"
_WARMUP_SEED, _SEED = 370, 37
log = logging.getLogger(__name__)
_SCOPE = re.compile(r"incremental run: (\d+) customers may have changed membership")
_EVALUATED = re.compile(r"segments evaluated in one pass")
_PUBLISHED = re.compile(r"published \d+ changed segments in one commit")


def _leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(6)
    if kind == 0:
        return {"attribute": "State", "op": "eq", "value": rng.choice(STATES)}
    if kind == 1:
        low = rng.randrange(20_000, 120_000, 5_000)
        return {"attribute": "Income", "op": "between", "value": [low, low + 30_000]}
    if kind == 2:
        return {"attribute": "LoyaltyTier", "op": "in", "value": rng.sample(TIERS, 2)}
    if kind == 3:
        return {"attribute": "Occupation", "op": "ne", "value": rng.choice(OCCUPATIONS)}
    channel = {"attribute": "Channel", "op": "eq", "value": rng.choice(["web", "store"])}
    within = {"n": rng.choice(WINDOWS), "unit": "days"}
    having = rng.choice(
        [
            {"agg": "count", "op": "gte", "value": rng.randrange(1, 4)},
            {"agg": "sum", "attribute": "Amount", "op": "gt", "value": rng.randrange(50, 400, 25)},
            {"agg": "count_distinct", "attribute": "Product", "op": "gte", "value": 2},
        ]
    )
    return {"related": _PURCHASES, "where": channel, "within": within, "having": having}


def mixed_fifty(seed: int = 37, levels: tuple[int, ...] = LEVELS) -> list[dict[str, Any]]:
    """The benchmark's definitions (``bench_thousand.levelled`` with this module's
    leaves), named ``Inc<level>Segment<i>``."""
    return levelled(_leaf, seed, levels, "Inc")


def _private_lake(shared: Context, root: Path) -> Context:
    """The shared conf over a private copy of the inputs, change data feed on."""
    ctx = load_context(shared.conf_dir, root=str(root), spark=shared.spark)
    # memberships is created with deletion vectors (lakehouse.yaml's deletion_vectors:
    # true), the setting for incremental runs: a MERGE marks who left, rewrites nothing
    ctx.lake.deletion_vectors = True
    src, dst = shared.lake, ctx.lake
    pairs = (
        (src.profile_path(_PROFILE), dst.profile_path(_PROFILE)),
        (src.activity_path(_PURCHASES), dst.activity_path(_PURCHASES)),
    )
    for source, target in pairs:
        writer = src.read(source).write.format("delta")
        writer.option("delta.enableChangeDataFeed", "true").save(target)
    return ctx


def _copy(ctx: Context, root: Path) -> Context:
    """A copy of the whole lake (inputs, memberships, run history) at ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(ctx.root.removeprefix("file:"), root)
    return load_context(ctx.conf_dir, root=str(root), spark=ctx.spark)


def _uniform(key: Column, seed: int, salt: int) -> Column:
    """A draw in [0, 1) from the key alone: the same rows whatever the partitioning."""
    return F.pmod(F.xxhash64(key, F.lit(seed), F.lit(salt)), F.lit(1_000_000)) / F.lit(1e6)


def _new_purchases(lake: Lake, size: int, share: float, seed: int, out: str) -> int:
    """One purchase each, dated within the day after ``AS_OF``, for ``share`` of the
    customers (a seeded choice), written to ``out``; returns the customers."""
    n = max(1, round(size * share))
    key = F.col("CustomerId")
    chosen = (
        lake.read(lake.profile_path(_PROFILE))
        .select(key)
        .orderBy(F.xxhash64(key, F.lit(seed)))
        .limit(n)
    )
    when, web, product, amount = (_uniform(key, seed, salt) for salt in range(4))
    products = F.array(*[F.lit(p) for p, _ in PRODUCTS])
    rows = chosen.select(
        F.concat(key, F.lit(f"-new{seed}")).alias("PurchaseId"),
        key,
        F.timestamp_seconds(
            F.lit(int(AS_OF.timestamp()) + 1) + F.floor(when * F.lit(86_399))
        ).alias("PurchaseDate"),
        F.when(web < F.lit(0.5), F.lit("web")).otherwise(F.lit("store")).alias("Channel"),
        F.element_at(products, (F.floor(product * len(PRODUCTS)) + 1).cast("int")).alias("Product"),
        F.round(F.lit(5.0) + amount * F.lit(95.0), 2).alias("Amount"),
    )
    schema = lake.read(lake.activity_path(_PURCHASES)).schema
    rows.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields]).write.format(
        "delta"
    ).save(out)
    return n


def _append(ctx: Context, staged: str) -> None:
    lake = ctx.lake
    lake.read(staged).write.format("delta").mode("append").save(lake.activity_path(_PURCHASES))


def _digest(ctx: Context) -> dict[str, tuple[int, int]]:
    """Rows and XOR of the keys' hashes per segment of ``memberships`` (independent of
    how the product computes its fingerprints)."""
    rows = ctx.lake.read(memberships_path(ctx.lake))
    stats = rows.groupBy(SEGMENT).agg(
        F.count(F.lit(1)).alias("n"), F.bit_xor(F.xxhash64(F.col("CustomerId"))).alias("h")
    )
    return {str(r[SEGMENT]): (int(r["n"]), int(r["h"])) for r in stats.collect()}


class _Marks(logging.Handler):
    """The time each of the run's log lines was emitted (logger ``segmentation.run``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.perf_counter(), record.getMessage()))

    def first(self, pattern: re.Pattern[str]) -> tuple[float, re.Match[str]] | None:
        for at, text in self.lines:
            found = pattern.search(text)
            if found:
                return at, found
        return None


@contextlib.contextmanager
def _marks() -> Iterator[_Marks]:
    logger = logging.getLogger("segmentation.run")
    handler, level = _Marks(), logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _full(ctx: Context) -> tuple[float, list[SegmentRun]]:
    """Seconds and runs of a forced full run."""
    started = time.perf_counter()
    runs = run_segments(ctx, as_of=NEXT_DAY, options=RunOptions(force=True))
    return time.perf_counter() - started, runs


def _incremental(ctx: Context) -> tuple[float, list[SegmentRun], int, str]:
    """Seconds, runs, customers re-evaluated and the time split of an incremental run."""
    with _marks() as marks:
        started = time.perf_counter()
        runs = run_segments(ctx, as_of=NEXT_DAY, options=RunOptions(incremental=True))
        ended = time.perf_counter()
    modes = {r.mode for r in runs if r.mode is not None}
    if modes != {"incremental"}:
        raise AssertionError(f"the incremental run was not incremental: {sorted(modes)}")
    scope, evaluated = marks.first(_SCOPE), marks.first(_EVALUATED)
    if scope is None or evaluated is None:
        return ended - started, runs, -1, "no time split (log lines not found)"
    published = marks.first(_PUBLISHED)
    merged = published[0] if published is not None else evaluated[0]
    split = (
        f"split: history+settle+change feeds {scope[0] - started:.1f}s, "
        f"evaluation {evaluated[0] - scope[0]:.1f}s, MERGE {merged - evaluated[0]:.1f}s"
        f"{_merge_rows(ctx) if published is not None else ''}, "
        f"sketches+run rows {ended - merged:.1f}s"
    )
    log.info("incremental run in %.1fs: %s", ended - started, split)
    return ended - started, runs, int(scope[1].group(1)), split


def _merge_rows(ctx: Context) -> str:
    """What the last commit to ``memberships`` (the run's MERGE) rewrote, from its metrics."""
    last = DeltaTable.forPath(ctx.spark, memberships_path(ctx.lake)).history(1).first()
    metrics = (last["operationMetrics"] if last is not None else None) or {}
    copied = int(metrics.get("numTargetRowsCopied", 0))
    changed = sum(
        int(metrics.get(k, 0))
        for k in ("numTargetRowsInserted", "numTargetRowsDeleted", "numTargetRowsUpdated")
    )
    return f" (copied {copied:,} rows to change {changed:,})"


def _day(base: Context, scratch: Path, size: int, share: float, seed: int) -> dict[str, Any]:
    """One day of new purchases for ``share`` of the customers on two copies of ``base``:
    the forced full run on one, then the incremental run on the other; same results."""
    staged = str(scratch / f"new-{seed}-{share}")
    shutil.rmtree(staged, ignore_errors=True)
    found: dict[str, Any] = {"changed": _new_purchases(base.lake, size, share, seed, staged)}
    a, b = _copy(base, scratch / "a"), _copy(base, scratch / "b")
    try:
        _append(a, staged)
        _append(b, staged)
        found["t_full"], full_runs = _full(b)
        found["t_inc"], runs, found["customers"], found["split"] = _incremental(a)
        found["evaluated"] = sum(r.status != "skipped" for r in runs)
        mine = {r.segment: r.fingerprint for r in runs}
        theirs = {r.segment: r.fingerprint for r in full_runs}
        differ = sorted(s for s in theirs if mine.get(s) != theirs[s])
        if differ:
            raise AssertionError(f"incremental and full fingerprints differ: {differ[:5]}")
        if _digest(a) != _digest(b):
            raise AssertionError("incremental and full memberships tables differ")
        return found
    finally:
        for path in (scratch / "a", scratch / "b", Path(staged)):
            shutil.rmtree(path, ignore_errors=True)


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    scratch = Path(scratch_dir(workdir, size, "incremental"))
    shutil.rmtree(scratch, ignore_errors=True)
    rows: list[dict[str, Any]] = []
    days: dict[float, dict[str, Any]] = {}
    try:
        with definitions_conf(spark, workdir, size, mixed_fifty()) as shared:
            base = _private_lake(shared, scratch / "base")
            started = time.perf_counter()
            run_segments(base, as_of=AS_OF)
            t_first = time.perf_counter() - started
            # warm-up of both: the baseline created the table, it ran no MERGE (the first
            # timed full run was 2x slower than the second at 20,000 customers without it)
            _day(base, scratch, size, SHARES[0], _WARMUP_SEED)
            days = {share: _day(base, scratch, size, share, _SEED) for share in SHARES}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for share, day in days.items():
        pct = f"{share:.1%}"
        goal = "<= 0.1x" if share == SHARES[0] else ""
        note = (
            f"{day['t_inc']:.1f}s vs {day['t_full']:.1f}s; {day['customers']:,} customers "
            f"re-evaluated ({day['customers'] / size:.1%}; {day['changed']:,} with new "
            f"purchases), {day['evaluated']} of 50 segments evaluated"
            + ("" if goal else "; no goal: shows how the run scales with the share")
        )
        rows += [
            row("incremental", f"incremental / full run, {pct} with new activity",
                day["t_inc"] / day["t_full"], goal, note),
            row("incremental", f"incremental run seconds, {pct}", day["t_inc"], "", day["split"]),
            row("incremental", f"full run seconds, {pct}", day["t_full"], "",
                f"forced, same data and as-of; the first run at AS_OF took {t_first:.1f}s"),
            row("incremental", f"customers re-evaluated, {pct}", day["customers"], "",
                f"of {size:,}; windows of {'/'.join(map(str, WINDOWS))} days move one day"),
        ]  # fmt: skip
    return rows
