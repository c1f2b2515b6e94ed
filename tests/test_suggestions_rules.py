"""Suggestion definitions and rule rendering: validation messages, merged paths, rounding, null semantics."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from cohortlake.errors import InputError, Problem
from suggestions import load_suggestion_runs, validate_suggestion
from suggestions.rules import (
    MISSING,
    CategoricalRule,
    NumericRule,
    definition_to_column,
    format_number,
    roundest_between,
    rules_definition,
    rules_text,
)
from suggestions.tree import (
    Feature,
    PathTest,
    TreePath,
    path_rules,
    provisional_cuts,
    rounding_map,
)

# -- validation ----------------------------------------------------------------------------


def test_shipped_lab_runs_validate(conf_dir: Path, catalog) -> None:
    runs = {r.output: r for r in load_suggestion_runs(conf_dir, catalog)}
    assert set(runs) == {"LifetimeSpendSuggestions", "CustomerSatisfactionSuggestions"}
    ls = runs["LifetimeSpendSuggestions"]
    assert ls.numeric_target and ls.target.source == "measure"
    assert [f.name for f in ls.influencers] == [
        "EmailSubscriber",
        "Income",
        "LoyaltyTier",
        "Occupation",
        "State",
    ]
    cs = runs["CustomerSatisfactionSuggestions"]
    assert not cs.numeric_target
    assert [f.name for f in cs.influencers] == [
        "EmailSubscriber",
        "Income",
        "LoyaltyTier",
        "Occupation",
        "RewardPoints",
        "State",
    ]


def test_every_problem_is_reported_with_its_path(catalog) -> None:
    doc = {
        "name": "Spend",
        "target": "LifetimeSpnd",
        "influencers": ["Income", "Loyalty Tier", "DateOfBirth", "Occupaton", "income"],
    }
    with pytest.raises(InputError) as exc:
        validate_suggestion(doc, catalog, "s.yaml")
    assert exc.value.problems == [
        Problem(
            "s.yaml", "target", "unknown attribute 'LifetimeSpnd'; did you mean LifetimeSpend?"
        ),
        Problem(
            "s.yaml",
            "influencers[2]",
            "influencer DateOfBirth is a date; use a number, integer, string or boolean attribute",
        ),
        Problem(
            "s.yaml", "influencers[3]", "unknown attribute 'Occupaton'; did you mean Occupation?"
        ),
        Problem("s.yaml", "influencers[4]", "Income is already listed at influencers[0]"),
    ]


def test_target_among_influencers_and_schema_errors(catalog) -> None:
    with pytest.raises(InputError) as exc:
        validate_suggestion(
            {
                "name": "x",
                "target": "Lifetime Spend ($)",
                "influencers": ["Income", "lifetimespend"],
            },
            catalog,
            "a.yaml",
        )
    assert exc.value.problems == [
        Problem(
            "a.yaml",
            "influencers[1]",
            "LifetimeSpend is the target; it cannot also be an influencer",
        )
    ]
    with pytest.raises(InputError) as exc:
        validate_suggestion(
            {"name": "x", "target": "Income", "influencers": [], "max_depth": 0, "colour": "red"},
            catalog,
            "b.yaml",
        )
    assert sorted(exc.value.problems) == [
        Problem("b.yaml", "colour", "unknown key"),
        Problem(
            "b.yaml", "influencers", "List should have at least 1 item after validation, not 0"
        ),
        Problem("b.yaml", "max_depth", "Input should be greater than or equal to 1"),
    ]


def test_output_is_derived_from_the_name(catalog) -> None:
    run = validate_suggestion(
        {"name": "Spend by tier", "target": "Income", "influencers": ["State"]}, catalog, "c.yaml"
    )
    assert run.output == "SpendByTier"
    assert run.min_members_for(5000) == 50  # default: 1% of customers
    with pytest.raises(InputError) as exc:
        validate_suggestion(
            {"name": "++", "target": "Income", "influencers": ["State"]}, catalog, "c.yaml"
        )
    assert exc.value.problems == [
        Problem(
            "c.yaml", "name", "name '++' derives the output name '', which is not valid; set output"
        )
    ]


# -- numbers -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
)
def test_roundest_cut_keeps_the_split(low: float, gap: float) -> None:
    high = low + gap
    if not high > low:
        return
    r = roundest_between(low, high)
    assert low <= r < high


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (96_990.0, 97_012.0, 97_000.0),
        (43_980.5, 44_010.0, 44_000.0),
        (1.0, 2.0, 1.0),
        (1.25, 1.31, 1.3),
        (-7.3, -2.0, -5.0),
    ],
)
def test_roundest_cut_examples(low: float, high: float, expected: float) -> None:
    assert roundest_between(low, high) == expected


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (97_000, "97k"),
        (44_000.0, "44k"),
        (1_500_000, "1.5M"),
        (1_200, "1,200"),
        (1_234.5, "1,234.5"),
        (0.25, "0.25"),
    ],
)
def test_format_number(x: float, text: str) -> None:
    assert format_number(x) == text


# -- paths into rules ----------------------------------------------------------------------


def _features() -> list[Feature]:
    return [
        Feature("Income", True, "_f0", has_nulls=True, minimum=10_000.0, sentinel=9_900.0),
        Feature("Occupation", False, "_f1", labels=("Chef", "Nurse", "Teacher", MISSING)),
        Feature("EmailSubscriber", False, "_f2", boolean=True, labels=("false", "true")),
    ]


def test_nested_numeric_splits_merge_into_one_interval() -> None:
    tests = (
        PathTest(0, threshold=100_000.0, left=True),
        PathTest(1, labels=frozenset({"Teacher", "Nurse"})),
        PathTest(0, threshold=50_000.0, left=False),
        PathTest(0, threshold=80_000.0, left=True),
        PathTest(1, labels=frozenset({"Teacher", "Chef"})),
    )
    rules = path_rules(TreePath(tests, 5, 10, True), _features(), {})
    assert rules == [
        NumericRule("Income", 50_000.0, 80_000.0, nulls=False),
        CategoricalRule("Occupation", ("Teacher",), ("Chef", "Nurse", "Teacher", MISSING)),
    ]
    assert rules_text(rules) == "50k < Income ≤ 80k and Occupation is Teacher"
    assert rules_definition(rules) == {
        "all": [
            {"attribute": "Income", "op": "gt", "value": 50_000},
            {"attribute": "Income", "op": "lte", "value": 80_000},
            {"attribute": "Occupation", "op": "eq", "value": "Teacher"},
        ]
    }


def test_nulls_follow_the_sentinel_side_and_cuts_are_rounded() -> None:
    # left of a threshold keeps the null sentinel; a threshold below the minimum only splits off nulls
    left = path_rules(
        TreePath((PathTest(0, threshold=43_995.5, left=True),), 1, 1, True),
        _features(),
        {(0, 43_995.5): 44_000.0},
    )
    assert rules_definition(left) == {
        "any": [
            {"attribute": "Income", "op": "lte", "value": 44_000},
            {"attribute": "Income", "op": "is_null"},
        ]
    }
    assert rules_text(left) == "Income ≤ 44k or Income is missing"
    not_null = path_rules(
        TreePath((PathTest(0, threshold=9_950.0, left=False),), 1, 1, True),
        _features(),
        {(0, 9_950.0): None},
    )
    assert rules_definition(not_null) == {"attribute": "Income", "op": "is_not_null"}
    only_null = path_rules(
        TreePath((PathTest(0, threshold=9_950.0, left=True),), 1, 1, True),
        _features(),
        {(0, 9_950.0): None},
    )
    assert rules_definition(only_null) == {"attribute": "Income", "op": "is_null"}
    cats = path_rules(
        TreePath((PathTest(1, labels=frozenset({"Chef", "Nurse", MISSING})),), 1, 1, True),
        _features(),
        {},
    )
    assert rules_definition(cats) == {
        "any": [
            {"attribute": "Occupation", "op": "ne", "value": "Teacher"},
            {"attribute": "Occupation", "op": "is_null"},
        ]
    }
    assert rules_text(cats) == "Occupation is not Teacher or Occupation is missing"
    boolean = path_rules(
        TreePath((PathTest(2, labels=frozenset({"false"})),), 1, 1, True), _features(), {}
    )
    assert rules_definition(boolean) == {"attribute": "EmailSubscriber", "op": "eq", "value": False}


# -- the compiled rules follow the segment language's null rule ----------------------------


def _pandas_eval(node: dict, df: pd.DataFrame) -> pd.Series:
    """An independent reading of the segment language: every leaf but is_null is false on null."""
    if "all" in node:
        out = pd.Series(True, index=df.index)
        for n in node["all"]:
            out &= _pandas_eval(n, df)
        return out
    if "any" in node:
        out = pd.Series(False, index=df.index)
        for n in node["any"]:
            out |= _pandas_eval(n, df)
        return out
    if "not" in node:
        return ~_pandas_eval(node["not"], df)
    col = df[node["attribute"]]
    null = col.isna()
    op, v = node["op"], node.get("value")
    if op == "is_null":
        return null
    if op == "is_not_null":
        return ~null
    known = col.where(~null)
    test = {
        "eq": lambda: known == v,
        "ne": lambda: known != v,
        "gt": lambda: known > v,
        "lte": lambda: known <= v,
        "in": lambda: known.isin(v),
        "not_in": lambda: ~known.isin(v),
    }[op]()
    return test.astype(bool) & ~null


def test_compiled_rules_match_an_independent_evaluation(spark) -> None:
    rows = [
        ("a", 30_000.0, "Teacher", True),
        ("b", None, "Teacher", False),
        ("c", 50_000.0, None, None),
        ("d", 44_000.0, "Chef", False),
        ("e", 120_000.0, "Nurse", True),
        ("f", None, None, None),
    ]
    schema = T.StructType(
        [
            T.StructField("CustomerId", T.StringType()),
            T.StructField("Income", T.DoubleType()),
            T.StructField("Occupation", T.StringType()),
            T.StructField("EmailSubscriber", T.BooleanType()),
        ]
    )
    sdf = spark.createDataFrame(rows, schema)
    pdf = pd.DataFrame(
        rows, columns=["CustomerId", "Income", "Occupation", "EmailSubscriber"]
    ).astype(object)
    pdf = pdf.where(pdf.notna(), None)
    types = {"Income": "number", "Occupation": "string", "EmailSubscriber": "boolean"}
    trees = [
        {
            "any": [
                {"attribute": "Income", "op": "lte", "value": 44_000},
                {"attribute": "Income", "op": "is_null"},
            ]
        },
        {
            "all": [
                {"attribute": "Occupation", "op": "ne", "value": "Teacher"},
                {"attribute": "Income", "op": "gt", "value": 40_000},
            ]
        },
        {"attribute": "Occupation", "op": "not_in", "value": ["Chef", "Nurse"]},
        {"attribute": "EmailSubscriber", "op": "eq", "value": False},
        {
            "any": [
                {"attribute": "Occupation", "op": "in", "value": ["Chef"]},
                {"attribute": "Occupation", "op": "is_null"},
            ]
        },
        {"not": {"attribute": "Income", "op": "gt", "value": 40_000}},
    ]
    for tree in trees:
        got = {
            r[0]
            for r in sdf.where(definition_to_column(tree, types)).select("CustomerId").collect()
        }
        expected = set(pdf.loc[_pandas_eval(tree, pdf), "CustomerId"])
        assert got == expected, tree
    assert math.isfinite(roundest_between(0.0, 1.0))


def test_provisional_cuts_select_the_rows_the_rounded_cuts_select(spark) -> None:
    # refinement starts from the tree's own thresholds while rounding_map runs beside it
    incomes = [12_000.0, 30_500.0, 44_000.0, 44_250.0, 61_000.0, 97_000.0, 97_400.0, 150_000.0]
    pdf = pd.DataFrame({"Income": [*incomes, None, None]}, dtype=object)
    pdf = pdf.where(pdf.notna(), None)
    sdf = spark.createDataFrame(
        [(v,) for v in pdf["Income"]], T.StructType([T.StructField("Income", T.DoubleType())])
    )
    sentinel = 11_000.0  # nulls as the tree sees them: below the minimum
    feats = [Feature("Income", True, "_f0", has_nulls=True, minimum=12_000.0, sentinel=sentinel)]
    paths = [
        TreePath((PathTest(0, threshold=44_125.0, left=True),), 1, 4, True),
        TreePath((PathTest(0, threshold=11_500.0, left=False),), 1, 8, True),
        TreePath((PathTest(0, threshold=11_500.0, left=True),), 1, 2, True),
        TreePath(
            (
                PathTest(0, threshold=37_250.0, left=False),
                PathTest(0, threshold=97_200.0, left=True),
                PathTest(0, threshold=52_625.0, left=False),
            ),
            3,
            2,
            True,
        ),
        TreePath((PathTest(0, threshold=123_700.0, left=False),), 1, 1, True),
    ]
    provisional = provisional_cuts(feats, paths)
    rounded = rounding_map(sdf, feats, paths)
    # by hand: no income is at or below 11,500, so that threshold only splits off nulls;
    # 44,125 lies between 44,000 and 44,250, and 44k is the roundest cut there
    assert provisional[(0, 11_500.0)] is None and rounded[(0, 11_500.0)] is None
    assert provisional[(0, 44_125.0)] == 44_125.0 and rounded[(0, 44_125.0)] == 44_000.0
    values = pdf["Income"].map(lambda v: sentinel if v is None else v)
    for path in paths:
        # the tree's own reading of the path, on the values it was fitted on
        inside = pd.Series(True, index=pdf.index)
        for t in path.tests:
            inside &= values <= t.threshold if t.left else values > t.threshold
        first = path_rules(path, feats, provisional)
        final = path_rules(path, feats, rounded)
        assert len(first) == len(final)
        for rules in (first, final):
            node = rules_definition(rules)
            got = _pandas_eval(node, pdf) if node else pd.Series(True, index=pdf.index)
            assert got.tolist() == inside.tolist(), (path, rules)
    assert rules_text(path_rules(paths[0], feats, rounded)) == "Income ≤ 44k or Income is missing"


def test_refinement_grid_step_is_the_smallest_round_step_within_200_steps() -> None:
    from suggestions.refine import grid_step

    # 160,000 / 200 = 800 per step: 1,000 is the smallest 1-2-5 step that fits
    assert grid_step(20_000, 180_000) == 1_000
    # 5,000 / 200 = 25: 50 (10 and 20 would need 500 and 250 steps)
    assert grid_step(0, 5_000) == 50
    assert grid_step(0, 1) == pytest.approx(0.005)
    assert grid_step(3, 3) == 1.0


def test_nested_rule_sets_are_recognised_by_hand_checked_cases() -> None:
    from suggestions.stats import contains

    tiers = ("high", "low", "medium")
    high = CategoricalRule("LoyaltyTier", ("high",), tiers)
    not_low = CategoricalRule("LoyaltyTier", ("high", "medium"), tiers)
    above_95 = NumericRule("Income", 95_000.0, None)
    above_98 = NumericRule("Income", 98_600.0, None)
    below_44 = NumericRule("Income", None, 44_000.0, high_open=True)
    upto_44 = NumericRule("Income", None, 44_000.0)
    upto_44_or_null = NumericRule("Income", None, 44_000.0, nulls=True)
    # Income > 98.6k and high  ⊆  Income > 95k and high  ⊆  high  ⊆  not low
    assert contains((above_95, high), (above_98, high))
    assert contains((high,), (above_95, high))
    assert contains((not_low,), (high,))
    assert not contains((above_98, high), (above_95, high))
    assert not contains((above_95, high), (high,))
    # x < 44k ⊆ x ≤ 44k, not the other way; a rule keeping nulls is not inside one without
    assert contains((upto_44,), (below_44,)) and not contains((below_44,), (upto_44,))
    assert contains((upto_44_or_null,), (upto_44,)) and not contains((upto_44,), (upto_44_or_null,))
