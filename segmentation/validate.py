"""Validation of segment definitions against the catalog, before any data is touched.

Every problem is collected, with the file and its path in the document
(``segments[1].where.all[0].value``) and a one-line reason; nothing is raised until the
whole input has been checked.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cohortlake.catalog import Catalog
from cohortlake.errors import InputError, Problem
from cohortlake.lake import OUTPUT_NAME
from cohortlake.naming import (
    derive_output_name,
    read_definition_files,
    registered_outputs,
)
from segmentation.model import (
    AGGREGATES,
    ALIASES,
    OPERATORS,
    All,
    AnyOf,
    AttributeLeaf,
    Having,
    Node,
    Not,
    RelatedLeaf,
    SegmentDefinition,
    SegmentLeaf,
    Window,
    segment_refs,
)

__all__ = [
    "load_definitions",
    "parse_definitions",
    "parse_entity_condition",
    "validate_entity_condition",
]

_ALL_TYPES = {"string", "number", "integer", "date", "timestamp", "boolean"}
_OP_TYPES: dict[str, set[str]] = {
    "eq": _ALL_TYPES,
    "ne": _ALL_TYPES,
    "gt": {"number", "integer", "date", "timestamp", "string"},
    "gte": {"number", "integer", "date", "timestamp", "string"},
    "lt": {"number", "integer", "date", "timestamp", "string"},
    "lte": {"number", "integer", "date", "timestamp", "string"},
    "between": {"number", "integer", "date", "timestamp"},
    "in": {"string", "number", "integer", "date", "boolean"},
    "not_in": {"string", "number", "integer", "date", "boolean"},
    "contains": {"string"},
    "not_contains": {"string"},
    "starts_with": {"string"},
    "ends_with": {"string"},
    "is_null": _ALL_TYPES,
    "is_not_null": _ALL_TYPES,
    "in_last": {"date", "timestamp"},
}
_NODE_KEYS = ("all", "any", "not", "attribute", "related", "segment")
_LEAF_KEYS = {"attribute", "op", "value", "ignore_case"}
_RELATED_KEYS = {"related", "where", "within", "having"}
_HAVING_KEYS = {"agg", "attribute", "op", "value"}
_DEF_KEYS = {"name", "output", "type", "description", "where", "project"}
_UNITS = ("days", "weeks", "months", "years")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LONG = (-(2**63), 2**63 - 1)
MAX_DEPTH = (
    64  # far beyond any real definition; keeps validation and Spark plans off the recursion limit
)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class _Scope:
    """Which names a condition may use: customer-level fields, or one entity's columns."""

    entity: str | None = None
    event_time: str | None = None


