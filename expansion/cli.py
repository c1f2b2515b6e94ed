"""``cohortlake expand``: run the expansions of ``conf/expansions`` (or the named ones)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cohortlake.cli import add_command, add_common, add_only, context_from_args
from cohortlake.context import parse_as_of

if TYPE_CHECKING:
    from cohortlake.context import Context

__all__ = ["check_definitions", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "expand",
        "find customers similar to a segment (look-alike expansion)",
        "Runs the expansions of <conf>/expansions: each writes segments/<Output> with a\n"
        "SimilarityScore and SimilarityBand per customer, and reports held-out recall.",
        ["cohortlake expand", "cohortlake expand --only SummerPromoExpansion"],
    )
    add_only(p, "expansions")
    # The flag's old name, kept working for scripts written before --only.
    p.add_argument("--output", dest="only", action="append", help=argparse.SUPPRESS)
    add_common(p)
    p.set_defaults(handler=_expand)


def check_definitions(ctx: Context) -> str:
    """``validate``'s line for expansions (InputError with every problem)."""
    from expansion.model import load_expansions

    defs = load_expansions(ctx.conf_dir, ctx.catalog)
    return f"expansions: {len(defs)} valid ({', '.join(e.output for e in defs) or 'none'})"


def _expand(args: argparse.Namespace) -> int:
    from expansion.model import load_expansions
    from expansion.run import run_expansions

    as_of = parse_as_of(args.as_of)
    ctx = context_from_args(args)
    defs = load_expansions(ctx.conf_dir, ctx.catalog)
    wanted = {o.lower() for o in args.only or []}
    chosen = [e for e in defs if not wanted or e.output.lower() in wanted]
    if len(chosen) == (len(wanted) or len(defs)):  # unknown names are reported by the run
        produced = {e.output.lower() for e in chosen}
        ctx.check_tables(
            measures=any(f.source == "measure" for e in chosen for f in e.fields),
            segments=[
                s
                for e in chosen
                for s in (e.source, e.pool_segment)
                if s is not None and s.lower() not in produced
            ],
        )
    results = run_expansions(ctx, outputs=args.only, as_of=as_of, expansions=defs)
    for r in results:
        h = r.held_out
        print(
            f"{r.output}: {r.run.members} members (cap {r.cap} of {r.pool}), "
            f"held-out recall {h.recall:.3f} vs random {h.random_recall:.3f}, version {r.run.table_version}"
        )
    print(f"expand: {len(results)} expansions, {sum(r.run.members for r in results):,} members")
    return 0
