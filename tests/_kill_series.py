"""The SIGKILL harness's kill series: one lakehouse, runs killed at random moments, checks.

See ``test_crash_safety.py`` for what is proved.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _subprocess_runs import (
    AS_OF_A,
    AS_OF_B,
    OUTPUTS,
    Check,
    RunProcess,
    Spare,
    check_invariants,
    discard,
    go,
    kill_group_quietly,
    members_at,
    run_id_of,
    run_rows,
    start_run,
    start_spare,
    write_conf,
)

SEED = 20260808
MIN_KILLS = 20
MAX_ATTEMPTS = MIN_KILLS + 12

START = re.compile(r"segment run \S+: \d+ of \d+ definitions")
# A published segment's line, logged right after its commit (a kept one's has no "+").
COMMITTED = re.compile(r"segment \w+: \d+ members \(\+")
FAILED = re.compile(r"^(?:failed|error): .*$", re.M)
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*", re.M)

# What is on disk after a kill, from the killed run's point of view.
BEFORE_ANY_COMMIT = "before any commit"
UNRECORDED = "after a memberships commit, before the segment_runs rows naming it"
BETWEEN_COMMITS = "after a commit's segment_runs rows, before a later commit"  # several commits
ALL_RECORDED = "after every commit and segment_runs row"
# Each required phase, and the moment that reaches it whatever the load: right at a log line.
TARGETS: dict[str, re.Pattern[str]] = {
    BEFORE_ANY_COMMIT: START,
    UNRECORDED: COMMITTED,
}


def _stamp(stderr: str, pattern: re.Pattern[str]) -> float:
    """The log timestamp (seconds) of the first line matching ``pattern``."""
    for line in stderr.splitlines():
        found = STAMP.match(line)
        if found and pattern.search(line):
            return dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no log line matches {pattern.pattern!r}:\n{stderr[-2000:]}")


def _spans(run: RunProcess) -> dict[re.Pattern[str], float]:
    """How long each stretch of a complete run took, from its log and its exit (the load
    changes them)."""
    log = run.stderr()
    assert run.ended is not None, "a complete run"
    return {
        START: _stamp(log, COMMITTED) - _stamp(log, START),  # reads, evaluation, the commit
        COMMITTED: run.ended - _stamp(log, COMMITTED),  # the segment_runs and sketch appends
    }


def _until_done(run: RunProcess) -> float:
    """Seconds from a complete run's go to its exit."""
    assert run.ended is not None, "a complete run"
    launched = time.time() - (time.monotonic() - run.started)
    return run.ended - launched + 0.5


def _members(check: Check, output: str) -> frozenset[str] | None:
    """A segment's members at its latest version, None before it has one."""
    version = check.state.versions[output]
    return None if version is None else frozenset(members_at(check.root, output, version))


def _phase(before: Check, after: Check, run_id: str | None) -> str:
    """Which phase the kill hit, judged by what the killed run left behind."""
    made = [v for v in after.state.metadata if v not in before.state.metadata]
    rows = run_rows(after.state, run_id) if run_id else after.state.runs.iloc[0:0]
    if not made and rows.empty:
        return BEFORE_ANY_COMMIT
    if set(made) - {int(v) for v in rows["TableVersion"]}:
        return UNRECORDED
    return BETWEEN_COMMITS if len(rows) < len(OUTPUTS) else ALL_RECORDED


def _check_kill(
    before: Check,
    after: Check,
    as_of: str,
    expected: dict[str, dict[str, frozenset[str]]],
    run_id: str | None,
) -> list[str]:
    """Every segment is at its previous membership or at the killed run's complete new one;
    none disappeared; each commit the killed run made carries its run id."""
    problems = list(after.problems)
    for output in OUTPUTS:
        old, new = _members(before, output), _members(after, output)
        if old is not None and new is None:
            problems.append(f"{output}: the membership disappeared")
        elif new != old and new != expected[as_of][output]:
            version = after.state.versions[output]
            problems.append(f"{output} v{version}: the killed run committed a partial membership")
    for version, writer in after.state.metadata.items():
        if version not in before.state.metadata and writer != run_id:
            problems.append(f"v{version}: committed by {writer}, not the killed run {run_id}")
    return problems


def _other_as_of(check: Check, expected: dict[str, dict[str, frozenset[str]]]) -> str:
    """The as-of that changes most of what the lakehouse holds now (so the run commits)."""
    at_a = 0
    for output in OUTPUTS:
        version = check.state.versions[output]
        if (
            version is not None
            and frozenset(members_at(check.root, output, version)) == (expected[AS_OF_A][output])
        ):
            at_a += 1
    return AS_OF_B if 2 * at_a > len(OUTPUTS) else AS_OF_A


@dataclass
class KillSeries:
    """One lakehouse's series of killed runs and what they showed."""

    root: Path
    conf: Path
    expected: dict[str, dict[str, frozenset[str]]]
    kills: int = 0
    attempts: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    rows_lost: int = 0
    full: float = 0.0
    final_as_of: str = ""
    seconds: float = 0.0


