"""``deletion_vectors: true``: memberships is created with deletion vectors, so a MERGE
marks who left instead of rewriting each changed segment's files (#37), and the table
still reads right in Spark and in delta-rs (its DataFusion query engine).

The memberships are hand-made: two segments, a few keys joining and leaving.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from delta.tables import DeltaTable
from deltalake import DeltaTable as RsTable
from deltalake import QueryBuilder
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cohortlake.lake import Lake
from cohortlake.memberships import SEGMENT, memberships_path, publish_memberships


def _publish(lake: Lake, members: dict[str, list[str]], run: str) -> int:
    rows = lake.spark.createDataFrame(
        [(s, k) for s, keys in members.items() for k in keys], f"{SEGMENT} string, Key string"
    )
    counts = {s: len(keys) for s, keys in members.items()}
    with lake.commit_metadata(run):
        done = publish_memberships(lake, rows, list(members), key="Key", run_id=run, counts=counts)
    return done.version


def test_a_merge_writes_deletion_vectors_not_files(spark: SparkSession, tmp_path: Path) -> None:
    lake = Lake(spark, str(tmp_path / "lake"), deletion_vectors=True)
    big = [f"k{i}" for i in range(1_000)]
    _publish(lake, {"A": big, "B": ["x", "y"]}, "r1")
    after = {"A": [*big[10:], "new1", "new2"], "B": ["x", "y"]}
    version = _publish(lake, {"A": after["A"]}, "r2")

    path = memberships_path(lake)
    table = DeltaTable.forPath(spark, path)
    properties = table.detail().first()["properties"]  # type: ignore[index]
    assert properties["delta.enableDeletionVectors"] == "true"
    metrics = table.history(1).first()["operationMetrics"]  # type: ignore[index]
    assert int(metrics["numTargetDeletionVectorsAdded"]) >= 1
    assert int(metrics["numTargetRowsCopied"]) == 0  # nobody who stayed was rewritten
    assert int(metrics["numTargetRowsDeleted"]) == 10

    for segment, keys in after.items():
        got = lake.read(path, version).filter(F.col(SEGMENT) == segment).select("Key")
        assert sorted(r[0] for r in got.collect()) == sorted(keys)
    result = (
        QueryBuilder()
        .register("m", RsTable(path))
        .execute("select Segment, count(*) as n from m group by Segment")
        .read_all()
    )
    counts = pa.table(result).to_pylist()
    assert {r["Segment"]: r["n"] for r in counts} == {s: len(k) for s, k in after.items()}
