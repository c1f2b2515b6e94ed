"""SIGKILL a segment run at random moments: nothing committed is lost, nothing uncommitted shows.

A run of three relative-date segments (two levels) is started in a subprocess and its
whole process group is killed at a seeded-random delay after a randomly chosen moment:
the launch, the run's start line (reads), a segment's commit line, the end of level 0
(the second level's reads and commit) or the last segment's commit line (the final
``segment_runs`` append). The as-of alternates between two dates, so every run would
change every membership. After each kill the lakehouse is read with delta-rs and checked
against memberships computed with pandas; at the end one run without a kill must
complete with the right members (read back with Spark).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _subprocess_runs import (
    AS_OF_A,
    AS_OF_B,
    OUTPUTS,
    Check,
    check_invariants,
    fresh_lake,
    kill_group_quietly,
    members_at,
    run_id_of,
    run_rows,
    spark_keys,
    start_run,
)
from pyspark.sql import SparkSession

pytestmark = pytest.mark.reliability

SEED = 20260808
MIN_KILLS = 20
LANES = 2
KILLS_PER_LANE = MIN_KILLS // LANES
MAX_ATTEMPTS_PER_LANE = KILLS_PER_LANE + 6

START = re.compile(r"segment run \S+: \d+ of \d+ definitions")
COMMITTED = re.compile(r"segment \w+: \d+ members")
LEVEL0 = re.compile(r"level 0: ")
LAST = re.compile(r"segment RecentStoreBuyersInBigStates: \d+ members")
LEVEL1 = re.compile(r"level 1: ")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*", re.M)

# What is on disk after a kill, from the killed run's point of view.
BEFORE_ANY_COMMIT = "before any commit"
BETWEEN_COMMITS = "between commits"
AFTER_LAST_COMMIT = "after the last segment commit, before its segment_runs row"
ALL_RECORDED = "after every commit and segment_runs row"


def _stamp(stderr: str, pattern: re.Pattern[str]) -> float:
    """The log timestamp (seconds) of the first line matching ``pattern``."""
    for line in stderr.splitlines():
        found = STAMP.match(line)
        if found and pattern.search(line):
            return dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no log line matches {pattern.pattern!r}:\n{stderr[-2000:]}")


def _phase(before: Check, after: Check, run_id: str | None) -> str:
    """Which phase the kill hit, judged by what the killed run left behind."""
    committed = [o for o in OUTPUTS if after.state.versions[o] != before.state.versions[o]]
    rows = run_rows(after.state, run_id) if run_id else after.state.runs.iloc[0:0]
    if not committed and rows.empty:
        return BEFORE_ANY_COMMIT
    if len(committed) < len(OUTPUTS):
        return BETWEEN_COMMITS
    return AFTER_LAST_COMMIT if len(rows) < len(OUTPUTS) else ALL_RECORDED


def _check_kill(
    before: Check, after: Check, as_of: str, expected: dict[str, dict[str, frozenset[str]]]
) -> list[str]:
    """The killed run changed a table only to its own complete membership; none disappeared."""
    problems = list(after.problems)
    for output in OUTPUTS:
        old, new = before.state.versions[output], after.state.versions[output]
        if old is not None and new is None:
            problems.append(f"{output}: the table disappeared")
        elif new is not None and new != old:
            keys = members_at(after.root, output, new)
            if len(keys) != len(expected[as_of][output]) or set(keys) != expected[as_of][output]:
                problems.append(f"{output} v{new}: the killed run committed a partial membership")
    return problems


@dataclass
class _Lane:
    """One lakehouse's series of killed runs and what they showed."""

    root: Path
    kills: int = 0
    attempts: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    rows_lost: int = 0
    full: float = 0.0
    final_as_of: str = ""


