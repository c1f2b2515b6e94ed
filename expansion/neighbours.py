"""Exact k-nearest-neighbour search within a radius, on a multi-level grid, all in Spark.

Why not LSH: ``approxSimilarityJoin`` compares every pair in a shared bucket, so a dense
source cluster meets a dense crowd of candidates and the pair count explodes. Here each
query picks its own grid level so that it only meets about as many reference points as it
needs:

- A query uses the finest level ``l`` whose own dense-check cell, of side
  ``a_l = radius / 2**(l + m)`` (``2**m >= sqrt(d)``; coordinates floored per axis), already
  holds ``k`` reference points of its block. Those ``k`` points lie closer than
  ``b_l = sqrt(d) * a_l`` to it, so its true ``k`` nearest do too.
- Level ``l`` searches a grid of side ``b_l``: reference points are copied to the ``3**d``
  cells around their own, per level used, and the ``3**d`` neighbourhood of the query's
  cell holds every point closer than ``b_l``: the answer is exact. (A grid of side
  ``radius / 2**l`` would do too, but ``b_l`` is smaller, 0.71 of it in 2-D, so a query
  meets half the references.) A query with no such level uses level 0, a grid of side
  ``radius``, whose neighbourhood holds every reference within ``radius``.
- Pairs meet by an equi-join on (level, block, cell); exact squared distances and
  ``min_by(entry, entry, k)`` per query (Spark 4.2) keep the ``k`` nearest with distance
  < radius: the aggregate keeps k entries per query where a ``row_number`` window
  sorted every pair by distance too (same results; at 1M candidates the search took
  2.98 s instead of 4.14 s, the weighted scores 8.1 s instead of 17.0 s).

Driver-side work is bounded by the number of levels and cells offsets, never by rows.
"""

from __future__ import annotations

import itertools
import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from expansion.features import BLOCK, ID

__all__ = ["DEFAULT_LEVELS", "kernel_scores", "knn_within"]

DEFAULT_LEVELS = 8


def _refine(dims: int) -> int:
    """m with 2**m >= sqrt(d): a cell of side s / 2**m has a diagonal of at most s."""
    return max(0, math.ceil(math.log2(math.sqrt(dims)) - 1e-12)) if dims > 1 else 0


def _cells(z: list[str], scale: Column | float, prefix: str) -> list[Column]:
    factor = scale if isinstance(scale, Column) else F.lit(float(scale))
    return [F.floor(F.col(c) * factor).cast("long").alias(f"{prefix}{i}") for i, c in enumerate(z)]


def _scale(radius: float, level: int) -> float:
    return float(2**level) / radius


def _search_scale(radius: float, level: int, dims: int) -> float:
    """1 / b_l: level 0 searches cells of side ``radius``, level l >= 1 cells of ``sqrt(d) * a_l``."""
    if level == 0:
        return 1.0 / radius
    # The margin keeps a k-th neighbour at almost exactly b_l inside the neighbourhood
    # whatever the rounding of floor(z * scale).
    return _scale(radius, level + _refine(dims)) / (math.sqrt(dims) * (1.0 + 1e-9))


