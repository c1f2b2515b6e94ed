"""``cohortlake expand``: run the expansions of ``conf/expansions`` (or the named ones)."""

from __future__ import annotations

import argparse

from cohortlake.cli import add_common, context_from_args
from cohortlake.context import parse_as_of

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("expand", help="find customers similar to a segment (conf/expansions)")
    p.add_argument(
        "--output",
        action="append",
        default=None,
        metavar="NAME",
        help="run only this expansion (repeatable)",
    )
    add_common(p)
    p.set_defaults(handler=_expand)


def _expand(args: argparse.Namespace) -> int:
    from expansion.model import load_expansions
    from expansion.run import run_expansions

    as_of = parse_as_of(args.as_of)
    ctx = context_from_args(args)
    defs = load_expansions(ctx.conf_dir, ctx.catalog)
    wanted = {o.lower() for o in args.output or []}
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
    results = run_expansions(ctx, outputs=args.output, as_of=as_of, expansions=defs)
    for r in results:
        h = r.held_out
        print(
            f"{r.output}: {r.run.members} members (cap {r.cap} of {r.pool}), "
            f"held-out recall {h.recall:.3f} vs random {h.random_recall:.3f}, version {r.run.table_version}"
        )
    return 0
