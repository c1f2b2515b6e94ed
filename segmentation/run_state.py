"""A segment run's state and rows: its options, what it looked up, settled and evaluated,
and the ``segment_runs`` rows it writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem
from cohortlake.lake import Lake, SegmentRun
from cohortlake.memberships import MEMBERSHIPS, locate, touched_since
from cohortlake.sources import activity_ref, profile_ref, ref_version
from segmentation.evaluate import Reads
from segmentation.incremental import NotIncremental, Scope, changed_customers, inputs_record
from segmentation.model import SegmentDefinition

__all__ = [
    "Evaluated",
    "Guard",
    "RunOptions",
    "RunState",
    "recorded_columns",
    "run_row",
    "select_definitions",
    "unchanged_row",
]

log = logging.getLogger("segmentation.run")

_History = dict[str, dict[str, object]]


@dataclass(frozen=True)
class RunOptions:
    """How a run treats static and unchanged segments."""

    refresh_static: bool = False
    force: bool = False
    incremental: bool = False


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
class Guard:
    """What tells a kept membership from one another run changed: commits to
    ``memberships`` after ``since`` that this run did not make (none, normally)."""

    since: int | None
    run_id: str

    def touched(self, lake: Lake) -> set[str]:
        return touched_since(lake, self.since, self.run_id)


@dataclass
class Evaluated:
    """A segment this run evaluated; it is published (or kept) at the end of the run."""

    d: SegmentDefinition
    members: int = 0
    fingerprint: str = ""
    sketch: bytes = b""  # empty in an incremental run: sketched from the table after
    rows: int = 0  # membership rows evaluated (among the scope's customers when there is one)


@dataclass
class RunState:
    """One run's state: what it looked up, settled and evaluated."""

    ctx: Context
    as_of: dt.datetime
    run_id: str
    options: RunOptions
    history: _History
    guard: Guard
    drawn: dict[str, int]
    settled: dict[str, SegmentRun] = field(default_factory=dict)  # kept and skipped
    evaluated: dict[str, Evaluated] = field(default_factory=dict)
    tables: dict[str, int | None] = field(default_factory=dict)
    scope: Scope | None = None  # an incremental run's customers
    mode: str = "full"

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

    def read_version(self, output: str) -> int | None:
        """The membership version this run reads of a segment it does not evaluate."""
        name = output.lower()
        if name in self.settled:
            return self.settled[name].table_version
        last = self.history.get(name)
        return int(last["TableVersion"]) if last is not None else None  # type: ignore[call-overload]

    def inputs(self, d: SegmentDefinition, reads: Reads, done: dict[str, SegmentRun]) -> str:
        """What the evaluation of ``d`` read: the ``Inputs`` an incremental run starts from."""
        tables = {"profile": self.version("profile")}
        if reads.measures:
            tables["measures"] = self.version("measures")
        for entity in reads.entities:
            tables[f"activity/{entity}"] = self.version(f"activity/{entity}")
        segments = {
            o: done[o].table_version if o in done else self.read_version(o) for o in reads.segments
        }
        return inputs_record(self.ctx.catalog, self.as_of, tables, segments)

    def narrow(self, defs: list[SegmentDefinition], reads: dict[str, Reads]) -> None:
        """Find the customers an incremental run re-evaluates, or say why it cannot be one."""
        try:
            self.scope = changed_customers(
                self.ctx.lake,
                self.ctx.catalog,
                defs,
                self.history,
                self.as_of,
                self.version,
                {o: self.read_version(o) for d in defs for o in reads[d.output.lower()].segments},
                set(self.evaluated),
                self.guard.touched(self.ctx.lake),
            )
        except NotIncremental as exc:
            self.mode = f"full: {exc}"
            log.info("incremental run not possible, full run: %s", exc)
            return
        self.mode = "incremental"
        log.info(
            "incremental run: %d customers may have changed membership of %d segments",
            self.scope.count,
            len(defs),
        )


def unchanged_row(
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
    row = run_row(
        d,
        run_id,
        as_of,
        inputs,
        fingerprint,
        now,
        members,
        0,
        0,
        version,
        recorded_columns(last),
        status,
    )
    recorded = last.get("Inputs")
    return dataclasses.replace(row, inputs=str(recorded) if recorded is not None else None)


def recorded_columns(last: dict[str, object]) -> tuple[str, ...]:
    columns = last.get("Columns")
    return tuple(str(c) for c in columns) if isinstance(columns, list | tuple) else ()


def run_row(
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
