"""Segment insights: overlap of 2..50 segments and differentiators of a segment, as Spark jobs.

Definitions live in ``conf/insights`` (see ``insights.model``); results are Delta tables
under ``<root>/insights`` (schemas in ``insights.run``) and PNG charts under
``<root>/reports/insights``.
"""

from __future__ import annotations

from insights.differentiators import Differentiators, FieldScore, differentiate
from insights.model import (
    DifferentiatorsDefinition,
    InsightDefinition,
    OverlapDefinition,
    load_insights,
)
from insights.overlap import Overlap, segment_overlap
from insights.run import InsightResult, run_insights

__all__ = [
    "Differentiators",
    "DifferentiatorsDefinition",
    "FieldScore",
    "InsightDefinition",
    "InsightResult",
    "Overlap",
    "OverlapDefinition",
    "differentiate",
    "load_insights",
    "run_insights",
    "segment_overlap",
]
