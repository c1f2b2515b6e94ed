"""The Contoso generator: the lab's facts, the catalog's schema, and seed-only reproducibility.

Expectations are recomputed here with pandas from the Delta tables, read with delta-rs
(so the tables are also checked to be readable outside Spark).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import types as T
from scipy import stats

from cohortlake.errors import InputError, Problem
from cohortlake.lake import Lake
from lab.contoso import generate_contoso, purchase_count_location

LAB_MEAN_SPEND = 869.74


def _close(actual: float, expected: float, tolerance: float = 0.10) -> bool:
    return abs(actual - expected) <= tolerance * abs(expected)


@pytest.fixture(scope="module")
def lab(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("contoso") / "lake")
    lake = Lake(spark, root)
    counts = generate_contoso(spark, lake)
    customers = DeltaTable(lake.profile_path("Customer")).to_pandas()
    purchases = DeltaTable(lake.activity_path("Purchases")).to_pandas()
    spend = purchases.groupby("CustomerId")["Amount"].sum()
    customers["LifetimeSpend"] = customers["CustomerId"].map(spend).fillna(0.0)
    return lake, counts, customers, purchases


def test_row_counts_are_returned_and_about_five_thousand_customers(lab):
    _, counts, customers, purchases = lab
    assert counts == {"Customer": len(customers), "Purchases": len(purchases)}
    assert len(customers) == 5000
    assert customers["CustomerId"].is_unique
    assert purchases["PurchaseId"].is_unique
    assert (purchases["PurchaseId"].str.rsplit("-", n=1).str[0] == purchases["CustomerId"]).all()
    assert set(purchases["CustomerId"]) <= set(customers["CustomerId"])


def test_average_purchase_by_channel(lab):
    _, _, _, purchases = lab
    per_customer = purchases.groupby(["CustomerId", "Channel"])["Amount"].mean().unstack()
    assert _close(per_customer["web"].dropna().mean(), 138)
    assert _close(per_customer["store"].dropna().mean(), 113)
    assert set(purchases["Channel"]) == {"web", "store"}
    assert (purchases["Amount"] > 0).all()
    assert np.allclose(purchases["Amount"], purchases["Amount"].round(2))


def test_mean_lifetime_spend(lab):
    _, _, customers, _ = lab
    assert _close(customers["LifetimeSpend"].mean(), LAB_MEAN_SPEND)


def test_low_satisfaction_share(lab):
    _, _, customers, _ = lab
    assert _close((customers["CustomerSatisfaction"] == "low").mean(), 0.26)
    assert set(customers["CustomerSatisfaction"]) == {"low", "medium", "high"}


def test_high_income_high_tier_spend_twenty_percent_more(lab):
    _, _, c, _ = lab
    group = c[(c["Income"] > 97000) & (c["LoyaltyTier"] == "high")]
    assert _close(len(group), 585)
    assert _close(group["LifetimeSpend"].mean(), 1.2 * c["LifetimeSpend"].mean())


def test_low_income_teachers_not_subscribed_spend_less(lab):
    _, _, c, _ = lab
    group = c[
        ~c["EmailSubscriber"]
        & (c["Income"] < 44000)
        & (c["LoyaltyTier"] != "high")
        & (c["Occupation"] == "Teacher")
    ]
    assert _close(len(group), 599)
    assert _close(len(group) / len(c), 0.12)
    assert _close(group["LifetimeSpend"].mean(), 741.89)


def test_californians_not_high_tier_not_teachers_are_mostly_dissatisfied(lab):
    _, _, c, _ = lab
    group = c[
        (c["State"] == "California") & (c["LoyaltyTier"] != "high") & (c["Occupation"] != "Teacher")
    ]
    assert _close(len(group), 488)
    assert _close((group["CustomerSatisfaction"] == "low").mean(), 0.83)


def test_profile_values_are_plausible(lab):
    _, _, c, _ = lab
    assert set(c["LoyaltyTier"]) == {"low", "medium", "high"}
    assert "Teacher" in set(c["Occupation"]) and 12 <= c["Occupation"].nunique() <= 14
    assert c["CustomerId"].str.fullmatch(r"C\d{7}").all()
    # Post codes: five digits, each code in exactly one state, ~1% missing.
    codes = c.dropna(subset=["PostCode"])
    assert codes["PostCode"].str.fullmatch(r"\d{5}").all()
    assert (codes.groupby("PostCode")["State"].nunique() == 1).all()
    assert 0.005 <= c["PostCode"].isna().mean() <= 0.02
    births = c["DateOfBirth"].dropna()
    assert 0.01 <= c["DateOfBirth"].isna().mean() <= 0.03
    assert births.min() >= dt.date(1950, 1, 1) and births.max() <= dt.date(2005, 12, 31)
    assert (c["Email"] == c["Email"].str.lower()).all() and c["Email"].is_unique
    # Reward points follow spend, loosely.
    rho = stats.spearmanr(c["RewardPoints"], c["LifetimeSpend"]).statistic
    assert 0.3 < rho < 0.95


def test_purchases_fall_in_the_two_years_before_end(lab):
    _, _, _, p = lab
    end = pd.Timestamp("2026-06-30", tz="UTC")
    assert p["PurchaseDate"].min() >= end - pd.Timedelta(days=730)
    assert p["PurchaseDate"].max() < end
    assert "Cold Brew" in set(p["Product"]) and 5 <= p["Product"].nunique() <= 10


def _spark_type(catalog_type: str) -> T.DataType:
    return {
        "string": T.StringType(),
        "number": T.DoubleType(),
        "integer": T.IntegerType(),
        "date": T.DateType(),
        "timestamp": T.TimestampType(),
        "boolean": T.BooleanType(),
    }[catalog_type]


def test_schemas_follow_the_catalog(spark, lab, catalog):
    lake, _, _, _ = lab
    expected_profile = [(catalog.key, T.StringType())] + [
        (name, _spark_type(a.type)) for name, a in catalog.profile.attributes.items()
    ]
    profile = spark.read.format("delta").load(lake.profile_path("Customer")).schema
    assert [(f.name, f.dataType) for f in profile.fields] == expected_profile

    _, purchases_spec = catalog.activity("Purchases")
    expected_purchases = {catalog.key: T.StringType()} | {
        name: _spark_type(a.type) for name, a in purchases_spec.attributes.items()
    }
    purchases = spark.read.format("delta").load(lake.activity_path("Purchases")).schema
    assert {f.name: f.dataType for f in purchases.fields} == expected_purchases


def _read_sorted(lake: Lake) -> tuple[pd.DataFrame, pd.DataFrame]:
    c = (
        DeltaTable(lake.profile_path("Customer"))
        .to_pandas()
        .sort_values("CustomerId", ignore_index=True)
    )
    p = (
        DeltaTable(lake.activity_path("Purchases"))
        .to_pandas()
        .sort_values("PurchaseId", ignore_index=True)
    )
    return c, p


def test_same_seed_gives_identical_tables_at_any_partitioning(spark, tmp_path):
    first, second, other = (Lake(spark, str(tmp_path / n)) for n in ("a", "b", "c"))
    generate_contoso(spark, first, customers=2000, seed=7, partitions=1)
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    try:
        generate_contoso(spark, second, customers=2000, seed=7, partitions=3)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)
    generate_contoso(spark, other, customers=2000, seed=8, partitions=3)
    (c1, p1), (c2, p2), (c3, p3) = _read_sorted(first), _read_sorted(second), _read_sorted(other)
    assert len(DeltaTable(first.activity_path("Purchases")).file_uris()) == 1
    assert len(DeltaTable(second.activity_path("Purchases")).file_uris()) == 3
    pd.testing.assert_frame_equal(c1, c2)
    pd.testing.assert_frame_equal(p1, p2)
    # Another seed: same ids, different people and purchases.
    assert list(c3["CustomerId"]) == list(c1["CustomerId"])
    assert (c3["Income"] != c1["Income"]).mean() > 0.9
    assert (c3["State"] != c1["State"]).mean() > 0.5
    assert len(p3) != len(p1) or not p3["Amount"].equals(p1["Amount"])


def test_purchases_per_customer_sets_the_mean_count(spark, tmp_path):
    lake = Lake(spark, str(tmp_path / "lake"))
    counts = generate_contoso(
        spark, lake, customers=1000, seed=3, purchases_per_customer=20, end=dt.date(2024, 1, 31)
    )
    assert _close(counts["Purchases"] / counts["Customer"], 20, 0.05)
    p = DeltaTable(lake.activity_path("Purchases")).to_pandas()
    assert p["PurchaseDate"].max() < pd.Timestamp("2024-01-31", tz="UTC")


@pytest.mark.parametrize("mean", [1.5, 6.93 * 0.853, 6.93 * 1.2, 20.0])
def test_purchase_count_location_hits_the_mean(mean):
    mu = purchase_count_location(mean)
    # E[max(1, round(X))], X ~ Normal(mu, mu), summed over the probability of each count.
    k = np.arange(1, int(mu + 15 * math.sqrt(mu)) + 3)
    dist = stats.norm(mu, math.sqrt(mu))
    p = dist.cdf(k + 0.5) - dist.cdf(k - 0.5)
    p[0] = dist.cdf(1.5)
    assert float((k * p).sum()) == pytest.approx(mean, rel=1e-6)


def test_bad_arguments_are_all_reported_and_nothing_is_written(spark, tmp_path):
    lake = Lake(spark, str(tmp_path / "lake"))
    with pytest.raises(InputError) as info:
        generate_contoso(spark, lake, customers=0, purchases_per_customer=0.5, partitions=0)
    assert info.value.problems == [
        Problem("arguments", "--customers", "must be a whole number from 1 to 1000000000, got 0"),
        Problem(
            "arguments", "--purchases-per-customer", "must be a number from 1.17 to 1000, got 0.5"
        ),
        Problem("arguments", "partitions", "must be a whole number from 1 to 100000, got 0"),
    ]
    assert not (tmp_path / "lake").exists()
