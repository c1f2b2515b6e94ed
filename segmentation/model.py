"""Typed segment definitions: the condition tree after validation.

Validation (``validate.py``) turns raw YAML/JSON into these frozen objects: names are
resolved against the catalog, aliases are mapped to canonical operators and values are
parsed to the attribute's type, so the compiler never sees user text it must interpret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
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
    "SegmentDefinition",
    "SegmentLeaf",
    "Window",
    "canonical",
    "segment_refs",
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


@dataclass(frozen=True)
class SegmentDefinition:
    """A validated segment: where it came from, what it is called, and its tree."""

    name: str
    output: str
    type: Literal["dynamic", "static"]
    where: Node
    description: str | None = None
    project: tuple[str, ...] = ()
    file: str = ""
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def canonical(self) -> dict[str, Any]:
        """A JSON-able normal form: equal definitions give equal forms."""
        return {
            "output": self.output,
            "type": self.type,
            "where": canonical(self.where),
            "project": list(self.project),
        }

    @property
    def definition_hash(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def relative(self) -> bool:
        """Whether membership depends on the as-of instant (in_last or within)."""
        return _relative(self.where)


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


def _relative(node: Node | None) -> bool:
    match node:
        case All(children) | AnyOf(children):
            return any(_relative(c) for c in children)
        case Not(child):
            return _relative(child)
        case AttributeLeaf(op=op):
            return op == "in_last"
        case RelatedLeaf(where=where, within=within):
            return within is not None or _relative(where)
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
