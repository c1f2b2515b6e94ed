"""``cohortlake measures --incremental``: only the customers whose inputs changed are
recomputed, in one MERGE, and the table equals a full computation (#37).

Five customers, purchases with a relative measure (orders in the last 7 days). Between
two computations some purchases are appended and deleted, one customer leaves the
profile and one joins, and the as-of moves 3 days so a purchase leaves the window. The
expected measures are computed with pandas from the final data.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cohortlake.catalog import load_catalog
from cohortlake.lake import Lake
from cohortlake.measures import compute_measures

CATALOG = {
    "profile": {"entity": "Customer", "key": "CustomerId", "attributes": {"State": {"type": "string"}}},
    "activities": {
        "Purchases": {
            "event_time": "At",
            "attributes": {"At": {"type": "timestamp"}, "Amount": {"type": "number"}},
        },
    },
    "measures": {
        "Spend": {"source": "Purchases", "agg": "sum", "attribute": "Amount"},
        "Orders": {"source": "Purchases", "agg": "count"},
        "Largest": {"source": "Purchases", "agg": "max", "attribute": "Amount"},
        "RecentOrders": {"source": "Purchases", "agg": "count",
                         "where": {"attribute": "At", "op": "in_last", "value": {"n": 7, "unit": "days"}}},
    },
}  # fmt: skip

A0 = dt.datetime(2026, 5, 10, tzinfo=dt.UTC)
A1 = A0 + dt.timedelta(days=3)
PROFILE = ["a", "b", "c", "d", "x"]
PURCHASES = [
    ("a", dt.datetime(2026, 5, 9, tzinfo=dt.UTC), 5.0),
    ("a", dt.datetime(2026, 4, 1, tzinfo=dt.UTC), 7.0),
    ("b", dt.datetime(2026, 5, 4, tzinfo=dt.UTC), 3.0),  # in A0's 7 days, not in A1's
    ("c", dt.datetime(2026, 5, 8, tzinfo=dt.UTC), 2.0),
    ("d", dt.datetime(2026, 3, 1, tzinfo=dt.UTC), 9.0),
    ("x", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 1.0),
]


def _expected(profile: list[str], purchases: list[tuple[str, dt.datetime, float]]) -> pd.DataFrame:
    rows = pd.DataFrame(purchases, columns=["CustomerId", "At", "Amount"])
    recent = (rows["At"] >= A1 - dt.timedelta(days=7)) & (rows["At"] <= A1)
    out = []
    for c in sorted(profile):
        mine = rows[rows["CustomerId"] == c]
        out.append(
            {
                "CustomerId": c,
                "Spend": float(mine["Amount"].sum()),
                "Orders": len(mine),
                "Largest": float(mine["Amount"].max()) if len(mine) else None,
                "RecentOrders": int(recent[rows["CustomerId"] == c].sum()),
            }
        )
    return pd.DataFrame(out)


def _write(spark: SparkSession, rows: list[tuple[object, ...]], schema: str, path: str) -> None:
    frame = spark.createDataFrame(rows, schema)
    frame.write.format("delta").option("delta.enableChangeDataFeed", "true").save(path)


@pytest.fixture
def lake(spark: SparkSession, tmp_path: Path) -> tuple[Lake, Path]:
    conf = tmp_path / "catalog.yaml"
    conf.write_text(yaml.safe_dump(CATALOG))
    lake = Lake(spark, str(tmp_path / "lake"))
    _write(spark, [(c, "CA") for c in PROFILE], "CustomerId string, State string",
           lake.profile_path("Customer"))  # fmt: skip
    _write(spark, PURCHASES, "CustomerId string, At timestamp, Amount double",
           lake.activity_path("Purchases"))  # fmt: skip
    return lake, conf


def test_incremental_measures_equal_a_full_computation(
    spark: SparkSession, lake: tuple[Lake, Path], caplog: pytest.LogCaptureFixture
) -> None:
    lk, conf = lake
    catalog = load_catalog(conf)
    first = compute_measures(spark, lk, catalog, A0)
    appended = [("a", dt.datetime(2026, 5, 12, tzinfo=dt.UTC), 11.0)]
    spark.createDataFrame(appended, "CustomerId string, At timestamp, Amount double").write.format(
        "delta"
    ).mode("append").save(lk.activity_path("Purchases"))
    DeltaTable.forPath(spark, lk.activity_path("Purchases")).delete(F.col("CustomerId") == "c")
    DeltaTable.forPath(spark, lk.profile_path("Customer")).delete(F.col("CustomerId") == "d")
    spark.createDataFrame([("e", "NY")], "CustomerId string, State string").write.format(
        "delta"
    ).mode("append").save(lk.profile_path("Customer"))
    with caplog.at_level(logging.INFO, logger="cohortlake.measures"):
        second = compute_measures(spark, lk, catalog, A1, incremental=True)

    assert second == first + 1
    history = DeltaTable.forPath(spark, lk.measures_path()).history(1).first()
    assert history is not None and history["operation"] == "MERGE"
    # a (appended), b (left the window), c (purchase deleted), d (left), e (joined); x untouched
    found = re.search(r"incremental measures: (\d+) customers", caplog.text)
    assert found is not None and int(found.group(1)) == 5, caplog.text

    profile = ["a", "b", "c", "e", "x"]
    purchases = [p for p in PURCHASES if p[0] != "c"] + appended
    want = _expected(profile, purchases)
    got = lk.read(lk.measures_path()).toPandas().sort_values("CustomerId").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


def test_nothing_changed_makes_no_commit_and_an_overwrite_means_a_full_computation(
    spark: SparkSession, lake: tuple[Lake, Path], caplog: pytest.LogCaptureFixture
) -> None:
    lk, conf = lake
    catalog = load_catalog(conf)
    first = compute_measures(spark, lk, catalog, A0)
    assert compute_measures(spark, lk, catalog, A0, incremental=True) == first
    rows = spark.createDataFrame([("b", A0, 4.0)], "CustomerId string, At timestamp, Amount double")
    rows.write.format("delta").mode("overwrite").save(lk.activity_path("Purchases"))
    with caplog.at_level(logging.INFO, logger="cohortlake.measures"):
        compute_measures(spark, lk, catalog, A1, incremental=True)
    assert "full computation: activity/Purchases was rewritten (WRITE)" in caplog.text
    want = _expected(PROFILE, [("b", A0, 4.0)])
    got = lk.read(lk.measures_path()).toPandas().sort_values("CustomerId").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
