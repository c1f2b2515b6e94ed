"""The ``segment_sketches`` table: a theta sketch of each published membership.

A segment run sketches (Apache DataSketches' theta sketch, Spark's ``theta_sketch_agg``)
the keys of every membership it publishes, in the aggregation that already fills the
cache the membership commits read, and of any kept membership whose table version has
no sketch yet; an unchanged nightly run sketches nothing. An expansion sketches the
version it published. The rows (and one for the whole profile, ``Segment = '*'``, when
its version has none) are appended in one commit after the level's ``segment_runs``
rows: a sketch row always names a ``TableVersion`` that exists, and the newest sketch
of a segment (highest TableVersion, then RunId) is of its current membership.
Overlaps and set expressions are then estimated from these few kilobytes per segment,
without reading a member table (``insights.theta``).

lgK is 12 (k = 4,096 retained hashes): relative standard error about 1/sqrt(k) = 1.6%
for a segment's size, so 3-sigma bounds of about ±4.7%. Every ``PRUNE_EVERY``-th commit
deletes the rows a newer sketch of the same segment replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import Catalog
from cohortlake.commits import CONFLICTS, table_lock
from cohortlake.lake import Lake, SegmentRun
from cohortlake.memberships import SEGMENT, memberships_path, read_keys, read_membership
from cohortlake.sources import read_profile
from cohortlake.tables import TableRef

__all__ = [
    "LG_K",
    "PROFILE",
    "PRUNE_EVERY",
    "SKETCHES_SCHEMA",
    "K",
    "SketchRow",
    "latest_sketches",
    "profile_sketch",
    "record_published_sketch",
    "record_sketches",
    "sketch_agg",
    "sketch_memberships",
    "sketched",
    "sketches_after",
    "sketches_path",
]

log = logging.getLogger(__name__)

LG_K = 12
K = 1 << LG_K
PROFILE = "*"  # the Segment of the whole profile's sketch ("not X" is the profile minus X)
PRUNE_EVERY = 20  # every PRUNE_EVERY-th commit drops the rows a newer sketch replaced

SKETCHES_SCHEMA = T.StructType(
    [
        T.StructField("Segment", T.StringType(), False),
        T.StructField("RunId", T.StringType(), False),
        T.StructField("TableVersion", T.LongType(), False),
        T.StructField("Members", T.LongType(), False),
        T.StructField("Sketch", T.BinaryType(), False),
    ]
)


@dataclass(frozen=True)
class SketchRow:
    """One ``segment_sketches`` row: a segment's membership at a table version, sketched."""

    segment: str
    run_id: str
    table_version: int
    members: int
    sketch: bytes


def sketch_agg(keys: Column) -> Column:
    """The aggregate every sketch is made with: nulls (non-members) are skipped."""
    return F.theta_sketch_agg(keys, LG_K)


def sketches_path(lake: Lake) -> str:
    return lake.path("segment_sketches")


def record_sketches(lake: Lake, rows: list[SketchRow]) -> None:
    """Append ``rows`` in one commit (call after the segment tables they name committed)."""
    if not rows:
        return
    data = [
        (r.segment, r.run_id, int(r.table_version), int(r.members), bytes(r.sketch)) for r in rows
    ]
    path = sketches_path(lake)
    version = lake.append(lake.spark.createDataFrame(data, SKETCHES_SCHEMA), path)
    if version > 0 and version % PRUNE_EVERY == 0:
        _prune(lake, path)


def record_published_sketch(lake: Lake, run: SegmentRun, key: str) -> None:
    """Sketch a membership just published outside a segment run (an expansion) from the
    version it wrote, and record it."""
    members = read_membership(lake, run.segment, key, version=run.table_version)
    found = members.agg(sketch_agg(F.col(key))).first()
    assert found is not None, "a global aggregation has one row"
    row = SketchRow(run.segment, run.run_id, run.table_version, run.members, bytes(found[0]))
    record_sketches(lake, [row])


def sketch_memberships(
    lake: Lake, wanted: dict[str, int], key: str, runs: Mapping[str, Mapping[str, object]]
) -> dict[str, bytes]:
    """Sketches of several memberships at the given versions, by lower-cased output: one
    aggregation of their partitions of ``memberships`` (an incremental run's, after its
    commit), the empty sketch for an empty membership."""
    keys = read_keys(lake, dict(wanted), key, runs)
    found = {
        str(r[0]): bytes(r[1]) for r in keys.groupBy(SEGMENT).agg(sketch_agg(F.col(key))).collect()
    }
    if len(found) < len(wanted):
        empty = keys.filter(F.lit(False)).agg(sketch_agg(F.col(key))).first()
        assert empty is not None, "a global aggregation has one row"
        found.update({o.lower(): bytes(empty[0]) for o in wanted if o.lower() not in found})
    return found


