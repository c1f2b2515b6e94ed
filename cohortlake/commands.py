"""Runtime sub-commands: ``generate`` (Contoso data), ``measures`` and ``validate``."""

from __future__ import annotations

import argparse
import datetime as dt
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


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from None


def _generate(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.contoso import generate_contoso

    ctx = context_from_args(args)
    counts = generate_contoso(
        ctx.spark,
        ctx.lake,
        customers=args.customers,
        seed=args.seed,
        end=args.end,
        purchases_per_customer=args.purchases_per_customer,
    )
    print(
        f"generated {counts.get('Customer', 0):,} customers and {counts.get('Purchases', 0):,} purchases in {ctx.root}"
    )
    return 0


def _measures(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args
    from cohortlake.measures import compute_measures, measures_by_source

    ctx = context_from_args(args)
    as_of = parse_as_of(args.as_of)
    ctx.check_tables(activities=measures_by_source(ctx.catalog))
    version = compute_measures(ctx.spark, ctx.lake, ctx.catalog, as_of)
    print(
        f"measures: {', '.join(ctx.catalog.measures)} -> {ctx.lake.measures_path()} (version {version})"
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
    from cohortlake.contoso import DEFAULT_END, DEFAULT_PURCHASES_PER_CUSTOMER

    p = add_command(
        sub,
        "generate",
        "generate the Contoso Coffee lakehouse (profile and purchases)",
        "Writes <root>/profile/Customer and <root>/activity/Purchases as Delta tables, "
        "the same for the same seed.",
        ["cohortlake generate --customers 5000 --seed 42", "cohortlake generate --root /tmp/lake"],
    )
    p.add_argument(
        "--customers", type=positive_int, default=5000, help="number of customers (default 5000)"
    )
    p.add_argument("--seed", type=seed_int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--end", type=_date, default=DEFAULT_END, help=f"last purchase date (default {DEFAULT_END})"
    )
    p.add_argument(
        "--purchases-per-customer",
        dest="purchases_per_customer",
        type=float,
        default=DEFAULT_PURCHASES_PER_CUSTOMER,
        help=f"mean purchases per customer (default {DEFAULT_PURCHASES_PER_CUSTOMER}; benchmarks use 20)",
    )
    add_common(p)
    p.set_defaults(handler=_generate)

    p = add_command(
        sub,
        "measures",
        "compute every catalog measure into measures/CustomerMeasures",
        "One aggregation pass per activity over the measures declared in <conf>/catalog.yaml; "
        "one row per customer of the profile.",
        ["cohortlake measures", "cohortlake measures --as-of 2026-07-01"],
    )
    add_common(p)
    p.set_defaults(handler=_measures)

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
