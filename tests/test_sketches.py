"""Segment sketches: written by runs, decoded like Spark, estimates within their bounds.

Every expectation is an exact count computed here with pandas and Python sets from the
generated profile (or, for the set expression, the segment runner's own membership of the
same tree), never from the sketches themselves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _memberships import latest_version, newest_version, rs_members
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import functions as F

from cohortlake import sketches as sketches_module
from cohortlake.cli import main
from cohortlake.context import load_context
from cohortlake.sketches import PROFILE, SketchRow, latest_sketches, record_published_sketch
from insights.run import run_insights
from insights.sketch_estimate import estimate_condition, parse_condition
from insights.sketch_insight import estimated_overlap
from insights.theta import decode
from segmentation.run import RunOptions, run_segments

N = 12_000
AS_OF = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
CATALOG = """
profile:
  entity: Customer
  key: CustomerId
  attributes:
    State: {type: string}
    Income: {type: number}
    Age: {type: integer}
"""
SEGMENTS = """
segments:
  - {name: West, where: {attribute: State, op: in, value: [CA, WA, OR]}}
  - {name: Rich, where: {attribute: Income, op: gt, value: 60000}}
  - {name: Young, where: {attribute: Age, op: lt, value: 25}}
  - {name: Texans, where: {attribute: State, op: eq, value: TX}}
  - name: Combo
    where: {all: [{segment: West}, {not: {any: [{segment: Rich}, {segment: Young}]}}]}
  - {name: Never Run, where: {attribute: State, op: eq, value: NY}}
