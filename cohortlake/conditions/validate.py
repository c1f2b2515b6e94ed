"""Validation of condition trees against the catalog, before any data is touched.

Every problem is collected, with the file and its path in the document
(``segments[1].where.all[0].value``) and a one-line reason; nothing is raised until the
whole input has been checked. Segment definitions (``segmentation.validate``) and
measures' ``where`` filters (``cohortlake.catalog``) both validate through here.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cohortlake.conditions.limits import MAX_IN_VALUES, utc
from cohortlake.conditions.model import (
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
    SegmentLeaf,
    Window,
)
from cohortlake.errors import InputError, Problem

if TYPE_CHECKING:
    from cohortlake.catalog import Catalog

__all__ = [
    "MAX_DEPTH",
    "ConditionValidator",
    "Scope",
    "join_path",
    "parse_entity_condition",
    "show_value",
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
_UNITS = ("days", "weeks", "months", "years")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LONG = (-(2**63), 2**63 - 1)
MAX_DEPTH = (
    64  # far beyond any real definition; keeps validation and Spark plans off the recursion limit
)


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def show_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Scope:
    """Which names a condition may use: customer-level fields, or one entity's columns."""

    entity: str | None = None
    event_time: str | None = None


@dataclass
class ConditionValidator:
    """Collects every problem of condition trees with its path; returns typed nodes or None."""

    catalog: Catalog
    file: str
    segments: Mapping[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def err(self, path: str, reason: str) -> None:
        self.problems.append(Problem(self.file, path, reason))

    # -- tree --------------------------------------------------------------------------
    def node(self, raw: Any, path: str, scope: Scope, depth: int = 0) -> Node | None:
        if depth > MAX_DEPTH:
            self.err(path, f"conditions are nested more than {MAX_DEPTH} levels deep")
            return None
        if not isinstance(raw, dict):
            self.err(
                path,
                f"expected a condition (a mapping with one of {', '.join(_NODE_KEYS)}), got {show_value(raw)}",
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
                self.err(join_path(path, kind), f"'{kind}' needs a non-empty list of conditions")
                return None
            parsed = [
                self.node(c, join_path(join_path(path, kind), i), scope, depth + 1)
                for i, c in enumerate(children)
            ]
            if any(p is None for p in parsed):
                return None
            nodes = tuple(p for p in parsed if p is not None)
            return All(nodes) if kind == "all" else AnyOf(nodes)
        if kind == "not":
            self._only(raw, {"not"}, path)
            child = self.node(raw["not"], join_path(path, "not"), scope, depth + 1)
            return Not(child) if child is not None else None
        if kind == "attribute":
            return self.attribute_leaf(raw, path, scope)
        if kind == "related":
            if scope.entity is not None:
                self.err(
                    join_path(path, "related"),
                    "related leaves are not allowed inside an entity's condition",
                )
                return None
            return self.related_leaf(raw, path)
        if scope.entity is not None:
            self.err(
                join_path(path, "segment"),
                "segment leaves are not allowed inside an entity's condition",
            )
            return None
        self._only(raw, {"segment"}, path)
        return self.segment_leaf(raw["segment"], join_path(path, "segment"))

    def _only(self, raw: dict[str, Any], allowed: set[str], path: str) -> bool:
        extra = [k for k in raw if k not in allowed]
        for k in extra:
            self.err(join_path(path, str(k)), "unknown key")
        return not extra

    def segment_leaf(self, raw: Any, path: str) -> SegmentLeaf | None:
        if not isinstance(raw, str) or not raw.strip():
            self.err(path, f"expected a segment output name, got {show_value(raw)}")
            return None
        found = self.segments.get(raw.strip().lower())
        if found is None:
            near = self.catalog.suggest(raw, sorted(self.segments.values()))
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            self.err(path, f"unknown segment {raw!r}{hint}")
            return None
        return SegmentLeaf(found)

    def attribute_leaf(self, raw: dict[str, Any], path: str, scope: Scope) -> AttributeLeaf | None:
        ok = self._only(raw, _LEAF_KEYS, path)
        name = raw.get("attribute")
        column, ftype, where = self._resolve(name, join_path(path, "attribute"), scope)
        op = self._op(raw.get("op"), join_path(path, "op"))
        if column is None or ftype is None or op is None:
            return None
        if ftype not in _OP_TYPES[op]:
            self.err(
                join_path(path, "op"),
                f"operator {op!r} does not apply to {ftype} attribute {column}",
            )
            return None
        ignore_case = raw.get("ignore_case", False)
        if not isinstance(ignore_case, bool):
            self.err(
                join_path(path, "ignore_case"),
                f"expected true or false, got {show_value(ignore_case)}",
            )
            return None
        if ignore_case and ftype != "string":
            self.err(
                join_path(path, "ignore_case"),
                f"ignore_case applies to string attributes, {column} is {ftype}",
            )
            return None
        value = self._value(raw, op, ftype, path)
        if value is _INVALID or not ok:
            return None
        return AttributeLeaf(column, ftype, op, value, ignore_case, where)

    def _resolve(self, name: Any, path: str, scope: Scope) -> tuple[str | None, str | None, Any]:
        if not isinstance(name, str) or not name.strip():
            self.err(
                path,
                "required key is missing"
                if name is None
                else f"expected an attribute name, got {show_value(name)}",
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
                else f"expected an operator name, got {show_value(raw)}",
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
        vpath = join_path(path, "value")
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
                self.err(vpath, f"'between' needs [low, high], got {show_value(value)}")
                return _INVALID
            low = self.scalar(value[0], ftype, join_path(vpath, 0))
            high = self.scalar(value[1], ftype, join_path(vpath, 1))
            if low is _INVALID or high is _INVALID:
                return _INVALID
            if low > high:
                self.err(vpath, f"'between' needs low <= high, got [{low}, {high}]")
                return _INVALID
            return (low, high)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.err(vpath, f"{op!r} needs a non-empty list, got {show_value(value)}")
                return _INVALID
            if len(value) > MAX_IN_VALUES:
                self.err(vpath, f"{op!r} takes at most {MAX_IN_VALUES} values, got {len(value)}")
                return _INVALID
            items = [self.scalar(v, ftype, join_path(vpath, i)) for i, v in enumerate(value)]
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
            self.err(path, f"expected a single {ftype} value, got {show_value(value)}")
            return _INVALID
        if ftype == "string":
            if isinstance(value, str):
                return value
            self.err(path, f"expected a string, got {show_value(value)} (quote it)")
        elif ftype in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.err(path, f"expected a number, got {show_value(value)}")
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
            self.err(path, f"expected true or false, got {show_value(value)}")
        elif ftype == "date":
            if isinstance(value, dt.datetime):
                self.err(path, f"expected a date YYYY-MM-DD, got {show_value(value)}")
            elif isinstance(value, dt.date):
                return value
            elif isinstance(value, str) and _DATE.match(value.strip()):
                try:
                    return dt.date.fromisoformat(value.strip())
                except ValueError:
                    self.err(path, f"not a valid date: {value!r}")
            else:
                self.err(path, f"expected a date YYYY-MM-DD, got {show_value(value)}")
        elif ftype == "timestamp":
            parsed = _timestamp(value)
            if parsed is not None:
                return parsed
            self.err(path, f"expected an ISO timestamp (years 1-9999), got {show_value(value)}")
        return _INVALID

    def window(self, raw: Any, path: str) -> Window | None:
        if not isinstance(raw, dict):
            self.err(
                path,
                f"expected {{n: NUMBER, unit: days|weeks|months|years}}, got {show_value(raw)}",
            )
            return None
        ok = self._only(raw, {"n", "unit"}, path)
        n, unit = raw.get("n"), raw.get("unit")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 100_000:
            self.err(
                join_path(path, "n"),
                f"expected a whole number from 0 to 100000, got {show_value(n)}",
            )
            ok = False
        if unit not in _UNITS:
            self.err(
                join_path(path, "unit"),
                f"expected one of {', '.join(_UNITS)}, got {show_value(unit)}",
            )
            ok = False
        return Window(int(n), unit) if ok and isinstance(n, int) else None  # type: ignore[arg-type]

    def related_leaf(self, raw: dict[str, Any], path: str) -> RelatedLeaf | None:
        ok = self._only(raw, _RELATED_KEYS, path)
        name = raw.get("related")
        found = self.catalog.activity(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(self.catalog.activities) or "none"
            self.err(
                join_path(path, "related"),
                f"unknown activity entity {show_value(name)} (known: {known})",
            )
            return None
        entity, spec = found
        scope = Scope(entity, spec.event_time)
        where = None
        if "where" in raw:
            where = self.node(raw["where"], join_path(path, "where"), scope)
            ok = ok and where is not None
        within = None
        if "within" in raw:
            within = self.window(raw["within"], join_path(path, "within"))
            ok = ok and within is not None
        having = self.having(
            raw.get("having", {"agg": "count", "op": "gte", "value": 1}),
            join_path(path, "having"),
            scope,
        )
        if not ok or having is None:
            return None
        return RelatedLeaf(entity, spec.event_time, where, within, having)

    def having(self, raw: Any, path: str, scope: Scope) -> Having | None:
        if not isinstance(raw, dict):
            self.err(path, f"expected {{agg, op, value}}, got {show_value(raw)}")
            return None
        ok = self._only(raw, _HAVING_KEYS, path)
        agg = raw.get("agg")
        if agg not in AGGREGATES:
            self.err(
                join_path(path, "agg"),
                f"expected one of {', '.join(AGGREGATES)}, got {show_value(agg)}",
            )
            return None
        attribute: str | None = None
        ftype = "integer"
        if agg == "count":
            if "attribute" in raw:
                self.err(join_path(path, "attribute"), "'count' counts rows and takes no attribute")
                return None
        else:
            column, atype, _ = self._resolve(
                raw.get("attribute"), join_path(path, "attribute"), scope
            )
            if column is None or atype is None:
                return None
            attribute = column
            if agg in ("sum", "avg"):
                if atype not in ("number", "integer"):
                    self.err(
                        join_path(path, "attribute"),
                        f"'{agg}' needs a number attribute, {column} is {atype}",
                    )
                    return None
                ftype = "number"
            elif agg in ("min", "max"):
                ftype = atype
        op = self._op(raw.get("op"), join_path(path, "op"))
        if op is None:
            return None
        if ftype not in _OP_TYPES[op]:
            self.err(
                join_path(path, "op"),
                f"operator {op!r} does not apply to the {ftype} value of {agg}",
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
    return utc(ts)


def validate_entity_condition(
    raw: Any, catalog: Catalog, entity: str, file: str, path: str
) -> list[Problem]:
    """Problems of a condition over one activity entity's columns (measures' filters)."""
    v = ConditionValidator(catalog, file)
    found = catalog.activity(entity)
    v.node(raw, path, Scope(entity, found[1].event_time if found else None))
    return v.problems


def parse_entity_condition(raw: Any, catalog: Catalog, entity: str, file: str, path: str) -> Node:
    """Validate and return the typed condition over an entity's columns."""
    v = ConditionValidator(catalog, file)
    found = catalog.activity(entity)
    node = v.node(raw, path, Scope(entity, found[1].event_time if found else None))
    if v.problems or node is None:
        raise InputError(v.problems or [Problem(file, path, "invalid condition")])
    return node
