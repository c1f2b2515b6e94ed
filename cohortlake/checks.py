"""The catalog checked against the tables: their schemas first, then one pass over the keys.

The schema part reads table metadata only (the Delta log or the metastore), so every job
runs it before reading or writing data: a catalog that does not match its tables is bad
input (exit 2, one line per problem, naming the catalog file and the path inside it),
never a Spark traceback half-way through. The key pass (rows, null and duplicate keys of
the profile) is one aggregation over the key column, remembered per table version.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import AttributeSpec, Catalog
from cohortlake.errors import Problem
from cohortlake.lake import Lake
from cohortlake.memberships import latest_runs, locate, memberships_path
from cohortlake.sources import (
    activity_key,
    activity_ref,
    parse_text_time,
    profile_ref,
    ref_version,
)
from cohortlake.tables import TableRef

__all__ = [
    "KeyCounts",
    "catalog_type",
    "did_you_mean",
    "key_problems",
    "profile_key_counts",
    "schema_problems",
    "stored_as",
    "text_time_problems",
]

log = logging.getLogger(__name__)

# The Spark types a catalog type may be stored as (a date may be a timestamp and back; a
# date or timestamp with a `format:` is parsed from text).
_STORED_AS: dict[str, tuple[type[T.DataType], ...]] = {
    "string": (T.StringType, T.VarcharType, T.CharType),
    "number": (T.NumericType,),
    "integer": (T.IntegralType,),
    "date": (T.DateType, T.TimestampType, T.TimestampNTZType),
    "timestamp": (T.TimestampType, T.TimestampNTZType, T.DateType),
    "boolean": (T.BooleanType,),
}
_TEXT = (T.StringType, T.VarcharType, T.CharType)


def stored_as(spec: AttributeSpec, dtype: T.DataType) -> bool:
    """Whether a column of Spark type ``dtype`` holds values of the attribute's type."""
    if spec.format is not None and isinstance(dtype, _TEXT):
        return spec.type in ("date", "timestamp")
    return isinstance(dtype, _STORED_AS[spec.type])


@dataclass(frozen=True)
class KeyCounts:
    """The profile's rows, rows with a null key, and rows repeating another row's key."""

    rows: int
    null_keys: int
    duplicate_keys: int


def schema_problems(
    lake: Lake,
    catalog: Catalog,
    *,
    profile: bool = True,
    activities: Iterable[str] = (),
    measures: bool = False,
    segments: Iterable[str] = (),
) -> list[Problem]:
    """Every way the named tables do not match the catalog, from their metadata only."""
    problems: list[Problem] = []
    schemas: dict[str, T.StructType] = {}
    if profile:
        ref = profile_ref(lake, catalog)
        declared = catalog.profile.table
        schema = _schema(lake, catalog, ref, declared, "profile", "the customer profile", problems)
        if schema is not None:
            schemas["profile"] = schema
            problems += _key_problems(catalog, "profile", ref, schema, catalog.key, None)
            attributes = catalog.profile.attributes
            problems += _column_problems(catalog, "profile", ref, schema, attributes)
    for entity in dict.fromkeys(activities):
        found = catalog.activity(entity)
        if found is None:
            continue  # a definition naming an unknown entity is reported by its validation
        name, spec = found
        base = f"activities.{name}"
        ref = activity_ref(lake, catalog, name)
        schema = _schema(lake, catalog, ref, spec.table, base, f"activity {name}", problems)
        if schema is None:
            continue
        key = activity_key(catalog, name)
        problems += _key_problems(catalog, base, ref, schema, key, schemas.get("profile"))
        problems += _column_problems(catalog, base, ref, schema, spec.attributes)
    if measures:
        problems += _measure_problems(lake, catalog)
    runs = latest_runs(lake) if segments else {}
    for output in dict.fromkeys(segments):
        if locate(lake, output, runs) is None:
            problems.append(
                Problem(memberships_path(lake), "", f"segment {output} has not been run yet")
            )
    return problems


