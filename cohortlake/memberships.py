"""Every membership in one Delta table, ``memberships``, partitioned by ``Segment``.

A run publishes all the segments of a pass in one MERGE commit, so a segment costs rows,
not a table: no per-segment table creation, snapshot or commit (that was about 1 s per
segment whatever the data size). The MERGE touches only the published segments'
partitions and states their final memberships, so Change Data Feed says who joined and
who left each of them, and a retried or crashed commit leaves every segment at its old or
its complete new membership. ``segment_runs`` says where each membership is: ``Table``
(``memberships``; null for a segment still in its own ``segments/<Output>`` table, written
before this layout), ``TableVersion`` and ``Columns`` (the columns after the key).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cohortlake.commits import Created, Raced, retry_conflicts, table_lock
from cohortlake.errors import RunFailure
from cohortlake.lake import Lake, SegmentRun, new_run_id
from cohortlake.merging import merge_rows, quote

__all__ = [
    "CURRENT",
    "MEMBERSHIPS",
    "SEGMENT",
    "Located",
    "Published",
    "latest_runs",
    "locate",
    "memberships_path",
    "migrate",
    "publish_memberships",
    "publish_segment",
    "read_keys",
    "read_membership",
    "touched_since",
]

log = logging.getLogger(__name__)

MEMBERSHIPS = "memberships"
SEGMENT = "Segment"
# segment_runs statuses whose row describes a membership that exists.
CURRENT = ("succeeded", "kept", "skipped", "migrated")
_SHUFFLE = "spark.sql.shuffle.partitions"
_ROWS_PER_TASK = 2_000_000
# An incremental MERGE's source up to this many rows is broadcast, so the segments'
# members are scanned without a shuffle (bench_incremental at 1M: MERGE 35 s -> 28 s).
_BROADCAST_ROWS = 5_000_000
_WARNED: set[str] = set()  # tables whose missing deletion vectors were logged


def memberships_path(lake: Lake) -> str:
    return lake.path(MEMBERSHIPS)


def latest_runs(lake: Lake) -> dict[str, dict[str, object]]:
    """The latest current ``segment_runs`` row per segment, by lower-cased name.

    One small aggregation, bounded by the number of segments. Rows written before a
    column existed read it as null.
    """
    runs = lake.segment_runs()
    if runs is None:
        return {}
    for name, kind in (
        ("Fingerprint", "string"),
        ("Table", "string"),
        ("Columns", "array<string>"),
        ("Inputs", "string"),
        ("Mode", "string"),
    ):
        if name not in runs.columns:
            runs = runs.withColumn(name, F.lit(None).cast(kind))
    fields = [c for c in runs.columns if c != SEGMENT]
    latest = (
        runs.filter(F.col("Status").isin(*CURRENT))
        .groupBy(SEGMENT)
        .agg(F.max_by(F.struct(*fields), "EvaluatedAt").alias("r"))
        .select(SEGMENT, "r.*")
    )
    return {str(row[SEGMENT]).lower(): row.asDict() for row in latest.collect()}


@dataclass(frozen=True)
class Located:
    """Where one membership is: the shared table at a version, or a segment's own table."""

    output: str
    path: str
    version: int | None
    columns: tuple[str, ...] | None
    shared: bool


def locate(
    lake: Lake, output: str, runs: Mapping[str, Mapping[str, object]] | None = None
) -> Located | None:
    """Find a segment's current membership from its latest ``segment_runs`` row.

    A segment without such a row, or one still in its own ``segments/<Output>`` table,
    is read from that table at its latest version; None when there is neither.
    """
    runs = latest_runs(lake) if runs is None else runs
    row = runs.get(output.lower())
    if row is not None and row.get("Table") == MEMBERSHIPS:
        columns = row.get("Columns")
        return Located(
            str(row[SEGMENT]),
            memberships_path(lake),
            int(row["TableVersion"]),  # type: ignore[call-overload]
            tuple(columns) if isinstance(columns, list | tuple) else (),
            True,
        )
    legacy = lake.segment_path(output)
    if lake.exists(legacy):
        return Located(output, legacy, None, None, False)
    return None


def read_membership(
    lake: Lake,
    output: str,
    key: str,
    version: int | None = None,
    runs: Mapping[str, Mapping[str, object]] | None = None,
) -> DataFrame:
    """A segment's members: the key and the membership's own columns, one row each.

    ``version`` is a version of the table that holds it (``segment_runs.TableVersion``);
    by default the version its latest run row names.
    """
    found = locate(lake, output, runs)
    if found is None:
        raise RunFailure(f"segment {output} has no output yet: run it first")
    return _read(lake, found, key, version)


