"""Measures over two activity tables, every aggregation, against hand-counted expectations.

The measures job groups every activity table in one aggregation and joins the profile's keys;
these cases pin what that must mean: every profile customer gets exactly one row, activity
of customers missing from the profile is ignored, counts and sums are 0 without activity
and the rest null, ``where`` filters apply per measure, and ``count_distinct`` ignores nulls.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml
from pyspark.sql import SparkSession

from cohortlake.catalog import load_catalog
from cohortlake.lake import Lake
from cohortlake.measures import activity_measures, compute_measures

CATALOG = {
    "profile": {"entity": "Customer", "key": "CustomerId", "attributes": {"State": {"type": "string"}}},
    "activities": {
        "Purchases": {
            "event_time": "At",
            "attributes": {
                "At": {"type": "timestamp"},
                "Channel": {"type": "string"},
                "Product": {"type": "string"},
                "Amount": {"type": "number"},
            },
        },
        "Visits": {
            "event_time": "At",
            "attributes": {"At": {"type": "timestamp"}, "Page": {"type": "string"}},
        },
    },
    "measures": {
        "Spend": {"source": "Purchases", "agg": "sum", "attribute": "Amount"},
        "WebSpend": {"source": "Purchases", "agg": "sum", "attribute": "Amount",
                     "where": {"attribute": "Channel", "op": "eq", "value": "web"}},
        "Orders": {"source": "Purchases", "agg": "count"},
        "StoreOrders": {"source": "Purchases", "agg": "count",
                        "where": {"attribute": "Channel", "op": "eq", "value": "store"}},
        "AverageOrder": {"source": "Purchases", "agg": "avg", "attribute": "Amount"},
        "Largest": {"source": "Purchases", "agg": "max", "attribute": "Amount"},
        "Smallest": {"source": "Purchases", "agg": "min", "attribute": "Amount"},
        "Products": {"source": "Purchases", "agg": "count_distinct", "attribute": "Product"},
        "WebProducts": {"source": "Purchases", "agg": "count_distinct", "attribute": "Product",
                        "where": {"attribute": "Channel", "op": "eq", "value": "web"}},
        "Visits": {"source": "Visits", "agg": "count"},
        "PagesSeen": {"source": "Visits", "agg": "count_distinct", "attribute": "Page"},
    },
}  # fmt: skip

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)

# a: web and store buyer with a null product; b: one store purchase, no visits;
# c: visits only; d: nothing at all; z: activity but not in the profile (ignored).
PURCHASES = [
    ("a", T0, "web", "latte", 4.0),
    ("a", T0, "web", "latte", 6.0),
    ("a", T0, "store", "mocha", 10.0),
    ("a", T0, "web", None, 2.0),
    ("b", T0, "store", "tea", 3.5),
    ("z", T0, "web", "latte", 100.0),
]
VISITS = [
    ("a", T0, "home"),
    ("a", T0, "home"),
    ("c", T0, "menu"),
    ("c", T0, "home"),
    ("z", T0, "x"),
]

# Counted by hand from the rows above.
EXPECTED = pd.DataFrame(
    {
        "Spend": [22.0, 3.5, 0.0, 0.0],
        "WebSpend": [12.0, 0.0, 0.0, 0.0],
        "Orders": [4, 1, 0, 0],
        "StoreOrders": [1, 1, 0, 0],
        "AverageOrder": [5.5, 3.5, None, None],
        "Largest": [10.0, 3.5, None, None],
        "Smallest": [2.0, 3.5, None, None],
        "Products": [2, 1, 0, 0],
        "WebProducts": [1, 0, 0, 0],
        "Visits": [2, 0, 2, 0],
        "PagesSeen": [1, 0, 2, 0],
    },
    index=pd.Index(["a", "b", "c", "d"], name="CustomerId"),
)


def test_every_aggregation_over_two_activities_matches_hand_counts(
    spark: SparkSession, tmp_path: Path
) -> None:
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(CATALOG, sort_keys=False))
    catalog = load_catalog(tmp_path / "catalog.yaml")
    lake = Lake(spark, str(tmp_path / "lake"))
    profile = spark.createDataFrame([(k, "CA") for k in "abcd"], "CustomerId string, State string")
    profile.write.format("delta").save(lake.profile_path("Customer"))
    spark.createDataFrame(
        PURCHASES, "CustomerId string, At timestamp, Channel string, Product string, Amount double"
    ).write.format("delta").save(lake.activity_path("Purchases"))
    spark.createDataFrame(VISITS, "CustomerId string, At timestamp, Page string").write.format(
        "delta"
    ).save(lake.activity_path("Visits"))

    compute_measures(spark, lake, catalog, T0)

    got = lake.read(lake.measures_path()).toPandas().set_index("CustomerId").sort_index()
    assert list(got.columns) == list(CATALOG["measures"])  # declared order
    assert list(got.index) == ["a", "b", "c", "d"]  # one row per profile customer, z left out
    pd.testing.assert_frame_equal(
        got, EXPECTED.astype(got.dtypes.to_dict()), check_dtype=False, rtol=1e-12
    )
    types = dict(lake.read(lake.measures_path()).dtypes)
    assert types["Orders"] == types["Products"] == "bigint"

    # Before the profile join: customers with any activity (z too), counts 0 and other
    # aggregates null where only the other table has rows.
    alone = activity_measures(lake, catalog, T0)
    assert alone is not None
    part = alone.select("CustomerId", "Spend", "Orders", "AverageOrder", "Visits").collect()
    assert {r[0]: tuple(r[1:]) for r in part} == {  # Spend, Orders, AverageOrder, Visits
        "a": (22.0, 4, 5.5, 2),
        "b": (3.5, 1, 3.5, 0),
        "c": (None, 0, None, 2),
        "z": (100.0, 1, 100.0, 1),
    }