@dataclass
class _Validator:
    catalog: Catalog
    file: str
    segments: Mapping[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def err(self, path: str, reason: str) -> None:
        self.problems.append(Problem(self.file, path, reason))

    # -- tree --------------------------------------------------------------------------
    def node(self, raw: Any, path: str, scope: _Scope, depth: int = 0) -> Node | None:
        if depth > MAX_DEPTH:
            self.err(path, f"conditions are nested more than {MAX_DEPTH} levels deep")
            return None
        if not isinstance(raw, dict):
            self.err(
                path,
                f"expected a condition (a mapping with one of {', '.join(_NODE_KEYS)}), got {_show(raw)}",
            )
            return None
        kinds = [k for k in _NODE_KEYS if k in raw]
        if not kinds:
            unknown = ", ".join(sorted(map(str, raw))) or "nothing"
            self.err(path, f"expected one of {', '.join(_NODE_KEYS)}; found {unknown}")
            return None
        if len(kinds) > 1:
            self.err(
                path,
                f"a condition is exactly one of {', '.join(_NODE_KEYS)}; found {' and '.join(kinds)}",
            )
            return None
        kind = kinds[0]
        if kind in ("all", "any"):
            self._only(raw, {kind}, path)
            children = raw[kind]
            if not isinstance(children, list) or not children:
                self.err(_join(path, kind), f"'{kind}' needs a non-empty list of conditions")
                return None
            parsed = [
                self.node(c, _join(_join(path, kind), i), scope, depth + 1)
                for i, c in enumerate(children)
            ]
            if any(p is None for p in parsed):
                return None
            nodes = tuple(p for p in parsed if p is not None)
            return All(nodes) if kind == "all" else AnyOf(nodes)
        if kind == "not":
            self._only(raw, {"not"}, path)
            child = self.node(raw["not"], _join(path, "not"), scope, depth + 1)
            return Not(child) if child is not None else None
        if kind == "attribute":
            return self.attribute_leaf(raw, path, scope)
        if kind == "related":
            if scope.entity is not None:
                self.err(
                    _join(path, "related"),
                    "related leaves are not allowed inside an entity's condition",
                )
                return None
            return self.related_leaf(raw, path)
        if scope.entity is not None:
            self.err(
                _join(path, "segment"),
                "segment leaves are not allowed inside an entity's condition",
            )
            return None
        self._only(raw, {"segment"}, path)
        return self.segment_leaf(raw["segment"], _join(path, "segment"))

    def _only(self, raw: dict[str, Any], allowed: set[str], path: str) -> bool:
        extra = [k for k in raw if k not in allowed]
        for k in extra:
            self.err(_join(path, str(k)), "unknown key")
        return not extra

    def segment_leaf(self, raw: Any, path: str) -> SegmentLeaf | None:
        if not isinstance(raw, str) or not raw.strip():
            self.err(path, f"expected a segment output name, got {_show(raw)}")
            return None
        found = self.segments.get(raw.strip().lower())
        if found is None:
            near = self.catalog.suggest(raw, sorted(self.segments.values()))
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            self.err(path, f"unknown segment {raw!r}{hint}")
            return None
        return SegmentLeaf(found)

    def attribute_leaf(self, raw: dict[str, Any], path: str, scope: _Scope) -> AttributeLeaf | None:
        ok = self._only(raw, _LEAF_KEYS, path)
        name = raw.get("attribute")
        column, ftype, where = self._resolve(name, _join(path, "attribute"), scope)
        op = self._op(raw.get("op"), _join(path, "op"))
        if column is None or ftype is None or op is None:
            return None
        if ftype not in _OP_TYPES[op]:
            self.err(
                _join(path, "op"), f"operator {op!r} does not apply to {ftype} attribute {column}"
            )
            return None
        ignore_case = raw.get("ignore_case", False)
        if not isinstance(ignore_case, bool):
            self.err(
                _join(path, "ignore_case"), f"expected true or false, got {_show(ignore_case)}"
            )
            return None
        if ignore_case and ftype != "string":
            self.err(
                _join(path, "ignore_case"),
                f"ignore_case applies to string attributes, {column} is {ftype}",
            )
            return None
        value = self._value(raw, op, ftype, path)
        if value is _INVALID or not ok:
            return None
        return AttributeLeaf(column, ftype, op, value, ignore_case, where)

    def _resolve(self, name: Any, path: str, scope: _Scope) -> tuple[str | None, str | None, Any]:
        if not isinstance(name, str) or not name.strip():
            self.err(
                path,
                "required key is missing"
                if name is None
                else f"expected an attribute name, got {_show(name)}",
            )
            return None, None, "profile"
        if scope.entity is None:
            ref = self.catalog.resolve(name)
            if ref is not None:
                return ref.name, ref.type, ref.source
            near = self.catalog.suggest(name)
        else:
            found = self.catalog.activity_attribute(scope.entity, name)
            if found is not None:
                return found[0], found[1].type, "entity"
            entity = self.catalog.activity(scope.entity)
            near = self.catalog.suggest(name, list(entity[1].attributes) if entity else [])
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        where = f" of {scope.entity}" if scope.entity else ""
        self.err(path, f"unknown attribute {name!r}{where}{hint}")
        return None, None, "profile"

    def _op(self, raw: Any, path: str) -> str | None:
        if not isinstance(raw, str):
            self.err(
                path,
                "required key is missing"
                if raw is None
                else f"expected an operator name, got {_show(raw)}",
            )
            return None
        op = ALIASES.get(raw, raw)
        if op not in OPERATORS:
            near = self.catalog.suggest(raw, [*OPERATORS, *ALIASES], cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            self.err(path, f"unknown operator {raw!r}{hint}")
            return None
        return op

    def _value(self, raw: dict[str, Any], op: str, ftype: str, path: str) -> Any:
        vpath = _join(path, "value")
        has = "value" in raw
        value = raw.get("value")
        if op in ("is_null", "is_not_null"):
            if has:
                self.err(vpath, f"operator {op!r} takes no value")
                return _INVALID
            return None
        if not has:
            self.err(vpath, f"operator {op!r} needs a value")
            return _INVALID
        if op == "in_last":
            window = self.window(value, vpath)
            return window if window is not None else _INVALID
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                self.err(vpath, f"'between' needs [low, high], got {_show(value)}")
                return _INVALID
            low = self.scalar(value[0], ftype, _join(vpath, 0))
            high = self.scalar(value[1], ftype, _join(vpath, 1))
            if low is _INVALID or high is _INVALID:
                return _INVALID
            if low > high:
                self.err(vpath, f"'between' needs low <= high, got [{low}, {high}]")
                return _INVALID
            return (low, high)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.err(vpath, f"{op!r} needs a non-empty list, got {_show(value)}")
                return _INVALID
            items = [self.scalar(v, ftype, _join(vpath, i)) for i, v in enumerate(value)]
            if any(v is _INVALID for v in items):
                return _INVALID
            return tuple(items)
        return self.scalar(value, ftype, vpath)

    def scalar(self, value: Any, ftype: str, path: str) -> Any:
        """Parse one value to the attribute's type, or record why it does not parse."""
        if value is None:
            self.err(path, f"expected a {ftype} value, got null (use is_null to test for nulls)")
            return _INVALID
        if isinstance(value, (list, dict)):
            self.err(path, f"expected a single {ftype} value, got {_show(value)}")
            return _INVALID
        if ftype == "string":
            if isinstance(value, str):
                return value
            self.err(path, f"expected a string, got {_show(value)} (quote it)")
        elif ftype in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.err(path, f"expected a number, got {_show(value)}")
            elif isinstance(value, float) and not math.isfinite(value):
                self.err(path, f"expected a finite number, got {value}")
            elif ftype == "integer":
                if isinstance(value, float) and not value.is_integer():
                    self.err(path, f"expected a whole number, got {value}")
                elif not _LONG[0] <= int(value) <= _LONG[1]:
                    self.err(path, "number out of range for an integer (64-bit)")
                else:
                    return int(value)
            else:
                try:
                    return float(value)
                except OverflowError:
                    self.err(path, "number out of range")
        elif ftype == "boolean":
            if isinstance(value, bool):
                return value
            self.err(path, f"expected true or false, got {_show(value)}")
        elif ftype == "date":
            if isinstance(value, dt.datetime):
                self.err(path, f"expected a date YYYY-MM-DD, got {_show(value)}")
            elif isinstance(value, dt.date):
                return value
            elif isinstance(value, str) and _DATE.match(value.strip()):
                try:
                    return dt.date.fromisoformat(value.strip())
                except ValueError:
                    self.err(path, f"not a valid date: {value!r}")
            else:
                self.err(path, f"expected a date YYYY-MM-DD, got {_show(value)}")
        elif ftype == "timestamp":
            parsed = _timestamp(value)
            if parsed is not None:
                return parsed
            self.err(path, f"expected an ISO 8601 timestamp, got {_show(value)}")
        return _INVALID

    def window(self, raw: Any, path: str) -> Window | None:
        if not isinstance(raw, dict):
            self.err(
                path, f"expected {{n: NUMBER, unit: days|weeks|months|years}}, got {_show(raw)}"
            )
            return None
        ok = self._only(raw, {"n", "unit"}, path)
        n, unit = raw.get("n"), raw.get("unit")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 100_000:
            self.err(_join(path, "n"), f"expected a whole number from 0 to 100000, got {_show(n)}")
            ok = False
        if unit not in _UNITS:
            self.err(_join(path, "unit"), f"expected one of {', '.join(_UNITS)}, got {_show(unit)}")
            ok = False
        return Window(int(n), unit) if ok and isinstance(n, int) else None  # type: ignore[arg-type]

    def related_leaf(self, raw: dict[str, Any], path: str) -> RelatedLeaf | None:
        ok = self._only(raw, _RELATED_KEYS, path)
        name = raw.get("related")
        found = self.catalog.activity(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(self.catalog.activities) or "none"
            self.err(
                _join(path, "related"), f"unknown activity entity {_show(name)} (known: {known})"
            )
            return None
        entity, spec = found
        scope = _Scope(entity, spec.event_time)
        where = None
        if "where" in raw:
            where = self.node(raw["where"], _join(path, "where"), scope)
            ok = ok and where is not None
        within = None
        if "within" in raw:
            within = self.window(raw["within"], _join(path, "within"))
            ok = ok and within is not None
        having = self.having(
            raw.get("having", {"agg": "count", "op": "gte", "value": 1}),
            _join(path, "having"),
            scope,
        )
        if not ok or having is None:
            return None
        return RelatedLeaf(entity, spec.event_time, where, within, having)

    def having(self, raw: Any, path: str, scope: _Scope) -> Having | None:
        if not isinstance(raw, dict):
            self.err(path, f"expected {{agg, op, value}}, got {_show(raw)}")
            return None
        ok = self._only(raw, _HAVING_KEYS, path)
        agg = raw.get("agg")
        if agg not in AGGREGATES:
            self.err(
                _join(path, "agg"), f"expected one of {', '.join(AGGREGATES)}, got {_show(agg)}"
            )
            return None
        attribute: str | None = None
        ftype = "integer"
        if agg == "count":
            if "attribute" in raw:
                self.err(_join(path, "attribute"), "'count' counts rows and takes no attribute")
                return None
        else:
            column, atype, _ = self._resolve(raw.get("attribute"), _join(path, "attribute"), scope)
            if column is None or atype is None:
                return None
            attribute = column
            if agg in ("sum", "avg"):
                if atype not in ("number", "integer"):
                    self.err(
                        _join(path, "attribute"),
                        f"'{agg}' needs a number attribute, {column} is {atype}",
                    )
                    return None
                ftype = "number"
            elif agg in ("min", "max"):
                ftype = atype
        op = self._op(raw.get("op"), _join(path, "op"))
        if op is None:
            return None
        if ftype not in _OP_TYPES[op]:
            self.err(
                _join(path, "op"), f"operator {op!r} does not apply to the {ftype} value of {agg}"
            )
            return None
        value = self._value(raw, op, ftype, path)
        if value is _INVALID or not ok:
            return None
        return Having(
            agg,
            attribute,
            AttributeLeaf(f"{agg}({attribute or '*'})", ftype, op, value, False, "aggregate"),
        )

    # -- definitions -------------------------------------------------------------------
    def definition(self, raw: Any, path: str) -> SegmentDefinition | None:
        if not isinstance(raw, dict):
            self.err(path, f"expected a segment definition (a mapping), got {_show(raw)}")
            return None
        before = len(self.problems)
        self._only(raw, _DEF_KEYS, path)
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.err(
                _join(path, "name"),
                "required key is missing"
                if name is None
                else f"expected a name, got {_show(name)}",
            )
            name = None
        elif len(name) > 200:
            self.err(_join(path, "name"), f"name is {len(name)} characters; at most 200")
            name = None
        output = raw.get("output")
        if output is None and isinstance(name, str):
            output = derive_output_name(name)
            if not output:
                self.err(
                    _join(path, "name"), f"name {name!r} derives to no output name; set output"
                )
            elif not OUTPUT_NAME.match(output):
                self.err(
                    _join(path, "name"),
                    f"name derives to {output!r}, not a valid output name; set output",
                )
        elif output is not None and (not isinstance(output, str) or not OUTPUT_NAME.match(output)):
            self.err(
                _join(path, "output"),
                f"output {_show(output)} must start with a letter and hold only letters and digits (max 128)",
            )
        kind = raw.get("type", "dynamic")
        if kind not in ("dynamic", "static"):
            self.err(_join(path, "type"), f"expected dynamic or static, got {_show(kind)}")
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            self.err(_join(path, "description"), f"expected text, got {_show(description)}")
        project = self.project(raw.get("project", []), _join(path, "project"))
        if "where" not in raw:
            self.err(_join(path, "where"), "required key is missing")
            where = None
        else:
            where = self.node(raw["where"], _join(path, "where"), _Scope())
        if len(self.problems) > before or where is None or project is None:
            return None
        assert isinstance(name, str) and isinstance(output, str)  # guaranteed by the checks above
        return SegmentDefinition(name, output, kind, where, description, project, self.file, path)

    def project(self, raw: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(raw, list):
            self.err(path, f"expected a list of attribute names, got {_show(raw)}")
            return None
        out: list[str] = []
        for i, item in enumerate(raw):
            column, _, _ = self._resolve(item, _join(path, i), _Scope())
            if column is None:
                continue
            if column in out:
                self.err(_join(path, i), f"{column} is listed twice")
            out.append(column)
        return tuple(out) if len(out) == len(raw) else None


class _Invalid:
    """Marker for a value that did not parse (None is a legitimate 'no value')."""


_INVALID: Any = _Invalid()


def _timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        ts = value
    elif isinstance(value, dt.date):
        ts = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            ts = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def validate_entity_condition(
    raw: Any, catalog: Catalog, entity: str, file: str, path: str
) -> list[Problem]:
    """Problems of a condition over one activity entity's columns (measures' filters)."""
    v = _Validator(catalog, file)
    found = catalog.activity(entity)
    v.node(raw, path, _Scope(entity, found[1].event_time if found else None))
    return v.problems


def parse_entity_condition(raw: Any, catalog: Catalog, entity: str, file: str, path: str) -> Node:
    """Validate and return the typed condition over an entity's columns."""
    v = _Validator(catalog, file)
    found = catalog.activity(entity)
    node = v.node(raw, path, _Scope(entity, found[1].event_time if found else None))
    if v.problems or node is None:
        raise InputError(v.problems or [Problem(file, path, "invalid condition")])
    return node


def _documents(data: Any) -> list[tuple[str, Any]]:
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
        v = _Validator(catalog, file, segments)
        d = v.definition(doc, path)
        problems.extend(v.problems)
        if d is None:
            continue
        where = _join(path, "output") if "output" in doc else _join(path, "name")
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
                            _join(first.path, "where"),
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
