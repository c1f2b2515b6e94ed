"""The benchmark harness: one Spark session, one generated lake per size, every ``bench_*`` module.

``python -m benchmarks --size N [--only topic ...] [--workdir DIR]`` generates the Contoso
lakehouse at N customers (20 purchases each on average) once into ``<workdir>/lake-<N>``,
runs each module's ``run(spark, size, workdir)`` and writes the rows it returns, with
the size, date, git commit and peak memory, to ``benchmarks/results/latest.{md,json}``.
A module may set ``SPARK_CONF`` (merged over ``BENCH_CONF`` when it is selected; the
session is shared, so a later module's value wins) and ``NEEDS_LAKE = False`` (it
generates its own data: the shared lake is skipped when no selected module needs it).
Spark's local (spill and shuffle) dirs go under the workdir.
Benchmarks report ratios against a baseline run in the same process, so results from
different machines stay comparable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import os
import pkgutil
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "BENCH_CONF",
    "PURCHASES_PER_CUSTOMER",
    "REPO",
    "SEED",
    "ensure_lake",
    "lake_root",
    "main",
    "row",
    "run_to_noop",
    "scratch_dir",
    "time_call",
    "time_interleaved",
]

log = logging.getLogger("benchmarks")

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
RESULTS_DIR = PACKAGE_DIR / "results"
SEED = 42
PURCHASES_PER_CUSTOMER = 20.0
BENCH_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "8g",
    "spark.ui.showConsoleProgress": "false",
}
_GOAL = re.compile(r"^\s*(>=|<=|==|>|<)\s*([0-9.]+)\s*x?\s*$")


def time_call(fn: Callable[[], object], repeat: int = 3, warmup: int = 1) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def time_interleaved(
    calls: Sequence[tuple[Callable[[], object], int]], warmup: int = 1
) -> list[float]:
    """Seconds of the fastest call of each ``(fn, repeat)``, their runs taken in turns.

    A round runs every ``fn`` that still has repeats left, so a slow spell of the machine
    (this 2-core VM has them) lands on both sides of a ratio instead of on one of them.
    """
    for fn, _ in calls:
        for _ in range(warmup):
            fn()
    repeats = [max(1, n) for _, n in calls]  # as time_call: at least one timed call each
    best = [float("inf")] * len(calls)
    for r in range(max(repeats)):
        for i, (fn, _) in enumerate(calls):
            if r < repeats[i]:
                started = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - started)
    return best


def run_to_noop(df: DataFrame) -> None:
    """Run ``df``'s whole query into Spark's ``noop`` sink: every row computed, none kept."""
    df.write.format("noop").mode("overwrite").save()


def row(
    benchmark: str, metric: str, value: float, goal: str = "", note: str = ""
) -> dict[str, Any]:
    """One result row in the module contract's shape."""
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": float(value),
        "goal": goal,
        "note": note,
    }


def lake_root(workdir: str, size: int) -> str:
    """Where the generated lakehouse of ``size`` customers lives."""
    return str(Path(workdir).resolve() / f"lake-{size}")


def scratch_dir(workdir: str, size: int, topic: str) -> str:
    """A folder a benchmark may overwrite freely (baseline outputs and the like)."""
    return str(Path(workdir).resolve() / f"scratch-{size}" / topic)


def ensure_lake(
    spark: SparkSession, workdir: str, size: int, seed: int = SEED
) -> tuple[str, float | None]:
    """Generate the Contoso lake at ``size`` customers unless the same one is there.

    Returns the root and the seconds generation took (None when reused). A marker file
    written after both tables records what was generated.
    """
    from cohortlake.lake import Lake
    from lab.contoso import GENERATOR_VERSION, generate_contoso

    root = lake_root(workdir, size)
    marker = Path(root) / "_generated.json"
    wanted = {
        "customers": size,
        "seed": seed,
        "purchases_per_customer": PURCHASES_PER_CUSTOMER,
        "generator": GENERATOR_VERSION,
    }
    if marker.exists():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            log.info("reusing %s (%s)", root, found.get("counts"))
            return root, None
    started = time.perf_counter()
    counts = generate_contoso(
        spark,
        Lake(spark, root),
        customers=size,
        seed=seed,
        purchases_per_customer=PURCHASES_PER_CUSTOMER,
    )
    seconds = time.perf_counter() - started
    marker.write_text(
        json.dumps({**wanted, "counts": counts, "seconds": round(seconds, 2)}, indent=2)
    )
    log.info("generated %s in %.1f s: %s", root, seconds, counts)
    return root, seconds


def discover(only: Sequence[str] | None = None) -> list[tuple[str, ModuleType]]:
    """The ``bench_<topic>`` modules of this package (only the named topics, when given)."""
    topics = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if m.name.startswith("bench_")
    )
    if only:
        unknown = [t for t in only if t not in topics]
        if unknown:
            known = ", ".join(topics)
            print(
                f"error: unknown benchmark topic(s) {', '.join(unknown)} (known: {known})",
                file=sys.stderr,
            )
            raise SystemExit(2)
        topics = [t for t in topics if t in only]
    return [(t, importlib.import_module(f"benchmarks.bench_{t}")) for t in topics]


def session_conf(modules: Sequence[tuple[str, ModuleType]], workdir: str) -> dict[str, str]:
    """``BENCH_CONF``, the selected modules' ``SPARK_CONF`` and local dirs under ``workdir``."""
    conf = {**BENCH_CONF, "spark.local.dir": str(Path(workdir).resolve() / "spark-local")}
    for topic, module in modules:
        extra: dict[str, str] = getattr(module, "SPARK_CONF", {})
        for key, value in extra.items():
            if key in conf and conf[key] != value:
                log.info("%s sets %s=%s (was %s)", topic, key, value, conf[key])
            conf[key] = value
    return conf


