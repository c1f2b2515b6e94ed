"""Run segment definitions: every segment in one pass, one commit per run, run history.

A run validates every definition first and settles the static segments it keeps and
the ones whose definition and inputs did not change. It evaluates all the others over
one customer frame: the profile, the measures and each activity aggregation are read
once, and a segment leaf naming a segment of the same run reads that segment's
condition from the same frame (one computed column), so dependency levels cost no extra
pass. The memberships become rows of one cached frame; every changed one is published
in one MERGE commit into ``memberships`` (Change Data Feed on); then the run's
``segment_runs`` rows and its sketches are appended in one commit each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem
from cohortlake.lake import Lake, SegmentRun, new_run_id
from cohortlake.memberships import (
    MEMBERSHIPS,
    SEGMENT,
    latest_runs,
    locate,
    memberships_path,
    migrate,
    publish_memberships,
    touched_since,
)
from cohortlake.sketches import (
    PROFILE,
    SketchRow,
    profile_sketch,
    record_sketches,
    sketch_agg,
    sketched,
)
from cohortlake.sources import activity_ref, profile_ref, ref_version
from segmentation.compile import CustomerFrame
from segmentation.evaluate import (
    SEGMENTS_PER_PASS,
    Reads,
    fingerprint,
    membership_rows,
    named_groups,
    reads_of,
    row_hash,
)
from segmentation.model import (
    SegmentDefinition,
)
from segmentation.validate import load_definitions

__all__ = ["RunOptions", "run_segments", "select_definitions"]

log = logging.getLogger(__name__)

_History = dict[str, dict[str, object]]
_SORT_FALLBACK = "spark.sql.objectHashAggregate.sortBased.fallbackThreshold"


@dataclass(frozen=True)
class RunOptions:
    """How a run treats static and unchanged segments."""

    refresh_static: bool = False
    force: bool = False


def select_definitions(
    defs: Sequence[SegmentDefinition], only: Sequence[str] | None
) -> list[SegmentDefinition]:
    """The chosen definitions (all when ``only`` is empty), in dependency order."""
    if not only:
        return list(defs)
    by_name = {d.output.lower(): d for d in defs}
    problems = []
    for i, name in enumerate(only):
        if name.lower() not in by_name:
            problems.append(Problem("--only", f"[{i}]", f"unknown segment {name!r}"))
    if problems:
        raise InputError(problems)
    wanted = {n.lower() for n in only}
    return [d for d in defs if d.output.lower() in wanted]


@dataclass
class _Guard:
    """What tells a kept membership from one another run changed: commits to
    ``memberships`` after ``since`` that this run did not make (none, normally)."""

    since: int | None
    run_id: str

    def touched(self, lake: Lake) -> set[str]:
        return touched_since(lake, self.since, self.run_id)


@dataclass
class _Evaluated:
    """A segment this run evaluated; it is published (or kept) at the end of the run."""

    d: SegmentDefinition
    members: int = 0
    fingerprint: str = ""
    sketch: bytes = b""


@dataclass
class _Run:
    """One run's state: what it looked up, settled and evaluated."""

    ctx: Context
    as_of: dt.datetime
    run_id: str
    options: RunOptions
    history: _History
    guard: _Guard
    drawn: dict[str, int]
    settled: dict[str, SegmentRun] = field(default_factory=dict)  # kept and skipped
    evaluated: dict[str, _Evaluated] = field(default_factory=dict)
    tables: dict[str, int | None] = field(default_factory=dict)

    def version(self, table: str) -> int | None:
        """A table's version, looked up once per run (so every read of it is pinned)."""
        if table not in self.tables:
            lake, cat = self.ctx.lake, self.ctx.catalog
            if table == "profile":
                self.tables[table] = ref_version(lake, profile_ref(lake, cat))
            elif table == "measures":
                self.tables[table] = lake.version(lake.measures_path())
            else:
                entity = table.removeprefix("activity/")
                self.tables[table] = ref_version(lake, activity_ref(lake, cat, entity))
        return self.tables[table]

    def segment_state(self, output: str) -> object:
        """What a segment leaf reads, for an inputs hash: the membership's fingerprint
        (this run's, else the last recorded one), else its table's version."""
        name = output.lower()
        if name in self.evaluated:
            return self.evaluated[name].fingerprint
        last = self.history.get(name)
        if last is not None and last.get("Fingerprint") is not None:
            return last["Fingerprint"]
        found = locate(self.ctx.lake, output, self.history)
        if found is None:
            return None
        return found.version if found.shared else self.ctx.lake.version(found.path)

    def inputs_hash(self, d: SegmentDefinition, reads: Reads) -> str:
        versions: dict[str, object] = {"profile": self.version("profile")}
        if reads.measures:
            versions["measures"] = self.version("measures")
        for entity in sorted(reads.entities):
            versions[f"activity/{entity}"] = self.version(f"activity/{entity}")
        for output in reads.segments:
            versions[f"segment/{output}"] = self.segment_state(output)
        payload = {"versions": versions, "as_of": self.as_of.isoformat() if d.relative else None}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_segments(
    ctx: Context,
    only: Sequence[str] | None = None,
    as_of: dt.datetime | None = None,
    options: RunOptions | None = None,
) -> list[SegmentRun]:
    """Validate all definitions, then evaluate and publish the chosen ones."""
    options = options or RunOptions()
    defs = load_definitions(ctx.conf_dir, ctx.catalog)
    chosen = select_definitions(defs, only)
    as_of = as_of or dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_id = new_run_id()
    lake = ctx.lake
    log.info(
        "segment run %s: %d of %d definitions, as of %s",
        run_id,
        len(chosen),
        len(defs),
        as_of.isoformat(),
    )
    start = lake.version(memberships_path(lake))  # before the history: see _Guard
    history = latest_runs(lake)
    if any(r.get("Table") is None for r in history.values()) and migrate(lake, ctx.catalog.key):
        start = lake.version(memberships_path(lake))
        history = latest_runs(lake)
    recorded = max(
        (int(r["TableVersion"]) for r in history.values() if r.get("Table") == MEMBERSHIPS),  # type: ignore[call-overload]
        default=-1,
    )
    # Commits after the last recorded one were made by a crashed or a concurrent run.
    guard = _Guard(None if start is None else min(start, recorded), run_id)
    state = _Run(ctx, as_of, run_id, options, history, guard, sketched(lake))
    reads = {d.output.lower(): reads_of(d, ctx.catalog) for d in chosen}
    evaluate = _settle(state, chosen, reads)
    sketches: list[SketchRow] = []
    done: dict[str, SegmentRun] = {}
    if evaluate:
        started = time.perf_counter()
        rows = _evaluate(state, evaluate)
        try:
            log.info(
                "%d segments evaluated in one pass in %.1fs",
                len(evaluate),
                time.perf_counter() - started,
            )
            done = _publish(state, evaluate, reads, rows, sketches)
        finally:
            rows.unpersist()
        profile = state.version("profile")
        if profile is not None and state.drawn.get(PROFILE) != profile:
            sketches.append(profile_sketch(lake, ctx.catalog, run_id, profile))
    results = [done.get(d.output.lower()) or state.settled[d.output.lower()] for d in chosen]
    # The run's rows and sketches, one commit each, after every membership they name: a
    # crash before them leaves a commit no row names, which the next run's _Guard finds.
    lake.record_runs(results)
    record_sketches(lake, sketches)
    return results


