"""Difference scores, p-values, medians and distributions against scipy / pandas / numpy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T
from scipy import stats

from cohortlake.catalog import FieldRef
from insights.differentiators import BUCKETS, differentiate

AMOUNT = FieldRef("Amount", "number", "Amount", "measure")
POINTS = FieldRef("Points", "integer", "Points", "profile")
TIER = FieldRef("Tier", "string", "Tier", "profile")
OPTIN = FieldRef("OptIn", "boolean", "OptIn", "profile")
BORN = FieldRef("Born", "date", "Born", "profile")
FIELDS = (AMOUNT, POINTS, TIER, OPTIN, BORN)

SCHEMA = T.StructType(
    [
        T.StructField("IsPrimary", T.IntegerType()),
        T.StructField("Amount", T.DoubleType()),
        T.StructField("Points", T.LongType()),
        T.StructField("Tier", T.StringType()),
        T.StructField("OptIn", T.BooleanType()),
        T.StructField("Born", T.DateType()),
    ]
)


def _generate(seed: int, n_primary: int, n_other: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_primary + n_other
    side = np.r_[np.ones(n_primary, int), np.zeros(n_other, int)]
    # Rounded values make many ties; a shift on the primary side makes a real difference.
    amount = np.round(rng.normal(100, 30, n) + 15 * side, 0)
    points = rng.integers(0, 40, n) + 5 * side
    tier = rng.choice(["low", "medium", "high"], n, p=[0.5, 0.3, 0.2])
    tier[side == 1] = rng.choice(["low", "medium", "high"], int(side.sum()), p=[0.3, 0.3, 0.4])
    optin = rng.random(n) < np.where(side == 1, 0.7, 0.4)
    epoch = dt.date(1970, 1, 1)
    born = [epoch + dt.timedelta(days=int(d) // 30 * 30) for d in rng.integers(0, 15_000, n)]
    columns = {
        "Amount": [float(v) for v in amount],
        "Points": [int(v) for v in points],
        "Tier": [str(v) for v in tier],
        "OptIn": [bool(v) for v in optin],
        "Born": born,
    }
    for values in columns.values():
        for i in np.flatnonzero(rng.random(n) < 0.08):
            values[i] = None
    return pd.DataFrame({"IsPrimary": [int(v) for v in side], **columns}, dtype=object)


def _spark_df(spark, pdf: pd.DataFrame):
    return spark.createDataFrame([tuple(r) for r in pdf.itertuples(index=False)], SCHEMA)


def _expected_numeric(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    res = stats.mannwhitneyu(
        x, y, alternative="two-sided", method="asymptotic", use_continuity=True
    )
    auc = res.statistic / (len(x) * len(y))
    return max(auc, 1 - auc), float(res.pvalue)


def _expected_categorical(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    px = x.value_counts(normalize=True)
    py = y.value_counts(normalize=True)
    cats = sorted(set(px.index) | set(py.index))
    tvd = 0.5 * sum(abs(px.get(c, 0.0) - py.get(c, 0.0)) for c in cats)
    table = np.array([[int((x == c).sum()) for c in cats], [int((y == c).sum()) for c in cats]])
    p = stats.chi2_contingency(table, correction=False).pvalue
    return 0.5 + tvd / 2, float(p)


@pytest.fixture(scope="module")
def generated(spark):
    pdf = _generate(7, 700, 1100)
    df = _spark_df(spark, pdf)
    result = differentiate(spark, df, FIELDS)
    # The same categorical fields aggregated in Spark instead of on the driver.
    in_spark = differentiate(spark, df, (TIER, OPTIN), collect_categories=0)
    return pdf, result, in_spark


def test_scores_and_pvalues_match_scipy_and_pandas(generated):
    pdf, result, in_spark = generated
    prim, other = pdf[pdf.IsPrimary == 1], pdf[pdf.IsPrimary == 0]
    by_field = {s.field: s for s in result.scores}
    for name in ("Amount", "Points"):
        x, y = prim[name].dropna().astype(float), other[name].dropna().astype(float)
        score, p = _expected_numeric(x, y)
        got = by_field[name]
        assert got.score == pytest.approx(score, abs=1e-9)
        assert got.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
        assert got.primary_mean == pytest.approx(x.mean(), abs=1e-9)
        assert got.other_mean == pytest.approx(y.mean(), abs=1e-9)
        assert got.primary_median == pytest.approx(x.median(), abs=1e-12)
        assert got.other_median == pytest.approx(y.median(), abs=1e-12)
        assert (got.primary_count, got.other_count) == (len(x), len(y))
        assert (got.primary_nulls, got.other_nulls) == (
            int(prim[name].isna().sum()),
            int(other[name].isna().sum()),
        )

    def days(s: pd.Series) -> pd.Series:
        return s.dropna().map(lambda d: float((d - dt.date(1970, 1, 1)).days))

    score, p = _expected_numeric(days(prim.Born), days(other.Born))
    assert by_field["Born"].score == pytest.approx(score, abs=1e-9)
    assert by_field["Born"].p_value == pytest.approx(p, rel=1e-9)
    spark_scores = {s.field: s for s in in_spark.scores}
    for name in ("Tier", "OptIn"):
        x, y = (
            prim[name].dropna().astype(str).str.lower(),
            other[name].dropna().astype(str).str.lower(),
        )
        score, p = _expected_categorical(x, y)
        for got in (by_field[name], spark_scores[name]):
            assert got.score == pytest.approx(score, abs=1e-9)
            assert got.p_value == pytest.approx(p, rel=1e-9)
            assert got.categories == len(set(x) | set(y))
        got = by_field[name]
        assert (got.primary_nulls, got.other_nulls) == (
            int(prim[name].isna().sum()),
            int(other[name].isna().sum()),
        )


def test_fields_ranked_by_score(generated):
    _, result, _ = generated
    scores = [s.score for s in result.scores]
    assert scores == sorted(scores, reverse=True)
    assert [s.rank for s in result.scores] == list(range(1, len(FIELDS) + 1))


def test_distributions_match_numpy_bins_and_pandas_shares(generated):
    pdf, result, in_spark = generated
    values = pdf.Amount.dropna().astype(float)
    lo, hi = values.min(), values.max()
    width = (hi - lo) / 20
    for side, flag in (("primary", 1), ("other", 0)):
        x = pdf.loc[pdf.IsPrimary == flag, "Amount"].dropna().astype(float)
        bins = np.minimum(np.floor((x - lo) / width).astype(int), 19)
        expected = np.bincount(bins, minlength=20)
        got = sorted(
            (d.bin, d.members, d.share)
            for d in result.distributions
            if d.field == "Amount" and d.group == side
        )
        assert [g[1] for g in got] == expected.tolist()
        assert [g[2] for g in got] == pytest.approx((expected / len(x)).tolist(), abs=1e-12)
        shares = pdf.loc[pdf.IsPrimary == flag, "Tier"].dropna().value_counts(normalize=True)
        for found in (result, in_spark):
            got_tier = {
                d.category: d.share
                for d in found.distributions
                if d.field == "Tier" and d.group == side
            }
            assert got_tier == pytest.approx(shares.to_dict(), abs=1e-12)


def test_exact_auc_across_many_buckets(spark):
    # Continuous values spread over every range bucket, plus a heavy tie block.
    rng = np.random.default_rng(3)
    x = np.r_[rng.exponential(50, 400), np.full(60, 10.0)]
    y = np.r_[rng.exponential(60, 500), np.full(40, 10.0)]
    pdf = pd.DataFrame(
        {"IsPrimary": np.r_[np.ones(len(x), int), np.zeros(len(y), int)], "Amount": np.r_[x, y]}
    )
    df = spark.createDataFrame(
        [(int(a), float(b)) for a, b in pdf.itertuples(index=False)], "IsPrimary int, Amount double"
    )
    got = differentiate(spark, df, (AMOUNT,)).scores[0]
    u = stats.mannwhitneyu(x, y).statistic
    assert got.auc == pytest.approx(u / (len(x) * len(y)), abs=1e-12)
    assert BUCKETS > 20


def test_identical_sides_score_half_and_disjoint_ranges_score_one(spark):
    # Amount/Tier: the same 50 values on both sides; Points/OptIn: primary values all
    # above (and categories apart from) the other side's.
    rows = [
        (side, float(v), "a" if v % 2 else "b", 100 + v if side else v, side == 1)
        for side in (0, 1)
        for v in range(50)
    ]
    df = spark.createDataFrame(
        rows, "IsPrimary int, Amount double, Tier string, Points long, OptIn boolean"
    )
    scores = {s.field: s for s in differentiate(spark, df, (AMOUNT, TIER, POINTS, OPTIN)).scores}
    assert scores["Amount"].score == 0.5 and scores["Amount"].auc == 0.5
    assert scores["Tier"].score == 0.5
    assert scores["Points"].score == 1.0 and scores["Points"].auc == 1.0
    assert scores["OptIn"].score == 1.0
    assert [s.field for s in scores.values()][:2] == ["OptIn", "Points"]


def test_empty_side_has_no_score(spark):
    df = spark.createDataFrame([(1, 1.0), (1, 2.0)], "IsPrimary int, Amount double")
    got = differentiate(spark, df, (AMOUNT,)).scores[0]
    assert got.score is None and got.p_value is None
    assert (got.primary_count, got.other_count) == (2, 0)
