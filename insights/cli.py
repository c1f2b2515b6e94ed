"""``cohortlake insights [--only OUTPUT ...]``: run the segment insights of ``conf/insights``."""

from __future__ import annotations

import argparse

from cohortlake.cli import add_common, context_from_args
from cohortlake.context import parse_as_of

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "insights",
        help="segment insights: overlap and differentiators",
        description="Run the overlap and differentiator insights defined in <conf>/insights.",
    )
    add_common(parser)
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="OUTPUT",
        default=None,
        help="run only these insights (output names)",
    )
    parser.add_argument(
        "--no-charts", dest="charts", action="store_false", help="skip the PNG charts"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from insights.run import run_insights

    as_of = parse_as_of(args.as_of)
    ctx = context_from_args(args)
    results = run_insights(ctx, outputs=args.only, as_of=as_of, charts=args.charts)
    for r in results:
        tables = ", ".join(f"{p} (v{v})" for p, v in r.tables.items())
        print(f"{r.kind} {r.output}: {tables}; {len(r.charts)} charts")
    if not results:
        print("no insights defined")
    return 0
