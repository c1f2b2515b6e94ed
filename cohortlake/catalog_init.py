"""A catalog drafted from the tables: their schemas, mapped to catalog types and commented.

``cohortlake catalog init`` writes what this module drafts: every column with its
catalog type and a display name, ``personal: true`` proposed (and flagged for review)
where a column's name looks like personal data, and dates or timestamps stored as ISO
text found from a sample of at most ``SAMPLE_ROWS`` rows (one Spark job per table).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import valid_name
from cohortlake.checks import catalog_type, did_you_mean
from cohortlake.errors import InputError, Problem
from cohortlake.tables import TableRef

__all__ = ["SAMPLE_ROWS", "ActivityTable", "draft_catalog", "personal_reason"]

SAMPLE_ROWS = 1000
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"

# Name words that mark personal data; `name` only with a word that makes it a person's.
_PERSONAL_WORDS = {
    "email": "an e-mail address",
    "mail": "an e-mail address",
    "phone": "a phone number",
    "mobile": "a phone number",
    "telephone": "a phone number",
    "birth": "a birth date",
    "dob": "a birth date",
    "birthday": "a birth date",
    "address": "an address",
    "street": "an address",
    "ip": "an IP address",
    "ssn": "a national identifier",
    "passport": "a national identifier",
    "iban": "a bank account",
    "surname": "a person's name",
}
_PERSON_NAME = {"first", "last", "full", "given", "family", "middle", "maiden", "nick", "user"}


@dataclass(frozen=True)
class ActivityTable:
    """``--activity NAME=TABLE:EVENT_TIME`` (and ``--activity-key NAME=COLUMN``)."""

    name: str
    table: TableRef
    event_time: str
    key: str | None = None


def _words(name: str) -> list[str]:
    return [w.lower() for w in _split_case(name)]


def _display(name: str) -> str:
    return " ".join(w.capitalize() if w.islower() else w for w in _split_case(name))


def _split_case(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def personal_reason(column: str) -> str | None:
    """Why a column's name looks like personal data (``a phone number``), or None."""
    words = _words(column)
    for word in words:
        if word in _PERSONAL_WORDS:
            return _PERSONAL_WORDS[word]
    if words == ["name"] or ("name" in words and _PERSON_NAME & set(words)):
        return "a person's name"
    if "firstname" in words or "lastname" in words or "fullname" in words:
        return "a person's name"
    return None


def _yaml_key(name: str) -> str:
    """A mapping key as YAML reads it back (``on``, ``yes``, ``null`` need quotes)."""
    return str(yaml.safe_dump(name, default_flow_style=True)).split("\n")[0]