def _close_pairs(
    qry: DataFrame, ref: DataFrame, *, dims: int, k: int, radius: float, levels: int
) -> tuple[DataFrame, list[str]]:
    """Every (query, reference) pair of the same block closer than ``radius`` that the
    grid search must compare (a superset of each query's k nearest), and the join keys.

    ``qry`` holds ``_qid``, ``_blk`` and ``_z*``; ``ref`` holds ``_rid``, ``_blk``, ``_z*``
    and ``_w``, how many reference points that row stands for (a dense cell needs
    ``k`` of them). Returns ``keys + [_qid, _rid, _w, Dist2]``.
    """
    z = [f"_z{i}" for i in range(dims)]
    m = _refine(dims)

    # Dense cells: at level l + m, cells holding at least k reference points. Small (at most
    # one row per k references and level), so each level's part is broadcast.
    cells = [f"_c{i}" for i in range(dims)]
    by_level = F.explode(F.sequence(F.lit(1), F.lit(levels))).alias("_lv")
    scale_of = F.array(*[F.lit(_scale(radius, lv + m)) for lv in range(levels + 1)])
    dense_all = (
        ref.select(BLOCK, *z, "_w", by_level)
        .select(BLOCK, "_lv", "_w", *_cells(z, F.element_at(scale_of, F.col("_lv") + 1), "_c"))
        .groupBy("_lv", BLOCK, *cells)
        .agg(F.sum("_w").alias("_n"))
        .where(F.col("_n") >= k)
        .drop("_n")
    )
    found = sorted(int(r[0]) for r in dense_all.select("_lv").distinct().collect())
    flags: list[Column] = []
    used = [0]
    for level in found:
        used.append(level)
        dense = dense_all.where(F.col("_lv") == level).select(
            BLOCK,
            *[F.col(c).alias(f"_l{level}c{i}") for i, c in enumerate(cells)],
            F.lit(True).alias(f"_d{level}"),
        )
        qry = qry.select("*", *_cells(z, _scale(radius, level + m), f"_l{level}c"))
        qry = qry.join(
            F.broadcast(dense), [BLOCK, *[f"_l{level}c{i}" for i in range(dims)]], "left"
        )
        flags.append(F.when(F.col(f"_d{level}"), F.lit(level)))
    level_col = F.greatest(F.lit(0), *flags) if flags else F.lit(0)
    qry = qry.select("_qid", BLOCK, *z, level_col.alias("_lvl"))

    scales = F.array(*[F.lit(_search_scale(radius, lv, dims)) for lv in range(max(used) + 1)])
    # The k references of a query's dense cell lie within its diagonal, less than b_l away:
    # pairs farther than that cannot be among its k nearest (level 0: farther than radius).
    bounds = F.array(
        *[
            F.lit(min(radius, 1.0 / _search_scale(radius, lv, dims)) ** 2)
            for lv in range(max(used) + 1)
        ]
    )
    qry = qry.select(
        "_qid", BLOCK, "_lvl", *[F.col(c).alias(f"_q{c}") for c in z],
        *_cells(z, F.element_at(scales, F.col("_lvl") + 1), "_c"),
        F.element_at(bounds, F.col("_lvl") + 1).alias("_bound2"),
    )  # fmt: skip

    offsets = F.array(
        *[F.array(*[F.lit(o) for o in off]) for off in itertools.product((-1, 0, 1), repeat=dims)]
    )
    parts = []
    for level in used:
        base = ref.select(
            "_rid", BLOCK, "_w", *z, *_cells(z, _search_scale(radius, level, dims), "_b")
        )
        parts.append(
            base.select(
                "_rid", BLOCK, "_w", F.lit(level).alias("_lvl"), *[F.col(c).alias(f"_r{c}") for c in z],
                F.explode(offsets).alias("_off"),
                *[F.col(f"_b{i}") for i in range(dims)],
            ).select(
                "_rid", BLOCK, "_w", "_lvl", *[f"_r{c}" for c in z],
                *[(F.col(f"_b{i}") + F.element_at("_off", i + 1)).alias(f"_c{i}") for i in range(dims)],
            )
        )  # fmt: skip
    spread = parts[0]
    for p in parts[1:]:
        spread = spread.unionByName(p)

    keys = ["_lvl", BLOCK, *[f"_c{i}" for i in range(dims)]]
    pairs = qry.join(spread, keys)
    dist2 = sum(
        ((F.col(f"_q{c}") - F.col(f"_r{c}")) ** 2 for c in z[1:]),
        (F.col(f"_q{z[0]}") - F.col(f"_r{z[0]}")) ** 2,
    )
    close = pairs.where(dist2 < F.col("_bound2")).select(
        *keys, "_qid", "_rid", "_w", dist2.alias("Dist2")
    )
    return close, keys


def _check(dims: int, radius: float) -> None:
    if dims < 1:
        raise ValueError("knn_within needs at least one coordinate")
    if not radius > 0:
        raise ValueError("radius must be positive")


def knn_within(
    query: DataFrame,
    reference: DataFrame,
    *,
    dims: int,
    k: int,
    radius: float,
    levels: int = DEFAULT_LEVELS,
) -> DataFrame:
    """For each query row, its ``k`` nearest reference rows in the same block closer than ``radius``.

    Both frames hold ``_id``, ``_blk`` and ``_z0.._z{dims-1}``. Returns ``Qid``, ``Rid``,
    ``Dist2`` (squared Euclidean distance) and ``Rank`` (1 = nearest; ties by ``Rid``).
    """
    _check(dims, radius)
    z = [f"_z{i}" for i in range(dims)]
    ref = reference.select(F.col(ID).alias("_rid"), BLOCK, *z, F.lit(1).alias("_w"))
    qry = query.select(F.col(ID).alias("_qid"), BLOCK, *z)
    close, keys = _close_pairs(qry, ref, dims=dims, k=k, radius=radius, levels=levels)
    nearest = _nearest(close, keys, k, F.struct("Dist2", "_rid"))
    ranked = nearest.select("_qid", F.posexplode("_best").alias("_pos", "_n"))
    return ranked.select(
        F.col("_qid").alias("Qid"),
        F.col("_n").getField("_rid").alias("Rid"),
        F.col("_n").getField("Dist2").alias("Dist2"),
        (F.col("_pos") + 1).alias("Rank"),
    )


