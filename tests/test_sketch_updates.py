"""An incremental run's sketches: the last sketch minus who left plus who joined, from the
commit's change feed (#37), against the true membership.

Below K members a theta sketch is exact, so the updated one must estimate the new count
exactly; above it (20,000 members), within the sketch's 3-sigma bound of the true count,
and it must also agree with a fresh sketch's estimate of the same keys within that bound.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cohortlake.lake import Lake
from cohortlake.memberships import SEGMENT, publish_memberships
from cohortlake.sketches import sketch_agg, sketches_after

BOUND = 3 / 64  # 3 sigma at lgK 12: 1 / sqrt(4096) = 1/64


def _publish(lake: Lake, members: dict[str, range], run: str) -> int:
    rows = lake.spark.createDataFrame(
        [(s, f"k{i}") for s, keys in members.items() for i in keys], f"{SEGMENT} string, Key string"
    )
    counts = {s: len(keys) for s, keys in members.items()}
    with lake.commit_metadata(run):
        return publish_memberships(
            lake, rows, list(members), key="Key", run_id=run, counts=counts
        ).version


def _estimate(spark: SparkSession, sketch: bytes) -> float:
    frame = spark.createDataFrame([(sketch,)], "s binary")
    return float(frame.select(F.theta_sketch_estimate("s")).first()[0])  # type: ignore[index]


def _fresh(spark: SparkSession, keys: range) -> bytes:
    frame = spark.createDataFrame([(f"k{i}",) for i in keys], "Key string")
    return bytes(frame.agg(sketch_agg(F.col("Key"))).first()[0])  # type: ignore[index]


def test_sketches_follow_joined_and_left(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(spark, str(tmp_path / "lake"))
    before = {"Small": range(0, 1_000), "Large": range(0, 20_000), "Same": range(0, 50)}
    _publish(lake, before, "r1")
    old = {s: _fresh(spark, keys) for s, keys in before.items()}
    after = {"Small": range(300, 1_500), "Large": range(2_000, 23_000)}
    version = _publish(lake, after, "r2")

    got = sketches_after(lake, version, {"Small": old["Small"], "Large": old["Large"]}, "Key")
    assert _estimate(spark, got["Small"]) == len(after["Small"])  # exact below K
    large = _estimate(spark, got["Large"])
    assert abs(large - len(after["Large"])) <= BOUND * len(after["Large"]), large
    fresh = _estimate(spark, _fresh(spark, after["Large"]))
    assert abs(large - fresh) <= 2 * BOUND * len(after["Large"]), (large, fresh)
    # a segment the commit did not change keeps its sketch as it was
    untouched = sketches_after(lake, version, {"Same": old["Same"]}, "Key")
    assert untouched["Same"] == old["Same"]
