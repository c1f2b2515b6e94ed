"""Typed segment definitions: a validated condition tree with its name, type and output.

The tree itself is the condition language's (``cohortlake.conditions``); its names are
re-exported here for the segmentation package's users.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from cohortlake.conditions.model import (
    AGGREGATES,
    ALIASES,
    OPERATORS,
    All,
    AnyOf,
    AttributeLeaf,
    Having,
    Node,
    Not,
    RelatedLeaf,
    SegmentLeaf,
    Window,
    canonical,
    segment_refs,
    uses_as_of,
)

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
        return uses_as_of(self.where)
