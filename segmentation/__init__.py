"""Segments: the rule-tree language, validated, compiled to Spark, run onto Delta tables."""

from __future__ import annotations

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
