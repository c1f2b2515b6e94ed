"""Membership rows: a set of segments' conditions over one customer frame, as
``(Segment, key, projected columns)`` rows, and the fingerprints of memberships.

Rows instead of a column per segment: all later work (counts, fingerprints, sketches,
the commit) is a grouping of the rows, whose cost follows the members, not the
segments times the customers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog
from cohortlake.memberships import SEGMENT
from segmentation.compile import CustomerFrame
from segmentation.model import (
    All,
    AnyOf,
    AttributeLeaf,
    Node,
    Not,
    RelatedLeaf,
    SegmentDefinition,
    SegmentLeaf,
    segment_refs,
)

__all__ = [
    "SEGMENTS_PER_PASS",
    "Reads",
    "fingerprint",
    "membership_rows",
    "named_groups",
    "reads_of",
    "row_hash",
    "union_frames",
]

# At 1M customers one aggregation of 150 columns took 3.9 s where one of 100 took 1.3 s
# (past ~100 columns the generated code is apparently no longer compiled): a pass over
# the customers evaluates at most 50 segments' conditions.
SEGMENTS_PER_PASS = 50


def row_hash(defs: list[SegmentDefinition], key: str) -> Column:
    """Each membership row's 64-bit hash: of the key and the segment's own projected
    columns, so a fingerprint does not depend on what other segments project."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for d in defs:
        groups.setdefault(tuple(d.project), []).append(d.output)
    hashes = [
        (outputs, F.xxhash64(F.col(key), *[F.col(c) for c in project]))
        for project, outputs in groups.items()
    ]
    if len(hashes) == 1:
        return hashes[0][1]
    expr = F.when(F.col(SEGMENT).isin(*hashes[0][0]), hashes[0][1])
    for outputs, h in hashes[1:]:
        expr = expr.when(F.col(SEGMENT).isin(*outputs), h)
    return expr


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def fingerprint(members: int, h: int | None) -> str:
    return f"{members}:{(h or 0) & ((1 << 64) - 1):016x}"


def membership_rows(
    base: DataFrame,
    key: str,
    defs: list[SegmentDefinition],
    conditions: dict[str, Column],
) -> DataFrame:
    """``(Segment, key, projected columns)``: one row per segment and member.

    Each pass over ``base`` evaluates at most ``SEGMENTS_PER_PASS`` conditions into an
    array of the segments a customer is in, exploded into rows; so a plan's width is
    bounded however many segments a run has, and all later work (counts, fingerprints,
    sketches, the commit) is a grouping of these rows, not a pass per segment. A
    projected value is null in the rows of segments that do not project it.
    """
    projected = list(dict.fromkeys(c for d in defs for c in d.project))
    parts = []
    for chunk in _chunks(list(range(len(defs))), SEGMENTS_PER_PASS):
        named = F.array(*[F.when(conditions[defs[i].output], F.lit(defs[i].output)) for i in chunk])
        parts.append(
            base.select(
                key, *projected, F.explode(F.filter(named, lambda s: s.isNotNull())).alias(SEGMENT)
            )
        )
    rows = union_frames(parts)
    return rows.select(
        SEGMENT,
        key,
        *[
            F.when(
                F.col(SEGMENT).isin(*[d.output for d in defs if c in d.project]), F.col(c)
            ).alias(c)
            for c in projected
        ],
    )


def union_frames(parts: list[DataFrame], missing: bool = False) -> DataFrame:
    """The union of frames, as a balanced tree: each union checks the whole plan below
    it, so a chain of 20 cost 4.8 s of analysis. Same-shaped frames by position, or with
    ``missing`` by name, a column one frame lacks being null there."""
    while len(parts) > 1:
        parts = [
            (
                parts[i].unionByName(parts[i + 1], allowMissingColumns=True)
                if missing
                else parts[i].union(parts[i + 1])
            )
            if i + 1 < len(parts)
            else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return parts[0]


@dataclass(frozen=True)
class Reads:
    """The tables one definition reads (its tree and its projected columns)."""

    measures: bool
    entities: frozenset[str]
    segments: tuple[str, ...]  # output names as the tree writes them, lower-cased


def reads_of(d: SegmentDefinition, catalog: Catalog) -> Reads:
    measures = False
    entities: set[str] = set()
    segments: list[str] = []

    def walk(node: Node) -> None:
        nonlocal measures
        match node:
            case All(children) | AnyOf(children):
                for child in children:
                    walk(child)
            case Not(child):
                walk(child)
            case AttributeLeaf():
                ref = catalog.resolve(node.column)
                measures = measures or (ref is not None and ref.source == "measure")
            case SegmentLeaf(output):
                segments.append(output.lower())
            case RelatedLeaf():
                entities.add(node.entity)

    walk(d.where)
    for column in d.project:
        ref = catalog.resolve(column)
        measures = measures or (ref is not None and ref.source == "measure")
    return Reads(measures, frozenset(entities), tuple(dict.fromkeys(segments)))


def named_groups(
    defs: list[SegmentDefinition], frame: CustomerFrame, conditions: dict[str, Column]
) -> list[dict[str, Column]]:
    """The conditions of the segments others of this run name, grouped by depth: a
    group's conditions name only segments of earlier groups."""
    depth: dict[str, int] = {}
    for d in defs:  # dependency order
        refs = [depth[r] for r in segment_refs(d.where) if r in depth]
        depth[d.output.lower()] = 1 + max(refs, default=-1)
    groups: list[dict[str, Column]] = []
    for d in defs:
        if d.output in frame.segment_outputs:
            level = depth[d.output.lower()]
            groups.extend({} for _ in range(level + 1 - len(groups)))
            groups[level][d.output] = conditions[d.output]
    return [g for g in groups if g]
