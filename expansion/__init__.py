"""Segment expansion: find customers similar to a segment's members, with measured quality."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortlake.lazy import lazy_exports

if TYPE_CHECKING:
    from expansion.model import Expansion, load_expansions
    from expansion.run import ExpansionResult, run_expansion, run_expansions

__all__ = ["Expansion", "ExpansionResult", "load_expansions", "run_expansion", "run_expansions"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Expansion": "expansion.model",
        "load_expansions": "expansion.model",
        "ExpansionResult": "expansion.run",
        "run_expansion": "expansion.run",
        "run_expansions": "expansion.run",
    },
)
