"""Issue 8: the scale soak, the whole Contoso demo at ``size`` customers on one driver.

``python -m benchmarks --size 10000000 --only soak`` runs ``lab.demo.run_demo``
(generate, measures, quick creates, segments, insights, expansion, suggestions, the
saved suggestion and the report) into ``<workdir>/scratch-<size>/soak/lakehouse`` with a
fresh copy of ``conf/``, at the benchmarks' 20 purchases per customer (10M customers ->
~200M purchases). It reports seconds per stage, peak driver JVM RSS overall and per
stage (a sampler thread reading ``/proc/<jvm pid>/status``) and whether the run
finished. The goal is a finished run with the driver JVM at most 8 GB resident, so the
module asks the harness for a 6 GB heap (``SPARK_CONF``); it generates its own lake, so
the harness skips its shared one (``NEEDS_LAKE``). Stages finished before a failure are
still reported, from the demo's own stage log lines.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from pyspark.sql import SparkSession

from benchmarks._harness import PURCHASES_PER_CUSTOMER, REPO, SEED, row, scratch_dir

__all__ = ["NEEDS_LAKE", "SPARK_CONF", "run"]

log = logging.getLogger(__name__)

# Heap 6 GB + metaspace, code cache, direct buffers and native parquet/zstd memory stays
# under the 8 GB RSS goal; G1 (the JVM default) returns memory better than SerialGC.
# 128 shuffle partitions (AQE coalesces the small ones): with the benchmarks' 8, a task of
# the expansion's neighbour join sorted 1/8 of ~1.5 billion candidate pairs and spilled 23 GB.
SPARK_CONF: dict[str, str] = {
    "spark.driver.memory": "6g",
    "spark.sql.shuffle.partitions": "128",
    "spark.driver.extraJavaOptions": "-XX:MaxDirectMemorySize=1g -XX:ReservedCodeCacheSize=256m",
}
NEEDS_LAKE = False
AS_OF = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
GOAL_RSS_GB = 8.0
_SAMPLE_SECONDS = 0.5


def _jvm_pid(spark: SparkSession) -> int | None:
    try:
        return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    except Exception:  # no JVM handle (a remote session): no memory figures
        return None


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class _Recorder(logging.Handler):
    """Stage boundaries from the demo's log lines, and the peak JVM RSS within each stage."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(logging.INFO)
        self.pid = pid
        self.stage = "setup"
        self.order: list[str] = []
        self.seconds: dict[str, float] = {}
        self.peak_kb: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="soak-rss", daemon=True)

    def emit(self, record: logging.LogRecord) -> None:
        if not record.args or not isinstance(record.args, tuple):
            return
        name = str(record.args[0])
        with self._lock:
            if record.msg == "demo stage %s ...":
                self.stage = name
                self.order.append(name)
            elif record.msg == "demo stage %s done in %.1f s":
                self.seconds[name] = float(str(record.args[1]))
                self.stage = "between stages"

    def _sample(self) -> None:
        while not self._stop.is_set() and self.pid is not None:
            kb = _status_kb(self.pid, "VmRSS")
            if kb is not None:
                with self._lock:
                    self.peak_kb[self.stage] = max(self.peak_kb.get(self.stage, 0), kb)
            self._stop.wait(_SAMPLE_SECONDS)

    @contextlib.contextmanager
    def recording(self) -> Iterator[_Recorder]:
        demo_log = logging.getLogger("lab.demo")
        demo_log.addHandler(self)
        if demo_log.getEffectiveLevel() > logging.INFO:
            demo_log.setLevel(logging.INFO)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            demo_log.removeHandler(self)


def _fresh_conf(base: Path) -> Path:
    """A fresh copy of the shipped conf/ (the demo saves a suggestion into it)."""
    conf = base / "conf"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(REPO / "conf", conf)
    return conf


def _run_demo(spark: SparkSession, conf: Path, root: str, size: int) -> Any:
    """``run_demo`` at ``size`` customers with the benchmarks' purchases per customer."""
    import lab.contoso
    from cohortlake.context import load_context
    from lab.demo import run_demo

    ctx = load_context(conf, root=root, spark=spark)
    if "purchases_per_customer" in inspect.signature(run_demo).parameters:
        return run_demo(
            ctx,
            customers=size,
            seed=SEED,
            as_of=AS_OF,
            purchases_per_customer=PURCHASES_PER_CUSTOMER,  # type: ignore[call-arg]
        )
    # run_demo generates at the lab's 6.93 purchases per customer; the soak wants ~20.
    generate = functools.partial(
        lab.contoso.generate_contoso, purchases_per_customer=PURCHASES_PER_CUSTOMER
    )
    with mock.patch.object(lab.contoso, "generate_contoso", generate):
        return run_demo(ctx, customers=size, seed=SEED, as_of=AS_OF)


def _counts(spark: SparkSession, root: str) -> tuple[int, int]:
    from cohortlake.lake import Lake

    lake = Lake(spark, root)
    return (
        lake.read(lake.profile_path("Customer")).count(),
        lake.read(lake.activity_path("Purchases")).count(),
    )


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    """The whole demo at ``size`` customers: seconds per stage, peak driver memory, finished."""
    base = Path(scratch_dir(workdir, size, "soak"))
    root = str(base / "lakehouse")
    shutil.rmtree(root, ignore_errors=True)
    conf = _fresh_conf(base)
    pid = _jvm_pid(spark)
    heap = spark.sparkContext.getConf().get("spark.driver.memory", "1g")
    recorder = _Recorder(pid)
    failure = ""
    started = time.perf_counter()
    with recorder.recording():
        try:
            _run_demo(spark, conf, root, size)
        except Exception as exc:  # an OOM or a failed stage is the result, not a crash
            log.exception("soak at %d customers failed", size)
            failure = f"{type(exc).__name__}: {exc}"[:200]
    wall = time.perf_counter() - started

    rows = [
        row("soak", f"{stage} seconds", recorder.seconds[stage])
        for stage in recorder.order
        if stage in recorder.seconds
    ]
    rows.append(
        row("soak", "total seconds", wall, note=f"{size:,} customers, as of {AS_OF:%Y-%m-%d}")
    )
    if not failure:
        customers, purchases = _counts(spark, root)
        rows.append(row("soak", "customers", customers))
        rows.append(
            row("soak", "purchases", purchases, note=f"{PURCHASES_PER_CUSTOMER:g} per customer")
        )
    hwm = _status_kb(pid, "VmHWM") if pid is not None else None
    rows.append(
        row(
            "soak",
            "peak driver JVM RSS GB",
            float("nan") if hwm is None else hwm / 1024**2,
            goal=f"<= {GOAL_RSS_GB:g}",
            note=f"VmHWM of the JVM (whole process life), spark.driver.memory={heap}",
        )
    )
    for stage in [*recorder.order, "between stages"]:
        if stage in recorder.peak_kb:
            rows.append(
                row(
                    "soak",
                    f"{stage} peak JVM RSS GB",
                    recorder.peak_kb[stage] / 1024**2,
                    note=f"VmRSS sampled every {_SAMPLE_SECONDS:g} s",
                )
            )
    rows.append(row("soak", "finished", 0.0 if failure else 1.0, goal="== 1", note=failure))
    return rows
