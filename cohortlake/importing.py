"""``cohortlake import``: CSV, Parquet or JSON files into one Delta table, in one commit.

Everything that can be checked is checked before any data is read: the target (a path,
or a name in a persistent metastore whose schema exists), the files (there, regular,
one format, CSV headers alike) and, once the columns are known, their names and the key.
Then one aggregation pass finds the types of the text columns (``_infer``), one more
checks the key (when given), and one Delta commit writes the table with Change Data
Feed on. JSON is one object per line (``.json``, ``.jsonl``, ``.ndjson``); a local
JSON file that starts with ``[`` is read as one array of objects instead (Spark's
``multiLine``), and such files are not imported together with line-per-object ones.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cohortlake._import_checks import FORMATS, ImportRequest, check_import, local_path
from cohortlake.errors import InputError, Problem
from cohortlake.tables import TableRef

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["FORMATS", "ImportRequest", "ImportResult", "check_import", "import_files", "register"]

log = logging.getLogger(__name__)

_CDF = "delta.enableChangeDataFeed"
# Spark's words for data it could not parse or merge (the file may be named in the first).
_BAD_DATA = ("FAILED_READ_FILE", "MALFORMED_", "CANNOT_MERGE", "Failed to merge")


@dataclass(frozen=True)
class ImportResult:
    """What was written: counts, the Delta version, and what was inferred or renamed."""

    table: str
    files: int
    rows: int
    columns: tuple[tuple[str, str], ...]  # (name, Spark type)
    version: int
    renamed: tuple[tuple[str, str], ...]
    dates: tuple[str, ...]
    timestamps: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        files = f"{self.files} file{'' if self.files == 1 else 's'}"
        parts = [
            f"import: {files}, {self.rows:,} rows, {len(self.columns)} columns "
            f"-> {self.table} (version {self.version})"
        ]
        if self.dates:
            parts.append("dates: " + ", ".join(self.dates))
        if self.timestamps:
            parts.append("timestamps: " + ", ".join(self.timestamps))
        if self.renamed:
            shown = (f"{json.dumps(old, ensure_ascii=False)} -> {new}" for old, new in self.renamed)
            parts.append("renamed: " + ", ".join(shown))
        return "; ".join(parts)


# -- checks with Spark, before reading -------------------------------------------------
def _check_target(spark: SparkSession, ref: TableRef, replace: bool) -> None:
    where = str(ref)
    if ref.by_name:
        parts = where.split(".")
        problem = ref.metastore_problem(spark)
        if problem:
            raise InputError(problem, file="--table")
        schema = ".".join(parts[:-1])
        if schema and not spark.catalog.databaseExists(schema):
            raise InputError(
                f"schema {schema} does not exist: create it first (CREATE SCHEMA {schema}) "
                "or give a path",
                file="--table",
            )
    exists = ref.exists(spark)
    if exists and not replace:
        raise InputError(f"table {where} exists; pass --replace to replace it", file="--table")
    if exists and ref.by_name and not ref.is_delta(spark):
        raise InputError(f"table {where} is not a Delta table; drop it first", file="--table")
    local = None if ref.by_name else local_path(where)
    if (
        not exists
        and local is not None
        and local.exists()
        and (not local.is_dir() or any(local.iterdir()))
    ):
        raise InputError(
            f"{where} exists and is not a Delta table: give a new or empty folder",
            file="--table",
        )


# -- reading, checking and writing -----------------------------------------------------
@contextlib.contextmanager
def _bad_data(request: ImportRequest) -> Iterator[None]:
    """Spark's failures to parse the files as bad input (exit 2): nothing was written."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        text = str(exc)
        if not any(marker in text for marker in _BAD_DATA):
            raise
        named = re.search(r"reading file (\S+?)\.?\s", text)
        causes = [
            line.strip()
            for line in text.splitlines()
            if re.match(r"\s*(Caused by: |: )?[\w.$]+(Exception|Error): ", line)
        ]
        reason = re.sub(r"^.*?(Exception|Error): (\[[\w.]+\] )?", "", causes[-1] if causes else "")
        reason = re.sub(r"\s*SQLSTATE: \w+\s*$", "", reason) or text.strip().splitlines()[0]
        file = named.group(1) if named else request.files[0]
        if not named and len(request.files) > 1:
            file = f"{file} (or another of the {len(request.files)} files)"
        shown = reason if len(reason) <= 200 else reason[:200] + "..."
        raise InputError(f"not readable as {request.fmt}: {shown}", file=file) from None


