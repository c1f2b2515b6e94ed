"""End-to-end expansion runs on generated data with a planted cluster."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _memberships import rs_members, touching
from sklearn.neighbors import NearestNeighbors

from cohortlake.cli import main
from cohortlake.context import load_context, parse_as_of
from cohortlake.errors import InputError
from cohortlake.lake import Lake
from expansion import load_expansions, run_expansions

REPO = Path(__file__).resolve().parent.parent
AS_OF = parse_as_of("2024-06-30")
K = 10


def _make_conf(tmp: Path, expansions: dict[str, str]) -> Path:
    conf = tmp / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "expansions").mkdir()
    # the shipped catalog, its profile cut to the columns this module's lakehouse has
    catalog = yaml.safe_load((REPO / "conf" / "catalog.yaml").read_text())
    kept = ("Income", "LoyaltyTier")
    catalog["profile"]["attributes"] = {k: catalog["profile"]["attributes"][k] for k in kept}
    (conf / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    (conf / "lakehouse.yaml").write_text("root: lakehouse\n")
    for name in ("Src", "PoolSeg", "Tiny", "Inside"):
        (conf / "segments" / f"{name.lower()}.yaml").write_text(
            f"name: {name}\nwhere: {{attribute: Income, op: gt, value: 0}}\n"
        )
    for file, text in expansions.items():
        (conf / "expansions" / file).write_text(text)
    return conf


def _people(seed: int = 3) -> pd.DataFrame:
    """1,700 background customers and a planted cluster of 300 (rich, big in-store spenders, high tier)."""
    rng = np.random.default_rng(seed)
    n_bg, n_cl = 1700, 300
    income = np.concatenate([rng.normal(60_000, 15_000, n_bg), rng.normal(110_000, 3_000, n_cl)])
    asp = np.concatenate([rng.normal(100, 30, n_bg), rng.normal(180, 5, n_cl)])
    tier = np.concatenate([rng.choice(["low", "medium", "high"], n_bg), np.full(n_cl, "high")])
    ids = [f"C{i:05d}" for i in range(n_bg + n_cl)]
    return pd.DataFrame(
        {
            "CustomerId": ids,
            "Income": income,
            "AverageStorePurchase": asp,
            "LoyaltyTier": tier,
            "cluster": [False] * n_bg + [True] * n_cl,
        }
    )


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return _people()


def _segments(people: pd.DataFrame) -> dict[str, list[str]]:
    cluster = people.loc[people["cluster"], "CustomerId"].tolist()
    others = people.loc[~people["cluster"], "CustomerId"].tolist()
    return {
        "Src": cluster[:200],
        # 60 cluster members (20 of them also in the source) and 400 others.
        "PoolSeg": cluster[180:240] + others[:400],
        "Tiny": others[:10],
        "Inside": cluster[:50],
    }


@pytest.fixture(scope="module")
def root(spark, tmp_path_factory, people) -> Path:
    """One lakehouse for the module: profile, measures and the segments the tests expand."""
    path = tmp_path_factory.mktemp("expansion") / "lake"
    _write_lake(spark, Lake(spark, str(path)), people, _segments(people))
    return path


def _write_lake(spark, lake, people: pd.DataFrame, segments: dict[str, list[str]]) -> None:
    prof = spark.createDataFrame(people[["CustomerId", "Income", "LoyaltyTier"]])
    lake.overwrite(prof, lake.profile_path("Customer"))
    meas = spark.createDataFrame(people[["CustomerId", "AverageStorePurchase"]])
    lake.overwrite(meas, lake.measures_path())
    for name, ids in segments.items():
        lake.overwrite(
            spark.createDataFrame([(i,) for i in ids], "CustomerId string"), lake.segment_path(name)
        )


def _published(root: Path, output: str, columns: list[str]) -> pd.DataFrame:
    """One expansion's rows in the shared memberships table, read with delta-rs: the key
    and its own columns (every other column of the table is null for it)."""
    frame = rs_members(root, output).drop(columns="Segment")
    others = [c for c in frame.columns if c not in ("CustomerId", *columns)]
    assert frame[others].isna().all().all(), others
    return frame[["CustomerId", *columns]]


def _expected(people: pd.DataFrame, source: set[str], pool: set[str], cap: int) -> pd.DataFrame:
    """Independent scores: z-scores over the population, blocks by tier, brute-force kNN with sklearn."""
    z = people[["Income", "AverageStorePurchase"]].to_numpy()
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    is_src = people["CustomerId"].isin(source).to_numpy()
    s = z[is_src]
    spread = math.sqrt(s.var(axis=0).sum())
    tiers = people["LoyaltyTier"].to_numpy()
    kth = []
    for t in np.unique(tiers[is_src]):
        pts = z[is_src & (tiers == t)]
        if len(pts) <= K:
            continue
        d, _ = NearestNeighbors(n_neighbors=K + 1).fit(pts).kneighbors(pts)
        kth += [x for x in d[:, K] if x < spread]
    kth_sorted = np.sort(kth)
    assert 2 * len(kth) >= is_src.sum()
    radius = max(kth_sorted[math.ceil(0.99 * len(kth)) - 1] / math.sqrt(0.45), 0.05)
    rows = []
    in_pool = people["CustomerId"].isin(pool).to_numpy()
    for t in np.unique(tiers):
        src_t = z[is_src & (tiers == t)]
        cand = np.where(in_pool & (tiers == t))[0]
        if len(src_t) == 0 or len(cand) == 0:
            continue
        d, _ = NearestNeighbors(n_neighbors=min(K, len(src_t))).fit(src_t).kneighbors(z[cand])
        kern = np.clip(1 - (d / radius) ** 2, 0, None)
        kern[d >= radius] = 0
        for i, row in zip(cand, kern, strict=True):
            rows.append((people["CustomerId"].iloc[i], row.sum() / K))
    scores = pd.DataFrame(rows, columns=["CustomerId", "SimilarityScore"])
    top = scores[scores["SimilarityScore"] >= 0.55].sort_values(
        ["SimilarityScore", "CustomerId"], ascending=[False, True]
    )
    return top.head(cap).reset_index(drop=True)


def _band(s: float) -> str:
    return "very similar" if s >= 0.85 else "similar" if s >= 0.70 else "somewhat similar"


def test_planted_cluster_recall_cap_pool_floor_and_reproducible(spark, tmp_path, people, root):
    conf = _make_conf(
        tmp_path,
        {
            "a.yaml": "name: Look Alikes\nsource: src\nfields: [Income, Average Store Purchase ($), LoyaltyTier]\nseed: 11\n"
        },
    )
    ctx = load_context(conf, root=str(root), spark=spark)
    cluster = people.loc[people["cluster"], "CustomerId"].tolist()
    source = cluster[:200]

    (res,) = run_expansions(ctx, as_of=AS_OF)
    got = _published(root, "LookAlikes", ["SimilarityScore", "SimilarityBand"])

    pool = set(people["CustomerId"]) - set(source)
    cap = math.floor(0.2 * len(pool))
    assert res.cap == cap == 360
    expected = _expected(people, set(source), pool, cap)
    assert got["CustomerId"].is_unique
    assert len(got) <= cap
    assert set(got["CustomerId"]) <= pool
    assert (got["SimilarityScore"] >= 0.55).all() and (got["SimilarityScore"] <= 1.0).all()
    merged = expected.merge(
        got, on="CustomerId", how="outer", suffixes=("_exp", "_got"), indicator=True
    )
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"]
    assert np.allclose(merged["SimilarityScore_exp"], merged["SimilarityScore_got"])
    assert list(got["SimilarityBand"]) == [_band(s) for s in got["SimilarityScore"]]
    # The 100 cluster members outside the source are the look-alikes to find.
    assert len(set(cluster[200:]) & set(got["CustomerId"])) >= 90

    held = res.held_out
    assert held.hidden == 40 and held.candidates == len(pool) + 40
    assert held.random_recall == pytest.approx(cap / (len(pool) + 40))
    assert held.recall >= 0.9 and held.recall >= 4 * held.random_recall

    summary = json.loads(
        (root / "reports" / "expansions" / "LookAlikes" / "summary.json").read_text()
    )
    assert summary["held_out"]["recovered"] == held.recovered
    assert sum(b["returned"] for b in summary["histogram"]) == len(got)
    assert sum(b["returned"] + b["not_returned"] for b in summary["histogram"]) == len(pool)
    assert (root / "reports" / "expansions" / "LookAlikes" / "scores.png").stat().st_size > 1000

    (again,) = run_expansions(ctx, as_of=AS_OF)
    got2 = _published(root, "LookAlikes", ["SimilarityScore", "SimilarityBand"])
    pd.testing.assert_frame_equal(
        got.sort_values("CustomerId").reset_index(drop=True),
        got2.sort_values("CustomerId").reset_index(drop=True),
    )
    assert again.held_out == held
    runs = (
        ctx.lake.segment_runs().where("Segment = 'LookAlikes'").orderBy("TableVersion").toPandas()
    )
    assert list(runs["Type"]) == ["expansion", "expansion"]
    assert list(runs["Members"]) == [len(got), len(got)]
    assert list(runs["Joined"]) == [len(got), 0] and list(runs["Left"]) == [0, 0]
    # each run row names a version of the shared table that holds exactly these members
    assert list(runs["Table"]) == ["memberships", "memberships"]
    assert runs["TableVersion"].iloc[0] < runs["TableVersion"].iloc[1]
    for version in runs["TableVersion"]:
        assert set(rs_members(root, "LookAlikes", version=int(version))["CustomerId"]) == set(
            got["CustomerId"]
        )


def test_pool_segment_count_cap_and_include_source(spark, tmp_path, people, root):
    conf = _make_conf(
        tmp_path,
        {
            "b.yaml": (
                "name: From Pool\nsource: Src\nfields: [Income, AverageStorePurchase]\n"
                "pool: {segment: poolseg}\nmax_size: {count: 50}\ninclude_source: true\nseed: 2\n"
            )
        },
    )
    ctx = load_context(conf, root=str(root), spark=spark)
    cluster = people.loc[people["cluster"], "CustomerId"].tolist()
    source, pool_seg = _segments(people)["Src"], _segments(people)["PoolSeg"]

    (res,) = run_expansions(ctx, as_of=AS_OF)
    got = _published(root, "FromPool", ["SimilarityScore", "SimilarityBand", "IsSourceMember"])
    assert got["CustomerId"].is_unique
    pool = set(pool_seg) - set(source)
    assert res.pool == len(pool) == 440 and res.cap == 50
    found = got[~got["IsSourceMember"]]
    assert set(found["CustomerId"]) <= pool
    assert 0 < len(found) <= 50
    assert (found["SimilarityScore"] >= 0.55).all()
    assert len(set(cluster[200:240]) & set(found["CustomerId"])) >= 35  # most of the 40 look-alikes
    src_rows = got[got["IsSourceMember"]]
    assert set(src_rows["CustomerId"]) == set(source)
    assert (src_rows["SimilarityScore"] == 1.0).all() and (
        src_rows["SimilarityBand"] == "very similar"
    ).all()


def _nothing_written(spark, root: Path, output: str) -> bool:
    runs = Lake(spark, str(root)).segment_runs()
    no_run = runs is None or runs.where(runs.Segment == output).count() == 0
    return (
        no_run
        and not (root / "segments" / output).exists()
        and touching(root, output) == []
        and not (root / "reports" / "expansions" / output).exists()
    )


def test_definition_errors_are_reported_together(tmp_path, catalog):
    conf = _make_conf(
        tmp_path,
        {
            "a.yaml": "name: No Fields\nsource: Src\nfields: []\n",
            "b.yaml": "name: Bad Fields\nsource: Srcc\nfields: [Income, AverageStorePurchse, income]\nmax_size: {percent: 0}\n",
            "c.yaml": "name: Bad Pool\nsource: Src\nfields: [Income]\npool: {segment: src}\nmax_size: {percent: 10, count: 3}\ncolour: red\n",
        },
    )
    with pytest.raises(InputError) as err:
        load_expansions(conf, catalog)
    got = sorted((Path(p.file).name, p.path, p.reason) for p in err.value.problems)
    assert got == [
        ("a.yaml", "fields", "List should have at least 1 item after validation, not 0"),
        ("b.yaml", "max_size.percent", "Input should be greater than 0"),
        ("c.yaml", "colour", "unknown key"),
        ("c.yaml", "max_size", "give exactly one of percent or count"),
    ]
    (conf / "expansions" / "a.yaml").unlink()
    (conf / "expansions" / "c.yaml").unlink()
    (conf / "expansions" / "b.yaml").write_text(
        "name: Bad Fields\nsource: Srcc\nfields: [Income, AverageStorePurchse, income]\n"
    )
    (conf / "expansions" / "d.yaml").write_text(
        "name: Bad Pool\nsource: Src\nfields: [Income]\npool: {segment: src}\n"
    )
    with pytest.raises(InputError) as err:
        load_expansions(conf, catalog)
    got = sorted((Path(p.file).name, p.path, p.reason) for p in err.value.problems)
    assert got == [
        (
            "b.yaml",
            "fields[1]",
            "unknown field 'AverageStorePurchse'; did you mean AverageStorePurchase, AverageWebPurchase?",
        ),
        ("b.yaml", "fields[2]", "field 'Income' is listed twice"),
        ("b.yaml", "source", "unknown segment 'Srcc'; did you mean Src?"),
        ("d.yaml", "pool.segment", "the pool is the source segment: no candidates would be left"),
    ]


@pytest.mark.parametrize(
    ("definition", "segment", "path", "reason"),
    [
        (
            "source: Tiny\nfields: [Income]\n",
            "Tiny",
            "source",
            "source segment Tiny has 10 members with a profile; at least 30 are needed",
        ),
        (
            "source: Src\nfields: [Income]\npool: {segment: Inside}\n",
            "Inside",
            "pool",
            "the pool is empty: segment Inside has no members outside the source",
        ),
        (
            "source: Src\nfields: [Income]\nmax_size: {count: 1801}\n",
            "Src",
            "max_size.count",
            "max_size.count 1801 is larger than the pool (1800 customers)",
        ),
    ],
)
def test_data_errors_exit_2_and_write_nothing(
    spark, tmp_path, root, capsys, definition, segment, path, reason
):
    conf = _make_conf(tmp_path, {"x.yaml": "name: Bad Run\n" + definition})
    assert segment in ("Tiny", "Inside", "Src")  # written by the root fixture
    code = main(["expand", "--conf", str(conf), "--root", str(root)])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {conf / 'expansions' / 'x.yaml'}: {path}: {reason}"]
    assert _nothing_written(spark, root, "BadRun")