def _read(lake: Lake, found: Located, key: str, version: int | None) -> DataFrame:
    at = version if version is not None else found.version
    if not found.shared:
        return lake.read(found.path, at)
    rows = lake.read(found.path, at).filter(F.col(SEGMENT) == F.lit(found.output))
    return rows.select(key, *(found.columns or ()))


def read_keys(
    lake: Lake,
    wanted: Mapping[str, int | None],
    key: str,
    runs: Mapping[str, Mapping[str, object]] | None = None,
) -> DataFrame:
    """``(Segment, key)`` rows of several memberships, ``Segment`` lower-cased.

    ``wanted`` maps an output to the version to read (None: its current one). Shared
    memberships at one version come from a single scan of the partitions they name.
    """
    runs = latest_runs(lake) if runs is None else runs
    shared: dict[int, list[str]] = {}
    parts: list[DataFrame] = []
    for output, version in wanted.items():
        found = locate(lake, output, runs)
        if found is None:
            raise RunFailure(f"segment {output} has no output yet: run it first")
        if found.shared:
            at = version if version is not None else found.version
            assert at is not None, "a shared membership always has a version"
            shared.setdefault(at, []).append(found.output)
        else:
            legacy = lake.read(found.path, version)
            parts.append(legacy.select(F.lit(output.lower()).alias(SEGMENT), key))
    for at, outputs in sorted(shared.items()):
        rows = lake.read(memberships_path(lake), at).filter(F.col(SEGMENT).isin(*outputs))
        parts.append(rows.select(F.lower(F.col(SEGMENT)).alias(SEGMENT), key))
    if not parts:
        raise ValueError("read_keys needs at least one segment")
    return functools.reduce(DataFrame.unionByName, parts)


def touched_since(
    lake: Lake, version: int | None, run_id: str, before: int | None = None
) -> set[str]:
    """Segments (lower-cased) whose partitions another run's commit changed after
    ``version`` (and before ``before``).

    Read from the commit files' ``add``/``remove`` actions (no Spark job), so bounded
    by the commits made since, normally none or a few.
    """
    path = memberships_path(lake)
    touched: set[str] = set()
    for commit in lake.commits_after(path, -1 if version is None else version, before):
        info: dict[str, object] = next((a["commitInfo"] for a in commit if "commitInfo" in a), {})
        if info.get("userMetadata") == run_id:
            continue
        for action in commit:
            for kind in ("add", "remove", "cdc"):
                values = (action.get(kind) or {}).get("partitionValues") or {}
                if SEGMENT in values:
                    touched.add(str(values[SEGMENT]).lower())
    return touched


@dataclass(frozen=True)
class Published:
    """One membership commit: its version, and per output (joined, left)."""

    version: int
    changes: dict[str, tuple[int, int]]


def publish_memberships(
    lake: Lake,
    rows: DataFrame,
    outputs: Sequence[str],
    *,
    key: str,
    run_id: str,
    counts: Mapping[str, int],
    scope: DataFrame | None = None,
) -> Published:
    """Make the memberships of ``outputs`` exactly ``rows`` (``Segment``, key, columns).

    One commit: the table's creation, or a MERGE that inserts who joined, deletes who
    left and updates changed columns, within the named partitions only. With ``scope``
    (a frame of keys) ``rows`` are the memberships among those customers only, and
    members outside it stay as they are (an incremental run). A concurrent commit makes
    it fail without writing; it is retried, which is safe because it states final
    memberships. Call inside ``lake.commit_metadata(run_id)``.
    """
    path = memberships_path(lake)
    return retry_conflicts(
        path, lambda: _publish_once(lake, rows, list(outputs), key, run_id, counts, scope)
    )