def _text_times(frame: DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """The text columns whose sampled non-null values are all ISO dates or timestamps."""
    if not columns:
        return {}
    sample = frame.select(*columns).limit(SAMPLE_ROWS)
    aggs = []
    for i, name in enumerate(columns):
        c = F.col(name)
        date = c.rlike(_ISO_DATE) & c.try_cast("date").isNotNull()
        stamp = c.rlike(_ISO_TIMESTAMP) & c.try_cast("timestamp").isNotNull()
        aggs += [
            F.count(c).alias(f"n{i}"),
            F.count(F.when(date, 1)).alias(f"d{i}"),
            F.count(F.when(stamp, 1)).alias(f"t{i}"),
        ]
    row = sample.agg(*aggs).first()
    assert row is not None, "a global aggregation has one row"
    found = {}
    for i, name in enumerate(columns):
        if row[f"n{i}"] and row[f"d{i}"] == row[f"n{i}"]:
            found[name] = "date"
        elif row[f"n{i}"] and row[f"t{i}"] == row[f"n{i}"]:
            found[name] = "timestamp"
    return found


def _attributes(frame: DataFrame, skip: set[str], lines: list[str], indent: str) -> dict[str, str]:
    """Append the attribute lines of a table; returns each attribute's catalog type."""
    fields = [f for f in frame.schema.fields if f.name.lower() not in skip]
    texts = [f.name for f in fields if isinstance(f.dataType, T.StringType) and valid_name(f.name)]
    text_times = _text_times(frame, texts)
    types: dict[str, str] = {}
    for f in fields:
        kind = text_times.get(f.name) or catalog_type(f.dataType)
        if not valid_name(f.name):
            lines.append(
                f"{indent}# skipped {f.name!r}: a catalog name is a letter, then letters, "
                "digits or _ (rename the column to use it)"
            )
            continue
        if kind is None:
            lines.append(
                f"{indent}# skipped {f.name}: {f.dataType.simpleString()} is no catalog type"
            )
            continue
        entry = [f"type: {kind}"]
        display = _display(f.name)
        if display != f.name:
            entry.append(f"display: {_yaml_key(display)}")
        if f.name in text_times:
            entry.append("format: iso")
        reason = personal_reason(f.name)
        if reason:
            entry.append("personal: true")
        comments = []
        if f.name in text_times:
            comments.append(f"stored as ISO text ({f.dataType.simpleString()})")
        if reason:
            comments.append(f"review: the name looks like {reason}")
        comment = f"  # {'; '.join(comments)}" if comments else ""
        lines.append(f"{indent}{_yaml_key(f.name)}: {{{', '.join(entry)}}}{comment}")
        types[f.name] = kind
    return types


def _frame(spark: SparkSession, ref: TableRef, flag: str) -> DataFrame:
    if not ref.exists(spark):
        raise InputError(Problem(flag, "", f"no table {ref}"))
    return ref.read(spark)


def _column(frame: DataFrame, name: str, ref: TableRef, flag: str) -> str:
    """The stored spelling of a column named ignoring case, or a one-line error."""
    stored = {c.lower(): c for c in frame.columns}
    if name.lower() in stored:
        return stored[name.lower()]
    hint = did_you_mean(name, frame.columns)
    raise InputError(Problem(flag, "", f"table {ref} has no column {name}{hint}"))


def draft_catalog(
    spark: SparkSession,
    profile: TableRef,
    key: str,
    activities: Sequence[ActivityTable] = (),
    *,
    entity: str = "Customer",
) -> str:
    """The catalog's YAML text for these tables (validated by the caller before writing)."""
    frame = _frame(spark, profile, "--profile")
    key = _column(frame, key, profile, "--key")
    lines = [
        "# Drafted by `cohortlake catalog init` from the tables' schemas: review it, then",
        "# run `cohortlake check`. Types: string, number, integer, date, timestamp, boolean.",
        "# `personal: true` marks personal data (left out of exports unless asked for); it is",
        "# proposed from column names, so confirm each one marked `review`.",
        "profile:",
        f"  entity: {entity}",
        f"  key: {key}",
        f"  table: {_yaml_key(str(profile))}",
        "  attributes:",
    ]
    _attributes(frame, {key.lower()}, lines, "    ")
    if activities:
        lines += ["", "activities:"]
    for act in activities:
        flag = f"--activity {act.name}"
        table = _frame(spark, act.table, flag)
        own_key = _column(table, act.key or key, act.table, flag)
        event = _column(table, act.event_time, act.table, flag)
        lines += [f"  {act.name}:", f"    table: {_yaml_key(str(act.table))}"]
        if own_key != key:
            lines.append(f"    key: {own_key}")
        lines += [f"    event_time: {event}", "    attributes:"]
        types = _attributes(table, {own_key.lower()}, lines, "      ")
        if types.get(event) not in ("date", "timestamp"):
            stored = dict((f.name, f.dataType.simpleString()) for f in table.schema.fields)
            raise InputError(
                Problem(
                    flag,
                    "",
                    f"event time column {event} is {stored[event]} in table {act.table}, "
                    "not a date or timestamp (nor ISO text)",
                )
            )
    lines += [
        "",
        "# Measures: per-customer aggregates of an activity (docs/configuration.md), e.g.",
        "# measures:",
        "#   TotalSpend: {source: <Activity>, agg: sum, attribute: <NumberColumn>}",
        "measures: {}",
    ]
    return "\n".join(lines) + "\n"
