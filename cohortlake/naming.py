"""Output names: derived from display names, checked, and registered across kinds.

Output names are unique across segments, insights, expansions and suggestions in one
lakehouse, ignoring case; ``registered_outputs`` scans the conf folders for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

from cohortlake.config import load_documents
from cohortlake.errors import InputError, Problem

__all__ = [
    "DEFINITION_KINDS",
    "MAX_NAME",
    "DefinitionName",
    "Documents",
    "definition_files",
    "derive_output_name",
    "load_definition_file",
    "name_problem",
    "read_definition_files",
    "registered_outputs",
    "split_documents",
]

DEFINITION_KINDS = ("segments", "insights", "expansions", "suggestions")
MAX_NAME = 200
_WORD = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def name_problem(name: Any) -> str | None:
    """Why ``name`` is no definition name, or None: one rule for every kind of definition.

    A name is shown in reports and gives the output name, so two names that differ only
    by a trailing space or line break (the same output) are refused, as are control
    characters.
    """
    if name is None:
        return "must be a string, got null"
    if not isinstance(name, str) or not name.strip():
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        return f"expected a name, got {shown}"
    if len(name) > MAX_NAME:
        return f"name is {len(name)} characters; at most {MAX_NAME}"
    if name != name.strip():
        return f"name {name!r} starts or ends with a space or a line break"
    if _CONTROL.search(name):
        return f"name {name!r} holds a control character (a line break or a tab)"
    return None


def _checked_name(value: Any) -> Any:
    # Empty, too long or not text: the field's own rules say it (pydantic's words).
    if value is None or (isinstance(value, str) and value.strip() and len(value) <= MAX_NAME):
        reason = name_problem(value)
        if reason:
            raise ValueError(reason)
    return value


# The ``name`` of an insight, expansion or suggestion definition (pydantic models).
DefinitionName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME), BeforeValidator(_checked_name)
]


def derive_output_name(name: str) -> str:
    """Split on non-alphanumerics, capitalise each word's first letter, join, drop leading digits.

    ``Customers from California`` -> ``CustomersFromCalifornia``. Letters and digits are
    Unicode's, as the spec says; a result outside the output-name rule (``CaféBar``) is
    left for the caller to reject, asking for an explicit ``output``.
    """
    words = _WORD.findall(name)
    joined = "".join(w[0].upper() + w[1:] for w in words)
    return re.sub(r"^\d+", "", joined)


def definition_files(folder: Path) -> list[Path]:
    """YAML and JSON files of a definitions folder, in name order."""
    if not folder.is_dir():
        return []
    # A folder or a device under a definition's name is reported (load_definition_file), not
    # skipped; hidden entries (an editor's lock files) are left alone.
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in (".yaml", ".yml", ".json")
        and (p.is_file() or (not p.name.startswith(".") and p.exists()))
    )


@dataclass(frozen=True)
class Documents:
    """A definition file of several ``---``-separated documents: ``(path, data)`` of each.

    A path is ``[N]``, the document's place in the file counting from 0 (empty documents
    count, and are left out); problems inside it are reported as ``[N].where.all[0]``.
    """

    items: tuple[tuple[str, Any], ...]


def load_definition_file(path: str | Path) -> Any:
    """A definition file's data: its one document, or ``Documents`` when it holds several.

    Empty documents (a trailing ``---``) are skipped; a file with none gives None.
    """
    found = [(f"[{i}]", d) for i, d in enumerate(load_documents(path)) if d is not None]
    if len(found) > 1:
        return Documents(tuple(found))
    return found[0][1] if found else None


def split_documents(
    data: Any, listed: Callable[[Any], list[tuple[str, Any]]] | None = None
) -> list[tuple[str, Any]]:
    """``(path, definition)`` of every definition of a file's data (``load_definition_file``).

    ``listed`` splits one document into its definitions (a list under its kind's key), each
    with its path inside the document; a document's ``[N]`` is put before that path.
    """
    docs = list(data.items) if isinstance(data, Documents) else [("", data)]
    out: list[tuple[str, Any]] = []
    for prefix, doc in docs:
        for path, item in listed(doc) if listed is not None else [("", doc)]:
            if prefix and path:
                path = prefix + (path if path.startswith("[") else "." + path)
            out.append((path or prefix, item))
    return out


def read_definition_files(folder: Path) -> tuple[list[tuple[str, Any]], list[Problem]]:
    """Parse every definition file of a folder: ``(file, data)`` pairs and the files' own problems.

    ``data`` is what ``load_definition_file`` gives (``split_documents`` lists its
    definitions). A file that does not parse is reported and skipped, so the others are
    still checked.
    """
    parsed: list[tuple[str, Any]] = []
    problems: list[Problem] = []
    for path in definition_files(folder):
        try:
            parsed.append((str(path), load_definition_file(path)))
        except InputError as exc:
            problems.extend(exc.problems)
    return parsed, problems


def _listed(data: Any) -> list[tuple[str, Any]]:
    """A document's definitions: itself, or a list under its kind's key (or ``definitions``)."""
    if isinstance(data, dict) and "name" not in data:
        for key in (*DEFINITION_KINDS, "definitions"):
            if isinstance(data.get(key), list):
                return [(f"{key}[{i}]", d) for i, d in enumerate(data[key])]
    return [("", data)]


def registered_outputs(
    conf_dir: Path, kinds: tuple[str, ...] = DEFINITION_KINDS
) -> dict[str, tuple[str, str, str]]:
    """Map lower-cased output name -> (output, kind, file) for every definition in conf.

    Only names are read here (full validation belongs to each kind); a clash between
    two definitions, ignoring case, is an InputError naming both files (and the
    documents or list items, within a file of several).
    """
    seen: dict[str, tuple[str, str, str]] = {}
    where_seen: dict[str, str] = {}
    problems: list[Problem] = []
    for kind in kinds:
        for file in definition_files(conf_dir / kind):
            try:
                data = load_definition_file(file)
            except InputError:
                continue  # reported by the kind's own validation
            for path, doc in split_documents(data, _listed):
                if not isinstance(doc, dict):
                    continue
                output = doc.get("output")
                if not isinstance(output, str) or not output:
                    name = doc.get("name")  # a bad name is its kind's to report
                    output = derive_output_name(str(name)) if not name_problem(name) else ""
                if not output:
                    continue
                prior = seen.get(output.lower())
                if prior is not None:
                    where = f"{path}.output" if path else "output"
                    at = where_seen[output.lower()]
                    problems.append(
                        Problem(
                            str(file),
                            where,
                            f"output name {output!r} is already used by {prior[1]} in {prior[2]}"
                            + (f" at {at}" if at else ""),
                        )
                    )
                    continue
                seen[output.lower()] = (output, kind, str(file))
                where_seen[output.lower()] = path
    if problems:
        raise InputError(problems)
    return seen