def _settle(
    state: _Run, chosen: list[SegmentDefinition], reads: dict[str, Reads]
) -> list[SegmentDefinition]:
    """Keep static segments, skip unchanged ones; return the ones to evaluate, in order.

    A segment that names a segment evaluated in this run is evaluated too (its inputs are
    known only after), in the same pass, so that costs a condition, not a pass.
    """
    lake, as_of = state.ctx.lake, state.as_of
    now = dt.datetime.now(dt.UTC)
    touched = state.guard.touched(lake)
    evaluate: list[SegmentDefinition] = []
    for d in chosen:  # dependency order: named segments come first
        name = d.output.lower()
        last = state.history.get(name)
        current = last is not None and last.get("Table") == MEMBERSHIPS
        if d.type == "static" and current and not state.options.refresh_static:
            assert last is not None
            state.settled[name] = _unchanged(d, state.run_id, as_of, now, last, "kept")
            log.info(
                "segment %s: static, kept %s members (use --refresh-static to re-evaluate)",
                d.output,
                last["Members"],
            )
            continue
        waits = any(s in state.evaluated for s in reads[name].segments)
        if (
            not waits
            and not state.options.force
            and current
            and last is not None
            and name not in touched
            and last["DefinitionHash"] == d.definition_hash
            and last["InputsHash"] == state.inputs_hash(d, reads[name])
        ):
            state.settled[name] = _unchanged(d, state.run_id, as_of, now, last, "skipped")
            log.info("segment %s: definition and inputs unchanged, skipped", d.output)
            continue
        evaluate.append(d)
        state.evaluated[name] = _Evaluated(d)
    return evaluate


