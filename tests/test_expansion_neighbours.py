"""The grid search finds exactly the neighbours a brute-force scikit-learn search finds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from expansion.neighbours import kernel_scores, knn_within


def _frame(spark, ids, blocks, z):
    rows = [(int(i), [str(b)], *map(float, zz)) for i, b, zz in zip(ids, blocks, z, strict=True)]
    cols = ["_id", "_blk", *[f"_z{j}" for j in range(z.shape[1])]]
    return spark.createDataFrame(rows, cols)


def _brute(q, r, qb, rb, k, radius):
    """Per query id: [(ref id, dist2)] of its k nearest same-block refs closer than radius."""
    out: dict[int, list[tuple[int, float]]] = {}
    for b in np.unique(qb):
        qi, ri = np.where(qb == b)[0], np.where(rb == b)[0]
        if len(ri) == 0:
            continue
        nn = NearestNeighbors(n_neighbors=min(k, len(ri)), algorithm="brute").fit(r[ri])
        dist, idx = nn.kneighbors(q[qi])
        for row, qidx in enumerate(qi):
            hits = [
                (int(ri[j]), float(d * d))
                for d, j in zip(dist[row], idx[row], strict=True)
                if d < radius
            ]
            if hits:
                out[int(qidx)] = hits
    return out


@pytest.mark.parametrize(("dims", "radius"), [(1, 0.3), (2, 0.8), (3, 1.5)])
def test_knn_matches_brute_force(spark, dims, radius):
    rng = np.random.default_rng(dims)
    # A dense planted cluster (forces fine levels) plus a sparse background (level 0).
    ref = np.vstack([rng.normal(1.0, 0.05, (250, dims)), rng.normal(0, 1, (150, dims))])
    qry = np.vstack([rng.normal(1.0, 0.08, (200, dims)), rng.normal(0, 1.2, (400, dims))])
    rb = rng.integers(0, 2, len(ref))
    qb = rng.integers(0, 2, len(qry))
    k = 5
    q_ids = np.arange(len(qry)) + 10_000
    got = (
        knn_within(
            _frame(spark, q_ids, qb, qry),
            _frame(spark, np.arange(len(ref)), rb, ref),
            dims=dims,
            k=k,
            radius=radius,
        )
        .toPandas()
        .sort_values(["Qid", "Rank"])
    )
    expected = _brute(qry, ref, qb, rb, k, radius)
    assert len(expected) > 100
    got_map = {
        int(q) - 10_000: list(zip(g["Rid"].astype(int), g["Dist2"], strict=True))
        for q, g in got.groupby("Qid")
    }
    assert set(got_map) == set(expected)
    for q, hits in expected.items():
        assert [h[0] for h in got_map[q]] == [h[0] for h in hits], q
        assert np.allclose([h[1] for h in got_map[q]], [h[1] for h in hits])
    assert list(got.groupby("Qid")["Rank"].min().unique()) == [1]


def test_knn_ties_are_ranked_by_reference_id(spark):
    """On an integer lattice many references lie at the same distance: the k kept are the
    nearest, ties broken by the smaller id, ranked 1..k in that order (a pandas sort)."""
    rng = np.random.default_rng(11)
    ref = rng.integers(0, 6, (300, 2)).astype(float)
    qry = rng.integers(0, 6, (80, 2)).astype(float)
    ref_ids = rng.permutation(300) * 7 + 3  # ids not in the order of the rows
    k, radius = 6, 2.5
    got = knn_within(
        _frame(spark, range(1000, 1080), [0] * 80, qry),
        _frame(spark, ref_ids, [0] * 300, ref),
        dims=2,
        k=k,
        radius=radius,
    ).toPandas()
    pairs = pd.DataFrame(
        [
            (1000 + qi, int(ref_ids[ri]), float(((qry[qi] - ref[ri]) ** 2).sum()))
            for qi in range(len(qry))
            for ri in range(len(ref))
        ],
        columns=["Qid", "Rid", "Dist2"],
    )
    pairs = pairs[pairs["Dist2"] < radius**2].sort_values(["Qid", "Dist2", "Rid"])
    want = pairs.groupby("Qid").head(k).copy()
    want["Rank"] = want.groupby("Qid").cumcount() + 1
    assert (want.groupby("Qid")["Dist2"].nunique() < want.groupby("Qid").size()).all()
    got = got.sort_values(["Qid", "Rank"]).reset_index(drop=True)
    want = want.reset_index(drop=True)[["Qid", "Rid", "Dist2", "Rank"]]
    assert got[["Qid", "Rid", "Rank"]].astype(int).values.tolist() == (
        want[["Qid", "Rid", "Rank"]].astype(int).values.tolist()
    )
    assert np.array_equal(got["Dist2"].to_numpy(), want["Dist2"].to_numpy())


def test_kernel_score_is_mean_epanechnikov_over_k(spark):
    ref = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.3], [2.0, 2.0]])
    qry = np.array([[0.0, 0.1], [5.0, 5.0]])
    radius, k = 0.5, 3
    got = kernel_scores(
        _frame(spark, [1, 2], ["a", "a"], qry),
        _frame(spark, range(4), ["a"] * 4, ref),
        dims=2,
        k=k,
        radius=radius,
    ).toPandas()
    d2 = np.sort(((ref - qry[0]) ** 2).sum(axis=1))[:k]
    expected = np.sum(np.clip(1 - d2 / radius**2, 0, None)) / k
    assert list(got["Qid"]) == [1]  # the far query has no neighbour: no score
    assert got["SimilarityScore"].iloc[0] == pytest.approx(expected)


def test_scores_with_many_shared_points_match_brute_force(spark):
    """Customers often share a point exactly (scoring groups them into weighted points):
    scores still equal a brute force over every customer."""
    rng = np.random.default_rng(5)
    grid = np.round(rng.normal(0.0, 0.4, (60, 2)), 1)  # few distinct points, many repeats
    ref = grid[rng.integers(0, len(grid), 900)]
    qry = np.vstack([grid[rng.integers(0, len(grid), 300)], rng.normal(0.0, 0.5, (100, 2))])
    rb, qb = rng.integers(0, 2, len(ref)), rng.integers(0, 2, len(qry))
    radius, k = 0.6, 10
    ref_frame = _frame(spark, range(len(ref)), rb, ref)
    qry_frame = _frame(spark, range(10_000, 10_000 + len(qry)), qb, qry)
    scores = kernel_scores(qry_frame, ref_frame, dims=2, k=k, radius=radius).toPandas()

    want_scores = {}
    for i, (point, block) in enumerate(zip(qry, qb, strict=True)):
        d2 = np.sort(((ref[rb == block] - point) ** 2).sum(axis=1))[:k]
        d2 = d2[d2 < radius**2]
        if len(d2):
            want_scores[10_000 + i] = float(np.sum(1 - d2 / radius**2) / k)
    assert len(want_scores) > 300
    got_scores = dict(zip(scores["Qid"], scores["SimilarityScore"], strict=True))
    assert len(scores) == len(got_scores)
    assert set(got_scores) == set(want_scores)
    for q, want in want_scores.items():
        assert got_scores[q] == pytest.approx(want, rel=1e-9, abs=1e-12), q


def test_categories_only_score_is_share_of_k(spark):
    ref = spark.createDataFrame(
        [(i, ["v:a"] if i < 4 else ["v:b"]) for i in range(14)], ["_id", "_blk"]
    )
    qry = spark.createDataFrame([(100, ["v:a"]), (101, ["v:b"]), (102, ["v:c"])], ["_id", "_blk"])
    got = (
        kernel_scores(qry, ref, dims=0, k=8, radius=1.0)
        .toPandas()
        .set_index("Qid")["SimilarityScore"]
    )
    assert got.to_dict() == {100: pd.Series([4 / 8]).iloc[0], 101: 1.0}


@pytest.mark.parametrize("n", [0, 1, 7, 1003])
def test_held_out_split_is_the_first_fifth_in_hash_order(spark, n: int) -> None:
    from pyspark.sql import functions as F

    from expansion.features import ID
    from expansion.quality import held_out_split

    ids = spark.createDataFrame([(i * 37 + 5,) for i in range(n)], f"{ID} long")
    got = held_out_split(ids, seed=7).toPandas()
    # Expected: rank every id by (Spark's xxhash64 of its text with the seed, id) in pandas.
    hashed = ids.select(ID, F.xxhash64(F.col(ID).cast("string"), F.lit(7)).alias("h")).toPandas()
    first = hashed.sort_values(["h", ID]).head(int(np.floor(0.2 * n + 0.5)))[ID]
    assert len(got) == n
    assert set(got.loc[got["_hid"], ID]) == set(first)


def _bandwidth_case(k: int):
    """Two blocks of a tight cluster plus three far outliers that have no k others within
    the source's RMS spread and so stay out of the percentile; the members' k-th distances."""
    rng = np.random.default_rng(11)
    z = np.vstack([rng.normal(0.0, 0.2, (300, 2)), [[9.0, 9.0], [-9.0, 9.0], [9.0, -9.0]]])
    blocks = np.concatenate([rng.integers(0, 2, 300), [0, 1, 0]])
    spread = float(np.sqrt(z.var(axis=0).sum()))  # var_pop per axis
    kth: dict[int, float] = {}
    for b in (0, 1):
        ids = np.where(blocks == b)[0]
        dist, _ = (
            NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(z[ids]).kneighbors(z[ids])
        )
        kth.update((int(i), d) for i, d in zip(ids, dist[:, k], strict=True) if d < spread)
    return z, blocks, kth  # rank k+1 counting the member itself


def _is_99th_percentile(values, d) -> bool:
    """d is one of the values and the smallest with at least 99% of them at or below it."""
    values = np.sort(np.asarray(values))
    return bool(
        np.isclose(values, d, rtol=1e-9).any()
        and np.mean(values <= d * (1 + 1e-9)) >= 0.99
        and np.mean(values < d * (1 - 1e-9)) < 0.99
    )


def test_bandwidth_is_the_99th_percentile_kth_neighbour_distance(spark) -> None:
    from expansion.quality import FLOOR, bandwidth

    k = 5
    z, blocks, kth = _bandwidth_case(k)
    assert len(kth) == 300

    radius = bandwidth(_frame(spark, np.arange(len(z)), blocks, z), 2, k)

    assert _is_99th_percentile(list(kth.values()), radius * np.sqrt(1.0 - FLOOR))


def test_bandwidth_of_a_large_source_searches_from_a_hashed_share(spark) -> None:
    """Above max_queries, the percentile is over the members whose id hash falls in the share."""
    from pyspark.sql import functions as F

    from expansion.quality import _SAMPLE_BUCKETS, _SAMPLE_SEED, FLOOR, bandwidth

    k, cap = 5, 30
    z, blocks, kth = _bandwidth_case(k)
    frame = _frame(spark, np.arange(len(z)), blocks, z)
    # The share, drawn with Spark's own xxhash64 here: ids whose hash bucket is below the cut.
    cut = int(cap / len(z) * _SAMPLE_BUCKETS)
    bucket = F.pmod(F.xxhash64(F.col("_id"), F.lit(_SAMPLE_SEED)), F.lit(_SAMPLE_BUCKETS))
    drawn = {r[0] for r in frame.where(bucket < cut).select("_id").collect()}
    sampled = [d for i, d in kth.items() if i in drawn]
    assert 20 < len(drawn) < 80 and len(sampled) < len(kth)

    radius = bandwidth(frame, 2, k, max_queries=cap)

    d = radius * np.sqrt(1.0 - FLOOR)
    assert _is_99th_percentile(sampled, d)
    assert not _is_99th_percentile(list(kth.values()), d)  # the whole source gives another R
