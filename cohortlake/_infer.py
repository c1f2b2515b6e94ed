"""Column names and column types for ``cohortlake import``: safe names, inferred types.

Names: Delta and the catalog want ``^[A-Za-z][A-Za-z0-9_]{0,127}$``; any other name is
rewritten the same way every time (words capitalised and joined, accents folded, a
leading digit prefixed with ``C``). Types: every candidate string column is tested in one
aggregation pass (a count of non-null values against a count of values of each type),
then cast; a column with a single value that does not fit stays a string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import valid_name

__all__ = ["Inferred", "infer_types", "safe_names"]

_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")

# Java regular expressions (Spark's rlike). A number with a leading zero ("02134", a zip
# code or an account number) is not a number here: it stays a string and keeps its zeros.
_INTEGER = r"^[+-]?(0|[1-9][0-9]*)$"
_NUMBER = r"^[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
_BOOLEAN = r"^(?i)(true|false)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?$"


def _safe_name(name: str, position: int) -> str:
    if valid_name(name):
        return name
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = _ASCII_WORD.findall(folded)
    joined = "".join(w[0].upper() + w[1:] for w in words) or f"Column{position + 1}"
    if joined[0].isdigit():
        joined = "C" + joined
    return joined[:128]


def safe_names(names: Sequence[str]) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """The safe names, the ``(old, new)`` renames, and the clashes (names equal ignoring case)."""
    new = [_safe_name(n, i) for i, n in enumerate(names)]
    renamed = [(old, n) for old, n in zip(names, new, strict=True) if old != n]
    clashes: list[str] = []
    seen: dict[str, tuple[str, str]] = {}
    for old, n in zip(names, new, strict=True):
        prior = seen.get(n.lower())
        if prior is None:
            seen[n.lower()] = (old, n)
            continue
        first_old, first_new = prior
        if first_old == old:
            clashes.append(f"column {old!r} appears twice")
        elif first_old == first_new and old == n:
            clashes.append(f"columns {first_old!r} and {old!r} differ only in case")
        elif first_new == n:
            clashes.append(f"columns {first_old!r} and {old!r} both become {n}")
        else:
            clashes.append(
                f"columns {first_old!r} and {old!r} become {first_new} and {n}, "
                "the same name ignoring case"
            )
    return new, renamed, clashes


@dataclass(frozen=True)
class Inferred:
    """What the pass found: the cast DataFrame and each changed column's new type."""

    df: DataFrame
    types: dict[str, str]


def _count(cond: Column) -> Column:
    return F.count(F.when(cond, F.lit(1)))


def _tests(c: Column, *, text: bool) -> dict[str, Column]:
    """Counts of the values each type accepts (regex for the form, try_cast for the range)."""
    date = c.rlike(_DATE) & c.try_cast("date").isNotNull()
    tests = {
        "n": F.count(c),
        "date": _count(date),
        "timestamp": _count((date | c.rlike(_TIMESTAMP)) & c.try_cast("timestamp").isNotNull()),
    }
    if text:  # CSV: every value is text, so numbers and booleans are to be found too
        tests["int"] = _count(c.rlike(_INTEGER) & c.try_cast("int").isNotNull())
        tests["bigint"] = _count(c.rlike(_INTEGER) & c.try_cast("bigint").isNotNull())
        tests["double"] = _count(c.rlike(_NUMBER) & c.try_cast("double").isNotNull())
        tests["boolean"] = _count(c.rlike(_BOOLEAN))
    return tests


def _chosen(counts: dict[str, int]) -> str | None:
    """The narrowest type every non-null value fits, or None (the column stays a string)."""
    n = counts["n"]
    if n == 0:
        return None
    for kind in ("int", "bigint", "double", "boolean", "date", "timestamp"):
        if counts.get(kind) == n:
            return kind
    return None


def _cast(c: Column, kind: str) -> Column:
    if kind == "boolean":
        return F.lower(c) == F.lit("true")
    return c.try_cast(kind)


def infer_types(df: DataFrame, *, text: bool) -> Inferred:
    """Cast the string columns whose every non-null value has one type, in one pass.

    ``text`` (CSV) looks for integers, doubles, booleans, dates and timestamps; otherwise
    (JSON, whose numbers and booleans are typed already) for dates and timestamps only.
    """
    strings = [f.name for f in df.schema.fields if isinstance(f.dataType, T.StringType)]
    if not strings:
        return Inferred(df, {})
    aggs = [
        expr.alias(f"{i}:{kind}")
        for i, name in enumerate(strings)
        for kind, expr in _tests(F.col(name), text=text).items()
    ]
    row = df.agg(*aggs).first()
    assert row is not None  # a global aggregation has one row, even over no rows
    found = row.asDict()
    types: dict[str, str] = {}
    for i, name in enumerate(strings):
        counts = {k.split(":", 1)[1]: int(v) for k, v in found.items() if k.startswith(f"{i}:")}
        kind = _chosen(counts)
        if kind is not None:
            types[name] = kind
    if not types:
        return Inferred(df, {})
    cast = [
        _cast(F.col(f.name), types[f.name]).alias(f.name) if f.name in types else F.col(f.name)
        for f in df.schema.fields
    ]
    return Inferred(df.select(*cast), types)
