"""Compile validated condition trees into Spark Columns over one shared customer frame.

Two-valued logic: every leaf is wrapped in ``coalesce(test, false)``, so a null
attribute makes its leaf false (``is_null`` aside) and ``all``/``any``/``not`` are plain
boolean operators. Related leaves become conditional aggregates: all leaves over one
entity share a single ``groupBy(CustomerId)`` pass, however many segments use them.
Values reach Spark only as literals (``F.lit``), never as SQL text.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.conditions.compile import (
    aggregate,
    compile_entity_condition,
    fold,
    leaf_test,
    window_start,
)
from cohortlake.errors import RunFailure
from cohortlake.lake import Lake
from cohortlake.memberships import SEGMENT, read_keys
from cohortlake.sources import read_activity, read_profile
from segmentation.model import (
    All,
    AnyOf,
    AttributeLeaf,
    Node,
    Not,
    RelatedLeaf,
    SegmentLeaf,
    canonical,
)

__all__ = [
    "CustomerFrame",
    "compile_entity_condition",
    "leaf_test",
    "related_rows",
    "window_start",
]

log = logging.getLogger(__name__)

_COLUMNS_PER_JOIN = 100


def related_rows(leaf: RelatedLeaf, as_of: dt.datetime) -> Column:
    """Whether an activity row counts for a related leaf: its ``where`` and its window
    ending at ``as_of`` (never null)."""
    rows = F.lit(True)
    if leaf.where is not None:
        rows = compile_entity_condition(leaf.where, as_of)
    if leaf.within is not None:
        start = window_start(as_of, leaf.within)
        t = F.col(leaf.event_time).cast("timestamp")
        rows = rows & F.coalesce((t >= F.lit(start)) & (t <= F.lit(as_of)), F.lit(False))
    return rows


@dataclass
class _Aggregate:
    alias: str
    expr: Column
    zero_when_empty: bool
    rows: Column


@dataclass
class CustomerFrame:
    """Collects what a set of trees needs, then builds one frame that serves them all.

    ``condition(node)`` compiles a tree and registers the profile columns, measures,
    related aggregates and segment memberships it reads; ``build(lake)`` joins them
    once onto the profile (every customer, one row each).
    """

    catalog: Catalog
    as_of: dt.datetime
    profile_columns: set[str] = field(default_factory=set)
    measure_columns: set[str] = field(default_factory=set)
    segment_outputs: dict[str, str] = field(default_factory=dict)
    _aggregates: dict[str, dict[str, _Aggregate]] = field(default_factory=dict)
    _leaves: dict[str, Column] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.catalog.key

    @property
    def entities(self) -> list[str]:
        return sorted(self._aggregates)

    def need(self, column: str) -> None:
        """Register a customer-level field (profile attribute or measure) by its name."""
        ref = self.catalog.resolve(column)
        if ref is None:
            raise ValueError(f"unknown field {column}")
        (self.profile_columns if ref.source == "profile" else self.measure_columns).add(ref.name)

    def condition(self, node: Node) -> Column:
        match node:
            case All(children):
                return fold([self.condition(c) for c in children], "and")
            case AnyOf(children):
                return fold([self.condition(c) for c in children], "or")
            case Not(child):
                return ~self.condition(child)
            case AttributeLeaf():
                self.need(node.column)
                return self._leaf(node, lambda: leaf_test(F.col(node.column), node, self.as_of))
            case SegmentLeaf(output):
                alias = self.segment_outputs.setdefault(
                    output, f"__seg_{len(self.segment_outputs)}"
                )
                return F.col(alias)
            case RelatedLeaf():
                alias = self._related(node)
                return self._leaf(
                    node, lambda: leaf_test(F.col(alias), node.having.test, self.as_of)
                )
        raise ValueError(f"cannot compile {type(node).__name__}")

    def _leaf(self, node: Node, compile_leaf: Callable[[], Column]) -> Column:
        """A leaf's Column, built once per frame however many trees hold the same leaf:
        each Column operation is a call into the JVM (1,000 generated definitions spent
        6 s of a 42 s run building their leaves)."""
        signature = json.dumps(canonical(node), sort_keys=True, default=str)
        found = self._leaves.get(signature)
        if found is None:
            found = self._leaves[signature] = compile_leaf()
        return found

    def _related(self, leaf: RelatedLeaf) -> str:
        signature = json.dumps(
            [canonical(leaf.where), canonical(leaf.within), leaf.having.agg, leaf.having.attribute],
            sort_keys=True,
            default=str,
        )
        aggs = self._aggregates.setdefault(leaf.entity, {})
        if signature in aggs:
            return aggs[signature].alias
        alias = f"__rel_{leaf.entity}_{len(aggs)}"
        rows = related_rows(leaf, self.as_of)
        agg, attr = leaf.having.agg, leaf.having.attribute
        value = F.col(attr) if attr else F.lit(1)
        picked = F.when(rows, value)
        expr = aggregate(agg, picked)
        aggs[signature] = _Aggregate(
            alias, expr.alias(alias), agg in ("count", "count_distinct", "sum"), rows
        )
        return alias

    def build(
        self,
        lake: Lake,
        segment_versions: Mapping[str, int] | None = None,
        versions: Mapping[str, int | None] | None = None,
        runs: Mapping[str, Mapping[str, object]] | None = None,
        own: Sequence[Mapping[str, Column]] = (),
        customers: DataFrame | None = None,
    ) -> DataFrame:
        """Profile ⟕ measures ⟕ related aggregates ⟕ segment flags, one row per customer.

        ``versions`` pins tables to Delta versions (keys ``profile``, ``measures``,
        ``activity/<entity>``); ``segment_versions`` pins segment memberships to the
        version that holds them; anything unnamed is read at its current version
        (``runs``: the latest ``segment_runs`` rows, read when not given). A segment in
        ``own`` (groups of outputs and their conditions, each group naming only earlier
        ones) is not read: its flag is its condition, computed on this frame. Each join adds
        at most ``_COLUMNS_PER_JOIN`` columns: every sort, aggregate and join of a stage
        takes memory of its own, so a plan's width is bounded, not its count of leaves.
        With ``customers`` (a frame of keys) only those customers' rows are read and joined:
        an incremental run's frame.
        """
        pinned = versions or {}
        key = self.key

        def only(frame: DataFrame) -> DataFrame:
            return frame if customers is None else frame.join(customers, key, "left_semi")

        frame = only(read_profile(lake, self.catalog, pinned.get("profile"))).select(
            key, *sorted(self.profile_columns)
        )
        if self.measure_columns:
            if not lake.exists(lake.measures_path()):
                raise RunFailure(
                    f"measures table missing: {lake.measures_path()} (run `cohortlake measures`)"
                )
            measures = only(lake.read(lake.measures_path(), pinned.get("measures"))).select(
                key, *sorted(self.measure_columns)
            )
            frame = frame.join(measures, key, "left")
        for entity, by_signature in sorted(self._aggregates.items()):
            activity = only(
                read_activity(lake, self.catalog, entity, pinned.get(f"activity/{entity}"))
            )
            aggs = list(by_signature.values())
            for start in range(0, len(aggs), _COLUMNS_PER_JOIN):
                group = aggs[start : start + _COLUMNS_PER_JOIN]
                # Rows no leaf selects add nothing to any aggregate: drop them before the shuffle.
                grouped = (
                    activity.filter(fold([a.rows for a in group], "or"))
                    .groupBy(key)
                    .agg(*[a.expr for a in group])
                )
                frame = frame.join(grouped, key, "left")
                for a in group:
                    if a.zero_when_empty:
                        frame = frame.withColumn(a.alias, F.coalesce(F.col(a.alias), F.lit(0)))
        outputs = sorted(self.segment_outputs.items())
        if outputs:
            pins = segment_versions or {}
            computed = {o for depth in own for o in depth}
            read = [(o, a) for o, a in outputs if o not in computed]
            if read:
                keys = only(read_keys(lake, {o: pins.get(o) for o, _ in read}, key, runs))
            for start in range(0, len(read), _COLUMNS_PER_JOIN):
                named = read[start : start + _COLUMNS_PER_JOIN]
                flags = (
                    keys.filter(F.col(SEGMENT).isin(*[o.lower() for o, _ in named]))
                    .groupBy(key)
                    .agg(*[F.bool_or(F.col(SEGMENT) == o.lower()).alias(a) for o, a in named])
                )
                frame = frame.join(flags, key, "left").select(
                    *frame.columns,
                    *[F.coalesce(F.col(a), F.lit(False)).alias(a) for _, a in named],
                )
            for depth in own:
                wanted = [(self.segment_outputs[o], c) for o, c in depth.items()]
                for start in range(0, len(wanted), _COLUMNS_PER_JOIN):
                    part = wanted[start : start + _COLUMNS_PER_JOIN]
                    frame = frame.select("*", *[c.alias(a) for a, c in part])
        return frame
