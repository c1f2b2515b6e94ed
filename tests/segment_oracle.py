"""An independent evaluator of the segment language, written from the spec, in plain Python.

It reads the raw (YAML-shaped) condition tree and pandas frames, so the differential
test compares Spark against a second implementation that shares no code with
``segmentation``: attribute names are resolved, aliases mapped and values parsed here
again, row by row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

ALIASES = {"on_or_after": "gte", "on_or_before": "lte", "after": "gt", "before": "lt"}


def _ts(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _minus(as_of: pd.Timestamp, n: int, unit: str) -> pd.Timestamp:
    if unit == "days":
        return as_of - pd.Timedelta(days=n)
    if unit == "weeks":
        return as_of - pd.Timedelta(days=7 * n)
    if unit == "months":
        return as_of - pd.DateOffset(months=n)
    return as_of - pd.DateOffset(years=n)


def _coerce(value: Any, ftype: str) -> Any:
    if ftype == "date":
        return dt.date.fromisoformat(value) if isinstance(value, str) else value
    if ftype == "timestamp":
        return _ts(value)
    if ftype == "number":
        return float(value)
    return value


def _cell(v: Any, ftype: str) -> Any:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if ftype == "timestamp":
        return _ts(v)
    if ftype == "date":
        return v.date() if isinstance(v, (pd.Timestamp, dt.datetime)) else v
    if ftype == "integer":
        return int(v)
    if ftype == "number":
        return float(v)
    if ftype == "boolean":
        return bool(v)
    return v


def leaf(v: Any, ftype: str, op: str, value: Any, ignore_case: bool, as_of: pd.Timestamp) -> bool:
    """One attribute test on one (already typed) cell value, per the spec's null rules."""
    op = ALIASES.get(op, op)
    if op == "is_null":
        return v is None
    if op == "is_not_null":
        return v is not None
    if v is None:
        return False
    if op == "in_last":
        instant = _ts(pd.Timestamp(v)) if ftype == "date" else v
        return _minus(as_of, value["n"], value["unit"]) <= instant <= as_of
    if op in ("in", "not_in", "between"):
        target: Any = [_coerce(x, ftype) for x in value]
    else:
        target = _coerce(value, ftype)
    if ignore_case:
        v = v.lower()
        target = [x.lower() for x in target] if isinstance(target, list) else target.lower()
    return {
        "eq": lambda: v == target,
        "ne": lambda: v != target,
        "gt": lambda: v > target,
        "gte": lambda: v >= target,
        "lt": lambda: v < target,
        "lte": lambda: v <= target,
        "between": lambda: target[0] <= v <= target[1],
        "in": lambda: v in target,
        "not_in": lambda: v not in target,
        "contains": lambda: target in v,
        "not_contains": lambda: target not in v,
        "starts_with": lambda: v.startswith(target),
        "ends_with": lambda: v.endswith(target),
    }[op]()


class Oracle:
    """Evaluates raw trees over pandas data: one row per customer, activity rows per entity."""

    def __init__(
        self,
        customers: pd.DataFrame,
        types: dict[str, str],
        entities: dict[str, tuple[pd.DataFrame, dict[str, str], str]],
        segments: dict[str, set[str]],
        as_of: pd.Timestamp,
        key: str = "CustomerId",
    ):
        self.customers = customers
        self.types = {k.lower(): (k, t) for k, t in types.items()}
        self.entities = {k.lower(): v for k, v in entities.items()}
        self.segments = {k.lower(): v for k, v in segments.items()}
        self.as_of = as_of
        self.key = key
        self._rows = customers.to_dict("records")

    def members(self, tree: dict[str, Any]) -> set[str]:
        return {r[self.key] for r in self._rows if self.holds(tree, r)}

    def holds(self, node: dict[str, Any], row: dict[str, Any], entity: str | None = None) -> bool:
        if "all" in node:
            return all(self.holds(c, row, entity) for c in node["all"])
        if "any" in node:
            return any(self.holds(c, row, entity) for c in node["any"])
        if "not" in node:
            return not self.holds(node["not"], row, entity)
        if "segment" in node:
            return row[self.key] in self.segments[node["segment"].lower()]
        if "related" in node:
            return self._related(node, row)
        types = (
            self.types
            if entity is None
            else {k.lower(): (k, t) for k, t in self.entities[entity][1].items()}
        )
        name, ftype = types[node["attribute"].lower()]
        value = _cell(row[name], ftype)
        return leaf(
            value, ftype, node["op"], node.get("value"), bool(node.get("ignore_case")), self.as_of
        )

    def _related(self, node: dict[str, Any], row: dict[str, Any]) -> bool:
        name = node["related"].lower()
        frame, types, event_time = self.entities[name]
        rows = [r for r in frame.to_dict("records") if r[self.key] == row[self.key]]
        if "where" in node:
            rows = [r for r in rows if self.holds(node["where"], r, name)]
        if "within" in node:
            lo = _minus(self.as_of, node["within"]["n"], node["within"]["unit"])
            rows = [
                r
                for r in rows
                if (t := _cell(r[event_time], "timestamp")) is not None and lo <= t <= self.as_of
            ]
        having = node.get("having", {"agg": "count", "op": "gte", "value": 1})
        agg = having["agg"]
        if agg == "count":
            value: Any = len(rows)
            ftype = "integer"
        else:
            attr = next(k for k in types if k.lower() == having["attribute"].lower())
            ftype = types[attr]
            values = [c for r in rows if (c := _cell(r[attr], ftype)) is not None]
            if agg == "count_distinct":
                value, ftype = len(set(values)), "integer"
            elif agg == "sum":
                value, ftype = float(sum(values)), "number"
            elif agg == "avg":
                value, ftype = (sum(values) / len(values) if values else None), "number"
            elif agg == "min":
                value = min(values) if values else None
            else:
                value = max(values) if values else None
        return leaf(value, ftype, having["op"], having.get("value"), False, self.as_of)
