"""``table_lock``: writers of one local Delta table exclude each other across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import PATIENCE

from cohortlake.lake import table_lock

REPO = Path(__file__).resolve().parent.parent

# Each process takes the lock three times and, while holding it, writes "in" and "out"
# lines around a pause; interleaved lines would mean two holders at once.
_WRITER = """
import os, sys, time
from cohortlake.lake import table_lock
table, log = sys.argv[1], sys.argv[2]
for _ in range(3):
    with table_lock(table):
        with open(log, "a") as f:
            f.write(f"in {os.getpid()}\\n")
        time.sleep(0.2)
        with open(log, "a") as f:
            f.write(f"out {os.getpid()}\\n")
"""


def test_two_processes_never_hold_one_tables_lock_at_once(tmp_path: Path) -> None:
    table, log = tmp_path / "lake" / "segments" / "Big", tmp_path / "log.txt"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(table), str(log)], cwd=REPO)
        for _ in range(2)
    ]
    assert [p.wait(timeout=PATIENCE) for p in procs] == [0, 0]
    lines = log.read_text().split()
    events = list(zip(lines[0::2], lines[1::2], strict=True))
    assert len(events) == 12
    assert len({pid for _, pid in events}) == 2
    for (what, pid), (then, same) in zip(events[0::2], events[1::2], strict=True):
        assert (what, then, pid) == ("in", "out", same)  # each hold ends before the next
    assert (table.parent / ".Big.lock").is_file() and not table.exists()


def test_reentrant_in_a_thread_and_a_no_op_off_the_local_disk(tmp_path: Path) -> None:
    with table_lock(str(tmp_path / "t")), table_lock(f"file://{tmp_path}/t"):
        pass  # the same table twice: no deadlock
    with table_lock("s3a://bucket/lake/segments/Big"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.lock"]
