"""Insight definitions, the `insights` command and the written tables, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake
from scipy import stats

from cohortlake.catalog import load_catalog
from cohortlake.cli import main
from cohortlake.context import load_context
from cohortlake.errors import InputError, Problem
from insights import OverlapDefinition, load_insights, run_insights

REPO = Path(__file__).resolve().parent.parent

CATALOG = """
profile:
  entity: Customer
  key: CustomerId
  attributes:
    Email: {type: string, personal: true}
    State: {type: string}
    RewardPoints: {type: integer, display: Reward Points}
activities:
  Purchases:
    event_time: PurchaseDate
    attributes:
      PurchaseDate: {type: timestamp}
      Amount: {type: number}
measures:
  LifetimeSpend: {display: Lifetime Spend ($), source: Purchases, agg: sum, attribute: Amount}
"""

SEGMENTS = {
    "online.yaml": "name: High Value Online Customers\nwhere: {attribute: LifetimeSpend, op: gt, value: 1}\n",
    "california.yaml": "name: Customers from California\nwhere: {attribute: State, op: eq, value: CA}\n",
    "washington.yaml": "name: Washington\nwhere: {attribute: State, op: eq, value: WA}\n",
}

OVERLAP = """
name: Online and California
kind: overlap
segments: [highvalueonlinecustomers, CustomersFromCalifornia]
fields: [Reward Points, State]
"""

DIFFERENTIATORS = """
name: Online vs California
output: OnlineVsCalifornia
kind: differentiators
primary: HighValueOnlineCustomers
compare_to: CustomersFromCalifornia
fields: [RewardPoints, LifetimeSpend, State]
"""

VS_ALL = """
name: Online vs everyone
kind: differentiators
primary: HighValueOnlineCustomers
"""


def _conf(tmp_path: Path, insights: dict[str, str]) -> Path:
    conf = tmp_path / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "insights").mkdir()
    (conf / "catalog.yaml").write_text(CATALOG)
    (conf / "lakehouse.yaml").write_text("root: lake\n")
    for name, text in SEGMENTS.items():
        (conf / "segments" / name).write_text(text)
    for name, text in insights.items():
        (conf / "insights" / name).write_text(text)
    return conf


def _catalog(conf: Path):
    return load_catalog(conf / "catalog.yaml")


def test_lab_definitions_in_conf_validate():
    catalog = load_catalog(REPO / "conf" / "catalog.yaml")
    found = {d.output: d for d in load_insights(REPO / "conf", catalog)}
    overlap = found["HighValueOnlineOverlappedwithCaliforniaCustomers"]
    assert isinstance(overlap, OverlapDefinition)
    assert overlap.segments == ("HighValueOnlineCustomers", "CustomersFromCalifornia")
    diff = found["HighValueOnlinevsCustomersfromCalifornia"]
    assert (diff.primary, diff.compare_to) == (
        "HighValueOnlineCustomers",
        "CustomersFromCalifornia",
    )
    assert [f.name for f in diff.fields] == ["RewardPoints", "LifetimeSpend"]


def test_defaults_derived_output_and_all_non_personal_fields(tmp_path):
    as_list = "insights:\n" + "".join(
        "  - " + text.strip().replace("\n", "\n    ") + "\n" for text in (OVERLAP, VS_ALL)
    )
    conf = _conf(tmp_path, {"both.yaml": as_list})
    found = {d.output: d for d in load_insights(conf, _catalog(conf))}
    assert set(found) == {"OnlineAndCalifornia", "OnlineVsEveryone"}
    vs_all = found["OnlineVsEveryone"]
    assert vs_all.compare_to is None
    assert [f.name for f in vs_all.fields] == ["State", "RewardPoints", "LifetimeSpend"]


BAD = {
    "unknown.yaml": "name: X1\nkind: overlap\nsegments: [CustomersFromCalifornia, HighValueOnline]\n",
    "one.yaml": "name: X2\nkind: overlap\nsegments: [CustomersFromCalifornia]\n",
    "same.yaml": "name: X3\nkind: differentiators\nprimary: Washington\ncompare_to: washington\n",
    "field.yaml": "name: X4\nkind: differentiators\nprimary: Washington\nfields: [State, RewardPoint]\n",
    "insight.yaml": "name: X5\nkind: overlap\nsegments: [Washington, X1]\n",
    "kind.yaml": "name: X6\nkind: venn\nsegments: [Washington, X1]\n",
    "extra.yaml": "name: X7\nkind: overlap\nsegments: [Washington, CustomersFromCalifornia]\ncolour: red\n",
}


def test_bad_definitions_report_every_problem_with_file_and_path(tmp_path):
    conf = _conf(tmp_path, BAD)
    folder = conf / "insights"
    with pytest.raises(InputError) as err:
        load_insights(conf, _catalog(conf))
    assert sorted(err.value.problems) == sorted(
        [
            Problem(
                str(folder / "unknown.yaml"),
                "segments[1]",
                "unknown segment 'HighValueOnline'; did you mean HighValueOnlineCustomers?",
            ),
            Problem(str(folder / "one.yaml"), "segments", "overlap needs 2 to 50 segments, got 1"),
            Problem(
                str(folder / "same.yaml"),
                "compare_to",
                "compare_to must differ from the primary segment 'Washington'",
            ),
            Problem(
                str(folder / "field.yaml"),
                "fields[1]",
                "unknown field 'RewardPoint'; did you mean RewardPoints?",
            ),
            Problem(
                str(folder / "insight.yaml"),
                "segments[1]",
                f"'X1' is an insight in {folder / 'unknown.yaml'}, not a segment",
            ),
            Problem(
                str(folder / "kind.yaml"),
                "kind",
                "unknown kind 'venn' (expected overlap or differentiators)",
            ),
            Problem(str(folder / "extra.yaml"), "colour", "unknown key"),
        ]
    )


def _write_inputs(root: str, seed: int = 1) -> pd.DataFrame:
    """Profile, measures and two segment tables, written with delta-rs (no Spark jobs)."""
    rng = np.random.default_rng(seed)
    n = 400
    pdf = pd.DataFrame(
        {
            "CustomerId": np.arange(n, dtype="int64"),
            "Email": [f"c{i}@x" for i in range(n)],
            "State": rng.choice(["CA", "WA", "NY"], n),
            "RewardPoints": rng.integers(0, 50, n).astype("int32"),
            "LifetimeSpend": np.round(rng.gamma(2.0, 300.0, n), 0),
        }
    )
    write_deltalake(
        f"{root}/profile/Customer", pdf[["CustomerId", "Email", "State", "RewardPoints"]]
    )
    write_deltalake(f"{root}/measures/CustomerMeasures", pdf[["CustomerId", "LifetimeSpend"]])
    online = pdf.loc[pdf.LifetimeSpend > 700, ["CustomerId"]]
    california = pdf.loc[pdf.State == "CA", ["CustomerId"]]
    write_deltalake(f"{root}/segments/HighValueOnlineCustomers", online.reset_index(drop=True))
    write_deltalake(f"{root}/segments/CustomersFromCalifornia", california.reset_index(drop=True))
    return pdf


def test_run_writes_tables_matching_pandas_and_charts(spark, tmp_path):
    conf = _conf(tmp_path, {"a.yaml": OVERLAP, "b.yaml": DIFFERENTIATORS})
    root = str(tmp_path / "lake")
    pdf = _write_inputs(root)
    ctx = load_context(conf, root=root, spark=spark)
    results = run_insights(ctx, as_of="2024-05-01")
    assert [r.output for r in results] == ["OnlineAndCalifornia", "OnlineVsCalifornia"]

    online = set(pdf[pdf.LifetimeSpend > 700].CustomerId)
    california = set(pdf[pdf.State == "CA"].CustomerId)
    table = DeltaTable(f"{root}/insights/OnlineAndCalifornia").to_pandas()
    assert set(table.RunId) == {results[0].run_id}
    assert set(table.AsOf.astype(str)) == {"2024-05-01 00:00:00+00:00"}
    pair = table[table.Kind == "pair"].iloc[0]
    assert (pair.SegmentA, pair.SegmentB) == ("HighValueOnlineCustomers", "CustomersFromCalifornia")
    shared = len(online & california)
    assert pair.Members == shared
    assert pair.ShareOfA == pytest.approx(shared / len(online))
    assert pair.ShareOfB == pytest.approx(shared / len(california))
    assert pair.Jaccard == pytest.approx(shared / len(online | california))
    excl = table[table.Kind == "exclusive"].set_index("SegmentA").Members.to_dict()
    assert excl == {
        "HighValueOnlineCustomers": len(online - california),
        "CustomersFromCalifornia": len(california - online),
    }
    assert table[table.Kind == "all"].Members.tolist() == [shared]
    regions = {
        tuple(s): m
        for s, m in table[table.Kind == "region"][["Segments", "Members"]].itertuples(index=False)
    }
    assert regions[("HighValueOnlineCustomers", "CustomersFromCalifornia")] == shared
    states = table[
        (table.Kind == "field_distribution") & (table.Field == "State") & (table.Group == "all")
    ]
    assert dict(zip(states.Category, states.Members, strict=True)) == {
        "CA": shared,
        "NY": 0,
        "WA": 0,
    }
    assert (Path(root) / "reports/insights/OnlineAndCalifornia/venn.png").stat().st_size > 1000

    diff = DeltaTable(f"{root}/insights/OnlineVsCalifornia").to_pandas().set_index("Field")
    assert list(diff.sort_values("Rank").Score) == sorted(diff.Score, reverse=True)
    on, ca = pdf[pdf.CustomerId.isin(online)], pdf[pdf.CustomerId.isin(california)]
    for name in ("RewardPoints", "LifetimeSpend"):
        u = stats.mannwhitneyu(on[name], ca[name]).statistic / (len(on) * len(ca))
        assert diff.loc[name, "Score"] == pytest.approx(max(u, 1 - u), abs=1e-9)
        assert diff.loc[name, "PrimaryMedian"] == pytest.approx(on[name].median())
    assert diff.loc["State", "Score"] == pytest.approx(
        0.5 + 0.5 * (1 - (on.State == "CA").mean()), abs=1e-9
    )
    dist = DeltaTable(f"{root}/insights/OnlineVsCaliforniaDistributions").to_pandas()
    spend = dist[(dist.Field == "LifetimeSpend") & (dist.Side == "other")]
    assert len(spend) == 20 and spend.Members.sum() == len(ca)
    charts = {Path(c).name for c in results[1].charts}
    assert {
        "scores.png",
        "field_RewardPoints.png",
        "field_LifetimeSpend.png",
        "field_State.png",
    } <= charts


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    conf = _conf(tmp_path, {"one.yaml": BAD["one.yaml"], "field.yaml": BAD["field.yaml"]})
    root = tmp_path / "lake"
    code = main(["insights", "--conf", str(conf), "--root", str(root)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    folder = conf / "insights"
    assert err == [
        f"error: {folder / 'field.yaml'}: fields[1]: unknown field 'RewardPoint'; did you mean RewardPoints?",
        f"error: {folder / 'one.yaml'}: segments: overlap needs 2 to 50 segments, got 1",
    ]
    assert not root.exists()


def test_cli_unknown_only_exits_2(tmp_path, capsys):
    conf = _conf(tmp_path, {"a.yaml": OVERLAP})
    root = tmp_path / "lake"
    assert main(["insights", "--conf", str(conf), "--root", str(root), "--only", "Nope"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: --only: [0]: no insight with output 'Nope' (known: OnlineAndCalifornia)"
    )
    assert not root.exists()


def test_cli_missing_segment_table_fails_before_writing(spark, tmp_path, capsys):
    conf = _conf(tmp_path, {"a.yaml": OVERLAP, "b.yaml": VS_ALL})
    root = tmp_path / "lake"
    write_deltalake(f"{root}/segments/HighValueOnlineCustomers", pd.DataFrame({"CustomerId": [1]}))
    code = main(["insights", "--conf", str(conf), "--root", str(root)])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {root}/profile/Customer: missing Delta table: the customer profile (run `cohortlake generate`, `cohortlake import` or set profile.table)",
        f"error: {root}/measures/CustomerMeasures: missing Delta table: the measures (run `cohortlake measures`)",
        f"error: {root}/memberships: segment CustomersFromCalifornia has not been run yet",
    ]
    assert not (root / "insights").exists()
    assert not (root / "memberships").exists()