def _nearest(close: DataFrame, keys: list[str], k: int, entry: Column) -> DataFrame:
    """``_qid`` and ``_best``: the ``entry`` of each query's ``k`` nearest pairs, nearest first.

    ``entry`` is a struct that starts with ``Dist2``; the rest breaks ties, so that every
    run keeps the same neighbours in the same order. A query has one (level, block,
    cell), so all its pairs come out of one join key: grouping by the join keys too keeps
    the pairs where the join made them instead of shuffling them again.
    """
    best = F.min_by(entry, entry, k)  # ascending; k entries kept per query, not every pair
    return close.groupBy(*keys, "_qid").agg(best.alias("_best"))


def _point_neighbours(
    query: DataFrame, reference: DataFrame, *, dims: int, k: int, radius: float, levels: int
) -> tuple[DataFrame, list[str]]:
    """The k nearest reference points of each distinct query point, with their weights.

    Customers often share a point exactly (a post code and a null measure set to the
    mean): thousands in one place would meet each other in thousands of pairs each. So
    references are grouped into distinct points with a weight (each at least 1, so the
    k nearest points hold the k nearest customers) and queries into distinct points.
    Returns ``_blk``, ``_z*`` (the query point) and ``_best``, an array of up to ``k``
    structs ``(Dist2, _w)``, nearest first.
    """
    _check(dims, radius)
    z = [f"_z{i}" for i in range(dims)]
    ref = (
        reference.groupBy(BLOCK, *z)
        .agg(F.count(F.lit(1)).alias("_w"))
        .select(F.array(*z).alias("_rid"), BLOCK, *z, "_w")
    )
    qry = query.select(BLOCK, *z).distinct().select(F.array(*z).alias("_qid"), BLOCK, *z)
    close, keys = _close_pairs(qry, ref, dims=dims, k=k, radius=radius, levels=levels)
    # Entries equal in distance and weight count alike, so no id is needed for a stable sum.
    best = _nearest(close, keys, k, F.struct("Dist2", "_w"))
    point = [F.col("_qid")[i].alias(c) for i, c in enumerate(z)]
    return best.select(BLOCK, *point, "_best"), [BLOCK, *z]


def kernel_scores(
    query: DataFrame,
    reference: DataFrame,
    *,
    dims: int,
    k: int,
    radius: float,
    levels: int = DEFAULT_LEVELS,
) -> DataFrame:
    """``Qid, SimilarityScore``: the mean Epanechnikov kernel ``1 - (d / radius)**2`` over the k nearest.

    Missing neighbours (fewer than ``k`` within ``radius``) count as 0, so a score needs
    several close source members. Queries with no neighbour at all are left out (score 0).
    With no coordinates (only categories) every reference in the block is at distance 0.
    Computed once per distinct query point (see ``_point_neighbours``): its nearest
    points are walked in order, each counting for as many of the k as its weight allows.
    """
    if dims == 0:
        counts = reference.groupBy(BLOCK).agg(F.count(F.lit(1)).alias("_n"))
        joined = query.select(ID, BLOCK).join(counts, BLOCK)
        score = F.least(F.col("_n"), F.lit(k)).cast("double") / F.lit(float(k))
        return joined.select(F.col(ID).alias("Qid"), score.alias("SimilarityScore"))
    best, point = _point_neighbours(query, reference, dims=dims, k=k, radius=radius, levels=levels)
    start = F.struct(F.lit(0).cast("long").alias("n"), F.lit(0.0).alias("s"))

    def step(acc: Column, nb: Column) -> Column:
        take = F.greatest(F.lit(0), F.least(nb["_w"], F.lit(k) - acc["n"]))
        kern = F.lit(1.0) - nb["Dist2"] / F.lit(radius * radius)
        return F.struct((acc["n"] + take).alias("n"), (acc["s"] + take * kern).alias("s"))

    total = F.aggregate("_best", start, step, lambda acc: acc["s"] / F.lit(float(k)))
    scores = best.select(*point, total.alias("SimilarityScore"))
    return (
        query.select(F.col(ID).alias("Qid"), *point)
        .join(scores, point)
        .select("Qid", "SimilarityScore")
    )
