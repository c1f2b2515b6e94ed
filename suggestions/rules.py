"""A tree path as readable rules and as a condition tree of the segment language.

A path's tests on one numeric feature merge into one interval ``(low, high]``; tests on
one categorical feature merge into a set of allowed values. Nulls are a value of their
own while mining (a sentinel below the minimum for numbers, a ``(missing)`` label for
categories); when a rule keeps them it says so with ``is_null`` so that, under the
segment language's rule that every other leaf is false on null, the rule's members are
exactly the tree node's members.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

__all__ = [
    "MISSING",
    "CategoricalRule",
    "NumericRule",
    "Rule",
    "definition_json",
    "definition_to_column",
    "format_number",
    "roundest_between",
    "rules_definition",
    "rules_text",
]

MISSING = "(missing)"


def format_number(x: float) -> str:
    """``97000`` -> ``97k``, ``1500000`` -> ``1.5M``, ``1234.5`` -> ``1,234.5``."""
    if x == int(x):
        ax = abs(x)
        for div, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
            tenths = x / div * 10
            if ax >= div and ax >= 10_000 and abs(tenths - round(tenths)) < 1e-9:
                return f"{x / div:g}{suffix}"
        return f"{int(x):,}"
    return f"{x:,.6g}" if abs(x) < 1e6 else f"{x:,.2f}"


def roundest_between(low: float, high: float) -> float:
    """The roundest number r with ``low <= r < high`` (few significant digits, ties to low).

    ``x <= r`` then splits the data exactly as the tree's threshold did, given that
    ``low`` is the largest value at or below the threshold and ``high`` the smallest above.
    """
    if not high > low:
        return low
    span = max(abs(low), abs(high), high - low)
    top = math.floor(math.log10(span)) + 1
    for k in range(top, -13, -1):
        for m in (5, 2, 1):
            step = m * 10.0**k
            r = math.ceil(low / step) * step
            r = round(r, max(0, -k) + 1)
            if low <= r < high:
                return float(r)
    return low


@dataclass(frozen=True)
class NumericRule:
    """``low < field <= high`` on the non-null values (None = unbounded), and whether nulls belong.

    ``high_open`` makes the upper bound strict (``field < high``): refinement snaps bounds
    to round numbers, and ``Income < 44k`` reads better than ``Income ≤ 43,999``.
    """

    field: str
    low: float | None
    high: float | None
    nulls: bool = False
    empty: bool = False  # no non-null value qualifies (only nulls do)
    high_open: bool = False

    def leaves(self) -> dict[str, Any] | None:
        parts: list[dict[str, Any]] = []
        if not self.empty:
            if self.low is not None:
                parts.append({"attribute": self.field, "op": "gt", "value": _num(self.low)})
            if self.high is not None:
                op = "lt" if self.high_open else "lte"
                parts.append({"attribute": self.field, "op": op, "value": _num(self.high)})
        if self.empty:
            value: dict[str, Any] | None = None
        elif not parts:
            value = None if self.nulls else {"attribute": self.field, "op": "is_not_null"}
        else:
            value = parts[0] if len(parts) == 1 else {"all": parts}
        if self.nulls:
            missing = {"attribute": self.field, "op": "is_null"}
            return missing if value is None else {"any": [value, missing]}
        return value

    def text(self) -> str:
        f = self.field
        le = "<" if self.high_open else "≤"
        if self.empty:
            core = ""
        elif self.low is not None and self.high is not None:
            core = f"{format_number(self.low)} < {f} {le} {format_number(self.high)}"
        elif self.low is not None:
            core = f"{f} > {format_number(self.low)}"
        elif self.high is not None:
            core = f"{f} {le} {format_number(self.high)}"
        else:
            core = "" if self.nulls else f"{f} is known"
        if self.nulls:
            return f"{core} or {f} is missing" if core else f"{f} is missing"
        return core


@dataclass(frozen=True)
class CategoricalRule:
    """``field`` is one of ``allowed`` (labels; ``MISSING`` stands for null) out of ``labels``."""

    field: str
    allowed: tuple[str, ...]
    labels: tuple[str, ...]
    boolean: bool = False

    def _value(self, label: str) -> Any:
        return label == "true" if self.boolean else label

    def _split(self) -> tuple[list[str], list[str], bool]:
        nulls = MISSING in self.allowed
        allowed = [v for v in self.labels if v in self.allowed and v != MISSING]
        excluded = [v for v in self.labels if v not in self.allowed and v != MISSING]
        return allowed, excluded, nulls

    def leaves(self) -> dict[str, Any] | None:
        allowed, excluded, nulls = self._split()
        value: dict[str, Any] | None
        if not allowed:
            value = None
        elif not excluded:
            value = None if nulls else {"attribute": self.field, "op": "is_not_null"}
        elif len(allowed) == 1:
            value = {"attribute": self.field, "op": "eq", "value": self._value(allowed[0])}
        elif len(excluded) == 1 and not self.boolean:
            value = {"attribute": self.field, "op": "ne", "value": self._value(excluded[0])}
        elif len(excluded) < len(allowed):
            value = {
                "attribute": self.field,
                "op": "not_in",
                "value": [self._value(v) for v in excluded],
            }
        else:
            value = {
                "attribute": self.field,
                "op": "in",
                "value": [self._value(v) for v in allowed],
            }
        if nulls:
            missing = {"attribute": self.field, "op": "is_null"}
            return missing if value is None else {"any": [value, missing]}
        return value

    def text(self) -> str:
        allowed, excluded, nulls = self._split()
        f = self.field
        if not allowed:
            core = ""
        elif not excluded:
            core = "" if nulls else f"{f} is known"
        elif len(allowed) == 1:
            core = f"{f} is {allowed[0]}"
        elif len(excluded) < len(allowed):
            core = f"{f} is not {' or '.join(excluded)}"
        else:
            core = f"{f} is {' or '.join(allowed)}"
        if nulls:
            return f"{core} or {f} is missing" if core else f"{f} is missing"
        return core


Rule = NumericRule | CategoricalRule


def _num(x: float) -> int | float:
    return int(x) if x == int(x) and abs(x) < 2**53 else x


def rules_definition(rules: Sequence[Rule]) -> dict[str, Any]:
    """The rules as a segment-language condition tree (``all`` of one node per field)."""
    nodes: list[dict[str, Any]] = []
    for node in (r.leaves() for r in rules):
        if node is not None:
            nodes += node.get("all", [node])
    if len(nodes) == 1:
        return nodes[0]
    return {"all": nodes}


def rules_text(rules: Sequence[Rule]) -> str:
    """``Income > 97k and LoyaltyTier is high``."""
    return " and ".join(t for t in (r.text() for r in rules) if t)


def definition_json(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=False, separators=(", ", ": "))


def definition_to_column(node: dict[str, Any], types: dict[str, str]) -> Column:
    """Compile a condition tree of the kinds this package emits, with the language's null rule.

    Every leaf but ``is_null`` is false on null (``coalesce(test, false)``), so ``not`` and
    ``any`` see plain true/false. ``types`` maps each field to its catalog type.
    """
    if "all" in node:
        return reduce(lambda a, b: a & b, [definition_to_column(n, types) for n in node["all"]])
    if "any" in node:
        return reduce(lambda a, b: a | b, [definition_to_column(n, types) for n in node["any"]])
    if "not" in node:
        return ~definition_to_column(node["not"], types)
    col = F.col(node["attribute"])
    op = node["op"]
    if op == "is_null":
        return col.isNull()
    if op == "is_not_null":
        return col.isNotNull()
    kind = types.get(node["attribute"], "number")
    value = node["value"]

    def lit(v: Any) -> Column:
        if kind in ("number", "integer"):
            return F.lit(float(v))
        if kind == "boolean":
            return F.lit(bool(v))
        return F.lit(str(v))

    c = col.cast("double") if kind in ("number", "integer") else col
    tests = {
        "eq": lambda: c == lit(value),
        "ne": lambda: c != lit(value),
        "gt": lambda: c > lit(value),
        "gte": lambda: c >= lit(value),
        "lt": lambda: c < lit(value),
        "lte": lambda: c <= lit(value),
        "in": lambda: c.isin(*[lit(v) for v in value]),
        "not_in": lambda: ~c.isin(*[lit(v) for v in value]),
    }
    if op not in tests:
        raise ValueError(f"operator {op!r} is not emitted by suggestions")
    return F.coalesce(tests[op](), F.lit(False))