def _publish_once(
    lake: Lake,
    rows: DataFrame,
    outputs: list[str],
    key: str,
    run_id: str,
    counts: Mapping[str, int],
    scope: DataFrame | None,
) -> Published:
    path = memberships_path(lake)
    if not lake.exists(path):
        assert scope is None, "an incremental publication needs the table"
        try:
            with table_lock(path):
                (
                    # Each segment in one task (a file per segment, not one per task and
                    # segment), and tasks of bounded size (the write sorts each task's rows).
                    rows.repartition(_tasks(lake, counts), SEGMENT)
                    .write.format("delta")
                    .mode("errorifexists")
                    .partitionBy(SEGMENT)
                    .option("delta.enableChangeDataFeed", "true")
                    .option("delta.enableDeletionVectors", str(lake.deletion_vectors).lower())
                    .option("userMetadata", run_id)
                    .save(path)
                )
        except AnalysisException as exc:
            if lake.exists(path):  # created by a concurrent run in the meantime
                raise Created(str(exc)) from exc
            raise
        version = lake.version_after_write(path, run_id)
        return Published(version, {o: (int(counts[o]), 0) for o in outputs})
    _add_columns(lake, path, rows)
    if lake.deletion_vectors:
        _warn_without_deletion_vectors(lake, path)
    with table_lock(path):
        # Who left is read at the version the MERGE starts from; a commit another run
        # makes in between is either a conflict (it touched these partitions: the MERGE
        # fails and is retried) or irrelevant (it did not).
        read = lake.version(path)
        with lake.session_conf(_SHUFFLE, str(_tasks(lake, counts))):
            small = scope is not None and sum(counts.values()) <= _BROADCAST_ROWS
            _merge(lake, path, rows, outputs, key, read, scope, small)
    version = lake.version_after_write(path, run_id)
    if touched_since(lake, read, run_id, before=version) & {o.lower() for o in outputs}:
        raise Raced(f"{path}: another run changed these memberships during the commit")
    return Published(version, _changes(lake, path, version, outputs))


