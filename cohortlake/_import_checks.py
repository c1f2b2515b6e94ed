"""The files of ``cohortlake import``, checked before Spark starts: there, one format.

Local files must exist and be regular, non-empty files; another store's URI (s3a://,
abfss://) is left for Spark to read. The format comes from ``--format`` or the
extension (a compression suffix such as ``.gz`` after it is fine for text). Local CSV
files must share one header row (compared here, first record of each); local JSON
files are peeked at to tell one array of objects (``[`` first) from one object per line.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from cohortlake.errors import InputError, Problem
from cohortlake.tables import TableRef, table_ref_problem

__all__ = ["FORMATS", "ImportRequest", "check_import", "local_path"]

FORMATS = ("csv", "parquet", "json")
_EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
# Spark's (Hadoop's) codecs for text files; Python reads the first two for header checks.
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".snappy", ".deflate")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


@dataclass(frozen=True)
class ImportRequest:
    """A checked request: the files, the target and how to read them."""

    files: tuple[str, ...]
    table: TableRef
    fmt: str
    key: str | None
    delimiter: str
    json_arrays: bool = False
    header: tuple[str, ...] | None = None  # CSV: the local files' own header row
    all_checked: bool = False  # every file's header was compared here


def local_path(name: str) -> Path | None:
    """The local path a file or table names, or None for another store (s3a://, abfss://)."""
    if not _URI.match(name):
        return Path(name)
    parsed = urlparse(name)
    return Path(parsed.path) if parsed.scheme == "file" else None


def _suffixes(name: str) -> tuple[str, bool]:
    """The format-giving extension of a file name and whether a compression one follows."""
    path = Path(urlparse(name).path if _URI.match(name) else name)
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] in _COMPRESSED
    if compressed:
        suffixes.pop()
    return (suffixes[-1] if suffixes else ""), compressed


def _format_of(name: str) -> str | None:
    ext, compressed = _suffixes(name)
    fmt = _EXTENSIONS.get(ext)
    return None if fmt == "parquet" and compressed else fmt


def _open_text(path: Path) -> IO[str] | None:
    """A text reader of a local file, or None when Python cannot decompress it."""
    ext = path.suffix.lower()
    if ext == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    if ext == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    if ext in _COMPRESSED:
        return None
    return path.open("r", encoding="utf-8-sig", errors="replace", newline="")


def _delimiter(text: str | None, fmt: str, problems: list[Problem]) -> str:
    if text is None:
        return ","
    if fmt != "csv":
        problems.append(Problem("--delimiter", "", "applies to CSV files only"))
        return ","
    value = {"\\t": "\t", "tab": "\t"}.get(text.lower(), text)
    if len(value) != 1 or value in '"\r\n':
        problems.append(Problem("--delimiter", "", f"must be one character (or \\t), not {text!r}"))
    return value


def _file_problem(name: str) -> str | None:
    local = local_path(name)
    if local is None:
        return None  # another store: Spark reads it, or says why not
    if not local.exists():
        return "no such file"
    if local.is_dir():
        return "is a folder; give the files in it"
    if not local.is_file():
        return "is not a regular file"
    if local.stat().st_size == 0:
        return "is empty"
    return None


def _headers(
    files: Sequence[str], delimiter: str, problems: list[Problem]
) -> tuple[tuple[str, ...] | None, bool]:
    """The CSV header row the local files share (each one compared), and whether all were."""
    first: tuple[str, tuple[str, ...]] | None = None
    checked = 0
    for name in files:
        local = local_path(name)
        try:
            reader = _open_text(local) if local is not None else None
            if reader is None:
                continue
            with reader:
                row = next(csv.reader(reader, delimiter=delimiter, quotechar='"'), None)
        except (OSError, csv.Error, EOFError) as exc:
            problems.append(Problem(name, "", f"cannot read its header row: {exc}"))
            continue
        if not row:
            problems.append(Problem(name, "", "has no header row"))
            continue
        checked += 1
        header = tuple(row)
        if first is None:
            first = (name, header)
        elif header != first[1]:
            diff = next(
                (i for i, (a, b) in enumerate(zip(header, first[1], strict=False)) if a != b),
                min(len(header), len(first[1])),
            )
            here = repr(header[diff]) if diff < len(header) else "missing"
            there = repr(first[1][diff]) if diff < len(first[1]) else "missing"
            problems.append(
                Problem(
                    name,
                    "",
                    f"header differs from {first[0]}'s: column {diff + 1} is {here} here, "
                    f"{there} there (files imported together share one header)",
                )
            )
    return (first[1] if first else None), checked == len(files)


def _json_arrays(files: Sequence[str], problems: list[Problem]) -> bool:
    """Whether the JSON files hold one array of objects each (local files starting with ``[``)."""
    kinds: dict[bool, str] = {}
    for name in files:
        local = local_path(name)
        try:
            reader = _open_text(local) if local is not None else None
            if reader is None:
                start = ""  # another store, or a codec Python lacks: one object per line
            else:
                with reader:
                    start = reader.read(4096).lstrip()
        except (OSError, EOFError) as exc:
            problems.append(Problem(name, "", f"cannot read: {exc}"))
            continue
        array = start.startswith("[")
        kinds.setdefault(array, name)
        if len(kinds) == 2:
            problems.append(
                Problem(
                    name,
                    "",
                    f"is {'one array of objects' if array else 'one object per line'} but "
                    f"{kinds[not array]} is not: import them separately",
                )
            )
            return False
    return kinds.keys() == {True}


def check_import(
    files: Sequence[str],
    table: str,
    *,
    fmt: str | None = None,
    key: str | None = None,
    delimiter: str | None = None,
) -> ImportRequest:
    """Check the request without Spark: the target, the files, their format; all problems."""
    problems: list[Problem] = []
    reason = table_ref_problem(table)
    if reason:
        problems.append(Problem("--table", "", reason))
    if not files:
        problems.append(Problem("FILE", "", "give at least one file to import"))
    if fmt is not None and fmt not in FORMATS:
        problems.append(Problem("--format", "", f"{fmt!r} is not one of {', '.join(FORMATS)}"))
    if key is not None and not key.strip():
        problems.append(Problem("--key", "", "give the key column's name"))
    found: dict[str, str] = {}
    for name in files:
        why = _file_problem(name)
        if why:
            problems.append(Problem(name, "", why))
        if fmt is not None:
            continue
        guessed = _format_of(name)
        if guessed is None:
            problems.append(
                Problem(
                    name,
                    "",
                    "cannot tell the format from the name (.csv, .parquet, .json, .jsonl, "
                    ".ndjson, and .gz etc. for text); pass --format",
                )
            )
        elif found and guessed not in found:
            first, other = next(iter(found.items()))
            problems.append(
                Problem(
                    name, "", f"is {guessed} but {other} is {first}: import one format at a time"
                )
            )
        else:
            found.setdefault(guessed, name)
    chosen = fmt or next(iter(found), "csv")
    sep = _delimiter(delimiter, chosen, problems)
    if problems:  # the files are not worth opening yet
        raise InputError(problems)
    header, all_checked = _headers(files, sep, problems) if chosen == "csv" else (None, False)
    arrays = _json_arrays(files, problems) if chosen == "json" else False
    if problems:
        raise InputError(problems)
    return ImportRequest(
        tuple(files), TableRef(table), chosen, key, sep, arrays, header, all_checked
    )
