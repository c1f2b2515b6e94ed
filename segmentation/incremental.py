"""Incremental runs: re-evaluate only the customers whose membership may have changed.

A segment's ``segment_runs`` row records what its evaluation read (``Inputs``: the
versions of the profile, measures and activity tables, of the memberships it names, the
catalog's hash and the as-of instant). From those versions to the current ones, the
customers that may have changed membership are found from the data, never by
re-evaluating everyone:

- the keys in each input table's change data feed (profile, measures, activities);
- the keys in the change feed of ``memberships`` for named segments that another run
  republished (a named segment evaluated in the same run changes only within this set);
- when the as-of instant moved, the customers with a row whose relative test flips:
  a profile or measure ``in_last`` leaf, or an activity row entering or leaving a related
  leaf's window (or its relative ``where``), each evaluated at both instants.

Every customer outside this set keeps each segment's old membership exactly, so the
result equals a full run's. When that cannot be proven (first run, changed definition or
catalog, an input overwritten, restored or with a changed schema, a change feed turned
off or vacuumed, a relative test on an aggregate with the as-of moved, a membership
another run changed) ``NotIncremental`` says why, and the run is a full one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.changes import (
    NotIncremental,
    catalog_hash,
    flipped,
    gather,
    table_changes,
)
from cohortlake.lake import Lake
from cohortlake.memberships import MEMBERSHIPS, SEGMENT, memberships_path
from cohortlake.sketches import latest_sketches, sketch_memberships, sketches_after
from cohortlake.sources import read_profile
from cohortlake.tables import TableRef
from segmentation.compile import leaf_test, related_rows
from segmentation.evaluate import row_hash, union_frames
from segmentation.model import (
    All,
    AnyOf,
    AttributeLeaf,
    Node,
    Not,
    RelatedLeaf,
    SegmentDefinition,
)

__all__ = [
    "NotIncremental",
    "Scope",
    "changed_customers",
    "inputs_record",
    "scope_sketches",
    "scoped_memberships",
]

log = logging.getLogger(__name__)


@dataclass
class Scope:
    """The customers an incremental run re-evaluates: a persisted frame of keys."""

    customers: DataFrame
    count: int

    def release(self) -> None:
        self.customers.unpersist()


def inputs_record(
    catalog: Catalog,
    as_of: dt.datetime,
    tables: Mapping[str, int | None],
    segments: Mapping[str, int | None],
) -> str:
    """The ``Inputs`` JSON of one evaluation: what an incremental run starts from."""
    payload = {
        "as_of": as_of.isoformat(),
        "catalog": catalog_hash(catalog),
        "tables": dict(sorted(tables.items())),
        "segments": {k.lower(): v for k, v in sorted(segments.items())},
    }
    return json.dumps(payload, sort_keys=True)


@dataclass(frozen=True)
class _Baseline:
    as_ofs: set[dt.datetime]
    tables: dict[str, int]  # oldest recorded version per table key
    segments: dict[str, int]  # oldest recorded version per named segment


def _baseline(
    catalog: Catalog,
    defs: Sequence[SegmentDefinition],
    history: Mapping[str, Mapping[str, object]],
    touched: set[str],
) -> _Baseline:
    current = catalog_hash(catalog)
    as_ofs: set[dt.datetime] = set()
    tables: dict[str, int] = {}
    segments: dict[str, int] = {}
    for d in defs:
        last = history.get(d.output.lower())
        if last is None or last.get("Table") != MEMBERSHIPS:
            raise NotIncremental(f"segment {d.output} has no membership to start from")
        if last.get("Inputs") is None:
            raise NotIncremental(f"segment {d.output}'s last run recorded no inputs")
        if last["DefinitionHash"] != d.definition_hash:
            raise NotIncremental(f"the definition of {d.output} changed")
        if d.output.lower() in touched:
            raise NotIncremental(f"another run changed {d.output} since its last run")
        inputs = json.loads(str(last["Inputs"]))
        if inputs.get("catalog") != current:
            raise NotIncremental("the catalog changed")
        if d.relative:
            as_ofs.add(dt.datetime.fromisoformat(inputs["as_of"]))
        for name, version in inputs.get("tables", {}).items():
            if version is None:
                raise NotIncremental(f"{name} was not a Delta table at {d.output}'s last run")
            tables[name] = min(int(version), tables.get(name, int(version)))
        for name, version in inputs.get("segments", {}).items():
            if version is None:
                raise NotIncremental(f"segment {name} had no membership at {d.output}'s last run")
            segments[name] = min(int(version), segments.get(name, int(version)))
    return _Baseline(as_ofs, tables, segments)


def _leaves(node: Node | None) -> list[AttributeLeaf | RelatedLeaf]:
    match node:
        case All(children) | AnyOf(children):
            return [leaf for c in children for leaf in _leaves(c)]
        case Not(child):
            return _leaves(child)
        case AttributeLeaf() | RelatedLeaf():
            return [node]
    return []


def changed_customers(
    lake: Lake,
    catalog: Catalog,
    defs: Sequence[SegmentDefinition],
    history: Mapping[str, Mapping[str, object]],
    as_of: dt.datetime,
    version: Callable[[str], int | None],
    segment_versions: Mapping[str, int | None],
    evaluated: set[str],
    touched: set[str],
) -> Scope:
    """The customers whose membership of ``defs`` may differ from their last runs'.

    ``version(table)`` gives the version this run reads of ``profile``, ``measures`` or
    ``activity/<Entity>``; ``segment_versions`` the membership version it reads of each
    named segment not in ``evaluated`` (lower-cased outputs this run evaluates).
    Raises ``NotIncremental`` with the reason when the set cannot be proven complete.
    """
    base = _baseline(catalog, defs, history, touched)
    key = catalog.key
    parts: list[DataFrame] = []
    for table, start in sorted(base.tables.items()):
        now = version(table)
        if now is None:
            raise NotIncremental(f"{table} is not a Delta table")
        if now != start:
            parts.append(table_changes(lake, catalog, table, start, now))
    for output, start in sorted(base.segments.items()):
        if output in evaluated:
            continue  # evaluated on this same set of customers: changes only inside it
        now = segment_versions.get(output)
        if now is None:
            raise NotIncremental(f"segment {output} has no recorded membership to read")
        if now > start:
            feed = TableRef(memberships_path(lake)).read_changes(lake.spark, start + 1, now)
            parts.append(feed.filter(F.lower(F.col(SEGMENT)) == F.lit(output)).select(key))
    for before in sorted(base.as_ofs):
        if before != as_of:
            parts += _crossers(lake, catalog, defs, before, as_of, version)
    if not parts:
        parts = [read_profile(lake, catalog, version("profile")).select(key).limit(0)]
    return Scope(*gather(parts))


def scoped_memberships(
    lake: Lake,
    key: str,
    defs: Sequence[SegmentDefinition],
    history: Mapping[str, Mapping[str, object]],
    scope: Scope,
) -> dict[str, tuple[int, int]]:
    """Per output, the count and XOR of row hashes of its last membership's rows among
    the scope's customers (what an incremental run takes out before adding its own)."""
    by_version: dict[int, list[SegmentDefinition]] = {}
    for d in defs:
        version = int(history[d.output.lower()]["TableVersion"])  # type: ignore[call-overload]
        by_version.setdefault(version, []).append(d)
    parts = [  # one scan per version, one job for all
        lake.read(memberships_path(lake), version)
        .filter(F.col(SEGMENT).isin(*[d.output for d in group]))
        .select(SEGMENT, key, *sorted({c for d in group for c in d.project}))
        for version, group in sorted(by_version.items())
    ]
    rows = union_frames(parts, missing=True).join(scope.customers, key, "left_semi")
    stats = rows.groupBy(SEGMENT).agg(
        F.count(F.lit(1)).alias("n"), F.bit_xor(row_hash(list(defs), key)).alias("h")
    )
    return {str(r[SEGMENT]): (int(r["n"]), int(r["h"]) & ((1 << 64) - 1)) for r in stats.collect()}


