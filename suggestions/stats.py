"""Exact statistics of candidate subgroups, significance tests and ranking.

Counts and moments are aggregated by Spark in one pass over the rows, grouped by the bits
of the candidates' rules (``suggestions.bits``); the tests run on the driver with scipy,
bounded by the number of candidates.

- Values (Members, Share, SegmentValue, OverallValue, Lift, Effect) are exact over the
  whole customer base. Customers with a null target are members (a saved segment keeps
  them) but are left out of every value and test; ``MissingTarget`` counts them.
- P-values compare the subgroup with the rest of the customers (Welch's t-test for a
  numeric target, a two-proportion z-test per category), on the hold-out customers the
  tree was not fitted on: a tree picks the splits that look most different, so testing
  on its own training rows would find "significant" subgroups in pure noise. With
  ``holdout: 0`` the tests use every customer (optimistic). Benjamini–Hochberg adjusts
  the p-values across all candidates (and categories).
- Effect, which ranks suggestions, is the size-weighted difference
  ``share × (segment value − overall value)``: for a category this is subgroup
  discovery's WRAcc; for a numeric target it is in the target's unit. Numeric
  suggestions may lie above or below average (ranked by ``|Effect|``); categorical ones
  must over-represent their category.
- Strength, ``sqrt(share) × (segment value − overall value)`` (Klösgen's quality with
  a = 0.5), favours purer groups; it is what refinement optimises and what picks the
  suggestion saved for ``save: {direction: above|below}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy import stats as sps

from suggestions.bits import RuleBits
from suggestions.rules import CategoricalRule, NumericRule, Rule

__all__ = ["Candidate", "Scored", "categorical_stats", "contains", "numeric_stats", "select"]

NESTED_OVERLAP = 0.85


@dataclass
class Candidate:
    """A subgroup: its rules as text, as a condition tree, and as the rule set they came from."""

    rules: str
    definition: dict[str, Any]
    conditions: int
    depth: int
    rule_set: tuple[Rule, ...]


@dataclass
class Scored:
    """One candidate (and, for a categorical target, one category) with its statistics."""

    candidate: Candidate
    category: str | None
    members: int
    known: int  # members with a known target
    share: float
    segment_value: float
    overall_value: float
    lift: float | None
    effect: float
    p_value: float
    adjusted: float = 1.0
    missing_target: int = 0
    known_all: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def strength(self) -> float:
        """``sqrt(share) × difference``: Klösgen's quality with a = 0.5, which favours purer groups.

        It picks the suggestion saved for a direction (``save: {direction: below}``);
        ranking uses ``effect`` (a = 1, WRAcc).
        """
        share = self.known / self.known_all if self.known_all else 0.0
        return self.effect / math.sqrt(share) if share > 0 else 0.0


def _per_set(
    df: DataFrame,
    candidates: Sequence[Candidate],
    types: dict[str, str],
    keys: Sequence[str],
    values: dict[str, Column],
    cache: dict[str, Column] | None = None,
) -> list[Any]:
    """Sums of ``values`` per ``keys`` over all rows (``_set`` -1) and over each candidate's rows.

    Rows are grouped by the bits of the candidates' distinct rules (``suggestions.bits``),
    then each candidate sums the groups holding all its rules.
    """
    bits = RuleBits([c.rule_set for c in candidates], types, cache)
    groups = (
        df.select(*keys, *[v.alias(k) for k, v in values.items()], *bits.columns())
        .groupBy(*keys, *bits.names)
        .agg(*[F.sum(k).alias(k) for k in values])
    )
    entries = [(-1, 0, ()), *[(i, 0, c.rule_set) for i, c in enumerate(candidates)]]
    sets = bits.sets(df.sparkSession, entries)
    return (
        groups.join(F.broadcast(sets), bits.holds())
        .groupBy(*keys, "_set")
        .agg(*[F.sum(k).alias(k) for k in values])
        .collect()
    )


def numeric_stats(
    df: DataFrame,
    candidates: Sequence[Candidate],
    center: float,
    types: dict[str, str],
    cache: dict[str, Column] | None = None,
) -> tuple[list[Scored], dict[str, float]]:
    """Numeric target ``_label`` (null = unknown), hold-out flag ``_holdout``.

    Per hold-out flag: count, known count, sum and sum of squares of the centred target,
    over all rows and over each candidate's rows, in one pass (``_per_set``).
    """
    y = F.col("_label") - F.lit(center)
    values = {
        "n": F.lit(1).cast("long"),
        "k": F.when(y.isNotNull(), F.lit(1)).otherwise(F.lit(0)).cast("long"),
        "s": y,
        "ss": y * y,
    }
    rows: dict[bool, dict[str, Any]] = {}
    for r in _per_set(df, candidates, types, ["_holdout"], values, cache):
        i = int(r["_set"])
        names = ("N", "K", "S", "SS") if i < 0 else (f"n{i}", f"k{i}", f"s{i}", f"ss{i}")
        d = rows.setdefault(bool(r["_holdout"]), {})
        d.update(zip(names, (r["n"], r["k"], r["s"] or 0.0, r["ss"] or 0.0), strict=True))
    for d in rows.values():
        for i in range(len(candidates)):
            for name in ("n", "k", "s", "ss"):
                d.setdefault(f"{name}{i}", 0)
    total = _sum_rows(rows.values())
    test = rows.get(True) or total
    n_all, k_all = int(total["N"]), int(total["K"])
    overall = center + (total["S"] or 0.0) / k_all if k_all else math.nan
    out: list[Scored] = []
    for i, c in enumerate(candidates):
        n, k = int(total[f"n{i}"]), int(total[f"k{i}"])
        if k == 0 or k == k_all:
            continue
        mean = center + (total[f"s{i}"] or 0.0) / k
        p = _welch(test, i)
        share = k / k_all
        out.append(
            Scored(
                c,
                None,
                n,
                k,
                n / n_all,
                mean,
                overall,
                mean / overall if overall else None,
                share * (mean - overall),
                p,
                missing_target=n - k,
                known_all=k_all,
            )
        )
    return out, {"customers": float(n_all), "known": float(k_all), "overall": overall}


def _sum_rows(rows: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in rows:
        for key, v in r.items():
            if key == "_holdout" or key.startswith("_label"):
                continue
            out[key] = (out.get(key) or 0) + (v or 0)
    return out


def _welch(r: dict[str, Any], i: int) -> float:
    k1, k = int(r[f"k{i}"]), int(r["K"])
    k2 = k - k1
    if k1 < 2 or k2 < 2:
        return 1.0
    s1, ss1 = r[f"s{i}"] or 0.0, r[f"ss{i}"] or 0.0
    s2, ss2 = (r["S"] or 0.0) - s1, (r["SS"] or 0.0) - ss1
    m1, m2 = s1 / k1, s2 / k2
    v1 = max(ss1 - k1 * m1 * m1, 0.0) / (k1 - 1)
    v2 = max(ss2 - k2 * m2 * m2, 0.0) / (k2 - 1)
    if v1 + v2 <= 0:
        return 1.0
    p = sps.ttest_ind_from_stats(
        m1, math.sqrt(v1), k1, m2, math.sqrt(v2), k2, equal_var=False
    ).pvalue
    return float(p) if math.isfinite(p) else 1.0


def categorical_stats(
    df: DataFrame,
    candidates: Sequence[Candidate],
    types: dict[str, str],
    cache: dict[str, Column] | None = None,
) -> tuple[list[Scored], dict[str, float]]:
    """Categorical target ``_label`` (a string, null = unknown): counts per category and candidate.

    Per (hold-out flag, category): the count over all rows and over each candidate's
    rows, in one pass (``_per_set``).
    """
    counts: dict[tuple[bool, str | None], dict[str, int]] = {}
    count = {"n": F.lit(1).cast("long")}
    for r in _per_set(df, candidates, types, ["_holdout", "_label"], count, cache):
        i = int(r["_set"])
        d = counts.setdefault((bool(r["_holdout"]), r["_label"]), {})
        d["N" if i < 0 else f"n{i}"] = int(r["n"])
    for d in counts.values():
        for i in range(len(candidates)):
            d.setdefault(f"n{i}", 0)
    # per category (None = unknown target): counts over all rows, and over hold-out rows
    full: dict[str | None, dict[str, int]] = {}
    held: dict[str | None, dict[str, int]] = {}
    for (holdout, label), d in counts.items():
        for target in (full, held) if holdout else (full,):
            acc = target.setdefault(label, {})
            for k, v in d.items():
                acc[k] = acc.get(k, 0) + v
    if not held:
        held = full
    categories = sorted(c for c in full if c is not None)
    n_all = sum(v["N"] for v in full.values())
    k_all = sum(full[c]["N"] for c in categories)
    h_all = sum(held[c]["N"] for c in categories if c in held)
    out: list[Scored] = []
    for i, cand in enumerate(candidates):
        members = sum(v[f"n{i}"] for v in full.values())
        known = sum(full[c][f"n{i}"] for c in categories)
        h_known = sum(held[c][f"n{i}"] for c in categories if c in held)
        if known == 0 or known == k_all:
            continue
        for cat in categories:
            k_cat = full[cat][f"n{i}"]
            p_sg, p_all = k_cat / known, full[cat]["N"] / k_all
            h_cat = held.get(cat, {}).get(f"n{i}", 0)
            h_cat_all = held.get(cat, {}).get("N", 0)
            p = _two_proportions(h_cat, h_known, h_cat_all - h_cat, h_all - h_known)
            share = known / k_all
            out.append(
                Scored(
                    cand,
                    cat,
                    members,
                    known,
                    members / n_all,
                    p_sg,
                    p_all,
                    p_sg / p_all if p_all else None,
                    share * (p_sg - p_all),
                    p,
                    missing_target=members - known,
                    known_all=k_all,
                )
            )
    return out, {
        "customers": float(n_all),
        "known": float(k_all),
        "categories": float(len(categories)),
    }


def _two_proportions(x1: int, n1: int, x2: int, n2: int) -> float:
    if n1 < 1 or n2 < 1:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(2 * sps.norm.sf(abs(z)))


def select(
    scored: list[Scored], *, alpha: float, min_members: int, categorical: bool
) -> list[Scored]:
    """Adjust p-values (BH over every test), keep the significant, large enough ones, rank by |Effect|.

    Candidates with the same members and value (redundant conditions) are kept once,
    with the fewest conditions; a candidate whose rules nest in (or hold) a better-ranked
    one's with at least 85% of the members (e.g. the same rule with one more condition,
    or ``Income > 98.6k`` next to ``Income > 95k``) is left out as a near duplicate.
    """
    if not scored:
        return []
    adjusted = sps.false_discovery_control([s.p_value for s in scored], method="bh")
    for s, a in zip(scored, adjusted, strict=True):
        s.adjusted = float(a)
    kept = [
        s
        for s in scored
        if s.adjusted <= alpha
        and s.members >= min_members
        and s.effect != 0
        and (not categorical or s.effect > 0)
    ]
    kept.sort(
        key=lambda s: (-abs(s.effect), s.candidate.conditions, s.candidate.rules, s.category or "")
    )
    unique: dict[tuple[Any, ...], Scored] = {}
    for s in sorted(
        kept, key=lambda s: (s.candidate.conditions, s.candidate.depth, s.candidate.rules)
    ):
        key = (s.category, s.members, s.known, round(s.segment_value, 9))
        unique.setdefault(key, s)
    chosen = {id(s) for s in unique.values()}
    ranked = [s for s in kept if id(s) in chosen]
    out: list[Scored] = []
    for s in ranked:
        if not any(_near_duplicate(better, s) for better in out):
            out.append(s)
    return out


def _implies(inner: Rule, outer: Rule) -> bool:
    """Every value meeting ``inner`` meets ``outer`` (same field)."""
    if inner.field != outer.field:
        return False
    if isinstance(inner, CategoricalRule) and isinstance(outer, CategoricalRule):
        return set(inner.allowed) <= set(outer.allowed)
    if isinstance(inner, NumericRule) and isinstance(outer, NumericRule):
        if inner.empty or outer.empty or (inner.nulls and not outer.nulls):
            return inner.empty and outer.nulls
        lo_ok = outer.low is None or (inner.low is not None and inner.low >= outer.low)
        if outer.high is None:
            hi_ok = True
        elif inner.high is None:
            hi_ok = False
        elif outer.high_open and not inner.high_open:
            hi_ok = inner.high < outer.high
        else:
            hi_ok = inner.high <= outer.high
        return lo_ok and hi_ok
    return False


def contains(outer: Sequence[Rule], inner: Sequence[Rule]) -> bool:
    """Whether the members of rule set ``inner`` are always members of ``outer``."""
    return all(any(_implies(i, o) for i in inner) for o in outer)


def _near_duplicate(better: Scored, s: Scored) -> bool:
    """``s`` nests in ``better`` (or the reverse) with at least NESTED_OVERLAP of its members.

    Nested rule sets overlap by exactly small/large members, so the check needs no data;
    the worse-ranked of the two is left out (same category, same side of average).
    """
    a, b = better.candidate.rule_set, s.candidate.rule_set
    if not a or not b or better.category != s.category or (better.effect > 0) != (s.effect > 0):
        return False
    if contains(a, b) or contains(b, a):
        small, large = sorted((better.members, s.members))
        return large > 0 and small / large >= NESTED_OVERLAP
    return False
