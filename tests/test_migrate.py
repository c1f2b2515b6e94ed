"""A lakehouse written before the shared ``memberships`` table: one table per segment.

The old layout is built by hand (segment tables and ``segment_runs`` rows in the old
schema, without ``Table`` and ``Columns``). ``cohortlake migrate`` must move every
current membership exactly, record ``migrated`` rows, and the next run must see the
memberships as they were: nobody joined or left.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _memberships import keys, spark_members
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cohortlake.cli import main
from cohortlake.context import load_context
from cohortlake.lake import SEGMENT_RUNS_SCHEMA, Lake
from segmentation.run import run_segments

AS_OF = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
CATALOG = """
profile:
  entity: Customer
  key: CustomerId
  attributes:
    State: {type: string}
    Email: {type: string, personal: true}
"""
SEGMENTS = """
name: In California
output: InCalifornia
where: {attribute: State, op: eq, value: CA}
project: [Email]
---
name: Californians or Texans
output: CaOrTx
where:
  any:
    - {segment: InCalifornia}
    - {attribute: State, op: eq, value: TX}
"""
PEOPLE = [("c1", "CA", "a@x"), ("c2", "CA", "b@x"), ("c3", "TX", None), ("c4", "NY", "d@x")]
# segment_runs as written before memberships: no Fingerprint, Table or Columns.
OLD_RUNS = T.StructType(SEGMENT_RUNS_SCHEMA.fields[:13])
assert OLD_RUNS.fields[-1].name == "Status"


@pytest.fixture
def old_lake(spark: SparkSession, tmp_path: Path) -> Path:
    """Profile, two segment tables (the first at version 1, after a first version with a
    member who later left) and their old-schema ``segment_runs`` rows."""
    conf = tmp_path / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "catalog.yaml").write_text(CATALOG)
    (conf / "segments" / "mine.yaml").write_text(SEGMENTS)
    root = tmp_path / "lake"
    (conf / "lakehouse.yaml").write_text(f"root: {root}\n")
    lake = Lake(spark, str(root))
    profile = spark.createDataFrame(PEOPLE, "CustomerId string, State string, Email string")
    lake.overwrite(profile, lake.profile_path("Customer"))
    ca = lake.segment_path("InCalifornia")
    lake.overwrite(spark.createDataFrame([("c4", "d@x")], "CustomerId string, Email string"), ca)
    ca_now = [("c1", "a@x"), ("c2", "b@x")]
    lake.overwrite(spark.createDataFrame(ca_now, "CustomerId string, Email string"), ca)
    both = spark.createDataFrame([("c1",), ("c2",), ("c3",)], "CustomerId string")
    lake.overwrite(both, lake.segment_path("CaOrTx"))
    at = dt.datetime(2026, 6, 30, tzinfo=dt.UTC)
    rows = [
        ("InCalifornia", "In California", "dynamic", "r1", at, at, 1, 1, 0, "h1", 0, "i", "succeeded"),
        ("InCalifornia", "In California", "dynamic", "r2", at, at + dt.timedelta(hours=1), 2, 2, 1, "h1", 1, "i", "succeeded"),
        ("CaOrTx", "Californians or Texans", "dynamic", "r2", at, at + dt.timedelta(hours=1), 3, 3, 0, "h2", 0, "i", "succeeded"),
    ]  # fmt: skip
    spark.createDataFrame(rows, OLD_RUNS).write.format("delta").save(lake.segment_runs_path())
    return conf


def test_migrate_moves_current_memberships_and_the_next_run_sees_no_change(
    spark: SparkSession, old_lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = old_lake.parent / "lake"
    assert main(["migrate", "--conf", str(old_lake)]) == 0
    out = capsys.readouterr().out
    assert "2 segment tables moved" in out and "CaOrTx" in out and "InCalifornia" in out
    # The current (version 1) membership moved, not version 0's c4; projected columns too.
    assert keys(spark, root, "InCalifornia") == {"c1", "c2"}
    assert keys(spark, root, "CaOrTx") == {"c1", "c2", "c3"}
    ca = spark_members(spark, root, "InCalifornia").toPandas().set_index("CustomerId")
    assert ca["Email"].to_dict() == {"c1": "a@x", "c2": "b@x"}
    runs = spark.read.format("delta").load(f"{root}/segment_runs").toPandas()
    moved = runs[runs["Status"] == "migrated"].set_index("Segment")
    assert sorted(moved.index) == ["CaOrTx", "InCalifornia"]
    assert moved.loc["InCalifornia", "Members"] == 2 and moved.loc["CaOrTx", "Members"] == 3
    assert set(moved["Table"]) == {"memberships"}
    assert list(moved.loc["InCalifornia", "Columns"]) == ["Email"]
    assert list(moved.loc["CaOrTx", "Columns"]) == []
    assert (moved[["Joined", "Left"]] == 0).all().all()
    assert moved.loc["InCalifornia", "DefinitionHash"] == "h1"  # copied from the last row
    # Nothing left to move.
    assert main(["migrate", "--conf", str(old_lake)]) == 0
    assert "nothing to move" in capsys.readouterr().out

    # The next run evaluates both (the old rows had no fingerprint) and finds that
    # nobody joined or left; then one Texan moves to California.
    ctx = load_context(old_lake, spark=spark)
    first = {r.segment: r for r in run_segments(ctx, as_of=AS_OF)}
    assert {o: (r.members, r.joined, r.left) for o, r in first.items()} == {
        "InCalifornia": (2, 0, 0),
        "CaOrTx": (3, 0, 0),
    }
    people = [("c1", "CA", "a@x"), ("c2", "CA", "b@x"), ("c3", "CA", "c@x"), ("c4", "NY", "d@x")]
    profile = spark.createDataFrame(people, "CustomerId string, State string, Email string")
    ctx.lake.overwrite(profile, ctx.lake.profile_path("Customer"))
    second = {r.segment: r for r in run_segments(ctx, as_of=AS_OF)}
    assert (second["InCalifornia"].members, second["InCalifornia"].joined) == (3, 1)
    assert (second["CaOrTx"].members, second["CaOrTx"].joined, second["CaOrTx"].left) == (3, 0, 0)
    assert keys(spark, root, "InCalifornia") == {"c1", "c2", "c3"}


def test_a_run_migrates_by_itself(spark: SparkSession, old_lake: Path) -> None:
    root = old_lake.parent / "lake"
    ctx = load_context(old_lake, spark=spark)
    done = {r.segment: r for r in run_segments(ctx, as_of=AS_OF)}
    assert {o: (r.members, r.joined, r.left) for o, r in done.items()} == {
        "InCalifornia": (2, 0, 0),
        "CaOrTx": (3, 0, 0),
    }
    runs = spark.read.format("delta").load(f"{root}/segment_runs").toPandas()
    assert sorted(runs.loc[runs["Status"] == "migrated", "Segment"]) == ["CaOrTx", "InCalifornia"]
    assert keys(spark, root, "CaOrTx") == {"c1", "c2", "c3"}
