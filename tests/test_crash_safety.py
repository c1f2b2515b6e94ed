"""SIGKILL a segment run at random moments: nothing committed is lost, nothing uncommitted shows.

A run of three relative-date segments (one names another) is started in a subprocess
and its whole process group is killed at a seeded-random delay after a randomly chosen
moment: the go (each run's process starts its JVM while the run before it goes on, then
is told to go), the run's start line (reads, evaluation, the ``memberships`` commit) or
a published segment's line, logged right after that commit (the ``segment_runs`` and
sketch appends). Each run's as-of differs from what most memberships hold, so every run
changes memberships (all in one ``memberships`` table, a run's changed segments in one
commit); every other run is incremental (``--incremental``), so kills land in those too. After each kill the lakehouse is read with delta-rs and the ``_delta_log``
JSON and checked against memberships computed with pandas. A kill can leave a commit
that no ``segment_runs`` row names, which the next run must repair: at the end one run
without a kill must complete with the right members (read back with Spark) and rows
naming them.

``make test`` runs it in a second pytest beside the rest of the suite (about 6 minutes
on 2 cores alone); ``make test-reliability`` runs it with the same-segments race.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _kill_series import MIN_KILLS, TARGETS, KillSeries, run_kill_series
from _subprocess_runs import OUTPUTS, fresh_lake, report, spark_keys
from pyspark.sql import SparkSession

pytestmark = pytest.mark.reliability


def test_sigkill_at_random_moments_loses_nothing(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    root, conf, expected = fresh_lake(spark, tmp_path_factory.getbasetemp(), tmp_path)
    series = run_kill_series(KillSeries(root, conf, expected))
    rows_lost = series.rows_lost
    for output in OUTPUTS:  # Spark reads the right members after the last run too
        keys = spark_keys(spark, series.root, output)
        want = series.expected[series.final_as_of][output]
        rows_lost += len(want - set(keys))
        assert len(keys) == len(want) and set(keys) == want, output
    report(
        "crash_safety",
        f"crash safety: {series.kills} kills survived in {series.attempts} attempts, "
        f"phases {dict(series.phases)}, rows lost {rows_lost}, full run {series.full:.0f}s, "
        f"{series.seconds:.0f}s in all",
    )
    assert not series.problems, "\n".join(series.problems)
    assert rows_lost == 0
    assert series.kills >= MIN_KILLS
    assert set(TARGETS) <= set(series.phases), series.phases