def _unchanged(
    d: SegmentDefinition,
    run_id: str,
    as_of: dt.datetime,
    now: dt.datetime,
    last: dict[str, object],
    status: str,
) -> SegmentRun:
    """A kept (static) or skipped segment's row: its last run's members, hashes, version."""
    inputs = str(last["InputsHash"]) if last["InputsHash"] is not None else None
    fingerprint = str(last["Fingerprint"]) if last.get("Fingerprint") is not None else None
    members = int(last["Members"])  # type: ignore[call-overload]
    version = int(last["TableVersion"])  # type: ignore[call-overload]
    return _run_row(
        d, run_id, as_of, inputs, fingerprint, now, members, 0, 0, version, _columns(last), status
    )


def _columns(last: dict[str, object]) -> tuple[str, ...]:
    columns = last.get("Columns")
    return tuple(str(c) for c in columns) if isinstance(columns, list | tuple) else ()


def _evaluate(state: _Run, defs: list[SegmentDefinition]) -> DataFrame:
    """Evaluate every chosen segment into cached membership rows, and fill in each one's
    count, fingerprint and sketch.

    One customer frame serves all: a segment leaf naming a segment of this run is that
    segment's condition, computed once as a column of the frame; one naming any other
    reads the version its kept, skipped or last row names, so a run never mixes two
    as-of dates. One aggregation of the rows grouped by segment gives the counts,
    sketches and fingerprints (count and XOR of the members' row hashes: order-free,
    the same whatever the partitioning; two different memberships share one with
    chance about 2**-64). Every table is read at the version the run looked up first.
    """
    lake, key, catalog = state.ctx.lake, state.ctx.catalog.key, state.ctx.catalog
    frame = CustomerFrame(catalog, state.as_of)
    conditions: dict[str, Column] = {}
    for d in defs:  # dependency order: a named segment's column exists before its use
        conditions[d.output] = frame.condition(d.where)
        for column in d.project:
            frame.need(column)
    versions: dict[str, int | None] = {"profile": state.version("profile")}
    if frame.measure_columns:
        versions["measures"] = state.version("measures")
    for entity in frame.entities:
        versions[f"activity/{entity}"] = state.version(f"activity/{entity}")
    pins = {
        o: state.settled[o.lower()].table_version
        for o in frame.segment_outputs
        if o.lower() in state.settled
    }
    base = frame.build(lake, pins, versions, state.history, named_groups(defs, frame, conditions))
    several = len(defs) > SEGMENTS_PER_PASS
    if several:  # each pass reads it
        base = base.persist(StorageLevel.MEMORY_AND_DISK)
    rows = membership_rows(base, key, defs, conditions).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = rows.groupBy(SEGMENT).agg(
            F.count(F.lit(1)).alias("n"),
            F.bit_xor(row_hash(defs, key)).alias("h"),
            sketch_agg(F.col(key)).alias("s"),
        )
        # A sketch's state is bounded (lgK 12), so one per segment fits in a task's hash
        # map; past 128 groups Spark would sort every input row instead, which ran out
        # of a 4 GB heap at 1M customers and 1,000 segments.
        with lake.session_conf(_SORT_FALLBACK, str(max(128, 2 * len(defs)))):
            found = {str(r[SEGMENT]): r for r in stats.collect()}
        empty = None
        if any(d.output not in found for d in defs):
            first = rows.filter(F.lit(False)).agg(sketch_agg(F.col(key))).first()
            assert first is not None, "a global aggregation has one row"
            empty = bytes(first[0])
    except BaseException:
        rows.unpersist()
        raise
    finally:
        if several:
            base.unpersist()
    for d in defs:
        hit = found.get(d.output)
        e = state.evaluated[d.output.lower()]
        e.members = int(hit["n"]) if hit is not None else 0
        e.fingerprint = fingerprint(e.members, hit["h"] if hit is not None else None)
        sketch = bytes(hit["s"]) if hit is not None else empty
        assert sketch is not None
        e.sketch = sketch
    return rows


