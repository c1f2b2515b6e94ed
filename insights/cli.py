"""``cohortlake insights [--only OUTPUT ...]``: run the segment insights of ``conf/insights``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cohortlake.cli import add_command, add_common, add_only, context_from_args
from cohortlake.context import parse_as_of

if TYPE_CHECKING:
    from cohortlake.context import Context
    from insights.run import InsightResult

__all__ = ["check_definitions", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "insights",
        "segment insights: overlap and differentiators",
        "Runs the overlap and differentiator insights defined in <conf>/insights, writes\n"
        "insights/<Output> Delta tables and charts under <root>/reports/insights.",
        [
            "cohortlake insights",
            "cohortlake insights --only HighValueOnlinevsCustomersfromCalifornia",
        ],
    )
    add_only(parser, "insights")
    parser.add_argument(
        "--no-charts", dest="charts", action="store_false", help="skip the PNG charts"
    )
    add_common(parser)
    parser.set_defaults(handler=_run)


def check_definitions(ctx: Context) -> str:
    """``validate``'s line for insights (InputError with every problem)."""
    from insights.model import load_insights

    defs = load_insights(ctx.conf_dir, ctx.catalog)
    return f"insights: {len(defs)} valid ({', '.join(d.output for d in defs) or 'none'})"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def headline(result: InsightResult) -> str:
    """What an insight found, in one line: sizes and overlap, or the top differentiators."""
    if result.overlap is not None:
        o = result.overlap
        sizes = ", ".join(f"{s} {n:,}" for s, n in zip(o.segments, o.sizes, strict=True))
        if len(o.segments) == 2:
            found = f"{o.pair(0, 1):,} in both (Jaccard {_percent(o.jaccard(0, 1))})"
        else:
            best = max(o.shared, key=lambda ij: o.jaccard(*ij) or 0.0)
            i, j = best
            found = (
                f"{o.in_all:,} in all; most alike {o.segments[i]} and {o.segments[j]} "
                f"(Jaccard {_percent(o.jaccard(i, j))})"
            )
        return f"overlap {result.output}: {sizes}; {found}"
    if result.differentiators is not None:
        top = [s for s in result.differentiators.scores if s.score is not None][:3]
        found = ", ".join(f"{s.display} {s.score:.2f}" for s in top if s.score is not None)
        return f"differentiators {result.output}: top fields {found or 'none'} (score 0.5-1)"
    return f"{result.kind} {result.output}"


def _run(args: argparse.Namespace) -> int:
    from insights.model import load_insights

    as_of = parse_as_of(args.as_of)
    ctx = context_from_args(args)
    load_insights(ctx.conf_dir, ctx.catalog)  # bad definitions answer before the heavy imports
    from insights.run import run_insights

    results = run_insights(ctx, outputs=args.only, as_of=as_of, charts=args.charts)
    for r in results:
        tables = ", ".join(f"{p} (v{v})" for p, v in r.tables.items())
        print(headline(r))
        print(f"  wrote {tables}; {len(r.charts)} charts")
    print(f"insights: {len(results)} run" if results else "no insights defined")
    return 0