"""
RUN = ["West", "Rich", "Young", "Texans", "Combo"]
COMBO = "{all: [{segment: West}, {not: {any: [{segment: Rich}, {segment: Young}]}}]}"


def _profile() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "CustomerId": [f"C{i:07d}" for i in range(N)],
            "State": rng.choice(["CA", "WA", "OR", "TX", "NY"], N, p=[0.3, 0.1, 0.1, 0.3, 0.2]),
            "Income": rng.normal(55000, 15000, N).round(0),
            "Age": rng.integers(18, 80, N).astype("int64"),
        }
    )


def _exact(p: pd.DataFrame) -> dict[str, set[str]]:
    ids = lambda mask: set(p.CustomerId[mask])  # noqa: E731 - a short selector
    out = {
        "West": ids(p.State.isin(["CA", "WA", "OR"])),
        "Rich": ids(p.Income > 60000),
        "Young": ids(p.Age < 25),
        "Texans": ids(p.State == "TX"),
    }
    out["Combo"] = out["West"] - (out["Rich"] | out["Young"])
    return out


@pytest.fixture(scope="module")
def lab(spark, tmp_path_factory: pytest.TempPathFactory):
    """One lake with the profile written by delta-rs and one segment run of five segments."""
    base = tmp_path_factory.mktemp("sketches")
    conf = base / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "insights").mkdir()
    (conf / "catalog.yaml").write_text(CATALOG)
    (conf / "lakehouse.yaml").write_text("root: lake\n")
    (conf / "segments" / "all.yaml").write_text(SEGMENTS)
    root = str(base / "lake")
    profile = _profile()
    write_deltalake(f"{root}/profile/Customer", profile)
    ctx = load_context(conf, root=root, spark=spark)
    runs = run_segments(ctx, only=RUN, as_of=AS_OF)
    return ctx, conf, root, profile, {r.segment: r for r in runs}


def test_a_run_writes_one_sketch_per_segment_naming_its_table_version(lab):
    _, _, root, profile, runs = lab
    table = DeltaTable(f"{root}/segment_sketches").to_pandas().set_index("Segment")
    exact = _exact(profile)
    assert set(table.index) == {*RUN, PROFILE}
    for name in RUN:
        row = table.loc[name]
        assert len(rs_members(root, name, version=int(row.TableVersion))) == len(exact[name])
        assert row.TableVersion == runs[name].table_version
        assert row.Members == len(exact[name])
        assert row.RunId == runs[name].run_id
    everyone = table.loc[[PROFILE]]  # one row per level of the run
    assert set(everyone.Members) == {N}
    assert set(everyone.TableVersion) == {DeltaTable(f"{root}/profile/Customer").version()}
    # each names the newest commit of the shared table that wrote its segment's partition
    assert {name: table.loc[name].TableVersion for name in RUN} == {
        name: latest_version(root, name) for name in RUN
    }


def test_an_unchanged_rerun_sketches_nothing(lab):
    ctx, _, root, _, runs = lab
    before = DeltaTable(f"{root}/segment_sketches").version()
    memberships = newest_version(root)
    again = run_segments(ctx, only=RUN, as_of=AS_OF, options=RunOptions(force=True))
    assert {r.segment: r.table_version for r in again} == {
        name: run.table_version for name, run in runs.items()
    }
    assert DeltaTable(f"{root}/segment_sketches").version() == before
    assert newest_version(root) == memberships  # the same memberships make no commit


def test_decoding_matches_sparks_own_estimates(spark):
    ids = spark.range(20_000)
    for n in (0, 1, 2, 9, 4095, 4097, 20_000):
        row = (
            ids.where(F.col("id") < n)
            .agg(F.theta_sketch_agg("id", 12).alias("s"))
            .select("s", F.theta_sketch_estimate("s").alias("e"))
            .first()
        )
        decoded = decode(bytes(row["s"]))
        assert round(decoded.estimate) == row["e"], n
        assert len(decoded.hashes) == min(n, 4096)
        assert (decoded.theta == 1.0) == (n <= 4096)
        assert np.all(np.diff(decoded.hashes.astype(np.float64)) > 0)


def test_sizes_and_pairs_are_within_their_bounds_and_match_spark(spark, lab):
    ctx, _, _, profile, _ = lab
    exact = _exact(profile)
    overlap = estimated_overlap(ctx, RUN, None, "test")
    names = list(overlap.segments)
    assert names == RUN
    for i, name in enumerate(names):
        assert overlap.size_low[i] <= len(exact[name]) <= overlap.size_high[i], name
        assert overlap.size_high[i] - overlap.size_low[i] <= 0.12 * len(exact[name]) + 1
    young = names.index("Young")  # under 4,096 members: exact
    assert overlap.sizes[young] == overlap.size_low[young] == len(exact["Young"])
    sketch = {r.segment: r.sketch for r in latest_sketches(ctx.lake, RUN).values()}
    pairs = spark.createDataFrame(
        [(a, sketch[a], b, sketch[b]) for a in RUN for b in RUN if a < b],
        "a string, sa binary, b string, sb binary",
    )
    spark_shared = {
        (r.a, r.b): r.n
        for r in pairs.select("a", "b", F.theta_sketch_estimate(F.theta_intersection("sa", "sb")).alias("n")).collect()
    }  # fmt: skip
    for r in overlap.pairs().itertuples(index=False):
        truth = len(exact[r.SegmentA] & exact[r.SegmentB])
        assert r.Low <= truth <= r.High, (r.SegmentA, r.SegmentB, truth, r.Low, r.High)
        key = tuple(sorted((r.SegmentA, r.SegmentB)))
        assert round(r.Members) == spark_shared[key]
    assert len(overlap.pairs()) == 10


def test_with_ranks_the_others_against_one(lab):
    ctx, _, _, profile, _ = lab
    exact = _exact(profile)
    found = estimated_overlap(ctx, None, "West", "test").pairs(top=2, by="shared")
    assert list(found.SegmentA) == ["West", "West"]
    truth = sorted(RUN[1:], key=lambda s: -len(exact["West"] & exact[s]))
    assert list(found.SegmentB) == truth[:2]  # Combo (inside West), then Rich


def test_a_set_expression_matches_the_runner_and_python_sets(lab):
    ctx, _, root, profile, _ = lab
    exact = _exact(profile)
    node, leaves, source = parse_condition(ctx, where=COMBO)
    found = estimate_condition(ctx, node, leaves, source)
    by_runner = len(rs_members(root, "Combo"))
    assert by_runner == len(exact["Combo"])
    assert found.low <= by_runner <= found.high
    assert found.high - found.low < 0.25 * by_runner
    node, leaves, source = parse_condition(ctx, where="{not: {segment: texans}}")
    found = estimate_condition(ctx, node, leaves, source)
    assert found.low <= N - len(exact["Texans"]) <= found.high
    assert {r.segment for r in found.sketches} == {"Texans", PROFILE}


def test_cli_overlap_and_estimate(lab, capsys):
    _, conf, root, profile, _ = lab
    args = ["--conf", str(conf), "--root", root]
    assert main(["overlap", "west", "Texans", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "overlap from sketches (3-sigma bounds): 2 segments"
    texans = len(_exact(profile)["Texans"])  # under 4,096 members: exact, zero-width bounds
    assert out[2] == f"  Texans: {texans:,} members ({texans:,}-{texans:,})"
    low, high = (int(x.replace(",", "")) for x in out[1].split("(")[1].rstrip(")").split("-"))
    assert out[1].startswith("  West: ") and low <= len(_exact(profile)["West"]) <= high
    assert out[-1].startswith("  West & Texans: 0 shared (0-")
    assert main(["estimate", "--where", "{segment: Young}", *args]) == 0
    young = len(_exact(profile)["Young"])
    assert capsys.readouterr().out.startswith(
        f"estimate: {young:,} customers (3-sigma bounds {young:,}-{young:,})"
    )


BAD = [
    (["overlap", "West", "Nowhere"], "error: overlap: segments[1]: unknown segment 'Nowhere'"),
    (
        ["overlap", "West", "NeverRun"],
        "error: overlap: segments[1]: segment 'NeverRun' has no sketch yet; run it first",
    ),
    (
        ["estimate", "--where", "{all: [{segment: West}, {attribute: Age, op: gt, value: 3}]}"],
        "error: --where: all[1].attribute: an attribute leaf needs a run: estimates from "
        "sketches take only segment leaves with all, any and not",
    ),
    (
        ["estimate", "--where", "{any: [{segment: West}, {not: {segment: NeverRun}}]}"],
        "error: --where: any[1].not.segment: segment 'NeverRun' has no sketch yet; run it first",
    ),
    (
        ["estimate", "--where", "{segment: Nowhere}"],
        "error: --where: segment: unknown segment 'Nowhere'",
    ),
]


@pytest.mark.parametrize(("argv", "line"), BAD)
def test_bad_input_is_one_line_and_exit_2(lab, capsys, argv, line):
    _, conf, root, _, _ = lab
    assert main([*argv, "--conf", str(conf), "--root", root]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_the_insight_kind_writes_ranked_pairs_with_bounds(lab):
    ctx, conf, root, profile, _ = lab
    (conf / "insights" / "est.yaml").write_text(
        "name: Catalogue\nkind: estimated_overlap\nsegments: all\ntop: 3\n"
    )
    try:
        (result,) = run_insights(ctx, as_of="2026-07-01")
    finally:
        (conf / "insights" / "est.yaml").unlink()
    exact = _exact(profile)
    table = DeltaTable(f"{root}/insights/Catalogue").to_pandas()
    pairs = table[table.Kind == "pair"].sort_values("Rank")
    assert len(pairs) == 3 and list(pairs.Rank) == [1, 2, 3]
    best = max(
        ((a, b) for a in RUN for b in RUN if a < b), key=lambda p: len(exact[p[0]] & exact[p[1]])
    )
    assert tuple(sorted(pairs.iloc[0][["SegmentA", "SegmentB"]])) == best
    for r in pairs.itertuples():
        assert r.Low <= len(exact[r.SegmentA] & exact[r.SegmentB]) <= r.High
    sizes = table[table.Kind == "segment_size"].set_index("SegmentA")
    assert set(sizes.index) == set(RUN)
    assert {Path(c).name for c in result.charts} == {"pairs.png", "heatmap.png"}


def test_a_published_membership_is_sketched_from_its_version(lab):
    ctx, _, _, profile, runs = lab
    west = runs["West"]
    texans = runs["Texans"]
    copy = dataclasses.replace(texans, run_id="expansion-like", members=west.members)
    record_published_sketch(ctx.lake, copy, "CustomerId")
    latest = latest_sketches(ctx.lake, ["texans"])["texans"]
    assert latest.run_id == "expansion-like"  # same version, later run id: the newest
    assert round(decode(latest.sketch).estimate) == len(_exact(profile)["Texans"])


def test_superseded_rows_are_pruned(spark, tmp_path, monkeypatch):
    ctx = load_context(
        Path(__file__).resolve().parent.parent / "conf", root=str(tmp_path), spark=spark
    )
    monkeypatch.setattr(sketches_module, "PRUNE_EVERY", 3)
    empty = bytes.fromhex("01030300001e0000")
    for version in range(4):  # commits 0..3; the one at version 3 prunes
        rows = [
            SketchRow("A", f"r{version}", version, version, empty),
            SketchRow("B", "r0", 0, 0, empty),
        ]
        sketches_module.record_sketches(ctx.lake, rows[: 1 if version else 2])
    left = DeltaTable(str(tmp_path / "segment_sketches")).to_pandas()
    assert sorted(zip(left.Segment, left.TableVersion, strict=True)) == [("A", 3), ("B", 0)]


def test_estimated_overlap_definitions_are_validated(tmp_path):
    from cohortlake.catalog import load_catalog
    from cohortlake.errors import InputError, Problem
    from insights.model import EstimatedOverlapDefinition, load_insights

    conf = tmp_path / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "insights").mkdir()
    (conf / "catalog.yaml").write_text(CATALOG)
    (conf / "segments" / "all.yaml").write_text(SEGMENTS)
    good = "name: Most like West\nkind: estimated_overlap\nwith: west\ntop: 5\nby: jaccard\n"
    (conf / "insights" / "good.yaml").write_text(good)
    (found,) = load_insights(conf, load_catalog(conf / "catalog.yaml"))
    assert found == EstimatedOverlapDefinition(
        "Most like West",
        "MostLikeWest",
        None,
        "West",
        5,
        "jaccard",
        str(conf / "insights" / "good.yaml"),
    )
    bad = "name: B\nkind: estimated_overlap\nsegments: [West]\nwith: Nowhere\n"
    (conf / "insights" / "bad.yaml").write_text(bad)
    with pytest.raises(InputError) as err:
        load_insights(conf, load_catalog(conf / "catalog.yaml"))
    where = str(conf / "insights" / "bad.yaml")
    assert err.value.problems == [
        Problem(where, "segments", "name 2 or more segments or 'all', got 1"),
        Problem(where, "with", "unknown segment 'Nowhere'"),
    ]
