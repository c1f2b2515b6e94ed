"""The lab's sub-commands: ``generate`` (Contoso data), ``demo`` (the whole lab), ``report``."""

from __future__ import annotations

import argparse
import datetime as dt

from cohortlake.cli import add_command, add_common, context_from_args
from cohortlake.commands import positive_int, seed_int
from cohortlake.context import AS_OF_RANGE, parse_as_of

__all__ = ["register"]


def _date(text: str) -> dt.date:
    """An ISO date in the range every date of Cohortlake keeps (``AS_OF_RANGE``)."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from None
    if day < AS_OF_RANGE[0].date():
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: from 1900-01-01 to 9999-12-31")
    return day


def _generate(args: argparse.Namespace) -> int:
    from lab.contoso import generate_contoso

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
        f"generated {counts.get('Customer', 0):,} customers and "
        f"{counts.get('Purchases', 0):,} purchases in {ctx.root}"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from lab.demo import DEMO_AS_OF, run_demo

    ctx = context_from_args(args)
    as_of = parse_as_of(args.as_of or DEMO_AS_OF)
    result = run_demo(ctx, customers=args.customers, seed=args.seed, as_of=as_of)
    print(result.summary())
    return 0


def _report(args: argparse.Namespace) -> int:
    from lab.report import write_report

    print(f"report: {write_report(context_from_args(args))}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from lab.contoso import DEFAULT_END, DEFAULT_PURCHASES_PER_CUSTOMER

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
        "demo",
        "run the whole Contoso Coffee lab end to end",
        "Generates the lakehouse, computes measures, creates and runs the lab's segments,\n"
        "insights, expansion and suggestions, saves a suggestion as a segment and writes the\n"
        "report. The same seed and --as-of give the same tables.",
        ["cohortlake demo", "cohortlake demo --customers 2000 --root /tmp/lake"],
    )
    p.add_argument(
        "--customers", type=positive_int, default=5000, help="customers to generate (default 5000)"
    )
    p.add_argument("--seed", type=seed_int, default=42, help="random seed (default 42)")
    add_common(p)
    p.set_defaults(handler=_demo)

    p = add_command(
        sub,
        "report",
        "write the HTML report of a lakehouse (<root>/reports/contoso_lab.html)",
        "Reads the lakehouse's tables and charts; runs nothing.",
        ["cohortlake report", "cohortlake report --root /tmp/lake"],
    )
    add_common(p)
    p.set_defaults(handler=_report)
