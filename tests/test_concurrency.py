"""Two segment runs at once on one lakehouse: both finish or one fails clearly; nothing is lost.

Runs are subprocesses (``cohortlake run``) told to go at one moment once both JVMs are
up (``_warm_run.py``), over a copy of a small
Contoso lakehouse with three relative-date segments; memberships are computed
independently with pandas and the shared ``memberships`` table is read back with
delta-rs, its ``_delta_log`` JSON and Spark.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _subprocess_runs import (
    AS_OF_A,
    AS_OF_B,
    OUTPUTS,
    Check,
    RunProcess,
    check_invariants,
    discard,
    fresh_lake,
    go,
    is_one_line_message,
    kill_group_quietly,
    members_at,
    report,
    run_id_of,
    run_rows,
    spark_keys,
    start_spare,
)
from pyspark.sql import SparkSession

# Two segments that do not name another segment (the third names RecentStoreBuyers).
INDEPENDENT = ("RecentStoreBuyers", "RecentBigSpenders")


def _run_pair(
    conf: Path, root: Path, as_ofs: tuple[str, str], logs: Path, extra: tuple[list[str], list[str]]
) -> list[RunProcess]:
    """Both runs told to go at the same moment, once both JVMs are up (a tight race)."""
    spares = [start_spare(conf, root, logs / f"{i}.log") for i in range(len(as_ofs))]
    try:
        runs = [
            go(spare, as_of, more) for spare, as_of, more in zip(spares, as_ofs, extra, strict=True)
        ]
    except BaseException:
        for spare in spares:
            discard(spare)
        raise
    try:
        for run in runs:
            run.wait()
    finally:
        for run in runs:
            kill_group_quietly(run)
    return runs


def _finished_cleanly(runs: list[RunProcess]) -> list[str]:
    """Problems with how the pair ended: a failure must be one clear line, and one must finish."""
    problems = []
    for i, run in enumerate(runs):
        if run.returncode != 0 and not is_one_line_message(run.stderr()):
            problems.append(
                f"run {i} exited {run.returncode} without a one-line message:\n{run.stderr()[-3000:]}"
            )
    if all(run.returncode != 0 for run in runs):
        problems.append("neither run finished")
    return problems


def _recorded(check: Check, run: RunProcess, outputs: tuple[str, ...]) -> list[str]:
    """A finished run has exactly one true segment_runs row per segment it ran."""
    run_id = run_id_of(run)
    if run_id is None:
        return [f"finished run logged no run id:\n{run.stderr()[-2000:]}"]
    rows = run_rows(check.state, run_id)
    problems = []
    if sorted(rows["Segment"]) != sorted(outputs):
        problems.append(f"run {run_id} recorded {sorted(rows['Segment'])}, not {sorted(outputs)}")
    if not set(rows["Status"]) <= {"succeeded", "skipped"}:
        problems.append(f"run {run_id} recorded statuses {sorted(set(rows['Status']))}")
    return problems


def _exact(check: Check, expected: dict[str, frozenset[str]], outputs: tuple[str, ...]) -> int:
    """Members missing from each segment's latest version (duplicates are the invariants' job)."""
    lost = 0
    for output in outputs:
        version = check.state.versions[output]
        keys = set(members_at(check.root, output, version)) if version is not None else set()
        lost += len(expected[output] - keys)
        assert keys == expected[output], (output, len(keys), len(expected[output]))
    return lost


def _retries(runs: list[RunProcess]) -> int:
    return sum(run.stderr().count("concurrent commit") for run in runs)


# Two pairs of subprocess runs: make test runs it in its second pytest, beside the SIGKILL
# harness, so that the two pytests end at about the same time.
@pytest.mark.reliability
def test_same_segments_started_at_once(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    started = time.monotonic()
    root, conf, expected = fresh_lake(spark, tmp_path_factory.getbasetemp(), tmp_path)
    # Both create every membership; then both change them, to different memberships.
    pairs = [(AS_OF_A, AS_OF_A), (AS_OF_A, AS_OF_B)]
    rows_lost = retries = 0
    outcomes = []
    for n, as_ofs in enumerate(pairs):
        logs = tmp_path / f"pair-{n}"
        logs.mkdir()
        same = as_ofs[0] == as_ofs[1]
        # --force: a run at the as-of of the last run would otherwise skip and not race.
        force = ([], []) if same else (["--force"], ["--force"])
        runs = _run_pair(conf, root, as_ofs, logs, force)
        outcomes.append([run.returncode for run in runs])
        retries += _retries(runs)
        assert not _finished_cleanly(runs), _finished_cleanly(runs)
        # settled: whichever committed last wins, and each segment's latest row says so
        check = check_invariants(root, expected, strict=OUTPUTS, settled=True)
        rows_lost += check.rows_lost
        assert not check.problems, (as_ofs, check.problems)
        for run in runs:
            if run.returncode == 0:
                assert not _recorded(check, run, OUTPUTS), _recorded(check, run, OUTPUTS)
        if same:
            rows_lost += _exact(check, expected[as_ofs[0]], OUTPUTS)
    for output in OUTPUTS:  # Spark reads what delta-rs read: no duplicated or lost keys
        keys = spark_keys(spark, root, output)
        assert len(keys) == len(set(keys)), output
        assert frozenset(keys) in (expected[AS_OF_A][output], expected[AS_OF_B][output]), output
    report(
        "concurrency_same",
        f"concurrency: {len(pairs)} pairs of the same segments, exit codes {outcomes}, "
        f"{retries} conflict retries logged, rows lost {rows_lost}, "
        f"{time.monotonic() - started:.0f}s",
    )
    assert rows_lost == 0


def test_different_segments_at_once_never_conflict(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    started = time.monotonic()
    root, conf, expected = fresh_lake(spark, tmp_path_factory.getbasetemp(), tmp_path)
    first, second = INDEPENDENT
    runs = _run_pair(
        conf, root, (AS_OF_A, AS_OF_B), tmp_path, (["--only", first], ["--only", second])
    )
    for run in runs:
        assert run.returncode == 0, run.stderr()[-3000:]
    check = check_invariants(root, expected, settled=True)
    assert not check.problems, check.problems
    assert check.state.versions["RecentStoreBuyersInBigStates"] is None
    assert not _recorded(check, runs[0], (first,)), _recorded(check, runs[0], (first,))
    assert not _recorded(check, runs[1], (second,)), _recorded(check, runs[1], (second,))
    lost = _exact(check, expected[AS_OF_A], (first,)) + _exact(check, expected[AS_OF_B], (second,))
    segments = spark.read.format("delta").load(f"{root}/segment_runs").select("Segment").collect()
    assert sorted(row[0] for row in segments) == sorted(INDEPENDENT)
    report(
        "concurrency_different",
        f"concurrency: 1 pair of different segments, {_retries(runs)} conflict retries logged, "
        f"rows lost {lost}, {time.monotonic() - started:.0f}s",
    )
    assert lost == 0