def _read(spark: SparkSession, request: ImportRequest) -> DataFrame:
    files = list(request.files)
    if request.fmt == "parquet":
        return spark.read.option("mergeSchema", "true").parquet(*files)
    if request.fmt == "json":
        reader = spark.read.option("mode", "FAILFAST").option("multiLine", request.json_arrays)
        return reader.json(files)
    return (
        spark.read.option("header", "true")
        .option("sep", request.delimiter)
        .option("quote", '"')
        .option("escape", '"')  # RFC 4180: a quote inside quotes is doubled
        .option("mode", "FAILFAST")
        # Headers checked here already; else Spark compares each file's with the first's.
        .option("enforceSchema", request.all_checked)
        .csv(files)
    )


def _key_column(key: str, raw: Sequence[str], names: Sequence[str]) -> str:
    """The (renamed) key column; the original name and any case are accepted."""
    for exact in (True, False):
        for candidates in (names, raw):
            folded = [c if exact else c.lower() for c in candidates]
            wanted = key if exact else key.lower()
            if wanted in folded:
                return names[folded.index(wanted)]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise InputError(f"column {key!r} is not in the files (columns: {shown})", file="--key")


def _check_key(df: DataFrame, key: str) -> None:
    """One aggregation pass: no null and no repeated value in the key column."""
    from pyspark.sql import functions as F

    groups = df.groupBy(key).agg(F.count(F.lit(1)).alias("_rows"))
    repeated = F.col(key).isNotNull() & (F.col("_rows") > 1)
    row = groups.agg(
        F.sum(F.when(F.col(key).isNull(), F.col("_rows"))).alias("nulls"),
        F.count(F.when(repeated, F.lit(1))).alias("values"),
        F.sum(F.when(repeated, F.col("_rows"))).alias("rows"),
    ).first()
    assert row is not None
    nulls, values, rows = int(row["nulls"] or 0), int(row["values"]), int(row["rows"] or 0)
    if not nulls and not values:
        return
    found = []
    if values:
        found.append(f"{values:,} duplicate value{'s' if values != 1 else ''} (on {rows:,} rows)")
    if nulls:
        found.append(f"{nulls:,} null{'s' if nulls != 1 else ''}")
    raise InputError(f"key {key} has {' and '.join(found)}", file="--key")


def _write(spark: SparkSession, df: DataFrame, ref: TableRef, replace: bool) -> tuple[int, int]:
    """One Delta commit (create, or replace with the new schema); its version and rows."""
    from delta.tables import DeltaTable

    from cohortlake.commits import table_lock

    if ref.by_name:
        v2 = df.writeTo(ref.location).using("delta").tableProperty(_CDF, "true")
        if replace:
            v2.createOrReplace()
        else:
            v2.create()
        table = DeltaTable.forName(spark, ref.location)
    else:
        writer = df.write.format("delta").option(_CDF, "true")
        if replace:
            writer = writer.mode("overwrite").option("overwriteSchema", "true")
        else:
            writer = writer.mode("errorifexists")
        with table_lock(ref.location):
            writer.save(ref.location)
        table = DeltaTable.forPath(spark, ref.location)
    last = table.history(1).select("version", "operationMetrics").first()
    assert last is not None, "a Delta write leaves a commit"
    metrics = last["operationMetrics"] or {}
    rows = metrics.get("numOutputRows")
    return int(last["version"]), int(rows) if rows is not None else ref.read(spark).count()


