"""Export a segment to CSV, safe to open in a spreadsheet.

Text cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
prefixed with ``'`` so spreadsheet programs show them instead of running them as
formulas (OWASP's CSV-injection advice). Columns marked ``personal`` in the catalog
are left out unless asked for. Number columns are written as people write them
(``cohortlake.numbers``, docs/numbers.md): ``675.46``, not the ``675.4599999999999`` a
sum in binary floating point can store; the stored tables keep the exact values.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StringType

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem, RunFailure
from cohortlake.memberships import read_membership
from cohortlake.numbers import number_text
from cohortlake.outputs import check_user_output, is_uri
from cohortlake.sources import read_fields

__all__ = ["FORMULA_PREFIXES", "Exported", "export_segment", "neutralise"]

log = logging.getLogger(__name__)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Exported:
    """Where an export went, how many members it holds and which columns."""

    path: str
    rows: int
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return self.path


def neutralise(column: Column) -> Column:
    """Prefix a text cell with ``'`` when a spreadsheet would read it as a formula."""
    risky = F.substring(column, 1, 1).isin(list(FORMULA_PREFIXES))
    return F.when(risky, F.concat(F.lit("'"), column)).otherwise(column)


def _columns(
    ctx: Context, output: str, table: DataFrame, columns: Sequence[str], include_personal: bool
) -> list[str]:
    problems: list[Problem] = []
    chosen: list[str] = []
    personal = {f.name for f in ctx.catalog.fields() if f.personal}
    if not columns:
        return [c for c in table.columns if c not in personal or include_personal]
    for i, name in enumerate(columns):
        if name in table.columns or name.lower() == ctx.catalog.key.lower():
            ref_name = next((c for c in table.columns if c.lower() == name.lower()), name)
        else:
            ref = ctx.catalog.resolve(name)
            if ref is None:
                near = ctx.catalog.suggest(name)
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                problems.append(Problem("--columns", f"[{i}]", f"unknown attribute {name!r}{hint}"))
                continue
            ref_name = ref.name
        if ref_name in personal and not include_personal:
            problems.append(
                Problem(
                    "--columns",
                    f"[{i}]",
                    f"{ref_name} is personal data; pass --include-personal to export it",
                )
            )
            continue
        chosen.append(ref_name)
    if problems:
        raise InputError(problems)
    key = ctx.catalog.key
    return [key, *[c for c in chosen if c != key]]


class _HadoopFileSystem:
    """``check_user_output``'s view of a cloud store, through the session's Hadoop client."""

    def __init__(self, ctx: Context, path: str):
        jvm = ctx.spark._jvm
        assert jvm is not None, "a classic (not Connect) session"
        self._path: Any = jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(path).getFileSystem(ctx.spark._jsc.hadoopConfiguration())

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        return bool(self._fs.getFileStatus(self._path(path)).isDirectory())

    def names(self, path: str) -> list[str]:
        return [str(s.getPath().getName()) for s in self._fs.listStatus(self._path(path))]


def _shown(ctx: Context, name: str, dtype: DataType) -> Column:
    """The column as written: text neutralised, numbers as people write them."""
    if isinstance(dtype, StringType):
        return neutralise(F.col(name)).alias(name)
    ref = ctx.catalog.resolve(name)
    return number_text(F.col(name), dtype, ref.decimals if ref else None).alias(name)


def export_segment(
    ctx: Context,
    output: str,
    dest: str,
    columns: Sequence[str] = (),
    *,
    include_personal: bool = False,
    folder: bool = False,
    replace: bool = False,
) -> Exported:
    """Write the segment's latest members to ``dest`` (one CSV file, or a folder of parts).

    ``dest`` must lie outside the lakehouse, and an existing file or folder there is
    replaced only with ``replace`` (``cohortlake.outputs``). The row count comes from the
    same Delta snapshot the export reads (file statistics, no extra pass over the data).
    """
    folder = folder or is_uri(dest)
    fs = _HadoopFileSystem(ctx, dest) if is_uri(dest) and not dest.startswith("file:") else None
    check_user_output(dest, ctx.root, replace, folder=folder, fs=fs)
    lake, key = ctx.lake, ctx.catalog.key
    table = read_membership(lake, output, key)
    wanted = _columns(ctx, output, table, columns, include_personal)
    frame = table
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        profile_cols = [
            c
            for c in missing
            if (r := ctx.catalog.resolve(c)) is not None and r.source == "profile"
        ]
        measure_cols = [c for c in missing if c not in profile_cols]
        fields = read_fields(lake, ctx.catalog, profile_cols, measure_cols)
        frame = frame.join(fields, key, "left")
    out = frame.select(
        *[_shown(ctx, f.name, f.dataType) for f in frame.select(*wanted).schema.fields]
    ).orderBy(key)
    if folder:
        mode = "overwrite" if replace else "errorifexists"
        out.write.mode(mode).option("header", "true").csv(dest)
        log.info("exported %s to folder %s", output, dest)
        return Exported(dest, table.count(), tuple(out.columns))
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        staging = os.path.join(tmp, "csv")
        out.coalesce(1).write.option("header", "true").option("emptyValue", "").csv(staging)
        parts = sorted(Path(staging).glob("part-*.csv"))
        if len(parts) != 1:
            raise RunFailure(f"expected one CSV part, found {len(parts)}")
        os.replace(parts[0], target)
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s to %s", output, target)
    return Exported(str(target), table.count(), tuple(out.columns))