def _kill_series(
    lane: _Lane, conf: Path, expected: dict[str, dict[str, frozenset[str]]], logs: Path, seed: int
) -> _Lane:
    """A complete run, then killed runs until ``KILLS_PER_LANE``, then a complete run."""
    rng = random.Random(seed)
    root = lane.root
    first = start_run(conf, root, AS_OF_A, logs / "run-0.log")
    try:
        assert first.wait() == 0, first.stderr()[-3000:]
    finally:
        kill_group_quietly(first)
    lane.full = time.monotonic() - first.started
    log = first.stderr()
    spans = {  # how long each stretch of a complete run took, from its log
        START: _stamp(log, COMMITTED) - _stamp(log, START),
        COMMITTED: _stamp(log, LEVEL0) - _stamp(log, COMMITTED) + 0.5,
        LEVEL0: _stamp(log, LAST) - _stamp(log, LEVEL0),
        LAST: _stamp(log, LEVEL1) - _stamp(log, LAST) + 0.3,  # the last segment_runs append
    }
    current = check_invariants(root, expected)
    assert not current.problems, current.problems
    assert all(current.state.versions[o] is not None for o in OUTPUTS), current.state.versions

    # The last append is the shortest stretch, so it gets two tickets.
    markers: list[re.Pattern[str] | None] = [None, START, COMMITTED, LEVEL0, LAST, LAST]
    rng.shuffle(markers)  # the first attempts hit every marker once, the rest at random
    while lane.kills < KILLS_PER_LANE and lane.attempts < MAX_ATTEMPTS_PER_LANE:
        lane.attempts += 1
        as_of = AS_OF_B if lane.attempts % 2 else AS_OF_A
        n = lane.attempts - 1
        marker = markers[n] if n < len(markers) else rng.choice(markers)
        delay = rng.uniform(0, lane.full if marker is None else spans[marker])
        run = start_run(conf, root, as_of, logs / f"run-{lane.attempts}.log")
        try:
            if marker is not None:
                run.wait_for(marker, timeout=3 * lane.full + 30)
            time.sleep(max(0.0, delay - (time.monotonic() - run.started if marker is None else 0)))
            killed = run.kill()
        finally:
            kill_group_quietly(run)
        after = check_invariants(root, expected)
        lane.rows_lost += after.rows_lost
        where = (
            f"{root.parent.name} attempt {lane.attempts} (as of {as_of}, "
            f"{marker.pattern if marker else 'launch'} + {delay:.2f}s)"
        )
        lane.problems += [f"{where}: {p}" for p in _check_kill(current, after, as_of, expected)]
        if killed:
            lane.kills += 1
            lane.phases[_phase(current, after, run_id_of(run))] += 1
        elif run.returncode != 0:
            lane.problems.append(f"{where}: run ended with {run.returncode} before the kill")
        current = after

    lane.final_as_of = AS_OF_B if (lane.attempts + 1) % 2 else AS_OF_A
    last = start_run(conf, root, lane.final_as_of, logs / "run-final.log")
    try:
        assert last.wait() == 0, last.stderr()[-3000:]
    finally:
        kill_group_quietly(last)
    final = check_invariants(root, expected)
    lane.rows_lost += final.rows_lost
    lane.problems += [f"{root.parent.name} final run: {p}" for p in final.problems]
    last_id = run_id_of(last)
    assert last_id is not None
    recorded = run_rows(final.state, last_id)
    assert sorted(recorded["Segment"]) == sorted(OUTPUTS), recorded
    assert set(recorded["Status"]) <= {"succeeded", "skipped"}, recorded
    return lane


def test_sigkill_at_random_moments_loses_nothing(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    started = time.monotonic()
    base = tmp_path_factory.getbasetemp()
    # Two lakehouses killed side by side: a subprocess mostly waits on its JVM's start.
    setups = [
        fresh_lake(spark, base, tmp_path / f"lane{i}", class_archive=True) for i in range(LANES)
    ]
    with ThreadPoolExecutor(LANES) as pool:
        futures = [
            pool.submit(_kill_series, _Lane(root), conf, expected, root.parent, SEED + i)
            for i, (root, conf, expected) in enumerate(setups)
        ]
        lanes = [f.result() for f in futures]

    rows_lost = sum(lane.rows_lost for lane in lanes)
    for lane, (root, _, expected) in zip(lanes, setups, strict=True):
        for output in OUTPUTS:  # Spark reads the right members after the last run too
            keys = spark_keys(spark, root, output)
            want = expected[lane.final_as_of][output]
            rows_lost += len(want - set(keys))
            assert len(keys) == len(want) and set(keys) == want, (root, output)
    kills = sum(lane.kills for lane in lanes)
    phases: Counter[str] = sum((lane.phases for lane in lanes), Counter())
    problems = [p for lane in lanes for p in lane.problems]
    print(
        f"\ncrash safety: {kills} kills survived in {sum(lane.attempts for lane in lanes)} "
        f"attempts on {LANES} lakehouses, phases {dict(phases)}, rows lost {rows_lost}, "
        f"full run {', '.join(f'{lane.full:.0f}s' for lane in lanes)}, "
        f"{time.monotonic() - started:.0f}s in all"
    )
    assert not problems, "\n".join(problems)
    assert rows_lost == 0
    assert kills >= MIN_KILLS
    assert {BEFORE_ANY_COMMIT, BETWEEN_COMMITS, AFTER_LAST_COMMIT} <= set(phases), phases
