"""The Contoso Coffee lab end to end: ``cohortlake demo`` (what ``make demo`` runs).

Stages: generate the lakehouse, compute measures, the lab's two quick creates, run the
segments, insights, expansion, suggestions, save a suggestion as a segment and run it,
then write the report. Every stage is timed; the run is reproducible (seed, as-of).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cohortlake.context import Context, parse_as_of

__all__ = ["DEMO_AS_OF", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)

DEMO_AS_OF = "2026-07-01"


@dataclass
class DemoResult:
    """Per-stage timings and what each stage returned (for the report and the summary)."""

    as_of: dt.datetime
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    report: str | None = None

    def summary(self) -> str:
        lines = ["", "Contoso Coffee lab: done", ""]
        segs = self.outputs.get("segments") or []
        for r in segs:
            lines.append(f"  segment {r.segment:<44} {r.members:>7,} members ({r.status})")
        for r in self.outputs.get("saved_segments") or []:
            lines.append(f"  segment {r.segment:<44} {r.members:>7,} members (saved suggestion)")
        for e in self.outputs.get("expansions") or []:
            lines.append(f"  segment {e.output:<44} {e.run.members:>7,} members (expansion)")
        for run in self.outputs.get("suggestions") or []:
            lines.append("")
            lines.append(f"  {run.output}: {run.kept} significant of {run.candidates} candidates")
            lines += [f"    {row['Rank']}. {row['Summary']}" for row in run.rows[:5]]
        lines.append("")
        lines.append("time per stage:")
        for stage, seconds in self.timings.items():
            lines.append(f"  {stage:<22} {seconds:7.1f} s")
        lines.append(f"  {'total':<22} {sum(self.timings.values()):7.1f} s")
        if self.report:
            lines.append("")
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


def _stage(result: DemoResult, name: str, fn: Callable[[], Any]) -> Any:
    """Run and time one stage; a line per stage says where the demo is (logs are quiet)."""
    started = time.perf_counter()
    value = fn()
    result.timings[name] = time.perf_counter() - started
    print(f"demo: {name} done in {result.timings[name]:.1f} s", flush=True)
    return value


def run_demo(
    ctx: Context, *, customers: int = 5000, seed: int = 42, as_of: dt.datetime | None = None
) -> DemoResult:
    """Run the whole lab on ``ctx``'s lakehouse; returns timings and stage results."""
    from cohortlake.measures import compute_measures
    from lab.contoso import generate_contoso
    from segmentation.quick import quick_create
    from segmentation.run import run_segments
    from segmentation.validate import load_definitions

    as_of = as_of or parse_as_of(DEMO_AS_OF)
    result = DemoResult(as_of)
    load_definitions(ctx.conf_dir, ctx.catalog)  # every definition is valid before data is touched
    _validate_others(ctx)
    _stage(
        result,
        "generate",
        lambda: generate_contoso(ctx.spark, ctx.lake, customers=customers, seed=seed),
    )
    _stage(result, "measures", lambda: compute_measures(ctx.spark, ctx.lake, ctx.catalog, as_of))

    def quick() -> list[Any]:
        return [
            quick_create(
                ctx,
                field_name="State",
                op="eq",
                value="California",
                name="Customers from California",
                as_of=as_of,
            ),
            quick_create(
                ctx,
                field_name="Average Web Purchase ($)",
                op="gt",
                value="138",
                name="High Value Online Customers",
                as_of=as_of,
            ),
        ]

    result.outputs["quick"] = _stage(result, "quick create", quick)
    result.outputs["segments"] = _stage(result, "segments", lambda: run_segments(ctx, as_of=as_of))
    from expansion import run_expansions
    from insights import run_insights
    from suggestions import run_suggestions, save_configured_suggestions

    result.outputs["insights"] = _stage(result, "insights", lambda: run_insights(ctx, as_of=as_of))
    result.outputs["expansions"] = _stage(
        result, "expansion", lambda: run_expansions(ctx, as_of=as_of)
    )
    result.outputs["suggestions"] = _stage(
        result, "suggestions", lambda: run_suggestions(ctx, as_of=as_of)
    )
    saved = _stage(
        result, "save suggestion", lambda: _save_suggestions(ctx, save_configured_suggestions)
    )
    result.outputs["saved_files"] = saved
    if saved:
        names = [_output_of(p) for p in saved]
        result.outputs["saved_segments"] = _stage(
            result, "saved segment", lambda: run_segments(ctx, only=names, as_of=as_of)
        )
    from lab.report import write_report

    result.report = _stage(result, "report", lambda: write_report(ctx, result))
    return result


def _save_suggestions(ctx: Context, save: Callable[[Context], list[Any]]) -> list[Any]:
    """Apply the configured saves; a run with nothing significant to save is reported, not fatal."""
    from cohortlake.errors import RunFailure

    try:
        return save(ctx)
    except RunFailure as exc:
        log.warning("no suggestion saved: %s", exc)
        return []


def _output_of(path: Any) -> str:
    from cohortlake.config import load_document
    from cohortlake.naming import derive_output_name

    doc = load_document(path)
    return str(doc.get("output") or derive_output_name(doc["name"]))


def _validate_others(ctx: Context) -> None:
    """Validate insight, expansion and suggestion definitions before any stage runs."""
    from expansion import load_expansions
    from insights import load_insights
    from suggestions import load_suggestion_runs

    load_insights(ctx.conf_dir, ctx.catalog)
    load_expansions(ctx.conf_dir, ctx.catalog)
    load_suggestion_runs(ctx.conf_dir, ctx.catalog)