def _schema(
    lake: Lake,
    catalog: Catalog,
    ref: TableRef,
    declared: str | None,
    base: str,
    what: str,
    problems: list[Problem],
) -> T.StructType | None:
    """The table's schema, or None with the problem of its absence recorded."""
    if ref.exists(lake.spark):
        return ref.read(lake.spark).schema
    if declared is None:  # the default layout: name the path, as before `table:` existed
        hint = " (run `cohortlake generate`, `cohortlake import` or set profile.table)"
        reason = f"missing Delta table: {what}" + (hint if base == "profile" else "")
        problems.append(Problem(ref.location, "", reason))
    else:
        kind = "table" if ref.by_name else "Delta table at"
        reason = ref.metastore_problem(lake.spark) or f"no {kind} {ref} ({what})"
        problems.append(Problem(catalog.file, f"{base}.table", reason))
    return None


def did_you_mean(name: str, columns: Iterable[str]) -> str:
    """``; did you mean a or b?`` for the closest column names (ignoring case), else empty."""
    pool = {c.lower(): c for c in columns}
    hits = difflib.get_close_matches(name.lower(), list(pool), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(pool[h] for h in hits)}?" if hits else ""


def _key_problems(
    catalog: Catalog,
    base: str,
    ref: TableRef,
    schema: T.StructType,
    key: str,
    profile: T.StructType | None,
) -> list[Problem]:
    columns = {f.name.lower(): f for f in schema.fields}
    field = columns.get(key.lower())
    where = f"{base}.key"
    if field is None:
        return [
            Problem(
                catalog.file,
                where,
                f"key column {key} is not in table {ref}{did_you_mean(key, columns)}",
            )
        ]
    problems = []
    if not isinstance(field.dataType, (*_TEXT, T.IntegralType, T.DecimalType)):
        problems.append(
            Problem(
                catalog.file,
                where,
                f"key column {key} is {field.dataType.simpleString()} in table {ref}; "
                "a key must be text or a whole number",
            )
        )
    if key.lower() != catalog.key.lower() and catalog.key.lower() in columns:
        problems.append(
            Problem(
                catalog.file,
                where,
                f"table {ref} has both {key} and {catalog.key}: the key is read as "
                f"{catalog.key}, so rename or drop the other column",
            )
        )
    if profile is not None:
        theirs = {f.name.lower(): f for f in profile.fields}.get(catalog.key.lower())
        if theirs is not None and _family(theirs.dataType) != _family(field.dataType):
            problems.append(
                Problem(
                    catalog.file,
                    where,
                    f"key column {key} is {field.dataType.simpleString()} in table {ref}, "
                    f"the profile's {catalog.key} is {theirs.dataType.simpleString()}: "
                    "they must be both text or both numbers",
                )
            )
    return problems


def _family(dtype: T.DataType) -> str:
    return "text" if isinstance(dtype, _TEXT) else "number"


def _column_problems(
    catalog: Catalog,
    base: str,
    ref: TableRef,
    schema: T.StructType,
    attributes: Mapping[str, AttributeSpec],
) -> list[Problem]:
    columns = {f.name.lower(): f.dataType for f in schema.fields}
    problems = []
    for name, spec in attributes.items():
        where = f"{base}.attributes.{name}"
        dtype = columns.get(name.lower())
        if dtype is None:
            near = did_you_mean(name, [f.name for f in schema.fields])
            problems.append(
                Problem(catalog.file, where, f"column {name} is not in table {ref}{near}")
            )
        elif not stored_as(spec, dtype):
            text_time = isinstance(dtype, _TEXT) and spec.type in ("date", "timestamp")
            mapped = catalog_type(dtype)
            hint = (
                "; add a format (like yyyy-MM-dd) to parse text dates"
                if text_time
                else f"; declare it {mapped}"
                if mapped
                else ""
            )
            problems.append(
                Problem(
                    catalog.file,
                    f"{where}.type",
                    f"column {name} is {dtype.simpleString()} in table {ref}, "
                    f"which does not hold {spec.type} values{hint}",
                )
            )
    return problems


def catalog_type(dtype: T.DataType) -> str | None:
    """The catalog type of a Spark column type, or None (arrays, maps, structs, binary)."""
    if isinstance(dtype, T.BooleanType):
        return "boolean"
    if isinstance(dtype, T.IntegralType):
        return "integer"
    if isinstance(dtype, T.NumericType):
        return "number"
    if isinstance(dtype, _TEXT):
        return "string"
    if isinstance(dtype, T.DateType):
        return "date"
    if isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        return "timestamp"
    return None