def import_files(
    spark: SparkSession,
    files: Sequence[str],
    table: str,
    *,
    fmt: str | None = None,
    key: str | None = None,
    replace: bool = False,
    delimiter: str | None = None,
) -> ImportResult:
    """Write ``files`` as one Delta table at ``table`` (a path or a name), in one commit.

    Raises InputError (nothing written) for bad arguments, an existing table without
    ``replace``, column names that clash, unreadable records, or a key with nulls or
    repeated values.
    """
    from cohortlake._infer import Inferred, infer_types, safe_names

    started = time.monotonic()
    request = check_import(files, table, fmt=fmt, key=key, delimiter=delimiter)
    _check_target(spark, request.table, replace)
    with _bad_data(request):
        df = _read(spark, request)
    header = request.header
    raw = list(header) if header and len(header) == len(df.columns) else df.columns
    names, renamed, clashes = safe_names(raw)
    if clashes:
        raise InputError([Problem(request.files[0], "", c) for c in clashes])
    if not names:
        raise InputError("the files hold no columns", file=request.files[0])
    df = df.toDF(*names)
    key_name = _key_column(key, raw, names) if key is not None else None
    log.info("import: %s %s file(s), columns %s", len(files), request.fmt, ", ".join(names))
    with _bad_data(request):
        step = time.monotonic()
        inferred = (
            Inferred(df, {})
            if request.fmt == "parquet"
            else infer_types(df, text=request.fmt == "csv")
        )
        found = ", ".join(f"{n} {k}" for n, k in inferred.types.items()) or "none"
        log.info("import: types (%.1f s): %s", time.monotonic() - step, found)
        if key_name is not None:
            step = time.monotonic()
            _check_key(inferred.df, key_name)
            log.info("import: key %s checked (%.1f s)", key_name, time.monotonic() - step)
        version, rows = _write(spark, inferred.df, request.table, replace)
    result = ImportResult(
        table=str(request.table),
        files=len(request.files),
        rows=rows,
        columns=tuple((f.name, f.dataType.simpleString()) for f in inferred.df.schema.fields),
        version=version,
        renamed=tuple(renamed),
        dates=tuple(n for n, k in inferred.types.items() if k == "date"),
        timestamps=tuple(n for n, k in inferred.types.items() if k == "timestamp"),
        seconds=time.monotonic() - started,
    )
    log.info("import: wrote %s in %.1f s", request.table, result.seconds)
    return result


# -- command line ----------------------------------------------------------------------
def _import(args: argparse.Namespace) -> int:
    from cohortlake.cli import context_from_args

    check_import(
        args.files, args.table, fmt=args.fmt, key=args.key, delimiter=args.delimiter
    )  # before the configuration and Spark
    ctx = context_from_args(args, catalog=False)
    result = import_files(
        ctx.spark,
        args.files,
        args.table,
        fmt=args.fmt,
        key=args.key,
        replace=args.replace,
        delimiter=args.delimiter,
    )
    print(result.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from cohortlake.cli import add_command, add_common

    p = add_command(
        sub,
        "import",
        "load CSV, Parquet or JSON files into one Delta table",
        "Types are inferred (integers, doubles, booleans, ISO dates and timestamps; a column "
        "with one value that does not fit stays text; numbers with leading zeros stay text). "
        'Column names Delta cannot take are rewritten ("First Name" -> FirstName). One '
        "Delta commit with Change Data Feed on; an existing table is replaced only with "
        "--replace. JSON is one object per line, or a local file holding one array of objects.",
        [
            "cohortlake import customers.csv --table lakehouse/profiles/Customer --key CustomerId",
            "cohortlake import part1.json part2.json --table crm.customers --replace",
            "cohortlake import export.txt --format csv --delimiter ';' --table /data/orders",
        ],
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="files to import (one format)")
    p.add_argument(
        "--table", required=True, metavar="TABLE_OR_PATH", help="a Delta path or a table name"
    )
    p.add_argument(
        "--format", dest="fmt", choices=FORMATS, default=None, help="default: from the extension"
    )
    p.add_argument("--key", default=None, metavar="COLUMN", help="a column with unique values")
    p.add_argument("--replace", action="store_true", help="replace an existing table")
    p.add_argument("--delimiter", default=None, help="CSV field separator (default: ,)")
    add_common(p)
    p.set_defaults(handler=_import)
