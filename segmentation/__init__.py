"""Segments: the rule-tree language, validated, compiled to Spark, run onto Delta tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortlake.lazy import lazy_exports

if TYPE_CHECKING:
    from segmentation.compile import CustomerFrame, compile_entity_condition, window_start
    from segmentation.model import SegmentDefinition
    from segmentation.run import RunOptions, run_segments
    from segmentation.validate import load_definitions, parse_definitions

__all__ = [
    "CustomerFrame",
    "RunOptions",
    "SegmentDefinition",
    "compile_entity_condition",
    "load_definitions",
    "parse_definitions",
    "run_segments",
    "window_start",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CustomerFrame": "segmentation.compile",
        "compile_entity_condition": "segmentation.compile",
        "window_start": "segmentation.compile",
        "SegmentDefinition": "segmentation.model",
        "RunOptions": "segmentation.run",
        "run_segments": "segmentation.run",
        "load_definitions": "segmentation.validate",
        "parse_definitions": "segmentation.validate",
    },
)
