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

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Sequence

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from cohortlake.context import Context
from cohortlake.lake import SegmentRun, new_run_id
from cohortlake.memberships import (
    MEMBERSHIPS,
    SEGMENT,
    latest_runs,
    memberships_path,
    migrate,
    publish_memberships,
)
from cohortlake.sketches import (
    PROFILE,
    SketchRow,
    profile_sketch,
    record_sketches,
    sketch_agg,
    sketched,
)
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
from segmentation.incremental import scope_sketches, scoped_memberships
from segmentation.model import SegmentDefinition
from segmentation.run_state import (
    Evaluated,
    Guard,
    RunOptions,
    RunState,
    recorded_columns,
    run_row,
    select_definitions,
    unchanged_row,
)
from segmentation.validate import load_definitions

__all__ = ["RunOptions", "run_segments", "select_definitions"]

log = logging.getLogger(__name__)

_SORT_FALLBACK = "spark.sql.objectHashAggregate.sortBased.fallbackThreshold"


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
    start = lake.version(memberships_path(lake))  # before the history: see Guard
    history = latest_runs(lake)
    if any(r.get("Table") is None for r in history.values()) and migrate(lake, ctx.catalog.key):
        start = lake.version(memberships_path(lake))
        history = latest_runs(lake)
    recorded = max(
        (int(r["TableVersion"]) for r in history.values() if r.get("Table") == MEMBERSHIPS),  # type: ignore[call-overload]
        default=-1,
    )
    # Commits after the last recorded one were made by a crashed or a concurrent run.
    guard = Guard(None if start is None else min(start, recorded), run_id)
    state = RunState(ctx, as_of, run_id, options, history, guard, sketched(lake))
    reads = {d.output.lower(): reads_of(d, ctx.catalog) for d in chosen}
    evaluate = _settle(state, chosen, reads)
    sketches: list[SketchRow] = []
    done: dict[str, SegmentRun] = {}
    if evaluate and options.incremental and not options.force:
        state.narrow(evaluate, reads)
    elif evaluate and options.incremental:
        state.mode = "full: --force"
        log.info("incremental run not possible, full run: --force")
    if evaluate:
        started = time.perf_counter()
        try:
            rows = _evaluate(state, evaluate)
        except BaseException:
            if state.scope is not None:
                state.scope.release()
            raise
        try:
            log.info(
                "%d segments evaluated in one pass in %.1fs",
                len(evaluate),
                time.perf_counter() - started,
            )
            done = _publish(state, evaluate, reads, rows, sketches)
        finally:
            rows.unpersist()
            if state.scope is not None:
                state.scope.release()
        profile = state.version("profile")
        if profile is not None and state.drawn.get(PROFILE) != profile:
            sketches.append(profile_sketch(lake, ctx.catalog, run_id, profile))
    results = [done.get(d.output.lower()) or state.settled[d.output.lower()] for d in chosen]
    # The run's rows and sketches, one commit each, after every membership they name: a
    # crash before them leaves a commit no row names, which the next run's Guard finds.
    lake.record_runs(results)
    record_sketches(lake, sketches)
    return results


