"""The condition language's typed tree: what validation produces and compilation reads.

Validation (``cohortlake.conditions.validate``) turns raw YAML/JSON into these frozen
objects: names are resolved against the catalog, aliases are mapped to canonical
operators and values are parsed to the attribute's type, so the compiler never sees user
text it must interpret. Segments, measures' filters and saved suggestions share it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal

__all__ = [
    "AGGREGATES",
    "ALIASES",
    "OPERATORS",
    "All",
    "AnyOf",
    "AttributeLeaf",
    "Having",
    "Node",
    "Not",
    "RelatedLeaf",
    "SegmentLeaf",
    "Window",
    "canonical",
    "segment_refs",
    "uses_as_of",
]

OPERATORS = (
    "eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in",
    "contains", "not_contains", "starts_with", "ends_with", "is_null", "is_not_null", "in_last",
)  # fmt: skip
ALIASES = {"on_or_after": "gte", "on_or_before": "lte", "after": "gt", "before": "lt"}
AGGREGATES = ("count", "sum", "avg", "min", "max", "count_distinct")
Unit = Literal["days", "weeks", "months", "years"]
Scope = Literal["profile", "measure", "entity", "aggregate"]


@dataclass(frozen=True)
class Window:
    """``{n, unit}``: a relative period ending at the run's as-of instant."""

    n: int
    unit: Unit


@dataclass(frozen=True)
class AttributeLeaf:
    """A test on one column. ``value`` is already parsed to the column's type."""

    column: str
    type: str
    op: str
    value: Any = None
    ignore_case: bool = False
    scope: Scope = "profile"


@dataclass(frozen=True)
class Having:
    """The aggregate test of a related leaf (``attribute`` is None for count)."""

    agg: str
    attribute: str | None
    test: AttributeLeaf


@dataclass(frozen=True)
class RelatedLeaf:
    """A test on a customer's rows of an activity entity, aggregated per customer."""

    entity: str
    event_time: str
    where: Node | None
    within: Window | None
    having: Having


@dataclass(frozen=True)
class SegmentLeaf:
    """Membership of another segment's latest output."""

    output: str


@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = All | AnyOf | Not | AttributeLeaf | RelatedLeaf | SegmentLeaf


def canonical(node: Any) -> Any:
    """JSON-able normal form of a node or value (dates as ISO text)."""
    if isinstance(node, (dt.date, dt.datetime)):
        return node.isoformat()
    if isinstance(node, tuple):
        return [canonical(n) for n in node]
    if is_dataclass(node) and not isinstance(node, type):
        return {
            "node": type(node).__name__,
            **{f.name: canonical(getattr(node, f.name)) for f in fields(node)},
        }
    if isinstance(node, dict):
        return {k: canonical(v) for k, v in node.items()}
    if isinstance(node, list):
        return [canonical(v) for v in node]
    return node


def uses_as_of(node: Node | None) -> bool:
    """Whether a tree's truth depends on the as-of instant (``in_last`` or ``within``)."""
    match node:
        case All(children) | AnyOf(children):
            return any(uses_as_of(c) for c in children)
        case Not(child):
            return uses_as_of(child)
        case AttributeLeaf(op=op):
            return op == "in_last"
        case RelatedLeaf(where=where, within=within, having=having):
            return within is not None or uses_as_of(where) or having.test.op == "in_last"
    return False


def segment_refs(node: Node | None) -> set[str]:
    """Output names of the segments a tree refers to (lower-cased)."""
    match node:
        case All(children) | AnyOf(children):
            return set().union(*(segment_refs(c) for c in children))
        case Not(child):
            return segment_refs(child)
        case SegmentLeaf(output):
            return {output.lower()}
    return set()
