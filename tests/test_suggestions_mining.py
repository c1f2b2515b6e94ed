"""Mining on generated data with planted subgroups, pure noise, nulls and a constant target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _memberships import keys, latest_version
from pyspark.sql import types as T
from test_suggestions_rules import _pandas_eval

from cohortlake.cli import main
from cohortlake.context import load_context
from suggestions import run_suggestions, save_suggestion, suggestion_members

REPO = Path(__file__).resolve().parent.parent
N = 3000

PROFILE = T.StructType(
    [
        T.StructField("CustomerId", T.StringType(), False),
        T.StructField("FirstName", T.StringType()),
        T.StructField("State", T.StringType()),
        T.StructField("PostCode", T.StringType()),
        T.StructField("Income", T.DoubleType()),
        T.StructField("LoyaltyTier", T.StringType()),
        T.StructField("Occupation", T.StringType()),
        T.StructField("EmailSubscriber", T.BooleanType()),
        T.StructField("RewardPoints", T.IntegerType()),
        T.StructField("CustomerSatisfaction", T.StringType()),
    ]
)
MEASURES = T.StructType(
    [
        T.StructField("CustomerId", T.StringType(), False),
        T.StructField("LifetimeSpend", T.DoubleType()),
        T.StructField("AverageWebPurchase", T.DoubleType()),
        T.StructField("AverageStorePurchase", T.DoubleType()),
    ]
)

RUNS = {
    "spend.yaml": {
        "name": "Spend",
        "target": "LifetimeSpend",
        "influencers": ["EmailSubscriber", "Income", "LoyaltyTier", "Occupation", "State"],
        "max_depth": 4,
        "min_members": 60,
        "seed": 7,
    },
    "satisfaction.yaml": {
        "name": "Satisfaction",
        "target": "CustomerSatisfaction",
        "influencers": [
            "EmailSubscriber",
            "Income",
            "LoyaltyTier",
            "Occupation",
            "RewardPoints",
            "State",
        ],
        "max_depth": 3,
        "min_members": 60,
        "seed": 7,
    },
    "noise.yaml": {
        "name": "Noise",
        "target": "AverageWebPurchase",
        "influencers": [
            "EmailSubscriber",
            "Income",
            "LoyaltyTier",
            "Occupation",
            "RewardPoints",
            "State",
        ],
        "max_depth": 4,
        "min_members": 30,
        "refine_top": 4,
    },
    "noise_categories.yaml": {
        "name": "Noise categories",
        "target": "PostCode",
        "influencers": ["EmailSubscriber", "Income", "LoyaltyTier", "Occupation", "State"],
        "max_depth": 3,
        "min_members": 30,
        "refine_top": 4,
    },
    "constant.yaml": {
        "name": "Constant",
        "target": "AverageStorePurchase",
        "influencers": ["Income", "State"],
    },
}


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    income = rng.integers(20_000, 150_000, N).astype(float)
    tier = rng.choice(["low", "medium", "high"], N, p=[0.35, 0.45, 0.2])
    occupation = rng.choice(
        ["Teacher", "Nurse", "Engineer", "Clerk", "Chef"], N, p=[0.35, 0.2, 0.15, 0.15, 0.15]
    )
    subscriber = rng.random(N) < 0.4
    state = rng.choice(["California", "Texas", "Ohio", "Washington", "Florida"], N)
    # nulls in influencers (a missing value is a value of its own); the planted groups need known values
    income[rng.random(N) < 0.03] = np.nan
    occupation[rng.random(N) < 0.03] = None
    high = (income > 97_000) & (tier == "high")
    low = (occupation == "Teacher") & (income < 44_000)
    spend = rng.normal(800, 100, N) * np.where(high, 1.3, 1.0) * np.where(low, 0.7, 1.0)
    unhappy = (
        (state == "California")
        & (tier != "high")
        & (occupation != "Teacher")
        & pd.notna(occupation)
    )
    satisfaction = np.where(
        rng.random(N) < np.where(unhappy, 0.85, 0.2), "low", rng.choice(["medium", "high"], N)
    )
    ids = [f"C{i:05d}" for i in range(N)]
    profile = pd.DataFrame(
        {
            "CustomerId": ids,
            "FirstName": [f"Name{i % 150}" for i in range(N)],
            "State": state,
            "PostCode": rng.choice(["98052", "10001", "60601"], N),
            "Income": income,
            "LoyaltyTier": tier,
            "Occupation": occupation,
            "EmailSubscriber": subscriber,
            "RewardPoints": rng.integers(0, 5_000, N),
            "CustomerSatisfaction": satisfaction,
        }
    ).astype(object)
    profile = profile.where(profile.notna(), None)
    measures = pd.DataFrame(
        {
            "CustomerId": ids,
            "LifetimeSpend": spend,
            "AverageWebPurchase": rng.normal(138, 40, N),
            "AverageStorePurchase": 113.0,
        }
    ).astype(object)
    measures.loc[rng.random(N) < 0.05, "LifetimeSpend"] = None
    planted = pd.DataFrame({"high": high, "low": low, "unhappy": unhappy})
    return pd.concat([profile, planted], axis=1), measures


@pytest.fixture(scope="module")
def mined(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("suggest")
    conf = base / "conf"
    (conf / "suggestions").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "catalog.yaml", conf / "catalog.yaml")
    for name, doc in RUNS.items():
        (conf / "suggestions" / name).write_text(yaml.safe_dump(doc), encoding="utf-8")
    root = str(base / "lake")
    ctx = load_context(conf, root=root, spark=spark)
    profile, measures = _data()
    rows = [tuple(r[f.name] for f in PROFILE.fields) for r in profile.to_dict("records")]
    ctx.lake.overwrite(spark.createDataFrame(rows, PROFILE), ctx.lake.profile_path("Customer"))
    mrows = [tuple(r[f.name] for f in MEASURES.fields) for r in measures.to_dict("records")]
    ctx.lake.overwrite(spark.createDataFrame(mrows, MEASURES), ctx.lake.measures_path())
    results = {r.output: r for r in run_suggestions(ctx, as_of="2024-05-01")}
    frame = profile.merge(measures, on="CustomerId")
    return ctx, results, frame


def _find(
    rows: list[dict], frame: pd.DataFrame, planted: str, category: str | None = None
) -> tuple[dict, pd.Series]:
    """The suggestion whose members overlap the planted group best (Jaccard; rules may keep nulls or cut nearby)."""
    best, best_mask, best_j = None, None, -1.0
    for row in rows:
        if row["Category"] != category:
            continue
        mask = _pandas_eval(json.loads(row["Definition"]), frame)
        j = (mask & frame[planted]).sum() / (mask | frame[planted]).sum()
        if j > best_j:
            best, best_mask, best_j = row, mask, j
    assert best is not None and best_j >= 0.75, (
        planted,
        best_j,
        "\n".join(r["Summary"] for r in rows),
    )
    return best, best_mask


def test_planted_numeric_subgroups_are_found_with_exact_values(mined) -> None:
    _, results, frame = mined
    res = results["Spend"]
    spend = frame["LifetimeSpend"].astype(float)
    known = frame["LifetimeSpend"].notna()
    assert res.missing_target == int((~known).sum()) > 0
    overall = spend[known].mean()
    for planted, sign in (("high", 1), ("low", -1)):
        row, mask = _find(res.rows, frame, planted)
        assert row["Members"] == int(mask.sum())
        assert row["Share"] == pytest.approx(mask.sum() / N)
        assert row["MissingTarget"] == int((mask & ~known).sum())
        assert row["SegmentValue"] == pytest.approx(spend[mask & known].mean(), rel=1e-9)
        assert row["OverallValue"] == pytest.approx(overall, rel=1e-9)
        share = (mask & known).sum() / known.sum()
        assert row["Effect"] == pytest.approx(
            share * (spend[mask & known].mean() - overall), rel=1e-9
        )
        assert np.sign(row["Effect"]) == sign and row["AdjustedPValue"] <= 0.05
    high_row, _ = _find(res.rows, frame, "high")
    assert "Income > 97k" in high_row["Rules"] and "LoyaltyTier is high" in high_row["Rules"]
    pct = round((high_row["SegmentValue"] / high_row["OverallValue"] - 1) * 100)
    assert (
        high_row["Summary"]
        == f"LifetimeSpend is {pct}% above average — {high_row['Members']:,} members — {high_row['Rules']}"
    )
    assert [r["Rank"] for r in res.rows] == list(range(1, len(res.rows) + 1))
    assert [abs(r["Effect"]) for r in res.rows] == sorted(
        (abs(r["Effect"]) for r in res.rows), reverse=True
    )


def _numbers(node: dict) -> list[float]:
    if "value" in node:
        v = node["value"]
        return [float(v)] if isinstance(v, int | float) and not isinstance(v, bool) else []
    return [x for part in ("all", "any") for n in node.get(part, []) for x in _numbers(n)] + (
        _numbers(node["not"]) if "not" in node else []
    )


def test_every_bound_is_rounded_never_a_tree_midpoint(mined) -> None:
    # Income and RewardPoints are whole numbers, so a rounded cut (between two data values)
    # or a grid step is whole too; a tree threshold is a midpoint such as 97,011.5
    import mlflow

    ctx, results, _ = mined
    client = mlflow.tracking.MlflowClient(ctx.tracking_uri())
    bounds = []
    for name in ("Spend", "Satisfaction"):
        logged = client.download_artifacts(results[name].mlflow_run_id, "candidates.csv")
        for text in pd.read_csv(logged)["Definition"]:
            bounds += _numbers(json.loads(text))
    assert len(bounds) > 10
    assert [x for x in bounds if x != int(x)] == []


def test_planted_categorical_subgroup_is_found_with_exact_shares(mined) -> None:
    _, results, frame = mined
    res = results["Satisfaction"]
    row, mask = _find(res.rows, frame, "unhappy", "low")
    low = frame["CustomerSatisfaction"] == "low"
    assert row["Members"] == int(mask.sum())
    assert row["SegmentValue"] == pytest.approx(low[mask].mean(), rel=1e-9)
    assert row["OverallValue"] == pytest.approx(low.mean(), rel=1e-9)
    assert row["Effect"] == pytest.approx(mask.mean() * (low[mask].mean() - low.mean()), rel=1e-9)
    assert row["Summary"].startswith(
        f"{row['SegmentValue'] * 100:.0f}% have CustomerSatisfaction = low vs {row['OverallValue'] * 100:.0f}% of all customers"
    )
    assert all(r["SegmentValue"] > r["OverallValue"] for r in res.rows)


def test_pure_noise_and_a_constant_target_yield_nothing(mined) -> None:
    _, results, _ = mined
    assert results["Noise"].candidates > 0 and results["Noise"].kept == 0
    noise = results["NoiseCategories"]
    assert noise.candidates > 0 and noise.kept == 0
    assert results["Constant"].candidates == 0 and results["Constant"].kept == 0


def test_outputs_delta_table_and_mlflow(mined) -> None:
    import mlflow
    from deltalake import DeltaTable

    ctx, results, _ = mined
    res = results["Spend"]
    table = DeltaTable(ctx.lake.suggestion_path("Spend")).to_pandas().sort_values("Rank")
    assert list(table["Rank"]) == [r["Rank"] for r in res.rows]
    assert list(table["Members"]) == [r["Members"] for r in res.rows]
    assert {
        "Target",
        "Category",
        "Share",
        "SegmentValue",
        "OverallValue",
        "Lift",
        "PValue",
        "Rules",
        "Definition",
    } <= set(table.columns)
    empty = DeltaTable(ctx.lake.suggestion_path("Noise")).to_pandas()
    assert len(empty) == 0
    assert Path(res.chart or "").is_file()
    client = mlflow.tracking.MlflowClient(ctx.tracking_uri())
    run = client.get_run(res.mlflow_run_id)
    assert run.data.metrics["kept"] == res.kept and run.data.metrics["candidates"] == res.candidates
    assert run.data.params["target"] == "LifetimeSpend"
    names = {a.path for a in client.list_artifacts(res.mlflow_run_id)}
    assert {
        "suggestions.json",
        "suggestions.csv",
        "candidates.csv",
        "tree.txt",
        "top.png",
        "model",
    } <= names
    logged = json.loads(
        Path(client.download_artifacts(res.mlflow_run_id, "suggestions.json")).read_text()
    )
    assert [r["Members"] for r in logged] == [r["Members"] for r in res.rows]


def test_refining_again_from_rounded_cuts_gives_the_same_suggestions(
    mined, monkeypatch, caplog
) -> None:
    # provisional cuts that disagree with the data (every threshold "below the minimum")
    # make the run refine again from the rounded rules: same suggestions, one warning
    import suggestions.candidates as run_module

    ctx, results, _ = mined
    monkeypatch.setattr(
        run_module,
        "provisional_cuts",
        lambda feats, paths: dict.fromkeys(
            ((t.feature, t.threshold) for p in paths for t in p.tests if t.threshold is not None),
            None,
        ),
    )
    with caplog.at_level("WARNING", logger="suggestions.candidates"):
        (again,) = run_suggestions(ctx, ["Spend"], as_of="2024-05-01")
    assert "provisional cuts disagree" in caplog.text
    keys = ("Rules", "Members", "Effect", "AdjustedPValue")
    assert [tuple(r[k] for k in keys) for r in again.rows] == [
        tuple(r[k] for k in keys) for r in results["Spend"].rows
    ]


def test_saved_segment_has_the_suggestions_members(mined) -> None:
    from segmentation import run_segments

    ctx, results, frame = mined
    res = results["Spend"]
    row, mask = _find(res.rows, frame, "low")
    path = save_suggestion(ctx, "Spend", row["Rank"], "Low spending teachers")
    saved = yaml.safe_load(path.read_text())
    assert saved["output"] == "LowSpendingTeachers" and saved["type"] == "dynamic"
    assert saved["where"] == json.loads(row["Definition"])
    (run,) = run_segments(ctx, only=["LowSpendingTeachers"])
    segment = keys(ctx.spark, ctx.lake.root, "LowSpendingTeachers")
    assert run.table_version == latest_version(ctx.lake.root, "LowSpendingTeachers")
    ours = {r[0] for r in suggestion_members(ctx, "Spend", row["Rank"]).collect()}
    expected = set(frame.loc[mask, "CustomerId"])
    assert segment == ours == expected
    assert len(segment) == row["Members"]


def test_cli_bad_input_exits_2_and_writes_nothing(mined, tmp_path, capsys) -> None:
    ctx, _, _ = mined
    conf = tmp_path / "conf"
    (conf / "suggestions").mkdir(parents=True)
    # the shipped catalog, its profile cut to the columns the mined lakehouse has (jobs
    # check the tables' columns against the catalog before reading them)
    catalog = yaml.safe_load((REPO / "conf" / "catalog.yaml").read_text())
    present = set(ctx.lake.read(ctx.lake.profile_path("Customer")).columns)
    attributes = catalog["profile"]["attributes"]
    catalog["profile"]["attributes"] = {k: v for k, v in attributes.items() if k in present}
    (conf / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    bad = conf / "suggestions" / "bad.yaml"
    bad.write_text(
        "name: Bad\ntarget: LifetimeSpend\ninfluencers: [Income, LifetimeSpend, Incme]\n"
    )
    assert main(["suggest", "--conf", str(conf), "--root", str(tmp_path / "lake")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {bad}: influencers[1]: LifetimeSpend is the target; it cannot also be an influencer",
        f"error: {bad}: influencers[2]: unknown attribute 'Incme'; did you mean Income?",
    ]
    assert not (tmp_path / "lake").exists()
    # too many categories can only be seen in the data: still an input error, nothing written
    bad.write_text("name: Names\ntarget: LifetimeSpend\ninfluencers: [Income, FirstName]\n")
    assert main(["suggest", "--conf", str(conf), "--root", ctx.root]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {bad}: influencers[1]: influencer FirstName has 150 categories in the data; at most 100 are allowed"
    ]
    assert not Path(ctx.lake.suggestion_path("Names")).exists()


def test_default_influencers_leave_out_text_fields_with_too_many_categories(
    spark, tmp_path, caplog
) -> None:
    """Without `influencers`, a post code of 150 values is left out (a listed one is an
    error) and the run still finds the planted group among the other fields."""
    n = 600
    rng = np.random.default_rng(5)
    tier = rng.choice(["low", "medium", "high"], n)
    spend = np.where(tier == "high", 1500.0, 500.0) + rng.normal(0, 20, n)
    ids = [f"C{i:04d}" for i in range(n)]
    profile = pd.DataFrame(
        {
            "CustomerId": ids,
            "FirstName": [f"N{i}" for i in range(n)],
            "State": rng.choice(["California", "Texas", "Ohio"], n),
            "PostCode": [f"{10000 + i % 150}" for i in range(n)],
            "Income": rng.integers(20_000, 150_000, n).astype(float),
            "LoyaltyTier": tier,
            "Occupation": rng.choice(["Teacher", "Nurse", "Chef"], n),
            "EmailSubscriber": rng.random(n) < 0.5,
            "RewardPoints": rng.integers(0, 5_000, n),
            "CustomerSatisfaction": rng.choice(["low", "medium", "high"], n),
        }
    ).astype(object)
    measures = pd.DataFrame(
        {
            "CustomerId": ids,
            "LifetimeSpend": spend,
            "AverageWebPurchase": rng.normal(138, 40, n),
            "AverageStorePurchase": rng.normal(113, 30, n),
        }
    ).astype(object)
    conf = tmp_path / "conf"
    (conf / "suggestions").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "catalog.yaml", conf / "catalog.yaml")
    (conf / "suggestions" / "default.yaml").write_text(
        "name: Default Spend\ntarget: LifetimeSpend\nmax_depth: 2\nmin_members: 30\n"
    )
    ctx = load_context(conf, root=str(tmp_path / "lake"), spark=spark)
    rows = [tuple(r[f.name] for f in PROFILE.fields) for r in profile.to_dict("records")]
    ctx.lake.overwrite(spark.createDataFrame(rows, PROFILE), ctx.lake.profile_path("Customer"))
    mrows = [tuple(r[f.name] for f in MEASURES.fields) for r in measures.to_dict("records")]
    ctx.lake.overwrite(spark.createDataFrame(mrows, MEASURES), ctx.lake.measures_path())
    with caplog.at_level("INFO", logger="suggestions.run"):
        (result,) = run_suggestions(ctx, as_of="2024-05-01")
    assert "DefaultSpend: default influencers without PostCode (over 100 categories)" in caplog.text
    assert result.rows, "the planted group is found"
    used = {f for row in result.rows for f in json.dumps(json.loads(row["Definition"])).split('"')}
    assert "PostCode" not in used
    frame = profile.merge(measures, on="CustomerId").assign(high=tier == "high")
    row, mask = _find(result.rows, frame, "high")
    assert row["Members"] == int(mask.sum()) and "LoyaltyTier is high" in row["Rules"]
