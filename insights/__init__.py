"""Segment insights: overlap of 2..50 segments and differentiators of a segment, as Spark jobs.

Definitions live in ``conf/insights`` (see ``insights.model``); results are Delta tables
under ``<root>/insights`` (schemas in ``insights.run``) and PNG charts under
``<root>/reports/insights``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortlake.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Differentiators": "insights.differentiators",
        "FieldScore": "insights.differentiators",
        "differentiate": "insights.differentiators",
        "DifferentiatorsDefinition": "insights.model",
        "InsightDefinition": "insights.model",
        "OverlapDefinition": "insights.model",
        "load_insights": "insights.model",
        "Overlap": "insights.overlap",
        "segment_overlap": "insights.overlap",
        "InsightResult": "insights.run",
        "run_insights": "insights.run",
    },
)
