"""Differential test: hypothesis-generated rule trees, Spark vs the independent oracle."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from cohortlake.catalog import load_catalog
from cohortlake.lake import Lake
from segmentation.compile import CustomerFrame
from segmentation.validate import parse_definitions

from segment_oracle import Oracle

AS_OF = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)
N_CUSTOMERS = 70

CATALOG = """
profile:
  entity: Customer
  key: CustomerId
  attributes:
    Name: {type: string, display: Full Name}
    City: {type: string}
    Score: {type: number, display: "Score (%)"}
    Visits: {type: integer}
    Born: {type: date}
    LastSeen: {type: timestamp}
    Active: {type: boolean}
activities:
  Events:
    event_time: At
    attributes:
      At: {type: timestamp}
      Kind: {type: string}
      Amount: {type: number}
      Qty: {type: integer}
      Day: {type: date}
measures:
  TotalAmount: {source: Events, agg: sum, attribute: Amount}
"""

STRINGS = ["alpha", "Alpha", "ALPHA", "beta", "Beta-x", "gamma", "=sum", "a b", "zeta", ""]
CITIES = ["Paris", "paris", "Oslo", "Lima", "Rome", "Porto"]
SCORES = [-5.0, 0.0, 1.5, 2.0, 10.0, 99.5]
VISITS = [0, 1, 2, 3, 5, 8]
DATES = [
    dt.date(1980, 1, 1),
    dt.date(1996, 12, 31),
    dt.date(2024, 2, 29),
    dt.date(2026, 1, 31),
    dt.date(2026, 3, 1),
    dt.date(2026, 3, 31),
]
STAMPS = [
    dt.datetime(2025, 3, 31, 12, 0),
    dt.datetime(2025, 12, 31, 23, 59),
    dt.datetime(2026, 2, 28, 12, 0),
    dt.datetime(2026, 3, 24, 12, 0),
    dt.datetime(2026, 3, 31, 8, 0),
    dt.datetime(2026, 3, 31, 12, 0),
]
KINDS = ["a", "b", "B", "c"]
AMOUNTS = [1.0, 2.5, 4.0, 10.0, 25.0]
QTYS = [1, 2, 3, 7]


def _pick(rng: np.random.Generator, pool: list[Any], null: float = 0.15) -> Any:
    return None if rng.random() < null else pool[int(rng.integers(len(pool)))]


def _data() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, set[str]]]:
    rng = np.random.default_rng(7)
    customers = pd.DataFrame(
        {
            "CustomerId": [f"c{i:03d}" for i in range(N_CUSTOMERS)],
            "Name": [_pick(rng, STRINGS) for _ in range(N_CUSTOMERS)],
            "City": [_pick(rng, CITIES) for _ in range(N_CUSTOMERS)],
            "Score": [_pick(rng, SCORES) for _ in range(N_CUSTOMERS)],
            "Visits": [_pick(rng, VISITS) for _ in range(N_CUSTOMERS)],
            "Born": [_pick(rng, DATES) for _ in range(N_CUSTOMERS)],
            "LastSeen": [_pick(rng, STAMPS) for _ in range(N_CUSTOMERS)],
            "Active": [_pick(rng, [True, False]) for _ in range(N_CUSTOMERS)],
        },
        dtype=object,
    )
    n_events = 260
    events = pd.DataFrame(
        {
            "CustomerId": [f"c{int(rng.integers(N_CUSTOMERS - 12)):03d}" for _ in range(n_events)],
            "At": [_pick(rng, STAMPS, 0.05) for _ in range(n_events)],
            "Kind": [_pick(rng, KINDS) for _ in range(n_events)],
            "Amount": [_pick(rng, AMOUNTS) for _ in range(n_events)],
            "Qty": [_pick(rng, QTYS) for _ in range(n_events)],
            "Day": [_pick(rng, DATES) for _ in range(n_events)],
        },
        dtype=object,
    )
    ids = list(customers["CustomerId"])
    segments = {"Gold": set(ids[::3]), "Empty": set()}
    return customers, events, segments


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    (root / "catalog.yaml").write_text(CATALOG)
    catalog = load_catalog(root / "catalog.yaml")
    customers, events, segments = _data()
    lake = Lake(spark, str(root / "lake"))
    cschema = T.StructType(
        [
            T.StructField("CustomerId", T.StringType()),
            T.StructField("Name", T.StringType()),
            T.StructField("City", T.StringType()),
            T.StructField("Score", T.DoubleType()),
            T.StructField("Visits", T.IntegerType()),
            T.StructField("Born", T.DateType()),
            T.StructField("LastSeen", T.TimestampType()),
            T.StructField("Active", T.BooleanType()),
        ]
    )
    rows = [
        tuple(None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in r)
        for r in customers.astype(object).itertuples(index=False)
    ]
    rows = [
        tuple(v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v for v in r)
        for r in rows
    ]
    lake.overwrite(spark.createDataFrame(rows, cschema), lake.profile_path("Customer"))
    eschema = T.StructType(
        [
            T.StructField("CustomerId", T.StringType()),
            T.StructField("At", T.TimestampType()),
            T.StructField("Kind", T.StringType()),
            T.StructField("Amount", T.DoubleType()),
            T.StructField("Qty", T.IntegerType()),
            T.StructField("Day", T.DateType()),
        ]
    )
    erows = [
        tuple(
            v.replace(tzinfo=dt.UTC)
            if isinstance(v, dt.datetime)
            else (None if isinstance(v, float) and np.isnan(v) else v)
            for v in r
        )
        for r in events.astype(object).itertuples(index=False)
    ]
    lake.overwrite(spark.createDataFrame(erows, eschema), lake.activity_path("Events"))
    # The measure is computed here with pandas: sum of Amount, 0 without events.
    total: dict[str, float] = {}
    for cid, amount in zip(events["CustomerId"], events["Amount"], strict=True):
        total[cid] = total.get(cid, 0.0) + (amount or 0.0)
    customers["TotalAmount"] = [total.get(c, 0.0) for c in customers["CustomerId"]]
    lake.overwrite(
        spark.createDataFrame(
            [
                (c, float(t))
                for c, t in zip(customers["CustomerId"], customers["TotalAmount"], strict=True)
            ],
            "CustomerId string, TotalAmount double",
        ),
        lake.measures_path(),
    )
    for name, members in segments.items():
        df = spark.createDataFrame([(m,) for m in sorted(members)], "CustomerId string")
        lake.overwrite(df, lake.segment_path(name))
    types = {"Name": "string", "City": "string", "Score": "number", "Visits": "integer", "Born": "date",
             "LastSeen": "timestamp", "Active": "boolean", "TotalAmount": "number"}  # fmt: skip
    etypes = {
        "At": "timestamp",
        "Kind": "string",
        "Amount": "number",
        "Qty": "integer",
        "Day": "date",
        "CustomerId": "string",
    }
    oracle = Oracle(
        customers, types, {"Events": (events, etypes, "At")}, segments, pd.Timestamp(AS_OF)
    )
    oracle.types.update({"full name": ("Name", "string"), "score (%)": ("Score", "number")})
    return catalog, lake, oracle


# -- strategies ----------------------------------------------------------------------------
def _iso(d: Any) -> str:
    return d.isoformat()


STAMP_TEXT = [
    "2026-03-24T12:00:00",
    "2026-03-31T10:00:00+02:00",
    "2025-12-31T23:59:00Z",
    "2026-02-28T12:00:00",
    "2026-03-31",
]
WINDOW = st.fixed_dictionaries(
    {"n": st.integers(0, 14), "unit": st.sampled_from(["days", "weeks", "months", "years"])}
)


def _scalar_for(ftype: str, pool: list[Any]) -> st.SearchStrategy[Any]:
    if ftype == "date":
        return st.sampled_from([_iso(d) for d in pool] + ["2000-06-15"])
    if ftype == "timestamp":
        return st.sampled_from(STAMP_TEXT)
    if ftype == "boolean":
        return st.booleans()
    if ftype == "number":
        return st.sampled_from([*pool, 3.25, -1.0])
    if ftype == "integer":
        return st.sampled_from([*pool, 4])
    return st.sampled_from([*pool, "al", "ALP", "x"])


OPS = {
    "string": ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "is_null", "is_not_null"],
    "number": ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null", "is_not_null"],
    "integer": ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null", "is_not_null"],
    "date": ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null", "is_not_null", "in_last", "on_or_after", "on_or_before", "after", "before"],
    "timestamp": ["eq", "ne", "gt", "gte", "lt", "lte", "between", "is_null", "is_not_null", "in_last", "after", "before"],
    "boolean": ["eq", "ne", "in", "not_in", "is_null", "is_not_null"],
}  # fmt: skip


@st.composite
def attribute_leaf(draw: st.DrawFn, fields: dict[str, tuple[str, list[Any]]]) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(fields)))
    ftype, pool = fields[name]
    op = draw(st.sampled_from(OPS[ftype]))
    leaf: dict[str, Any] = {
        "attribute": draw(st.sampled_from([name, name.lower(), name.upper()])),
        "op": op,
    }
    if op in ("is_null", "is_not_null"):
        pass
    elif op == "in_last":
        leaf["value"] = draw(WINDOW)
    elif op == "between":
        a, b = draw(_scalar_for(ftype, pool)), draw(_scalar_for(ftype, pool))
        if ftype == "timestamp":
            a, b = sorted(
                [a, b],
                key=lambda s: (
                    pd.Timestamp(s).tz_localize("UTC")
                    if pd.Timestamp(s).tzinfo is None
                    else pd.Timestamp(s)
                ),
            )
        else:
            a, b = sorted([a, b])
        leaf["value"] = [a, b]
    elif op in ("in", "not_in"):
        leaf["value"] = draw(st.lists(_scalar_for(ftype, pool), min_size=1, max_size=3))
    else:
        leaf["value"] = draw(_scalar_for(ftype, pool))
    if ftype == "string" and op not in ("is_null", "is_not_null") and draw(st.booleans()):
        leaf["ignore_case"] = True
    return leaf


PROFILE_FIELDS = {
    "Name": ("string", STRINGS),
    "Full Name": ("string", STRINGS),
    "City": ("string", CITIES),
    "Score": ("number", SCORES),
    "Score (%)": ("number", SCORES),
    "Visits": ("integer", VISITS),
    "Born": ("date", DATES),
    "LastSeen": ("timestamp", STAMPS),
    "Active": ("boolean", []),
    "TotalAmount": ("number", [0.0, 10.0, 25.0, 40.0]),
}
EVENT_FIELDS = {
    "Kind": ("string", KINDS),
    "Amount": ("number", AMOUNTS),
    "Qty": ("integer", QTYS),
    "Day": ("date", DATES),
    "At": ("timestamp", STAMPS),
}


@st.composite
def related_leaf(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {"related": draw(st.sampled_from(["Events", "events"]))}
    if draw(st.booleans()):
        node["where"] = draw(
            st.one_of(
                attribute_leaf(EVENT_FIELDS),
                st.fixed_dictionaries({"not": attribute_leaf(EVENT_FIELDS)}),
            )
        )
    if draw(st.booleans()):
        node["within"] = draw(WINDOW)
    agg = draw(st.sampled_from(["count", "sum", "avg", "min", "max", "count_distinct", None]))
    if agg is None:
        return node
    if agg == "count":
        node["having"] = {
            "agg": "count",
            "op": draw(st.sampled_from(["eq", "gte", "lt", "ne"])),
            "value": draw(st.integers(0, 4)),
        }
    elif agg == "count_distinct":
        attr = draw(st.sampled_from(["Kind", "Qty", "Day"]))
        node["having"] = {
            "agg": agg,
            "attribute": attr,
            "op": draw(st.sampled_from(["eq", "gte", "lte"])),
            "value": draw(st.integers(0, 3)),
        }
    elif agg in ("sum", "avg"):
        attr = draw(st.sampled_from(["Amount", "Qty"]))
        node["having"] = {"agg": agg, "attribute": attr, "op": draw(st.sampled_from(["gt", "lte", "between", "eq"])),
                          "value": draw(st.sampled_from([0, 2.5, 10, 30]))}  # fmt: skip
        if node["having"]["op"] == "between":
            node["having"]["value"] = sorted(
                [draw(st.sampled_from([0, 2.5, 10])), draw(st.sampled_from([4, 25, 50]))]
            )
    else:
        attr = draw(st.sampled_from(["Amount", "Kind", "Day"]))
        ftype, pool = EVENT_FIELDS[attr]
        op = draw(st.sampled_from(["eq", "gt", "lte", "ne"]))
        node["having"] = {
            "agg": agg,
            "attribute": attr,
            "op": op,
            "value": draw(_scalar_for(ftype, pool)),
        }
    return node


SEGMENT_LEAF = st.fixed_dictionaries({"segment": st.sampled_from(["Gold", "gold", "Empty"])})
LEAF = st.one_of(
    attribute_leaf(PROFILE_FIELDS), attribute_leaf(PROFILE_FIELDS), related_leaf(), SEGMENT_LEAF
)
TREE = st.recursive(
    LEAF,
    lambda children: st.one_of(
        st.fixed_dictionaries({"all": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"not": children}),
    ),
    max_leaves=6,
)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(trees=st.lists(TREE, min_size=8, max_size=8))
def test_spark_equals_oracle(world, trees: list[dict[str, Any]]) -> None:
    catalog, lake, oracle = world
    raw = [("gen.yaml", {"name": f"Generated {i}", "where": t}) for i, t in enumerate(trees)]
    defs = parse_definitions(raw, catalog, {"gold": "Gold", "empty": "Empty"})
    frame = CustomerFrame(catalog, AS_OF)
    cols = [frame.condition(d.where).alias(f"m{i}") for i, d in enumerate(defs)]
    base = frame.build(lake)
    rows = base.select("CustomerId", *cols).collect()
    by_output = {d.output: i for i, d in enumerate(defs)}
    for i, tree in enumerate(trees):
        j = by_output[f"Generated{i}"]
        got = {r["CustomerId"] for r in rows if r[f"m{j}"]}
        assert all(r[f"m{j}"] is not None for r in rows), "membership must never be null"
        assert got == oracle.members(tree), f"tree {tree}"


def test_oracle_sees_every_construct(world) -> None:
    """Sanity of the oracle itself on hand-counted cases, so the differential test is not vacuous."""
    _, _, oracle = world
    customers = oracle.customers
    ca = set(customers.loc[customers["City"] == "Paris", "CustomerId"])
    assert oracle.members({"attribute": "City", "op": "eq", "value": "Paris"}) == ca
    not_paris = set(customers["CustomerId"]) - ca
    assert oracle.members({"not": {"attribute": "City", "op": "eq", "value": "Paris"}}) == not_paris
    ne = set(
        customers.loc[customers["City"].notna() & (customers["City"] != "Paris"), "CustomerId"]
    )
    assert oracle.members({"attribute": "City", "op": "ne", "value": "Paris"}) == ne
    assert len(ne) < len(not_paris)  # nulls make the difference
    events = oracle.entities["events"][0]
    with_events = set(events["CustomerId"])
    assert oracle.members({"related": "Events"}) == with_events
    assert (
        oracle.members({"related": "Events", "having": {"agg": "count", "op": "eq", "value": 0}})
        == set(customers["CustomerId"]) - with_events
    )


def test_in_last_months_clamps_to_month_end(spark) -> None:
    from segmentation.compile import window_start
    from segmentation.model import Window

    as_of = dt.datetime(2024, 3, 31, 9, 30, tzinfo=dt.UTC)
    assert window_start(as_of, Window(1, "months")) == dt.datetime(
        2024, 2, 29, 9, 30, tzinfo=dt.UTC
    )
    assert window_start(as_of, Window(1, "years")) == dt.datetime(2023, 3, 31, 9, 30, tzinfo=dt.UTC)
    assert window_start(dt.datetime(2024, 2, 29, tzinfo=dt.UTC), Window(1, "years")) == dt.datetime(
        2023, 2, 28, tzinfo=dt.UTC
    )
    assert window_start(as_of, Window(2, "weeks")) == dt.datetime(2024, 3, 17, 9, 30, tzinfo=dt.UTC)


def test_offsets_are_honoured(world, spark) -> None:
    """``2026-03-31T10:00:00+02:00`` is 08:00 UTC: equal to a stored 08:00 UTC timestamp."""
    catalog, lake, oracle = world
    tree = {"attribute": "LastSeen", "op": "eq", "value": "2026-03-31T10:00:00+02:00"}
    (d,) = parse_definitions([("t.yaml", {"name": "Offset", "where": tree})], catalog)
    frame = CustomerFrame(catalog, AS_OF)
    col = frame.condition(d.where)
    got = {r[0] for r in frame.build(lake).filter(col).select("CustomerId").collect()}
    expected = set(
        oracle.customers.loc[
            oracle.customers["LastSeen"] == pd.Timestamp("2026-03-31 08:00"), "CustomerId"
        ]
    )
    assert expected and got == expected