def _tasks(lake: Lake, counts: Mapping[str, int]) -> int:
    """Shuffle partitions for writing ``counts`` rows: the session's, or more so that no
    task sorts more than ``_ROWS_PER_TASK`` rows (384M rows in the default 8 tasks ran
    out of a 4 GB heap in the partitioned write's sort, at 1M customers)."""
    rows = sum(counts.values())
    return max(int(lake.spark.conf.get(_SHUFFLE) or 1), -(-rows // _ROWS_PER_TASK))


def _warn_without_deletion_vectors(lake: Lake, path: str) -> None:
    """Say once per process that an existing table ignores ``deletion_vectors``: only
    a new table gets them (Delta sets a table property only by SQL DDL)."""
    if path in _WARNED:
        return
    _WARNED.add(path)
    properties = DeltaTable.forPath(lake.spark, path).detail().first()["properties"] or {}  # type: ignore[index]
    if str(properties.get("delta.enableDeletionVectors", "false")).lower() != "true":
        log.warning(
            "%s was created without deletion vectors, so deletion_vectors: true does not apply"
            " to it; to turn them on, run in Spark SQL: ALTER TABLE delta.`%s` SET TBLPROPERTIES"
            " ('delta.enableDeletionVectors' = true)",
            path,
            path,
        )


def _add_columns(lake: Lake, path: str, rows: DataFrame) -> None:
    """Add the projected columns the table lacks, by an empty append (one commit, only
    when a segment projects a column no segment projected before)."""
    have = set(lake.read(path).columns)
    new = [f for f in rows.schema.fields if f.name not in have]
    if not new:
        return
    empty = lake.spark.createDataFrame([], rows.schema)
    with table_lock(path):
        empty.write.format("delta").mode("append").option("mergeSchema", "true").save(path)


def _merge(
    lake: Lake,
    path: str,
    rows: DataFrame,
    outputs: list[str],
    key: str,
    read: int | None,
    scope: DataFrame | None = None,
    small: bool = False,
) -> None:
    """The MERGE: insert who joined, delete who left, update changed values.

    Who left is stated in the source (rows of the old membership that the new one lacks,
    marked for deletion) instead of a NOT MATCHED BY SOURCE clause: with that clause
    Delta cannot prune by partition and rewrote every file of the table at each commit.
    The ON condition names the partitions, so only their files are read and rewritten.
    """
    old = lake.read(path, read).filter(F.col(SEGMENT).isin(*outputs)).select(SEGMENT, key)
    if scope is not None:
        old = old.join(scope, key, "left_semi")
    gone = old.join(rows.select(SEGMENT, key), [SEGMENT, key], "left_anti")
    target = DeltaTable.forPath(lake.spark, path)
    within = F.col(f"t.{quote(SEGMENT)}").isin(*outputs)
    merge_rows(target, rows, gone, [SEGMENT, key], within, broadcast=small)


def _changes(lake: Lake, path: str, version: int, outputs: list[str]) -> dict[str, tuple[int, int]]:
    """Joined and left per output, from the commit's Change Data Feed (one small job)."""
    feed = (
        lake.spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", version)
        .option("endingVersion", version)
        .load(path)
        .filter(F.col("_change_type").isin("insert", "delete"))
        .groupBy(SEGMENT)
        .agg(
            F.count_if(F.col("_change_type") == "insert").alias("joined"),
            F.count_if(F.col("_change_type") == "delete").alias("left"),
        )
    )
    found = {str(r[SEGMENT]): (int(r["joined"]), int(r["left"])) for r in feed.collect()}
    return {o: found.get(o, (0, 0)) for o in outputs}


def publish_segment(
    lake: Lake,
    members: DataFrame,
    *,
    output: str,
    name: str,
    type: str,
    run_id: str,
    as_of: dt.datetime,
    definition_hash: str,
    inputs_hash: str | None = None,
    key: str = "CustomerId",
) -> SegmentRun:
    """Publish one membership (an expansion's) and append its ``segment_runs`` row."""
    members = members.cache()
    try:
        count = members.count()
        rows = members.select(F.lit(output).alias(SEGMENT), *members.columns)
        with lake.commit_metadata(run_id):
            done = publish_memberships(
                lake, rows, [output], key=key, run_id=run_id, counts={output: count}
            )
    finally:
        members.unpersist()
    joined, left = done.changes[output]
    run = SegmentRun(
        segment=output,
        name=name,
        type=type,
        run_id=run_id,
        as_of=as_of,
        evaluated_at=dt.datetime.now(dt.UTC),
        members=count,
        joined=joined,
        left=left,
        definition_hash=definition_hash,
        table_version=done.version,
        inputs_hash=inputs_hash,
        table=MEMBERSHIPS,
        columns=tuple(c for c in members.columns if c != key),
    )
    lake.record_runs([run])
    log.info(
        "segment %s: %d members (+%d / -%d), version %d", output, count, joined, left, done.version
    )
    return run


def migrate(lake: Lake, key: str) -> list[SegmentRun]:
    """Move every membership still in its own ``segments/<Output>`` table into
    ``memberships`` (one commit) and record a ``migrated`` row for each.

    The rows copy the latest row's hashes and fingerprint, so the next run sees nothing
    changed. The old tables stay, with their history, until you delete them.
    """
    runs = latest_runs(lake)
    legacy = [
        row
        for row in runs.values()
        if row.get("Table") is None and lake.exists(lake.segment_path(str(row[SEGMENT])))
    ]
    if not legacy:
        return []
    run_id = new_run_id()
    frames: list[DataFrame] = []
    columns: dict[str, tuple[str, ...]] = {}
    for row in legacy:
        output = str(row[SEGMENT])
        table = lake.read(lake.segment_path(output), int(row["TableVersion"]))  # type: ignore[call-overload]
        columns[output] = tuple(c for c in table.columns if c != key)
        frames.append(table.select(F.lit(output).alias(SEGMENT), *table.columns))
    rows = functools.reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    outputs = [str(row[SEGMENT]) for row in legacy]
    counts = {str(row[SEGMENT]): int(row["Members"]) for row in legacy}  # type: ignore[call-overload]
    with lake.commit_metadata(run_id):
        done = publish_memberships(lake, rows, outputs, key=key, run_id=run_id, counts=counts)
    now = dt.datetime.now(dt.UTC)
    moved = [
        SegmentRun(
            segment=str(row[SEGMENT]),
            name=str(row["Name"]),
            type=str(row["Type"]),
            run_id=run_id,
            as_of=row["AsOf"],  # type: ignore[arg-type]
            evaluated_at=now,
            members=int(row["Members"]),  # type: ignore[call-overload]
            joined=0,
            left=0,
            definition_hash=str(row["DefinitionHash"]),
            table_version=done.version,
            inputs_hash=row["InputsHash"],  # type: ignore[arg-type]
            status="migrated",
            fingerprint=row.get("Fingerprint"),  # type: ignore[arg-type]
            table=MEMBERSHIPS,
            columns=columns[str(row[SEGMENT])],
        )
        for row in legacy
    ]
    lake.record_runs(moved)
    log.info(
        "migrated %d segment tables into %s, version %d", len(moved), MEMBERSHIPS, done.version
    )
    return moved
