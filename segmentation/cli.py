"""Sub-commands ``run``, ``quick-create``, ``preview``, ``export``; segments' part of ``validate``."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cohortlake.context import Context
    from segmentation.model import SegmentDefinition

__all__ = ["check_definitions", "register"]


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def check_definitions(ctx: Context) -> str:
    """``validate``'s line for segments (InputError with every problem)."""
    from segmentation.validate import load_definitions

    defs = load_definitions(ctx.conf_dir, ctx.catalog)
    return f"segments: {len(defs)} valid ({', '.join(d.output for d in defs) or 'none'})"


def _run(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.context import parse_as_of
    from segmentation.run import RunOptions, run_segments

    ctx = context_from_args(args)
    as_of = parse_as_of(args.as_of)
    from segmentation.validate import load_definitions

    defs = load_definitions(ctx.conf_dir, ctx.catalog)  # all problems before Spark starts
    _check_run_inputs(ctx, defs, args.only or [], as_of)
    started = time.monotonic()
    incremental = args.incremental or ctx.config.incremental
    options = RunOptions(args.refresh_static, args.force, incremental)
    runs = run_segments(ctx, args.only or [], as_of, options)
    for r in runs:
        print(
            f"{r.segment:<40} {r.type:<8} {r.status:<9} {r.members:>9,} members  +{r.joined:,} / -{r.left:,}  v{r.table_version}"
        )
    statuses = Counter(r.status for r in runs)
    modes = {r.mode for r in runs if r.mode is not None}
    if incremental and modes:
        print(f"mode: {', '.join(sorted(modes))}")
    print(
        f"run: {len(runs)} segments ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), "
        f"{sum(r.joined for r in runs):,} joined, {sum(r.left for r in runs):,} left "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


def _check_run_inputs(
    ctx: Context, defs: list[SegmentDefinition], only: list[str], as_of: dt.datetime
) -> None:
    """Every table the chosen segments read exists (segments of this run aside)."""
    from segmentation.compile import CustomerFrame
    from segmentation.run import select_definitions

    chosen = select_definitions(defs, only)
    ctx.lake  # noqa: B018 -- columns need the session
    frame = CustomerFrame(ctx.catalog, as_of)
    for d in chosen:
        frame.condition(d.where)
        for column in d.project:
            frame.need(column)
    produced = {d.output.lower() for d in chosen}
    ctx.check_tables(
        measures=bool(frame.measure_columns),
        activities=frame.entities,
        segments=[o for o in frame.segment_outputs if o.lower() not in produced],
    )


def _quick(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.context import parse_as_of
    from segmentation.quick import quick_create

    ctx = context_from_args(args)
    result = quick_create(
        ctx,
        field_name=args.field,
        op=args.op,
        value=args.value,
        name=args.name,
        out_dir=Path(args.out) if args.out else None,
        as_of=parse_as_of(args.as_of),
        force=args.force,
    )
    print(result.render())
    return 0


def _preview(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.lake import check_output_name
    from segmentation.preview import preview_segment

    check_output_name(args.segment, "segment")
    ctx = context_from_args(args)
    ctx.check_tables(segments=[args.segment])
    print(preview_segment(ctx, args.segment, args.limit, _split(args.columns)).render())
    return 0


def _export(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.lake import check_output_name
    from cohortlake.outputs import check_user_output
    from segmentation.export import export_segment

    check_output_name(args.segment, "segment")
    ctx = context_from_args(args)
    check_user_output(args.out, ctx.root, args.replace, folder=args.folder)  # before Spark
    # The profile and measures are read only for columns the segment table lacks.
    ctx.check_tables(profile=bool(args.columns), segments=[args.segment])
    done = export_segment(
        ctx,
        args.segment,
        args.out,
        _split(args.columns),
        include_personal=args.include_personal,
        folder=args.folder,
        replace=args.replace,
    )
    print(
        f"exported {done.rows:,} rows of {args.segment} ({', '.join(done.columns)}) to {done.path}"
    )
    return 0


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be from 0 to 10000: {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from cohortlake.cli import add_command, add_common, add_only

    p = add_command(
        sub,
        "run",
        "run segment definitions onto Delta tables",
        "Evaluates <conf>/segments (all, or --only some, with the segments they name) in\n"
        "dependency order and publishes each membership in one Delta commit. A segment whose\n"
        "definition and inputs are unchanged since its last run is skipped.",
        [
            "cohortlake run --as-of 2026-07-01",
            "cohortlake run --only SummerPromotion,CustomersFromCalifornia --force",
        ],
    )
    add_only(p, "segments")
    p.add_argument(
        "--refresh-static",
        dest="refresh_static",
        action="store_true",
        help="re-evaluate static segments",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="evaluate even when definition and inputs are unchanged",
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="re-evaluate only the customers whose inputs changed since the last run "
        "(from Delta's change data feed); a full run, saying why, when that is not provable. "
        "Also `incremental: true` in lakehouse.yaml",
    )
    add_common(p)
    p.set_defaults(handler=_run)

    p = add_command(
        sub,
        "quick-create",
        "create a one-condition segment from a profile field or a measure",
        "Shows the field's top values (text) or percentiles (numbers) and the segment's\n"
        "estimated size, then writes <conf>/segments/<name>.yaml.",
        [
            'cohortlake quick-create --field State --value California --name "Customers from California"',
            'cohortlake quick-create --measure "Average Web Purchase ($)" --op gt --value 138',
        ],
    )
    p.add_argument(
        "--field", "--measure", dest="field", required=True, help="profile attribute or measure"
    )
    p.add_argument("--op", default="eq", help="operator (default eq)")
    p.add_argument(
        "--value", default=None, help="value; lists comma-separated; in_last as '30 days'"
    )
    p.add_argument("--name", default=None, help="segment name (output name is derived from it)")
    p.add_argument(
        "--out", default=None, help="folder for the definition file (default <conf>/segments)"
    )
    p.add_argument("--force", action="store_true", help="replace a different existing definition")
    add_common(p)
    p.set_defaults(handler=_quick)

    p = add_command(
        sub,
        "preview",
        "show a segment's member count, first members and size over runs",
        "Reads the segment's current Delta table and its rows in segment_runs.",
        ["cohortlake preview SummerPromotion --columns State,LifetimeSpend --limit 5"],
    )
    p.add_argument("segment", help="segment output name")
    p.add_argument("--limit", type=_limit, default=10, help="members to show (default 10)")
    p.add_argument("--columns", action="append", help="profile attributes or measures to show")
    add_common(p)
    p.set_defaults(handler=_preview)

    p = add_command(
        sub,
        "export",
        "export a segment to CSV (formula-safe; personal data only when asked)",
        "Writes one CSV file (or a folder of parts with --folder) outside the lakehouse; an\n"
        "existing one only with --replace. Personal columns are left out unless\n"
        "--include-personal.",
        ["cohortlake export SummerPromotion --out summer.csv --columns PostCode,LifetimeSpend"],
    )
    p.add_argument("segment", help="segment output name")
    p.add_argument("--out", required=True, help="CSV file (or folder with --folder)")
    p.add_argument(
        "--columns", action="append", help="columns to export (default: the segment's own)"
    )
    p.add_argument(
        "--include-personal",
        dest="include_personal",
        action="store_true",
        help="allow personal columns",
    )
    p.add_argument(
        "--folder", action="store_true", help="write a folder of CSV parts (large segments)"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="overwrite an existing file (or an earlier export's folder)",
    )
    add_common(p)
    p.set_defaults(handler=_export)
