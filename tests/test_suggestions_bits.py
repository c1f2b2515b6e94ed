"""Rule sets counted through rule bits: candidate statistics and refinement's per-bucket sums.

Expectations are computed row by row in pandas from the rules' meaning (bounds false on
null unless the rule keeps nulls, ``(missing)`` standing for a null category), not from
the code's own output. 70 one-threshold rules make the bits span two words.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats as sps

from suggestions.refine import _ALL, Seed, _bucket, _Ctx, _round, _Stats
from suggestions.rules import (
    MISSING,
    CategoricalRule,
    NumericRule,
    Rule,
    rules_definition,
    rules_text,
)
from suggestions.stats import Candidate, categorical_stats, numeric_stats
from suggestions.tree import Feature

LABELS = ("a", "b", "c", "d", MISSING)
TYPES = {"x": "number", "z": "number", "c": "string", "y": "number", "t": "string"}


def _rows(n: int = 600, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n).round(3)
    z = rng.uniform(-5, 5, n).round(2)
    c = rng.choice(["a", "b", "c", "d"], n).astype(object)
    y = rng.normal(10, 3, n) + 4 * (x > 0.6)
    t = rng.choice(["hi", "lo", "mid"], n).astype(object)
    df = pd.DataFrame({"x": x, "z": z, "c": c, "y": y, "t": t})
    df.loc[rng.random(n) < 0.1, "x"] = np.nan
    df.loc[rng.random(n) < 0.1, "c"] = None
    df.loc[rng.random(n) < 0.1, "y"] = np.nan
    df.loc[rng.random(n) < 0.1, "t"] = None
    df["_holdout"] = rng.random(n) < 0.4
    return df


def _frame(spark, pdf: pd.DataFrame, label: str):
    schema = T.StructType(
        [
            T.StructField("x", T.DoubleType()),
            T.StructField("z", T.DoubleType()),
            T.StructField("c", T.StringType()),
            T.StructField("y", T.DoubleType()),
            T.StructField("t", T.StringType()),
            T.StructField("_holdout", T.BooleanType()),
        ]
    )
    records = [
        tuple(None if (isinstance(v, float) and math.isnan(v)) else v for v in r)
        for r in pdf[["x", "z", "c", "y", "t", "_holdout"]].itertuples(index=False)
    ]
    return spark.createDataFrame(records, schema).withColumn("_label", F.col(label))


def _holds(pdf: pd.DataFrame, rule: Rule) -> pd.Series:
    v = pdf[rule.field]
    if isinstance(rule, NumericRule):
        ok = v.notna()
        if rule.low is not None:
            ok &= v > rule.low
        if rule.high is not None:
            ok &= (v < rule.high) if rule.high_open else (v <= rule.high)
        return ok | (v.isna() & rule.nulls)
    named = v.isin([a for a in rule.allowed if a != MISSING])
    return named | (v.isna() & (MISSING in rule.allowed))


def _mask(pdf: pd.DataFrame, rules: tuple[Rule, ...]) -> pd.Series:
    m = pd.Series(True, index=pdf.index)
    for r in rules:
        m &= _holds(pdf, r)
    return m


def _candidates(rule_sets: list[tuple[Rule, ...]]) -> list[Candidate]:
    return [
        Candidate(rules_text(rs), rules_definition(rs), len(rs), len(rs), rs) for rs in rule_sets
    ]


RULE_SETS: list[tuple[Rule, ...]] = [
    *[(NumericRule("x", None, round(0.01 + k * 0.0135, 4)),) for k in range(70)],
    (NumericRule("x", 0.2, 0.7), CategoricalRule("c", ("a", "b"), LABELS)),
    (CategoricalRule("c", ("a", MISSING), LABELS),),
    (NumericRule("x", None, 0.5, nulls=True), NumericRule("z", -1.0, None)),
    (NumericRule("z", None, 2.0, high_open=True), CategoricalRule("c", ("b", "c", "d"), LABELS)),
]


def test_numeric_candidate_statistics_equal_pandas_across_two_words(spark) -> None:
    pdf = _rows()
    scored, totals = numeric_stats(_frame(spark, pdf, "y"), _candidates(RULE_SETS), 10.0, TYPES)
    known_all = int(pdf["y"].notna().sum())
    assert totals["customers"] == len(pdf) and totals["known"] == known_all
    assert totals["overall"] == pytest.approx(pdf["y"].mean(), rel=1e-12)
    by_rules = {s.candidate.rule_set: s for s in scored}
    checked = 0
    for rs in RULE_SETS:
        m = _mask(pdf, rs)
        known = m & pdf["y"].notna()
        if known.sum() in (0, known_all):
            assert rs not in by_rules
            continue
        s = by_rules[rs]
        assert s.members == int(m.sum()) and s.known == int(known.sum())
        assert s.missing_target == int((m & pdf["y"].isna()).sum())
        assert s.segment_value == pytest.approx(pdf.loc[known, "y"].mean(), rel=1e-12)
        test = pdf["_holdout"] & pdf["y"].notna()
        inside, outside = pdf.loc[test & m, "y"], pdf.loc[test & ~m, "y"]
        if min(len(inside), len(outside)) < 2:
            expected_p = 1.0  # too few hold-out rows on a side to test: never significant
        else:
            expected_p = sps.ttest_ind(inside, outside, equal_var=False).pvalue
        assert s.p_value == pytest.approx(expected_p, rel=1e-9, abs=1e-15)
        checked += 1
    assert checked >= 60


def test_categorical_candidate_shares_equal_pandas(spark) -> None:
    pdf = _rows(seed=11)
    sets = RULE_SETS[-4:]
    scored, totals = categorical_stats(_frame(spark, pdf, "t"), _candidates(sets), TYPES)
    known_all = pdf["t"].notna()
    assert totals["known"] == int(known_all.sum()) and totals["categories"] == 3
    got = {(s.candidate.rule_set, s.category): s for s in scored}
    for rs in sets:
        m = _mask(pdf, rs)
        members_known = m & known_all
        for cat in ("hi", "lo", "mid"):
            s = got[(rs, cat)]
            assert s.members == int(m.sum())
            share = (pdf.loc[members_known, "t"] == cat).mean()
            assert s.segment_value == pytest.approx(share, rel=1e-12)
            assert s.overall_value == pytest.approx(
                (pdf.loc[known_all, "t"] == cat).mean(), rel=1e-12
            )


def test_refinement_round_sums_each_slot_per_bucket_as_pandas(spark) -> None:
    pdf = _rows(seed=3)
    pdf = pdf[pdf["y"].notna()].reset_index(drop=True)  # refinement sees known targets only
    feats = [
        Feature("x", True, "_f0"),
        Feature("c", False, "_f1", labels=("a", "b", "c", "d", MISSING)),
        Feature("z", True, "_f2"),
    ]
    grids = {0: (0.1, 0, 11), 2: (0.5, -8, 6)}
    buckets = [_bucket(f, grids.get(i)) for i, f in enumerate(feats)]
    ctx = _Ctx(feats, TYPES, True, grids, buckets, _Stats(), 0.0, 3)
    seed = Seed((NumericRule("x", 0.3, None), CategoricalRule("c", ("a", "b"), LABELS)))
    got = _round(_frame(spark, pdf, "y"), [seed], [0], ctx)

    def expected(rows: pd.Series, fi: int) -> dict[str, tuple[int, float]]:
        f = feats[fi]
        v = pdf.loc[rows, f.name]
        if f.numeric:
            step, lo, hi = grids[fi]
            key = np.clip(np.ceil(v / step), lo, hi).map(
                lambda b: MISSING if pd.isna(b) else str(int(b))
            )
        else:
            key = v.fillna(MISSING)
        g = pdf.loc[rows, "y"].groupby(key)
        return {
            k: (int(n), float(s)) for k, n, s in zip(g.size().index, g.size(), g.sum(), strict=True)
        }

    def seen(slot: tuple[int, int, int]) -> dict[str, tuple[int, float]]:
        return {k: (int(st.n), st.y) for k, st in got[slot].items()}

    x_ok, c_ok = _holds(pdf, seed.rules[0]), _holds(pdf, seed.rules[1])
    for slot, rows, fi in [
        ((0, 0, 0), c_ok, 0),  # without the x bound, per x bucket
        ((0, 1, 1), x_ok, 1),  # without the category rule, per label
        ((0, _ALL, 2), x_ok & c_ok, 2),  # the whole seed, per bucket of the unused z
    ]:
        want, have = expected(rows, fi), seen(slot)
        assert set(have) == set(want), slot
        for k, (n, s) in want.items():
            assert have[k][0] == n and have[k][1] == pytest.approx(s, rel=1e-12), (slot, k)
    whole = got[(0, _ALL, -1)]
    assert sum(st.n for st in whole.values()) == int((x_ok & c_ok).sum())
    assert sum(st.y for st in whole.values()) == pytest.approx(
        pdf.loc[x_ok & c_ok, "y"].sum(), rel=1e-12
    )
