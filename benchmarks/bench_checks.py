"""The catalog checks every job runs first (issue 31): what they add to a job.

(a) The schema check of the profile and the activity against the catalog (metadata
    only: the Delta log's schema, no Spark job), against a scan of the profile's key
    column (the floor of any pass over the profile), best of 3.
(b) The key pass (rows, null keys, duplicate keys: rows per key, then their sums)
    against the same scan. It shuffles the keys once, so it costs more than the scan.
(c) Both, as a share of the 50-segment run of ``bench_segments`` (forced, unchanged
    memberships: the cheapest full run, most of it skipped) and of the same run with
    every membership rewritten (the as-of one day on, then back).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import cohortlake.checks as checks
from benchmarks._harness import row, time_call
from benchmarks.bench_segments import AS_OF, fifty_segments
from cohortlake.sources import read_profile
from segmentation.run import RunOptions, run_segments

__all__ = ["run"]


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    with fifty_segments(spark, workdir, size) as ctx:
        lake, cat = ctx.lake, ctx.catalog

        def count() -> int:  # every key read: no answer from the Delta log's statistics
            row = read_profile(lake, cat).agg(F.max(F.length(cat.key))).first()
            return int(row[0]) if row else 0

        def schema() -> int:
            return len(checks.schema_problems(lake, cat, activities=list(cat.activities)))

        def keys() -> int:
            checks._KEY_CHECKS.clear()  # the pass itself, not its memo
            return checks.profile_key_counts(lake, cat).duplicate_keys

        assert schema() == 0 and keys() == 0
        floor = time_call(count)
        schema_s, keys_s = time_call(schema), time_call(keys)

        def whole_run() -> None:
            run_segments(ctx, as_of=AS_OF, options=RunOptions(force=True))

        run_s = time_call(whole_run, repeat=2)
        days = [0]

        def changed_run() -> None:  # as-of one day on, then back: memberships change
            days[0] = 1 - days[0]
            run_segments(ctx, as_of=AS_OF + dt.timedelta(days=days[0]), options=RunOptions())

        changed_s = time_call(changed_run, repeat=2)
        return [
            row("checks", "schema check (s)", schema_s, note=f"key scan {floor:.2f} s"),
            row("checks", "schema check / key scan", schema_s / floor),
            row("checks", "key pass / key scan", keys_s / floor, note=f"{keys_s:.2f} s"),
            row(
                "checks",
                "schema + key pass / 50-segment forced run",
                (schema_s + keys_s) / run_s,
                note=f"run {run_s:.1f} s, unchanged memberships",
            ),
            row(
                "checks",
                "schema + key pass / 50-segment changed run",
                (schema_s + keys_s) / changed_s,
                goal="<= 0.1",
                note=f"run {changed_s:.1f} s, as-of moved a day",
            ),
        ]
