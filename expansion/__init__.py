"""Segment expansion: find customers similar to a segment's members, with measured quality."""

from __future__ import annotations

from expansion.model import Expansion, load_expansions
from expansion.run import ExpansionResult, run_expansion, run_expansions

__all__ = ["Expansion", "ExpansionResult", "load_expansions", "run_expansion", "run_expansions"]
