"""The condition language: its typed tree, its validation against the catalog, and its
compilation to Spark Columns. The runtime (measures' filters), segmentation and the
suggestions all use it; it imports nothing above the runtime."""

from __future__ import annotations

from cohortlake.conditions.compile import (
    aggregate,
    compile_entity_condition,
    leaf_test,
    window_start,
)
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
from cohortlake.conditions.validate import (
    ConditionValidator,
    Scope,
    parse_entity_condition,
    validate_entity_condition,
)

__all__ = [
    "AGGREGATES",
    "ALIASES",
    "OPERATORS",
    "All",
    "AnyOf",
    "AttributeLeaf",
    "ConditionValidator",
    "Having",
    "Node",
    "Not",
    "RelatedLeaf",
    "Scope",
    "SegmentLeaf",
    "Window",
    "aggregate",
    "canonical",
    "compile_entity_condition",
    "leaf_test",
    "parse_entity_condition",
    "segment_refs",
    "uses_as_of",
    "validate_entity_condition",
    "window_start",
]
