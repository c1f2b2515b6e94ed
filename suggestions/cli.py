"""``cohortlake suggest`` (mine suggestions) and ``cohortlake save-suggestion`` (save one as a segment)."""

from __future__ import annotations

import argparse

from cohortlake.cli import add_common, context_from_args
from cohortlake.context import parse_as_of
from cohortlake.errors import InputError

__all__ = ["register"]


def _suggest(args: argparse.Namespace) -> int:
    from suggestions.model import load_suggestion_runs
    from suggestions.run import run_suggestions, select_runs
    from suggestions.save import save_configured_suggestions

    ctx = context_from_args(args)
    runs = select_runs(
        load_suggestion_runs(ctx.conf_dir, ctx.catalog), args.only
    )  # validate before Spark starts
    ctx.check_tables(
        measures=any(f.source == "measure" for r in runs for f in (r.target, *r.influencers))
    )
    results = run_suggestions(ctx, args.only, parse_as_of(args.as_of))
    for r in results:
        print(
            f"{r.output}: {r.kept} suggestions from {r.candidates} candidates ({r.customers:,} customers, {r.missing_target:,} without {r.target})"
        )
        for row in r.rows[: args.show]:
            print(f"  {row['Rank']}. {row['Summary']}")
    if args.save:
        for path in save_configured_suggestions(ctx, args.only):
            print(f"saved {path}")
    return 0


def _save(args: argparse.Namespace) -> int:
    if args.rank is not None and args.direction is not None:
        raise InputError("give --rank or --direction, not both", file="--rank")
    from suggestions.save import save_suggestion

    ctx = context_from_args(args)
    path = save_suggestion(
        ctx,
        args.suggestions,
        args.rank,
        args.name,
        args.output,
        direction=args.direction,
        replace=args.replace,
    )
    print(f"saved {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``suggest`` and ``save-suggestion`` sub-commands."""
    p = sub.add_parser("suggest", help="mine suggested segments (conf/suggestions)")
    p.add_argument(
        "--only", nargs="+", default=None, metavar="OUTPUT", help="run only these definitions"
    )
    p.add_argument("--save", action="store_true", help="also apply the definitions' save: entries")
    p.add_argument("--show", type=int, default=5, help="suggestions printed per run (default 5)")
    add_common(p)
    p.set_defaults(handler=_suggest)

    s = sub.add_parser("save-suggestion", help="save a suggestion as a dynamic segment definition")
    s.add_argument("suggestions", metavar="OUTPUT", help="the suggestion run's output name")
    s.add_argument("--rank", type=int, default=None, help="the suggestion's rank (default 1)")
    s.add_argument(
        "--direction",
        choices=("above", "below"),
        default=None,
        help="or: the best one above/below average",
    )
    s.add_argument("--name", required=True, help="the segment's display name")
    s.add_argument(
        "--output", default=None, help="the segment's output name (default: derived from --name)"
    )
    s.add_argument(
        "--replace", action="store_true", help="overwrite an existing definition file of that name"
    )
    add_common(s)
    s.set_defaults(handler=_save)
