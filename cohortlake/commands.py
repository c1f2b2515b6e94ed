"""Runtime sub-commands: ``measures`` and ``validate``; argument types the others share."""

from __future__ import annotations

import argparse
import logging

from cohortlake.context import parse_as_of

__all__ = ["positive_int", "register", "seed_int"]

log = logging.getLogger(__name__)


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def seed_int(text: str) -> int:
    """A random seed: a whole number that fits Spark's 64-bit long."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must fit in 64 bits: {text!r}")
    return value


def _measures(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.measures import compute_measures, measures_by_source

    ctx = context_from_args(args)
    as_of = parse_as_of(args.as_of)
    ctx.check_tables(activities=measures_by_source(ctx.catalog))
    incremental = args.incremental or ctx.config.incremental
    version = compute_measures(ctx.spark, ctx.lake, ctx.catalog, as_of, incremental)
    print(
        f"measures: {', '.join(ctx.catalog.measures)} -> {ctx.lake.measures_path()} (version {version})"
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.memberships import memberships_path, migrate

    ctx = context_from_args(args)
    moved = migrate(ctx.lake, ctx.catalog.key)
    if not moved:
        print(f"migrate: nothing to move: every membership is in {memberships_path(ctx.lake)}")
        return 0
    print(
        f"migrate: {len(moved)} segment tables moved into {memberships_path(ctx.lake)} "
        f"(version {moved[0].table_version}): {', '.join(r.segment for r in moved)}"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    """Every definition kind and the configuration, all problems at once; no data touched."""
    from cohortlake.cli import command_modules, context_from_args
    from cohortlake.errors import InputError, Problem

    ctx = context_from_args(args)  # lakehouse.yaml and catalog.yaml
    cat = ctx.catalog
    lines = [
        f"catalog: {len(cat.profile.attributes)} profile attributes, "
        f"{len(cat.activities)} activity entities, {len(cat.measures)} measures"
    ]
    problems: list[Problem] = []
    for module in command_modules():
        check = getattr(module, "check_definitions", None)
        if check is None:
            continue
        try:
            lines.append(check(ctx))
        except InputError as exc:
            problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise InputError(problems)
    print("\n".join(lines))
    print(f"valid: {ctx.conf_dir} (catalog and every definition)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from cohortlake.cli import add_command, add_common

    p = add_command(
        sub,
        "measures",
        "compute every catalog measure into measures/CustomerMeasures",
        "One aggregation pass per activity over the measures declared in <conf>/catalog.yaml; "
        "one row per customer of the profile.",
        ["cohortlake measures", "cohortlake measures --as-of 2026-07-01 --incremental"],
    )
    p.add_argument(
        "--incremental",
        action="store_true",
        help="recompute only the customers whose inputs changed since the last computation "
        "(Delta's change data feed), in one MERGE; everything when that is not provable",
    )
    add_common(p)
    p.set_defaults(handler=_measures)

    p = add_command(
        sub,
        "migrate",
        "move segment tables of an older lakehouse into <root>/memberships",
        "Copies each segment's current membership from its own segments/<Output> table into "
        "the shared memberships table in one commit, and records a `migrated` row per segment "
        "in segment_runs (same members, hashes and fingerprint, so the next run skips what did "
        "not change). `cohortlake run` does the same by itself; the old tables stay until you "
        "delete them.",
        ["cohortlake migrate", "cohortlake migrate --root s3a://bucket/lakehouse"],
    )
    add_common(p)
    p.set_defaults(handler=_migrate)

    p = add_command(
        sub,
        "validate",
        "check the catalog and every definition (segments, insights, expansions, suggestions)",
        "Reads <conf> only: no Spark, no data. Every problem is one `error: file: path: reason` "
        "line, exit code 2.",
        ["cohortlake validate", "cohortlake validate --conf my_conf"],
    )
    add_common(p)
    p.set_defaults(handler=_validate)