def _crossers(
    lake: Lake,
    catalog: Catalog,
    defs: Sequence[SegmentDefinition],
    before: dt.datetime,
    as_of: dt.datetime,
    version: Callable[[str], int | None],
) -> list[DataFrame]:
    """Customers with a row whose relative test differs between ``before`` and ``as_of``
    (rows that changed in between are already in the change feeds)."""
    tests: dict[str, list[Callable[[dt.datetime], Column]]] = {}
    for d in defs:
        if not d.relative:
            continue
        for leaf in _leaves(d.where):
            if isinstance(leaf, AttributeLeaf):
                if leaf.op != "in_last":
                    continue
                ref = catalog.resolve(leaf.column)
                assert ref is not None, "validated definition"
                table = "profile" if ref.source == "profile" else "measures"
                tests.setdefault(table, []).append(
                    functools.partial(leaf_test, F.col(ref.name), leaf)
                )
            elif leaf.having.test.op == "in_last":
                raise NotIncremental(
                    f"{d.output} tests an aggregate with in_last and the as-of moved"
                )
            elif leaf.within is not None or _relative(leaf.where):
                tests.setdefault(f"activity/{leaf.entity}", []).append(
                    functools.partial(related_rows, leaf)
                )
    return flipped(lake, catalog, tests, before, as_of, version)


def _relative(node: Node | None) -> bool:
    return any(isinstance(x, AttributeLeaf) and x.op == "in_last" for x in _leaves(node))


def scope_sketches(
    lake: Lake,
    key: str,
    wanted: Mapping[str, int],
    history: Mapping[str, Mapping[str, object]],
) -> dict[str, bytes]:
    """Sketches of an incremental run's memberships at their versions, by lower-cased
    output: a changed one's last sketch updated from its commit's change feed (see
    ``sketches_after``); drawn from the table when that sketch is missing."""
    latest = latest_sketches(lake, list(wanted))
    by_commit: dict[int, dict[str, bytes]] = {}
    redraw: dict[str, int] = {}
    for output, version in wanted.items():
        before = int(history[output.lower()]["TableVersion"])  # type: ignore[call-overload]
        old = latest.get(output.lower())
        if version != before and old is not None and old.table_version == before:
            by_commit.setdefault(version, {})[output] = old.sketch
        else:
            redraw[output] = version
    found: dict[str, bytes] = {}
    for version, olds in sorted(by_commit.items()):
        found.update({o.lower(): b for o, b in sketches_after(lake, version, olds, key).items()})
    if redraw:
        found.update(sketch_memberships(lake, redraw, key, history))
    return found
