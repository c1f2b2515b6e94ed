"""``cohortlake suggest`` (mine suggestions) and ``cohortlake save-suggestion`` (save one as a segment)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cohortlake.cli import add_command, add_common, add_only, context_from_args
from cohortlake.context import parse_as_of
from cohortlake.errors import InputError

if TYPE_CHECKING:
    from cohortlake.context import Context

__all__ = ["check_definitions", "register"]


def check_definitions(ctx: Context) -> str:
    """``validate``'s line for suggestions (InputError with every problem)."""
    from suggestions.model import load_suggestion_runs

    runs = load_suggestion_runs(ctx.conf_dir, ctx.catalog)
    return f"suggestions: {len(runs)} valid ({', '.join(r.output for r in runs) or 'none'})"


def _suggest(args: argparse.Namespace) -> int:
    from suggestions.model import load_suggestion_runs

    ctx = context_from_args(args)
    defined = load_suggestion_runs(ctx.conf_dir, ctx.catalog)  # before the heavy imports
    from suggestions.run import run_suggestions, select_runs
    from suggestions.save import save_configured_suggestions

    runs = select_runs(defined, args.only)  # validate before Spark starts
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
    saved = save_configured_suggestions(ctx, args.only) if args.save else []
    for path in saved:
        print(f"saved {path}")
    print(
        f"suggest: {len(results)} runs, {sum(r.kept for r in results)} suggestions kept"
        + (f", {len(saved)} saved as segment definitions" if args.save else "")
    )
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
    p = add_command(
        sub,
        "suggest",
        "mine suggested segments (conf/suggestions)",
        "Fits a decision tree per definition of <conf>/suggestions, refines its rules and keeps\n"
        "the significant ones in suggestions/<Output>; each run is tracked in MLflow.",
        ["cohortlake suggest", "cohortlake suggest --only LifetimeSpendSuggestions --show 3"],
    )
    add_only(p, "suggestion definitions")
    p.add_argument("--save", action="store_true", help="also apply the definitions' save: entries")
    p.add_argument("--show", type=int, default=5, help="suggestions printed per run (default 5)")
    add_common(p)
    p.set_defaults(handler=_suggest)

    s = add_command(
        sub,
        "save-suggestion",
        "save a suggestion as a dynamic segment definition",
        "Writes <conf>/segments/<name>.yaml from one row of suggestions/<OUTPUT>; run it with\n"
        "`cohortlake run`.",
        [
            'cohortlake save-suggestion LifetimeSpendSuggestions --direction below --name "Low spending teachers"',
            'cohortlake save-suggestion CustomerSatisfactionSuggestions --rank 2 --name "Unhappy"',
        ],
    )
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