def _settle(
    state: RunState, chosen: list[SegmentDefinition], reads: dict[str, Reads]
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
            state.settled[name] = unchanged_row(d, state.run_id, as_of, now, last, "kept")
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
            state.settled[name] = unchanged_row(d, state.run_id, as_of, now, last, "skipped")
            log.info("segment %s: definition and inputs unchanged, skipped", d.output)
            continue
        evaluate.append(d)
        state.evaluated[name] = Evaluated(d)
    return evaluate


def _evaluate(state: RunState, defs: list[SegmentDefinition]) -> DataFrame:
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
    scope = state.scope.customers if state.scope is not None else None
    own = named_groups(defs, frame, conditions)
    base = frame.build(lake, pins, versions, state.history, own, customers=scope)
    several = len(defs) > SEGMENTS_PER_PASS
    if several:  # each pass reads it
        base = base.persist(StorageLevel.MEMORY_AND_DISK)
    rows = membership_rows(base, key, defs, conditions).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = rows.groupBy(SEGMENT).agg(
            F.count(F.lit(1)).alias("n"),
            F.bit_xor(row_hash(defs, key)).alias("h"),
            # an incremental run's rows are a few customers': its sketches come after
            *([] if scope is not None else [sketch_agg(F.col(key)).alias("s")]),
        )
        # A sketch's state is bounded (lgK 12), so one per segment fits in a task's hash
        # map; past 128 groups Spark would sort every input row instead, which ran out
        # of a 4 GB heap at 1M customers and 1,000 segments.
        with lake.session_conf(_SORT_FALLBACK, str(max(128, 2 * len(defs)))):
            found = {str(r[SEGMENT]): r for r in stats.collect()}
        empty = None
        if scope is not None:
            assert state.scope is not None
            old = scoped_memberships(lake, key, defs, state.history, state.scope)
            _fold_in(state, defs, found, old)
            return rows
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
        e.members = e.rows = int(hit["n"]) if hit is not None else 0
        e.fingerprint = fingerprint(e.members, hit["h"] if hit is not None else None)
        sketch = bytes(hit["s"]) if hit is not None else empty
        assert sketch is not None
        e.sketch = sketch
    return rows


def _fold_in(
    state: RunState,
    defs: list[SegmentDefinition],
    new: dict[str, Row],
    old: dict[str, tuple[int, int]],
) -> None:
    """An incremental run's counts and fingerprints: the last ones, minus the scope's old
    rows, plus its new ones (a fingerprint's hash is an XOR, so rows come out as they went in)."""
    for d in defs:
        e, last = state.evaluated[d.output.lower()], state.history[d.output.lower()]
        hit = new.get(d.output)
        e.rows = int(hit["n"]) if hit is not None else 0
        gone, gone_hash = old.get(d.output, (0, 0))
        members, last_hash = str(last["Fingerprint"]).split(":")
        e.members = int(members) - gone + e.rows
        h = int(last_hash, 16) ^ gone_hash ^ (int(hit["h"]) if hit is not None else 0)
        e.fingerprint = fingerprint(e.members, h)


def _publish(
    state: RunState,
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
    touched = state.guard.touched(lake)  # after evaluating: see Guard
    now = dt.datetime.now(dt.UTC)
    done: dict[str, SegmentRun] = {}
    changed: list[Evaluated] = []
    for d in defs:
        e, last = state.evaluated[d.output.lower()], state.history.get(d.output.lower())
        if (
            last is not None
            and last.get("Table") == MEMBERSHIPS
            and last.get("Fingerprint") == e.fingerprint
            and d.output.lower() not in touched
            and recorded_columns(last) == tuple(d.project)
        ):
            version = int(last["TableVersion"])  # type: ignore[call-overload]
            log.info(
                "segment %s: %d members, membership unchanged, version %d kept",
                d.output,
                e.members,
                version,
            )
            done[d.output.lower()] = run_row(
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
        counts = {e.d.output: e.rows for e in changed}
        scope = state.scope.customers if state.scope is not None else None
        with lake.commit_metadata(run_id):
            published = publish_memberships(
                lake, rows, outputs, key=key, run_id=run_id, counts=counts, scope=scope
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
            done[e.d.output.lower()] = run_row(
                e.d, run_id, as_of, inputs[e.d.output], e.fingerprint, now, e.members, joined,
                left, published.version, tuple(e.d.project),
            )  # fmt: skip
        log.info(
            "published %d changed segments in one commit, version %d, in %.1fs",
            len(changed),
            published.version,
            time.perf_counter() - started,
        )
    undrawn = [
        d for d in defs if state.drawn.get(d.output.lower()) != done[d.output.lower()].table_version
    ]
    if state.scope is not None and undrawn:
        drawn = scope_sketches(
            lake,
            key,
            {d.output: done[d.output.lower()].table_version for d in undrawn},
            state.history,
        )
        for d in undrawn:
            state.evaluated[d.output.lower()].sketch = drawn[d.output.lower()]
    for d in defs:  # every membership it names is published now
        row = done[d.output.lower()]
        recorded = state.inputs(d, reads[d.output.lower()], done)
        done[d.output.lower()] = dataclasses.replace(row, inputs=recorded, mode=state.mode)
    for d in undrawn:
        e, row = state.evaluated[d.output.lower()], done[d.output.lower()]
        sketches.append(SketchRow(d.output, run_id, row.table_version, e.members, e.sketch))
    return done
