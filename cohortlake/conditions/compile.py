"""Compilation of the condition language to Spark Columns: leaf tests, entity conditions,
relative-date windows and the aggregations of related leaves and measures.

Every leaf is null-safe (``coalesce(test, false)``) and values reach Spark only as
literals, never as SQL text.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from cohortlake.conditions.model import All, AnyOf, AttributeLeaf, Node, Not, Window

__all__ = ["aggregate", "compile_entity_condition", "fold", "leaf_test", "window_start"]


def window_start(as_of: dt.datetime, window: Window) -> dt.datetime:
    """``as_of`` minus ``n`` units: days are 24 h, weeks 7 days, months and years calendar
    steps with the day clamped to the month's end (2024-03-31 minus 1 month is 2024-02-29).
    A start before year 1 is year 1."""
    if window.unit in ("days", "weeks"):
        try:
            return as_of - dt.timedelta(**{window.unit: window.n})
        except OverflowError:
            return dt.datetime(1, 1, 1, tzinfo=as_of.tzinfo)
    months = window.n * (12 if window.unit == "years" else 1)
    total = as_of.year * 12 + (as_of.month - 1) - months
    year, month0 = divmod(total, 12)
    if year < 1:
        return dt.datetime(1, 1, 1, tzinfo=as_of.tzinfo)
    day = min(as_of.day, calendar.monthrange(year, month0 + 1)[1])
    return as_of.replace(year=year, month=month0 + 1, day=day)


def _lit(value: Any) -> Column:
    return F.lit(value)


def leaf_test(column: Column, leaf: AttributeLeaf, as_of: dt.datetime) -> Column:
    """The leaf's test on ``column``; null-safe (false on null) except for is_null."""
    op, value = leaf.op, leaf.value
    if op == "is_null":
        return column.isNull()
    if op == "is_not_null":
        return column.isNotNull()
    c = column
    if leaf.ignore_case:
        c = F.lower(c)

    def v(x: Any) -> Column:
        return F.lower(_lit(x)) if leaf.ignore_case else _lit(x)

    if op == "eq":
        test = c == v(value)
    elif op == "ne":
        test = c != v(value)
    elif op == "gt":
        test = c > v(value)
    elif op == "gte":
        test = c >= v(value)
    elif op == "lt":
        test = c < v(value)
    elif op == "lte":
        test = c <= v(value)
    elif op == "between":
        test = (c >= v(value[0])) & (c <= v(value[1]))
    elif op in ("in", "not_in"):
        test = c.isin([v(x) for x in value])
        if op == "not_in":
            test = ~test
    elif op == "contains":
        test = c.contains(v(value))
    elif op == "not_contains":
        test = ~c.contains(v(value))
    elif op == "starts_with":
        test = c.startswith(v(value))
    elif op == "ends_with":
        test = c.endswith(v(value))
    elif op == "in_last":
        instant = c.cast("timestamp") if leaf.type == "date" else c
        test = (instant >= _lit(window_start(as_of, value))) & (instant <= _lit(as_of))
    else:  # pragma: no cover - validation rejects unknown operators
        raise ValueError(f"unknown operator {op}")
    return F.coalesce(test, F.lit(False))


def compile_entity_condition(node: Node, as_of: dt.datetime) -> Column:
    """A condition over one entity's own columns (related leaves' ``where``, measure filters)."""
    match node:
        case All(children):
            return fold([compile_entity_condition(c, as_of) for c in children], "and")
        case AnyOf(children):
            return fold([compile_entity_condition(c, as_of) for c in children], "or")
        case Not(child):
            return ~compile_entity_condition(child, as_of)
        case AttributeLeaf():
            return leaf_test(F.col(node.column), node, as_of)
    raise ValueError(f"{type(node).__name__} is not allowed in an entity condition")


def fold(cols: list[Column], how: str) -> Column:
    out = cols[0]
    for c in cols[1:]:
        out = (out & c) if how == "and" else (out | c)
    return out


def _distinct_count(value: Column) -> Column:
    """``count(DISTINCT value)`` as the size of the per-customer set of values.

    Spark plans ``count_distinct`` next to other aggregates by grouping on (customer,
    value) first, so every measure's buffers travel through a shuffle of about one row
    per customer and distinct value. The set keeps the aggregation one ``groupBy``:
    with the 10-measure CDP catalog at 1M customers (``benchmarks/bench_measures.py``'s
    set) the one pass took 15.4-20.2 s instead of 22.1-23.4 s, three runs each in turns,
    with equal values. Nulls are left out of the set, as ``count_distinct`` leaves them out.
    """
    return F.size(F.collect_set(value)).cast("long")


def aggregate(agg: str, value: Column) -> Column:
    """The catalog's and the segment language's aggregations (``count`` … ``max``) of ``value``.

    Measures and related-entity conditions share it, so ``count_distinct`` costs one
    ``groupBy`` in both (``_distinct_count``).
    """
    return {
        "count": F.count,
        "count_distinct": _distinct_count,
        "sum": F.sum,
        "avg": F.avg,
        "min": F.min,
        "max": F.max,
    }[agg](value)