def _jvm_peak_rss_mb(spark: SparkSession) -> float | None:
    """The driver JVM's peak resident memory (VmHWM), in MB; None where /proc is unavailable."""
    try:
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, AttributeError):
        return None
    return None


def _python_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def _git_commit(repo: Path = REPO) -> str:
    """HEAD, with ``+dirty`` when tracked files other than the results differ from it."""
    try:
        head = _git(repo, "rev-parse", "HEAD")
        changed = _git(
            repo, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if changed else head


def _goal_met(value: float, goal: str) -> str:
    m = _GOAL.match(goal)
    if not m or value != value:  # no goal, or NaN (a skipped measurement)
        return ""
    limit = float(m.group(2))
    ok = {
        ">=": value >= limit,
        "<=": value <= limit,
        "==": value == limit,
        ">": value > limit,
        "<": value < limit,
    }[m.group(1)]
    return "yes" if ok else "NO"


def write_results(
    rows: list[dict[str, Any]], meta: dict[str, Any], results_dir: Path = RESULTS_DIR
) -> None:
    """``latest.{json,md}`` (meta + rows, and the same as a table), copied to
    ``size-<N>-<topics>.{json,md}`` so runs of other topics or sizes do not erase them."""
    results_dir.mkdir(parents=True, exist_ok=True)
    doc = {**meta, "rows": rows}
    text = json.dumps(doc, indent=2, default=str) + "\n"
    stem = f"size-{meta['size']}-{'-'.join(meta.get('topics') or ['all'])}"
    (results_dir / "latest.json").write_text(text)
    (results_dir / f"{stem}.json").write_text(text)
    lines = [
        f"# Benchmark results ({meta['size']:,} customers)",
        "",
        *(f"- {k}: {v}" for k, v in meta.items() if k != "size"),
        "",
        "| benchmark | metric | value | goal | met | note |",
        "|---|---|---:|---|---|---|",
    ]
    for r in rows:
        value = "n/a" if r["value"] != r["value"] else f"{r['value']:.3f}"
        lines.append(
            f"| {r['benchmark']} | {r['metric']} | {value} | {r['goal']} | {_goal_met(r['value'], r['goal'])} | {r['note']} |"
        )
    table = "\n".join(lines) + "\n"
    (results_dir / "latest.md").write_text(table)
    (results_dir / f"{stem}.md").write_text(table)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--size", type=int, default=1_000_000, help="customers (default 1000000)")
    parser.add_argument(
        "--only", nargs="+", metavar="TOPIC", help="run only these bench_<topic> modules"
    )
    parser.add_argument(
        "--workdir", default=str(PACKAGE_DIR / "work"), help="generated lakes and scratch tables"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed (default 42)")
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    args = parser.parse_args(argv)
    if args.size < 1:
        parser.error("--size must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and write the results; returns the process exit code."""
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    modules = discover(args.only)
    os.makedirs(args.workdir, exist_ok=True)

    from cohortlake.session import get_spark

    conf = session_conf(modules, args.workdir)
    os.makedirs(conf["spark.local.dir"], exist_ok=True)
    spark = get_spark("cohortlake-bench", master=args.master, conf=conf)
    started = dt.datetime.now(dt.UTC)
    generate_seconds = None
    if any(getattr(module, "NEEDS_LAKE", True) for _, module in modules):
        _, generate_seconds = ensure_lake(spark, args.workdir, args.size, args.seed)
    rows: list[dict[str, Any]] = []
    if generate_seconds is not None:
        rows.append(
            row(
                "generate",
                "seconds",
                generate_seconds,
                note=f"Contoso, {PURCHASES_PER_CUSTOMER:g} purchases/customer",
            )
        )
    for topic, module in modules:
        log.info("benchmark %s at %d customers", topic, args.size)
        t0 = time.perf_counter()
        try:
            rows.extend(module.run(spark, args.size, args.workdir))
        except Exception as exc:  # one broken benchmark must not lose the others' results
            log.exception("benchmark %s failed", topic)
            rows.append(
                row(topic, "failed", float("nan"), note=f"{type(exc).__name__}: {exc}"[:200])
            )
        log.info("benchmark %s done in %.1f s", topic, time.perf_counter() - t0)
    meta = {
        "size": args.size,
        "date": started.isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "spark": spark.version,
        "master": spark.sparkContext.master,
        "cpus": os.cpu_count(),
        "topics": [t for t, _ in modules],
        "driver_memory": spark.sparkContext.getConf().get("spark.driver.memory", ""),
        "peak_driver_jvm_rss_mb": _jvm_peak_rss_mb(spark),
        "peak_python_rss_mb": round(_python_peak_rss_mb(), 1),
        "python": sys.version.split()[0],
    }
    write_results(rows, meta)
    from benchmarks.report import main as render_docs

    render_docs([])  # docs/benchmarks.md and the README's headline table
    for r in rows:
        print(
            f"{r['benchmark']:<28} {r['metric']:<36} {r['value']:>10.3f} {r['goal']:<8} {r['note']}"
        )
    print(
        f"peak driver JVM RSS {meta['peak_driver_jvm_rss_mb']} MB, python {meta['peak_python_rss_mb']} MB"
    )
    spark.stop()
    return 0