def _run_to_end(root: Path, conf: Path, as_of: str, log: Path) -> RunProcess:
    run = start_run(conf, root, as_of, log)
    try:
        assert run.wait() == 0, run.stderr()[-3000:]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the JVM may still be writing its class archive
            try:
                os.killpg(run.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    finally:
        kill_group_quietly(run)
    return run


def run_kill_series(series: KillSeries, seed: int = SEED) -> KillSeries:
    """A complete run, then killed runs until ``MIN_KILLS`` and every phase, then a complete run.

    The first run also writes a class-data-sharing archive that every later JVM maps
    (about a third off each short run). Every later run is a warm spare
    (``_warm_run.py``) started while the run before it goes on, so its JVM start-up
    overlaps that run and its kill moments are timed from the moment it was told to go.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    root, expected, logs = series.root, series.expected, series.conf.parent
    archive = logs / "cohortlake.jsa"
    first_conf = write_conf(logs / "conf-first", root, f"-XX:ArchiveClassesAtExit={archive}")
    first = _run_to_end(root, first_conf, AS_OF_A, logs / "run-0.log")
    conf = write_conf(logs / "conf-shared", root, f"-XX:SharedArchiveFile={archive}")
    if not archive.is_file():
        conf = series.conf
    spare: Spare | None = start_spare(conf, root, logs / "run-1.log")
    # A warm run skips the cold start: time it from the first run's start line to its end.
    assert first.ended is not None
    series.full = first.ended - _stamp(first.stderr(), START) + 1.0
    spans = _spans(first)
    current = check_invariants(root, expected, settled=True)
    assert not current.problems, current.problems
    assert all(current.state.versions[o] is not None for o in OUTPUTS), current.state.versions

    # After the commit is the shortest stretch, so it gets two tickets.
    markers: list[re.Pattern[str] | None] = [None, START, COMMITTED, COMMITTED]
    rng.shuffle(markers)  # the first attempts hit every marker once, the rest at random
    try:
        while series.attempts < MAX_ATTEMPTS:
            missing = [p for p in TARGETS if p not in series.phases]
            if series.kills >= MIN_KILLS and not missing:
                break
            series.attempts += 1
            as_of = _other_as_of(current, expected)
            n = series.attempts - 1
            marker: re.Pattern[str] | None
            if missing and series.kills >= MIN_KILLS - len(missing):
                marker, delay = TARGETS[missing[0]], 0.0  # a phase the random moments missed
            else:
                marker = markers[n] if n < len(markers) else rng.choice(markers)
                delay = rng.uniform(0, series.full if marker is None else spans[marker])
            assert spare is not None
            # Every other run is incremental: one killed mid-way must leave what a full run
            # repairs (its commit names no segment_runs row, so the next run is a full one).
            run = go(spare, as_of, ["--incremental"] if series.attempts % 2 else [])
            spare = start_spare(conf, root, logs / f"run-{series.attempts + 1}.log")
            try:
                if marker is not None:
                    run.wait_for(marker, timeout=3 * series.full + 30)
                wait = delay - (time.monotonic() - run.started if marker is None else 0)
                run.pause(max(0.0, wait))
                killed = run.kill()
            finally:
                kill_group_quietly(run)
            # A run that ended before its kill left nothing in flight.
            settled = not killed and run.returncode == 0
            after = check_invariants(root, expected, settled=settled)
            series.rows_lost += after.rows_lost
            where = (
                f"attempt {series.attempts} (as of {as_of}, "
                f"{marker.pattern if marker else 'go'} + {delay:.2f}s)"
            )
            series.problems += [
                f"{where}: {p}"
                for p in _check_kill(current, after, as_of, expected, run_id_of(run))
            ]
            if killed:
                series.kills += 1
                series.phases[_phase(current, after, run_id_of(run))] += 1
            elif run.returncode != 0:
                said = FAILED.findall(run.stderr())[-1:] or ["(no failed: line)"]
                series.problems.append(
                    f"{where}: run ended with {run.returncode} before the kill: {said[0]}"
                )
            elif COMMITTED.search(run.stderr()):  # it ran to the end: time the next moments by it
                spans = _spans(run)
                series.full = _until_done(run)
            current = after

        series.final_as_of = _other_as_of(current, expected)
        assert spare is not None
        last = go(spare, series.final_as_of)
        spare = None
        try:
            assert last.wait() == 0, last.stderr()[-3000:]
        finally:
            kill_group_quietly(last)
    finally:
        discard(spare)
    final = check_invariants(root, expected, settled=True)
    series.rows_lost += final.rows_lost
    series.problems += [f"final run: {p}" for p in final.problems]
    last_id = run_id_of(last)
    assert last_id is not None
    recorded = run_rows(final.state, last_id)
    assert sorted(recorded["Segment"]) == sorted(OUTPUTS), recorded
    assert set(recorded["Status"]) <= {"succeeded", "skipped"}, recorded
    series.seconds = time.monotonic() - started
    return series
