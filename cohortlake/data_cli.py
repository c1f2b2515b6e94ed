"""Sub-commands for your own tables: ``catalog init`` drafts a catalog, ``check`` holds it
against the tables."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cohortlake.errors import InputError, Problem
from cohortlake.tables import TableRef, table_ref_problem

if TYPE_CHECKING:
    from cohortlake.catalog_init import ActivityTable

__all__ = ["register"]

log = logging.getLogger(__name__)


def _table(text: str, flag: str) -> TableRef:
    problem = table_ref_problem(text)
    if problem:
        raise InputError(Problem(flag, "", problem))
    return TableRef(text)


def _activities(args: argparse.Namespace) -> list[ActivityTable]:
    """``--activity NAME=TABLE:EVENT_TIME`` and ``--activity-key NAME=COLUMN``, validated."""
    from cohortlake.catalog import valid_name
    from cohortlake.catalog_init import ActivityTable

    keys: dict[str, tuple[str, str]] = {}  # lower-cased name: (name as given, column)
    for item in args.activity_key or []:
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise InputError(Problem("--activity-key", "", f"expected NAME=COLUMN, got {item!r}"))
        keys[name.lower()] = (name, column)
    found: list[ActivityTable] = []
    seen: set[str] = set()
    for item in args.activity or []:
        flag = f"--activity {item}"
        name, sep, rest = item.partition("=")
        table, colon, event = rest.rpartition(":")
        if not sep or not colon or not name or not table or not event:
            raise InputError(
                Problem("--activity", "", f"expected NAME=TABLE:EVENT_TIME_COLUMN, got {item!r}")
            )
        for what, value in (("activity name", name), ("event time column", event)):
            if not valid_name(value):
                raise InputError(
                    Problem(
                        flag, "", f"{what} {value!r} must be a letter, then letters, digits or _"
                    )
                )
        if name.lower() in seen:
            raise InputError(Problem(flag, "", f"activity {name} is named twice"))
        seen.add(name.lower())
        own_key = keys.pop(name.lower(), (name, None))[1]
        found.append(ActivityTable(name, _table(table, flag), event, own_key))
    if keys:
        unknown = ", ".join(sorted(given for given, _ in keys.values()))
        raise InputError(Problem("--activity-key", "", f"no --activity named {unknown}"))
    return found


def _write_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as f:
        f.write(text)
        temporary = Path(f.name)
    os.replace(temporary, path)


def _catalog_init(args: argparse.Namespace) -> int:
    from cohortlake.catalog import load_catalog, valid_name
    from cohortlake.catalog_init import draft_catalog
    from cohortlake.cli import context_from_args

    profile = _table(args.profile, "--profile")
    if not valid_name(args.key):
        raise InputError(Problem("--key", "", f"{args.key!r} is no column name"))
    if not valid_name(args.entity):
        raise InputError(Problem("--entity", "", f"{args.entity!r} is no entity name"))
    activities = _activities(args)
    out = Path(args.out) if args.out else Path(args.conf) / "catalog.yaml"
    if out.exists() and not args.force:
        raise InputError(Problem(str(out), "", "the catalog exists; pass --force to replace it"))
    if not out.parent.is_dir():
        raise InputError(Problem(str(out), "", f"no folder {out.parent}"))
    ctx = context_from_args(args, catalog=False)
    text = draft_catalog(ctx.spark, profile, args.key, activities, entity=args.entity)
    # The draft must load as a catalog before it replaces anything.
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / "catalog.yaml"
        draft.write_text(text)
        catalog = load_catalog(draft)
    _write_atomically(out, text)
    personal = [f.name for f in catalog.fields() if f.personal]
    print(
        f"catalog init: {out}: {len(catalog.profile.attributes)} profile attributes, "
        f"{len(catalog.activities)} activities; personal (review): {', '.join(personal) or 'none'}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    """The catalog against every table it names: schemas, keys, text dates; exit 2 on any."""
    from cohortlake.checks import (
        key_problems,
        profile_key_counts,
        schema_problems,
        text_time_problems,
    )
    from cohortlake.cli import context_from_args
    from cohortlake.sources import activity_ref, profile_ref, ref_version

    ctx = context_from_args(args)
    started = time.perf_counter()
    cat, lake = ctx.catalog, ctx.lake
    problems = schema_problems(lake, cat, activities=list(cat.activities))
    refs = [("profile", "profile", profile_ref(lake, cat), cat.profile.attributes)]
    refs += [
        (f"activity {n}", f"activities.{n}", activity_ref(lake, cat, n), a.attributes)
        for n, a in cat.activities.items()
    ]
    lines = []
    for label, base, ref, attributes in refs:
        if any(p.file == str(ref) or f"{p.path}.".startswith(f"{base}.") for p in problems):
            continue  # its schema does not match: the data checks would only fail
        version = ref_version(lake, ref)
        shown = "not Delta: no time travel" if version is None else f"version {version}"
        detail = f"{label}: {ref} ({shown})"
        if base == "profile":
            counts = profile_key_counts(lake, cat)
            problems += key_problems(str(ref), cat.key, counts)
            detail += f", {counts.rows:,} rows"
        problems += text_time_problems(lake, cat, base, ref, attributes)
        feed = ref.change_feed(lake.spark)
        if feed is False:
            detail += ", change data feed off (incremental runs need it)"
        lines.append(detail)
    if cat.measures and not lake.exists(lake.measures_path()):
        lines.append(
            f"measures: {len(cat.measures)} declared, not computed yet (run `cohortlake measures`)"
        )
    if problems:
        raise InputError(problems)
    print("\n".join(lines))
    print(
        f"check: {cat.file} matches its {len(refs)} tables ({time.perf_counter() - started:.1f}s)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from cohortlake.cli import add_command, add_common

    p = add_command(
        sub,
        "check",
        "check the catalog against its tables: columns, types, keys, text dates",
        "Reads each table's schema (no data) for missing columns, types that cannot hold the "
        "declared type, missing keys and event times; then one pass over the profile's keys "
        "(null or duplicate keys) and over text dates that do not parse. One `error: file: "
        "path: reason` line per problem, exit code 2; every job runs the schema part first.",
        ["cohortlake check", "cohortlake check --conf my_conf"],
    )
    add_common(p)
    p.set_defaults(handler=_check)

    p = add_command(
        sub,
        "catalog",
        "draft a catalog from your tables (catalog init)",
        "`catalog init` reads the tables' schemas and writes a commented catalog: every column "
        "with its type and a display name, personal data proposed from column names, dates "
        "stored as ISO text found from a sample. A table is a path (any Hadoop URI) or a name "
        "in the Spark session's catalog (a Hive or Unity metastore).",
        [
            "cohortlake catalog init --profile crm.customers --key customer_id",
            "cohortlake catalog init --profile /data/customers --key id "
            "--activity Purchases=/data/orders:order_time --activity-key Purchases=cust_id",
        ],
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = add_command(
        actions,
        "init",
        "write a catalog drafted from the tables' schemas",
        "Refuses to replace an existing file without --force. Review it, then `cohortlake check`.",
        [
            "cohortlake catalog init --profile crm.customers --key customer_id --out conf/catalog.yaml"
        ],
    )
    init.add_argument("--profile", required=True, metavar="TABLE", help="the profile table")
    init.add_argument("--key", required=True, metavar="COLUMN", help="its customer-key column")
    init.add_argument(
        "--activity",
        action="append",
        metavar="NAME=TABLE:EVENT_TIME",
        help="an activity table and its event-time column (repeatable)",
    )
    init.add_argument(
        "--activity-key",
        action="append",
        metavar="NAME=COLUMN",
        help="an activity's own customer-key column, when not named as the profile's",
    )
    init.add_argument("--entity", default="Customer", help="the profile entity's name")
    init.add_argument("--out", metavar="FILE", help="where to write (default <conf>/catalog.yaml)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    add_common(init)
    init.set_defaults(handler=_catalog_init)
