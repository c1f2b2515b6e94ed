"""Sub-commands ``overlap`` and ``estimate``: answers from the segments' theta sketches.

Neither reads a member table: both use the ``segment_sketches`` rows that every segment
run and expansion writes (see ``cohortlake.sketches`` and ``insights.theta``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cohortlake.cli import add_command, add_common, context_from_args
from cohortlake.errors import InputError, Problem

if TYPE_CHECKING:
    from cohortlake.context import Context
    from insights.theta import SketchOverlap

__all__ = ["register"]

_SIZES_SHOWN = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "overlap",
        "estimate segments' sizes and pairwise overlap from their sketches",
        "Sizes, every pair's shared members, shares and Jaccard, with 3-sigma bounds, from\n"
        "the latest theta sketch of each segment (lgK 12: about ±4.7% on a size); no member\n"
        "table is read, so a thousand segments take seconds. --with ranks the segments that\n"
        "share most with one. For exact counts of a few segments use an overlap insight.",
        [
            "cohortlake overlap HighValueOnlineCustomers CustomersFromCalifornia",
            "cohortlake overlap --all --top 50",
            "cohortlake overlap --with HighValueOnlineCustomers --top 50 --by jaccard",
        ],
    )
    p.add_argument("segments", nargs="*", metavar="SEGMENT", help="segment output names")
    p.add_argument("--all", action="store_true", help="every segment and expansion with a sketch")
    p.add_argument("--with", dest="with_", metavar="SEGMENT", help="rank segments against this one")
    p.add_argument(
        "--top", type=_positive, default=None, metavar="N", help="show the best N pairs only"
    )
    p.add_argument(
        "--by", choices=("shared", "jaccard"), default="shared", help="ranking (default shared)"
    )
    add_common(p)
    p.set_defaults(handler=_overlap)

    p = add_command(
        sub,
        "estimate",
        "estimate the size of a condition on segments from their sketches",
        "The condition is the segment language's tree with only all, any, not and segment\n"
        "leaves, as YAML/JSON text or a file (a condition, or a segment definition). A tree\n"
        "with attribute or related leaves needs a run (exit 2).",
        [
            "cohortlake estimate --where '{all: [{segment: A}, {not: {segment: B}}]}'",
            "cohortlake estimate --file conf/segments/teachers_in_california.yaml",
        ],
    )
    p.add_argument("--where", default=None, help="the condition, YAML or JSON")
    p.add_argument("--file", default=None, help="a YAML/JSON file holding the condition")
    add_common(p)
    p.set_defaults(handler=_estimate)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _resolve(ctx: Context, names: list[str], file: str, paths: list[str]) -> list[str]:
    """Output names as defined (any case); unknown ones are bad input, one line each."""
    from insights.sketch_estimate import segment_outputs

    known = segment_outputs(ctx.conf_dir)
    problems = [
        Problem(file, path, f"unknown segment {name!r}")
        for name, path in zip(names, paths, strict=True)
        if name.strip().lower() not in known
    ]
    if problems:
        raise InputError(problems)
    return list(dict.fromkeys(known[n.strip().lower()] for n in names))


def _bounds(low: float, high: float) -> str:
    return f"{round(low):,}-{round(high):,}"


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def render(o: SketchOverlap, top: int | None, by: str) -> list[str]:
    """The overlap as lines of text: sizes (up to 50 segments), then the ranked pairs."""
    lines = [f"overlap from sketches (3-sigma bounds): {len(o.segments)} segments"]
    shown = list(range(len(o.segments))) if len(o.rows) == len(o.segments) else list(o.rows)
    if len(shown) <= _SIZES_SHOWN:
        for i in shown:
            bounds = _bounds(o.size_low[i], o.size_high[i])
            lines.append(f"  {o.segments[i]}: {round(o.sizes[i]):,} members ({bounds})")
    pairs = o.pairs(top, by)
    lines.append(f"pairs by {by}: {len(pairs):,} shown")
    for r in pairs.itertuples(index=False):
        lines.append(
            f"  {r.SegmentA} & {r.SegmentB}: {round(r.Members):,} shared ({_bounds(r.Low, r.High)}); "
            f"{_pct(r.ShareOfA)} of {r.SegmentA}, {_pct(r.ShareOfB)} of {r.SegmentB}; "
            f"Jaccard {_pct(r.Jaccard)} ({_pct(r.JaccardLow)}-{_pct(r.JaccardHigh)})"
        )
    return lines


def _overlap(args: argparse.Namespace) -> int:
    ctx = context_from_args(args)
    names: list[str] = list(args.segments)
    if names and args.all:
        raise InputError("name segments or give --all, not both", file="overlap")
    with_ = _resolve(ctx, [args.with_], "overlap", ["with"])[0] if args.with_ else None
    segments = _resolve(ctx, names, "overlap", [f"segments[{i}]" for i in range(len(names))])
    if not segments and not args.all and with_ is None:
        raise InputError("name 2 or more segments, or give --all or --with", file="overlap")
    if segments and len(segments) < 2 and with_ is None:
        raise InputError("name 2 or more segments, or give --with", file="overlap")
    if with_ is not None and segments and with_ not in segments:
        segments.append(with_)
    from insights.sketch_insight import estimated_overlap

    found = estimated_overlap(ctx, segments or None, with_, "overlap")
    print("\n".join(render(found, args.top, args.by)))
    return 0


def _estimate(args: argparse.Namespace) -> int:
    ctx = context_from_args(args)
    from insights.sketch_estimate import estimate_condition, parse_condition

    node, leaves, source = parse_condition(ctx, where=args.where, file=args.file)
    found = estimate_condition(ctx, node, leaves, source)
    used = ", ".join(
        f"{r.segment} v{r.table_version}" if r.segment != "*" else f"the profile v{r.table_version}"
        for r in found.sketches
    )
    note = " (profile sketched now: no run has recorded it)" if found.profile_on_demand else ""
    print(
        f"estimate: {found.estimate:,} customers (3-sigma bounds {_bounds(found.low, found.high)}); "
        f"from the sketches of {used}{note}"
    )
    return 0
