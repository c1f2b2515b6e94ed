"""Scoring, bandwidth calibration, the size-capped selection and the held-out recall check.

``SimilarityScore`` of a candidate is the mean, over its ``k`` nearest source members, of the
Epanechnikov kernel ``1 - (d / R)**2`` (0 beyond ``R``): 1 means ``k`` source members with the
same features, and a score of at least 0.55 needs at least 6 of 10 neighbours well inside R.
The bandwidth ``R`` comes from the source itself: R = D / sqrt(0.45), where D is the 99th
percentile of the distance from a source member to its k-th nearest other source member
(among members with k others within the source's RMS spread; of a source larger than 100,000,
among a fixed hash-chosen share of about 100,000 members), so 99% of those members would
score 0.55 or more against the rest of the source:
a hidden look-alike as close to the source as its own members is not cut by the floor.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from expansion.features import ID
from expansion.neighbours import kernel_scores, knn_within

__all__ = [
    "BANDS",
    "FLOOR",
    "HOLDOUT_SHARE",
    "MAX_BANDWIDTH_QUERIES",
    "HeldOut",
    "band",
    "bandwidth",
    "held_out_split",
    "hidden_count",
    "select_top",
]

log = logging.getLogger(__name__)

FLOOR = 0.55
BANDS = (("very similar", 0.85), ("similar", 0.70), ("somewhat similar", FLOOR))
HOLDOUT_SHARE = 0.2
_COVERED = 0.99
_MIN_RADIUS = 0.05
MAX_BANDWIDTH_QUERIES = 100_000
_SAMPLE_SEED = 20260808
_SAMPLE_BUCKETS = 1 << 20


def band(score: Column) -> Column:
    """The band of a score: very similar [0.85, 1], similar [0.70, 0.85), somewhat similar [0.55, 0.70)."""
    expr = F.when(score >= F.lit(BANDS[0][1]), F.lit(BANDS[0][0]))
    for name, low in BANDS[1:]:
        expr = expr.when(score >= F.lit(low), F.lit(name))
    return expr


def bandwidth(
    source: DataFrame, dims: int, k: int, max_queries: int = MAX_BANDWIDTH_QUERIES
) -> float:
    """The kernel radius R from the source's own k-th-neighbour distances (see the module doc).

    The self-search runs within the source's RMS spread; members without k other members there
    (outliers, tiny blocks such as a null post code) are left out of the percentile, and when
    they are the majority D is the spread itself. R >= 0.05 (standard deviations). A source
    larger than ``max_queries`` searches from a fixed hash-chosen share of about
    ``max_queries`` members (still against the whole source): a percentile of that many
    distances is as good as of all, and at 10M customers the self-search is ten times cheaper.
    """
    if dims == 0:
        return 1.0
    z = [f"_z{i}" for i in range(dims)]
    row = source.agg(*[F.var_pop(c).alias(c) for c in z], F.count(F.lit(1)).alias("_n")).first()
    assert row is not None
    spread = math.sqrt(sum(float(row[c] or 0.0) for c in z))
    spread = max(spread, _MIN_RADIUS)
    members = int(row["_n"])
    queries, share = source, 1.0
    if members > max_queries:
        share = max_queries / members
        drawn = F.pmod(F.xxhash64(F.col(ID), F.lit(_SAMPLE_SEED)), F.lit(_SAMPLE_BUCKETS))
        queries = source.where(drawn < F.lit(int(share * _SAMPLE_BUCKETS)))
    nn = knn_within(queries, source, dims=dims, k=k + 1, radius=spread)
    kth = nn.where(F.col("Rank") == k + 1).select(F.sqrt("Dist2").alias("_d"))
    q = kth.agg(
        F.percentile_approx("_d", _COVERED, 10_000).alias("q"), F.count(F.lit(1)).alias("n")
    ).first()
    assert q is not None
    full = int(q["n"] or 0)
    d = float(q["q"]) if q["q"] is not None and 2 * full >= members * share else spread
    radius = max(d / math.sqrt(1.0 - FLOOR), _MIN_RADIUS)
    log.info(
        "bandwidth: spread %.4f, 99th percentile k-th neighbour distance %.4f "
        "(searched from %.0f%% of %d members), R = %.4f",
        spread,
        d,
        100 * share,
        members,
        radius,
    )
    return radius


def score(candidates: DataFrame, source: DataFrame, dims: int, k: int, radius: float) -> DataFrame:
    """``CustomerId``-less scores: ``_id, SimilarityScore`` for candidates with a score above 0."""
    s = kernel_scores(candidates, source, dims=dims, k=k, radius=radius)
    return s.select(F.col("Qid").alias(ID), "SimilarityScore")


def select_top(scores: DataFrame, cap: int) -> DataFrame:
    """The ``cap`` best scores at or above the 0.55 floor; ties go to the smaller customer id."""
    return (
        scores.where(F.col("SimilarityScore") >= F.lit(FLOOR))
        .orderBy(F.desc("SimilarityScore"), F.asc(ID))
        .limit(cap)
    )


def held_out_split(source: DataFrame, seed: int) -> DataFrame:
    """``_id, _hid``: a seeded 20% of the source (round half up of 0.2 n), by hash order, not RNG state.

    The hidden members are the first ones in (hash, id) order. Rather than rank the whole
    source in one task, the hashes are counted in 65,536 ordered buckets (a bounded
    histogram on the driver); every bucket before the boundary is hidden whole and only
    the boundary bucket is ranked, so the split is exact and distributed.
    """
    h = F.xxhash64(F.col(ID).cast("string"), F.lit(int(seed)))
    hashed = source.select(ID, h.alias("_h"), F.shiftright(h, 48).alias("_b"))
    counts = sorted((int(r["_b"]), int(r["count"])) for r in hashed.groupBy("_b").count().collect())
    hidden = hidden_count(sum(c for _, c in counts))
    boundary, need, before = None, 0, 0
    for bucket, count in counts:
        if before + count >= hidden:
            boundary, need = bucket, hidden - before
            break
        before += count
    if boundary is None or hidden == 0:
        return source.select(ID, F.lit(hidden > 0).alias("_hid"))
    rank = F.row_number().over(Window.partitionBy("_b").orderBy("_h", ID))
    in_boundary = (F.col("_b") == F.lit(boundary)) & (rank <= F.lit(need))
    return hashed.select(ID, ((F.col("_b") < F.lit(boundary)) | in_boundary).alias("_hid"))


def hidden_count(n: int) -> int:
    """How many of ``n`` source members ``held_out_split`` hides."""
    return math.floor(HOLDOUT_SHARE * n + 0.5)


@dataclass(frozen=True)
class HeldOut:
    """How many hidden source members the capped selection found, against a random pick."""

    hidden: int
    recovered: int
    cap: int
    candidates: int

    @property
    def recall(self) -> float:
        return self.recovered / self.hidden if self.hidden else 0.0

    @property
    def random_recall(self) -> float:
        return min(1.0, self.cap / self.candidates) if self.candidates else 0.0

    @property
    def lift(self) -> float:
        return self.recall / self.random_recall if self.random_recall else 0.0
