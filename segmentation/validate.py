"""Validation of segment definitions against the catalog, before any data is touched.

A definition's condition tree is validated by the condition language's own validator
(``cohortlake.conditions.validate``); this module adds the definition's keys, output
names across files and kinds, cycles between segment leaves and dependency order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cohortlake.catalog import Catalog
from cohortlake.conditions.validate import ConditionValidator, Scope, join_path, show_value
from cohortlake.errors import InputError, Problem
from cohortlake.lake import OUTPUT_NAME
from cohortlake.memberships import SEGMENT
from cohortlake.naming import (
    derive_output_name,
    name_problem,
    read_definition_files,
    registered_outputs,
    split_documents,
)
from segmentation.model import SegmentDefinition, segment_refs

__all__ = ["load_definitions", "parse_definitions"]

_DEF_KEYS = {"name", "output", "type", "description", "where", "project"}


class _DefinitionValidator(ConditionValidator):
    """The condition validator, plus a definition's own keys."""

    def definition(self, raw: Any, path: str) -> SegmentDefinition | None:
        if not isinstance(raw, dict):
            self.err(path, f"expected a segment definition (a mapping), got {show_value(raw)}")
            return None
        before = len(self.problems)
        self._only(raw, _DEF_KEYS, path)
        name = raw.get("name")
        reason = "required key is missing" if "name" not in raw else name_problem(name)
        if reason:
            self.err(join_path(path, "name"), reason)
            name = None
        output = raw.get("output")
        if output is None and isinstance(name, str):
            output = derive_output_name(name)
            if not output:
                self.err(
                    join_path(path, "name"), f"name {name!r} derives to no output name; set output"
                )
            elif not OUTPUT_NAME.match(output):
                self.err(
                    join_path(path, "name"),
                    f"name derives to {output!r}, not a valid output name; set output",
                )
        elif output is not None and (not isinstance(output, str) or not OUTPUT_NAME.match(output)):
            self.err(
                join_path(path, "output"),
                f"output {show_value(output)} must start with a letter and hold only letters and digits (max 128)",
            )
        kind = raw.get("type", "dynamic")
        if kind not in ("dynamic", "static"):
            self.err(join_path(path, "type"), f"expected dynamic or static, got {show_value(kind)}")
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            self.err(
                join_path(path, "description"), f"expected text, got {show_value(description)}"
            )
        project = self.project(raw.get("project", []), join_path(path, "project"))
        if "where" not in raw:
            self.err(join_path(path, "where"), "required key is missing")
            where = None
        else:
            where = self.node(raw["where"], join_path(path, "where"), Scope())
        if len(self.problems) > before or where is None or project is None:
            return None
        assert isinstance(name, str) and isinstance(output, str)  # guaranteed by the checks above
        return SegmentDefinition(name, output, kind, where, description, project, self.file, path)

    def project(self, raw: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(raw, list):
            self.err(path, f"expected a list of attribute names, got {show_value(raw)}")
            return None
        out: list[str] = []
        for i, item in enumerate(raw):
            column, _, _ = self._resolve(item, join_path(path, i), Scope())
            if column is None:
                continue
            if column in out:
                self.err(join_path(path, i), f"{column} is listed twice")
            elif column.lower() == SEGMENT.lower():
                self.err(
                    join_path(path, i),
                    f"{column} cannot be projected: memberships keeps the segment's name in {SEGMENT}",
                )
            out.append(column)
        return tuple(out) if len(out) == len(raw) else None


def _documents(data: Any) -> list[tuple[str, Any]]:
    """A file's definitions: one or more ``---`` documents, each one or a list under ``segments``."""
    return split_documents(data, _listed)


def _listed(data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, dict) and "segments" in data and "where" not in data:
        extra = [k for k in data if k != "segments"]
        items = data["segments"]
        if not isinstance(items, list) or not items or extra:
            return [("segments", _BadList(items, extra))]
        return [(f"segments[{i}]", d) for i, d in enumerate(items)]
    return [("", data)]


@dataclass
class _BadList:
    value: Any
    extra: list[Any]


def parse_definitions(
    sources: Sequence[tuple[str, Any]],
    catalog: Catalog,
    known_segments: Mapping[str, str] | None = None,
    taken: Mapping[str, tuple[str, str, str]] | None = None,
) -> list[SegmentDefinition]:
    """Validate raw documents ``(file, data)``; return definitions in dependency order.

    ``data`` is a file's as ``load_definition_file`` gives it: one document (a definition
    or a ``segments`` list), or ``Documents`` for a file of several.

    ``known_segments`` maps lower-cased output names that segment leaves may name to
    their spelling (the definitions' own outputs are added); ``taken`` maps output names
    used by other kinds of definition to ``(output, kind, file)``. All problems, including
    duplicate outputs and cycles between segment leaves, raise one InputError.
    """
    problems: list[Problem] = []
    raws: list[tuple[str, str, Any]] = []
    own: dict[str, str] = {}
    for file, data in sources:
        for path, doc in _documents(data):
            if isinstance(doc, _BadList):
                reason = "'segments' needs a non-empty list of definitions"
                if doc.extra:
                    reason = f"unknown key {doc.extra[0]!r} next to 'segments'"
                problems.append(Problem(file, path, reason))
                continue
            raws.append((file, path, doc))
            if isinstance(doc, dict):
                out = doc.get("output")
                if not isinstance(out, str) and isinstance(doc.get("name"), str):
                    out = derive_output_name(doc["name"])
                if isinstance(out, str) and out:
                    own.setdefault(out.lower(), out)
    segments = {**(known_segments or {}), **own}
    definitions: list[SegmentDefinition] = []
    seen: dict[str, SegmentDefinition] = {}
    for file, path, doc in raws:
        v = _DefinitionValidator(catalog, file, segments)
        d = v.definition(doc, path)
        problems.extend(v.problems)
        if d is None:
            continue
        where = join_path(path, "output") if "output" in doc else join_path(path, "name")
        prior = seen.get(d.output.lower())
        if prior is not None:
            problems.append(
                Problem(file, where, f"output name {d.output!r} is already used in {prior.file}")
            )
            continue
        other = (taken or {}).get(d.output.lower())
        if other is not None:
            problems.append(
                Problem(
                    file,
                    where,
                    f"output name {d.output!r} is already used by {other[1]} in {other[2]}",
                )
            )
            continue
        seen[d.output.lower()] = d
        definitions.append(d)
    problems.extend(_cycles(definitions))
    if problems:
        raise InputError(problems)
    return _dependency_order(definitions)


def _cycles(defs: list[SegmentDefinition]) -> list[Problem]:
    graph = {d.output.lower(): segment_refs(d.where) for d in defs}
    by_name = {d.output.lower(): d for d in defs}
    problems: list[Problem] = []
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    first = by_name[cycle[0]]
                    names = " -> ".join(by_name[c].output for c in cycle)
                    problems.append(
                        Problem(
                            first.file,
                            join_path(first.path, "where"),
                            f"cycle between segment leaves: {names}",
                        )
                    )
            elif state.get(nxt) is None:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if state.get(name) is None:
            visit(name, [name])
    return problems


def _dependency_order(defs: list[SegmentDefinition]) -> list[SegmentDefinition]:
    by_name = {d.output.lower(): d for d in defs}
    done: set[str] = set()
    order: list[SegmentDefinition] = []

    def add(d: SegmentDefinition) -> None:
        key = d.output.lower()
        if key in done:
            return
        done.add(key)
        for ref in sorted(segment_refs(d.where)):
            if ref in by_name:
                add(by_name[ref])
        order.append(d)

    for d in defs:
        add(d)
    return order


def load_definitions(conf_dir: str | Path, catalog: Catalog) -> list[SegmentDefinition]:
    """Load and validate every definition under ``<conf>/segments``, in dependency order.

    Segment leaves may also name expansion outputs (``<conf>/expansions``); output
    names must be unique across every kind of definition, ignoring case.
    """
    conf = Path(conf_dir)
    problems: list[Problem] = []
    sources: list[tuple[str, Any]] = []
    sources, problems = read_definition_files(conf / "segments")
    try:
        others = registered_outputs(conf, ("expansions", "insights", "suggestions"))
    except InputError as exc:
        problems.extend(exc.problems)
        others = {}
    known = {k: v[0] for k, v in others.items() if v[1] == "expansions"}
    taken = dict(others)
    try:
        defs = parse_definitions(sources, catalog, known, taken)
    except InputError as exc:
        problems.extend(exc.problems)
        defs = []
    if problems:
        raise InputError(problems)
    return defs