def sketches_after(
    lake: Lake, version: int, old: Mapping[str, bytes], key: str
) -> dict[str, bytes]:
    """The sketches of memberships a commit at ``version`` of ``memberships`` changed:
    each ``old`` sketch (of the version before, by output) minus who left plus who
    joined, by theta set operations on that commit's change feed, so no membership is
    scanned (an incremental run's few changed rows).

    A-not-B keeps the old sketch's retained hashes that did not leave, below its theta:
    a sketch of the remaining members; the union adds the newcomers' hashes below the
    resulting theta. Its estimates are as unbiased as a fresh sketch's; it may hold fewer
    than K hashes after members left, as a fresh sketch of a smaller set would.
    """
    if not old:
        return {}
    feed = TableRef(memberships_path(lake)).read_changes(lake.spark, version, version)
    kind = F.col("_change_type")
    changes = (
        feed.filter(F.col(SEGMENT).isin(*old))
        .groupBy(SEGMENT)
        .agg(
            sketch_agg(F.when(kind == "insert", F.col(key))).alias("joined"),
            sketch_agg(F.when(kind == "delete", F.col(key))).alias("left"),
        )
    )
    before = lake.spark.createDataFrame(
        [(o, bytes(b)) for o, b in old.items()], f"{SEGMENT} string, old binary"
    )
    kept = F.when(F.col("left").isNull(), F.col("old")).otherwise(
        F.theta_difference(F.col("old"), F.col("left"))
    )
    new = F.when(F.col("joined").isNull(), kept).otherwise(
        F.theta_union(kept, F.col("joined"), LG_K)
    )
    rows = before.join(changes, SEGMENT, "left").select(SEGMENT, new.alias("s")).collect()
    return {str(r[0]): bytes(r[1]) for r in rows}


def profile_sketch(lake: Lake, catalog: Catalog, run_id: str, version: int) -> SketchRow:
    """The whole profile's sketch at ``version``: one scan of the key column."""
    found = (
        read_profile(lake, catalog, version)
        .agg(F.count(F.lit(1)).alias("n"), sketch_agg(F.col(catalog.key)).alias("s"))
        .first()
    )
    assert found is not None, "a global aggregation has one row"
    return SketchRow(PROFILE, run_id, version, int(found["n"]), bytes(found["s"]))


def sketched(lake: Lake) -> dict[str, int]:
    """The newest sketched table version of each segment (lower-cased; the profile under
    ``PROFILE``), read from the small columns only."""
    path = sketches_path(lake)
    if not lake.exists(path):
        return {}
    newest = lake.read(path).groupBy(F.lower("Segment").alias("s")).agg(F.max("TableVersion"))
    return {row[0]: int(row[1]) for row in newest.collect()}


def _newest_first() -> list[Column]:
    return [F.col("TableVersion").desc(), F.col("RunId").desc()]


def _prune(lake: Lake, path: str) -> None:
    """Delete the rows a newer sketch of the same segment replaced (one MERGE).

    Reads only the small columns to find them. Older table versions keep them for time
    travel until VACUUM. A concurrent commit makes this give way: the next prune will do.
    """
    from pyspark.sql.window import Window

    rank = F.row_number().over(Window.partitionBy("Segment").orderBy(*_newest_first()))
    stale = (
        lake.read(path)
        .select("Segment", "TableVersion", "RunId")
        .withColumn("rank", rank)
        .filter("rank > 1")
        .drop("rank")
    )
    keys = ("Segment", "TableVersion", "RunId")
    on = " AND ".join(f"t.{c} = s.{c}" for c in keys)
    try:
        with table_lock(path):
            DeltaTable.forPath(lake.spark, path).alias("t").merge(
                stale.alias("s"), on
            ).whenMatchedDelete().execute()
    except CONFLICTS as exc:
        log.info("pruning %s left to a later commit: %s", path, type(exc).__name__)


def latest_sketches(lake: Lake, segments: list[str] | None = None) -> dict[str, SketchRow]:
    """The newest sketch (highest TableVersion, then RunId) of each segment, by lower-cased
    name; all segments' (and the profile's, under ``PROFILE``) when ``segments`` is None.

    Collected to the driver: one row of a few kilobytes per segment.
    """
    path = sketches_path(lake)
    if not lake.exists(path):
        return {}
    table = lake.read(path)
    if segments is not None:
        wanted = sorted({s.lower() for s in segments})
        table = table.filter(F.lower("Segment").isin(wanted))
    order = F.struct(F.col("TableVersion"), F.col("RunId"))
    latest = table.groupBy(F.lower("Segment").alias("key")).agg(
        F.max_by(F.struct(*[c.name for c in SKETCHES_SCHEMA.fields]), order).alias("r")
    )
    return {
        row["key"]: SketchRow(
            row["r"]["Segment"],
            row["r"]["RunId"],
            int(row["r"]["TableVersion"]),
            int(row["r"]["Members"]),
            bytes(row["r"]["Sketch"]),
        )
        for row in latest.collect()
    }