def _publish(
    state: _Run,
    defs: list[SegmentDefinition],
    reads: dict[str, Reads],
    rows: DataFrame,
    sketches: list[SketchRow],
) -> dict[str, SegmentRun]:
    """Publish every changed membership of the run in one MERGE commit.

    A segment whose fingerprint and columns equal its last recorded ones, in a partition
    no other run touched since, is left as it is (no commit, Joined = Left = 0, its
    recorded version). Each published membership, and any kept one whose version has no
    sketch yet, gets its sketch row in ``sketches``.
    """
    lake, key, run_id, as_of = state.ctx.lake, state.ctx.catalog.key, state.run_id, state.as_of
    inputs = {d.output: state.inputs_hash(d, reads[d.output.lower()]) for d in defs}
    touched = state.guard.touched(lake)  # after evaluating: see _Guard
    now = dt.datetime.now(dt.UTC)
    done: dict[str, SegmentRun] = {}
    changed: list[_Evaluated] = []
    for d in defs:
        e, last = state.evaluated[d.output.lower()], state.history.get(d.output.lower())
        if (
            last is not None
            and last.get("Table") == MEMBERSHIPS
            and last.get("Fingerprint") == e.fingerprint
            and d.output.lower() not in touched
            and _columns(last) == tuple(d.project)
        ):
            version = int(last["TableVersion"])  # type: ignore[call-overload]
            log.info(
                "segment %s: %d members, membership unchanged, version %d kept",
                d.output,
                e.members,
                version,
            )
            done[d.output.lower()] = _run_row(
                d, run_id, as_of, inputs[d.output], e.fingerprint, now, e.members, 0, 0, version,
                tuple(d.project),
            )  # fmt: skip
        else:
            changed.append(e)
    if changed:
        started = time.perf_counter()
        outputs = [e.d.output for e in changed]
        if len(changed) < len(defs):
            rows = rows.filter(F.col(SEGMENT).isin(*outputs))
        counts = {e.d.output: e.members for e in changed}
        with lake.commit_metadata(run_id):
            published = publish_memberships(
                lake, rows, outputs, key=key, run_id=run_id, counts=counts
            )
        now = dt.datetime.now(dt.UTC)
        for e in changed:
            joined, left = published.changes[e.d.output]
            log.info(
                "segment %s: %d members (+%d / -%d), version %d",
                e.d.output,
                e.members,
                joined,
                left,
                published.version,
            )
            done[e.d.output.lower()] = _run_row(
                e.d, run_id, as_of, inputs[e.d.output], e.fingerprint, now, e.members, joined,
                left, published.version, tuple(e.d.project),
            )  # fmt: skip
        log.info(
            "published %d changed segments in one commit, version %d, in %.1fs",
            len(changed),
            published.version,
            time.perf_counter() - started,
        )
    for d in defs:
        e, row = state.evaluated[d.output.lower()], done[d.output.lower()]
        if state.drawn.get(d.output.lower()) != row.table_version:
            sketches.append(SketchRow(d.output, run_id, row.table_version, e.members, e.sketch))
    return done


def _run_row(
    d: SegmentDefinition,
    run_id: str,
    as_of: dt.datetime,
    inputs_hash: str | None,
    fingerprint: str | None,
    evaluated_at: dt.datetime,
    members: int,
    joined: int,
    left: int,
    version: int,
    columns: tuple[str, ...],
    status: str = "succeeded",
) -> SegmentRun:
    """One ``segment_runs`` row for definition ``d`` in this run."""
    return SegmentRun(
        segment=d.output,
        name=d.name,
        type=d.type,
        run_id=run_id,
        as_of=as_of,
        evaluated_at=evaluated_at,
        members=members,
        joined=joined,
        left=left,
        definition_hash=d.definition_hash,
        table_version=version,
        inputs_hash=inputs_hash,
        status=status,
        fingerprint=fingerprint,
        table=MEMBERSHIPS,
        columns=columns,
    )
