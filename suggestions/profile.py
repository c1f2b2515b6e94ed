"""Suggestions' profile pass: each customer's target and influencers, their ranges and
categories (checked against the definition's limits), encoded for the tree."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.context import Context
from cohortlake.errors import Problem
from cohortlake.sources import read_fields
from suggestions.model import (
    MAX_INFLUENCER_CATEGORIES,
    MAX_TARGET_CATEGORIES,
    SuggestionRun,
)
from suggestions.rules import (
    MISSING,
)
from suggestions.tree import (
    Feature,
)

__all__ = ["Profile", "check_categories", "customer_base", "encode", "profile_customers"]

log = logging.getLogger(__name__)


@dataclass
class Profile:
    customers: int
    known: int
    target_min: float | None
    target_max: float | None
    target_mean: float | None
    target_categories: int
    features: list[Feature]
    target_labels: tuple[str, ...] = ()


def customer_base(ctx: Context, run: SuggestionRun) -> DataFrame:
    """One row per customer: the key, the target and the influencers under their catalog names."""
    fields = [run.target, *run.influencers]
    lake = ctx.lake
    profile_cols = [f.name for f in fields if f.source == "profile"]
    measure_cols = [f.name for f in fields if f.source == "measure"]
    return read_fields(lake, ctx.catalog, profile_cols, measure_cols)


def profile_customers(run: SuggestionRun, base: DataFrame) -> Profile:
    t = F.col(run.target.name)
    aggs = [F.count(F.lit(1)).alias("N"), F.count(t).alias("K")]
    if run.numeric_target:
        tc = t.cast("double")
        aggs += [F.min(tc).alias("tmin"), F.max(tc).alias("tmax"), F.avg(tc).alias("tmean")]
    else:
        aggs += _labels(t, MAX_TARGET_CATEGORIES, "tcats", "tlabels")
    for i, f in enumerate(run.influencers):
        c = F.col(f.name)
        if f.type in ("number", "integer"):
            aggs += [F.min(c.cast("double")).alias(f"min{i}"), F.count(c).alias(f"nn{i}")]
        else:
            aggs += [
                *_labels(c, MAX_INFLUENCER_CATEGORIES, f"cats{i}", f"labels{i}"),
                F.count(c).alias(f"nn{i}"),
            ]
    r = base.agg(*aggs).first()
    assert r is not None
    n = int(r["N"])
    feats: list[Feature] = []
    for i, f in enumerate(run.influencers):
        has_nulls = int(r[f"nn{i}"]) < n
        if f.type in ("number", "integer"):
            lo = r[f"min{i}"]
            minimum = float(lo) if lo is not None else 0.0
            sentinel = minimum - max(1.0, abs(minimum) * 0.01)
            feats.append(
                Feature(
                    f.name, True, f"_f{i}", has_nulls=has_nulls, minimum=minimum, sentinel=sentinel
                )
            )
        else:
            # the tree's indexer and refinement's buckets use these (alphabetical, as encoded)
            seen = list(r[f"labels{i}"] or [])
            feats.append(
                Feature(
                    f.name,
                    False,
                    f"_f{i}",
                    boolean=f.type == "boolean",
                    has_nulls=has_nulls,
                    labels=tuple(sorted([*seen, MISSING] if has_nulls else seen)),
                    minimum=float(r[f"cats{i}"]),
                )
            )
    return Profile(
        customers=n,
        known=int(r["K"]),
        target_min=float(r["tmin"]) if run.numeric_target and r["tmin"] is not None else None,
        target_max=float(r["tmax"]) if run.numeric_target and r["tmax"] is not None else None,
        target_mean=float(r["tmean"]) if run.numeric_target and r["tmean"] is not None else None,
        target_categories=0 if run.numeric_target else int(r["tcats"]),
        features=feats,
        target_labels=() if run.numeric_target else tuple(sorted(r["tlabels"] or [])),
    )


def _labels(c: Column, limit: int, count: str, labels: str) -> list[Column]:
    """The number of distinct values of ``c`` (as strings) and, up to ``limit`` of them, the values.

    Nulls are left out. Past ``limit`` the run is refused (``_check_categories``), so the
    values stay on the executors.
    """
    values = F.collect_set(c.cast("string"))
    return [
        F.size(values).alias(count),
        F.when(F.size(values) <= F.lit(limit), values).alias(labels),
    ]


def check_categories(run: SuggestionRun, prof: Profile) -> list[Problem]:
    problems = []
    if not run.numeric_target and prof.target_categories > MAX_TARGET_CATEGORIES:
        problems.append(
            Problem(
                run.file,
                run.where("target"),
                f"target {run.target.name} has {prof.target_categories} categories in the data; at most {MAX_TARGET_CATEGORIES} are allowed",
            )
        )
    for i, f in enumerate(prof.features):
        if not f.numeric and (f.minimum or 0) > MAX_INFLUENCER_CATEGORIES:
            problems.append(
                Problem(
                    run.file,
                    run.where(f"influencers[{i}]"),
                    f"influencer {f.name} has {int(f.minimum or 0)} categories in the data; at most {MAX_INFLUENCER_CATEGORIES} are allowed",
                )
            )
    return problems


def encode(run: SuggestionRun, base: DataFrame, prof: Profile, key: str) -> DataFrame:
    cols = [F.col(c) for c in base.columns]
    for f in prof.features:
        src = F.col(f.name)
        if f.numeric:
            cols.append(F.coalesce(src.cast("double"), F.lit(f.sentinel)).alias(f.column))
        else:
            cols.append(F.coalesce(src.cast("string"), F.lit(MISSING)).alias(f.column))
    label = F.col(run.target.name).cast("double" if run.numeric_target else "string")
    cols.append(label.alias("_label"))
    if run.spec.holdout > 0:
        u = F.pmod(
            F.xxhash64(F.col(key).cast("string"), F.lit(run.spec.seed)), F.lit(1_000_000)
        ) / F.lit(1_000_000.0)
        cols.append((u < F.lit(run.spec.holdout)).alias("_holdout"))
    else:
        cols.append(F.lit(False).alias("_holdout"))
    return base.select(*cols)