def _measure_problems(lake: Lake, catalog: Catalog) -> list[Problem]:
    path = lake.measures_path()
    if not lake.exists(path):
        return [Problem(path, "", "missing Delta table: the measures (run `cohortlake measures`)")]
    have = {c.lower() for c in lake.read(path).columns}
    missing = [m for m in catalog.measures if m.lower() not in have]
    if not missing:
        return []
    return [
        Problem(
            path,
            "",
            f"the measures table has no {', '.join(missing)} yet (run `cohortlake measures`)",
        )
    ]


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def key_problems(table: str, key: str, counts: KeyCounts) -> list[Problem]:
    """The profile's key counts as problems (named by table and key column): no rows, null
    keys, duplicate keys."""
    if counts.rows == 0:
        return [Problem(table, "", "the customer profile table has no rows")]
    found = []
    if counts.null_keys:
        found.append(f"{_rows(counts.null_keys)} with a null {key}")
    if counts.duplicate_keys:
        found.append(f"{_rows(counts.duplicate_keys)} repeating another row's {key}")
    if not found:
        return []
    reason = f"the customer profile has {' and '.join(found)}: one row per customer is needed"
    return [Problem(table, key, reason)]


_KEY_CHECKS: dict[tuple[str, int | None], KeyCounts] = {}


def profile_key_counts(lake: Lake, catalog: Catalog) -> KeyCounts:
    """Rows, null keys and duplicate keys of the profile: one aggregation of the key column.

    Remembered per table version within the process, so the jobs of one demo or notebook
    pay for it once. A table outside Delta (no version) is counted each time.
    """
    ref = profile_ref(lake, catalog)
    version = ref_version(lake, ref)
    known = _KEY_CHECKS.get((ref.location, version)) if version is not None else None
    if known is not None:
        return known
    frame = ref.read(lake.spark, version)
    stored = {f.name.lower(): f.name for f in frame.schema.fields}[catalog.key.lower()]
    key = F.col(stored)
    # Rows per key, then their sums: one shuffle of the key column (a count of distinct
    # keys beside the counts took 1.2x as long at 1M customers).
    per_key = frame.groupBy(key).agg(F.count(F.lit(1)).alias("n"))
    n = F.col("n")
    row = per_key.agg(
        F.coalesce(F.sum(n), F.lit(0)).alias("rows"),
        F.coalesce(F.sum(F.when(key.isNull(), n)), F.lit(0)).alias("nulls"),
        F.coalesce(F.sum(F.when(key.isNotNull() & (n > 1), n - 1)), F.lit(0)).alias("repeats"),
    ).first()
    assert row is not None, "a global aggregation has one row"
    counts = KeyCounts(int(row["rows"]), int(row["nulls"]), int(row["repeats"]))
    if version is not None:
        _KEY_CHECKS[(ref.location, version)] = counts
    log.info(
        "profile %s: %d rows, %d null keys, %d duplicate keys",
        ref,
        counts.rows,
        counts.null_keys,
        counts.duplicate_keys,
    )
    return counts


def text_time_problems(
    lake: Lake, catalog: Catalog, base: str, ref: TableRef, attributes: Mapping[str, AttributeSpec]
) -> list[Problem]:
    """Dates and timestamps stored as text that do not parse with their format: one
    aggregation over the table, with one example value per column."""
    frame = ref.read(lake.spark)
    stored = {f.name.lower(): f for f in frame.schema.fields}
    texts = [
        (name, spec, stored[name.lower()].name)
        for name, spec in attributes.items()
        if spec.format is not None
        and name.lower() in stored
        and isinstance(stored[name.lower()].dataType, _TEXT)
    ]
    if not texts:
        return []
    aggs = []
    for i, (_, spec, column) in enumerate(texts):
        text = F.col(column)
        failed = text.isNotNull() & parse_text_time(text, spec).isNull()
        aggs += [
            F.count(text).alias(f"n{i}"),
            F.count(F.when(failed, 1)).alias(f"f{i}"),
            F.min(F.when(failed, text)).alias(f"e{i}"),
        ]
    row = frame.agg(*aggs).first()
    assert row is not None, "a global aggregation has one row"
    problems = []
    for i, (name, spec, _) in enumerate(texts):
        if row[f"f{i}"]:
            problems.append(
                Problem(
                    catalog.file,
                    f"{base}.attributes.{name}.format",
                    f"{row[f'f{i}']:,} of {row[f'n{i}']:,} values of {name} in table {ref} "
                    f"do not parse as {spec.format} (like {row[f'e{i}']!r})",
                )
            )
    return problems
