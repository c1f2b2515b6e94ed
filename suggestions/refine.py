"""Rule refinement: turn the tree's strongest paths into the rules a person would write.

A tree's path is a good subgroup with awkward rules: thresholds at bin edges
(``Income > 106,350``), category sets ordered by the node's mean (``Occupation is
Teacher or Chef``), conditions that only mattered deeper down, and conditions the
greedy tree never reached (a split that only pays off under another one). Refinement is
a greedy local search over single moves of each seed:

- replace one condition by the best condition on the same attribute — a bound
  ``> g`` or ``≤ g`` at any round number ``g`` of a grid of about 200 steps over the
  attribute's range (``Income > 97k``), a single category (``is Teacher``) or all but
  one (``is not Teacher``) — or drop it;
- add the best such condition on an attribute the rule set does not use (while it has
  fewer than ``max_conditions``).

One Spark pass per round evaluates every move of every seed exactly: each row is
bucketed per attribute (its category, or its grid step ``ceil(x / step)``), and for
each seed and each condition the rows meeting all the *other* conditions are counted
per bucket of that condition's attribute (and, to add one, the rows meeting all
conditions per bucket of every other attribute). Cumulative sums over the buckets on
the driver then give every threshold and category choice; the driver work is bounded by
seeds × attributes × buckets, never by customers.

The score is Klösgen's quality with ``a = 0.5``, ``sqrt(share) × (value − overall)`` in
the seed's direction (for a categorical target: the share of the seed's category).
Unlike WRAcc (``a = 1``) it does not reward adding customers who are only a little
below average, so a rule stays on a planted group instead of growing to "everyone but
the best". An added condition must raise the score by 2% (a dropped one may lower it
by 2%), so conditions that only fit noise stay out. Moves are chosen on the fitting rows
only (the caller passes the tree's seeded sample of them); the significance tests later
use the hold-out rows. Nulls follow the segment language: a bound or category condition
is false on null.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from suggestions.bits import RuleBits
from suggestions.rules import (
    MISSING,
    CategoricalRule,
    NumericRule,
    Rule,
    definition_json,
    rules_definition,
)
from suggestions.tree import Feature

__all__ = ["Seed", "Survey", "grid_step", "refine", "survey"]

log = logging.getLogger(__name__)

GRID_STEPS = 200
_TIE = 0.002  # moves within 0.2% of the best score are ties; fewer conditions win
_PER_CONDITION = 0.02  # an added condition must gain 2% of the score (a dropped one may lose 2%)
_ALL = -1  # slot of "all conditions hold" (the seed itself, and conditions to add)
_NO_STEP = -(2**62)  # bucket of a null number
_UNSEEN = "\x00unseen"  # bucket of a category the tree's sample did not have


@dataclass(frozen=True)
class Seed:
    """A rule set to refine, the direction it is good in, and (categorical) its category."""

    rules: tuple[Rule, ...]
    sign: int = 1
    category: str | None = None


def grid_step(low: float, high: float, steps: int = GRID_STEPS) -> float:
    """The smallest 1, 2 or 5 × 10^k with at most ``steps`` steps from ``low`` to ``high``."""
    span = high - low
    if not span > 0:
        return 1.0
    k = math.floor(math.log10(span / steps))
    for exp in (k, k + 1):
        for m in (1, 2, 5):
            step = m * 10.0**exp
            if span / step <= steps:
                return step
    return 10.0 ** (k + 2)


@dataclass
class _Stats:
    n: float = 0.0
    y: float = 0.0  # numeric target: sum
    per: dict[str, float] | None = None  # categorical target: count per category

    def add(self, other: _Stats) -> None:
        self.n += other.n
        self.y += other.y
        if other.per:
            self.per = dict(self.per or {})
            for k, v in other.per.items():
                self.per[k] = self.per.get(k, 0.0) + v


@dataclass
class _Ctx:
    features: list[Feature]
    types: dict[str, str]
    numeric_target: bool
    grids: dict[int, tuple[float, int, int]]  # feature index -> (step, lowest, highest bucket)
    buckets: list[Column]  # per feature, the column of the row's bucket (``_bucket``)
    total: _Stats
    floor: float
    max_conditions: int
    cache: dict[str, Column] = field(default_factory=dict)


def _bucket(f: Feature, grid: tuple[float, int, int] | None) -> Column:
    """A row's bucket of ``f`` as a long: its grid step, or its label's position (1-based).

    A null number is ``_NO_STEP``; a label the tree never saw is 0 (``_key`` names both).
    """
    c = F.col(f.name)
    if not f.numeric:
        labels = F.array(*[F.lit(v) for v in f.labels])
        return F.array_position(labels, F.coalesce(c.cast("string"), F.lit(MISSING)))
    assert grid is not None
    step, lo, hi = grid
    b = F.ceil(c.cast("double") / F.lit(step))
    # least and greatest skip nulls, so a null number is named before clamping
    return F.when(c.isNull(), F.lit(_NO_STEP)).otherwise(
        F.greatest(F.least(b, F.lit(hi)), F.lit(lo)).cast("long")
    )


def _bucket_key(f: Feature, b: int) -> str:
    """The bucket's name as ``_moves`` reads it: the grid step, the label, or ``MISSING``."""
    if f.numeric:
        return MISSING if b == _NO_STEP else str(b)
    return f.labels[b - 1] if 0 < b <= len(f.labels) else _UNSEEN


def _score(s: _Stats, seed: Seed, ctx: _Ctx) -> float:
    t = ctx.total
    if s.n < ctx.floor or t.n - s.n < ctx.floor or t.n <= 0:
        return -math.inf
    if ctx.numeric_target:
        diff = s.y / s.n - t.y / t.n
    else:
        cat = seed.category or ""
        diff = (s.per or {}).get(cat, 0.0) / s.n - (t.per or {}).get(cat, 0.0) / t.n
    return seed.sign * math.sqrt(s.n / t.n) * diff


def _moves(f: Feature, fi: int, buckets: dict[str, _Stats], ctx: _Ctx) -> list[tuple[Rule, _Stats]]:
    """Every condition on one attribute with its stats, from the stats per bucket."""
    out: list[tuple[Rule, _Stats]] = []
    if f.numeric:
        step = ctx.grids[fi][0]
        known = sorted((int(k), v) for k, v in buckets.items() if k != MISSING)
        whole = _Stats()
        for _, v in known:
            whole.add(v)
        below = _Stats()
        for b, v in known[:-1]:
            below.add(v)
            above = _Stats()
            above.add(whole)
            above.n -= below.n
            above.y -= below.y
            if below.per:
                above.per = {k: x - below.per.get(k, 0.0) for k, x in (whole.per or {}).items()}
            g = round(b * step, 10)
            snap = _Stats()
            snap.add(below)
            out.append((NumericRule(f.name, None, g), snap))
            out.append((NumericRule(f.name, g, None), above))
        return out
    real = [v for v in f.labels if v != MISSING]
    whole = _Stats()
    for k, v in buckets.items():
        if k != MISSING:
            whole.add(v)
    for label in real:
        one = buckets.get(label, _Stats())
        out.append((CategoricalRule(f.name, (label,), f.labels, f.boolean), one))
        if len(real) > 2:
            rest = _Stats(whole.n - one.n, whole.y - one.y)
            if whole.per:
                rest.per = {k: x - (one.per or {}).get(k, 0.0) for k, x in whole.per.items()}
            allowed = tuple(v for v in real if v != label)
            out.append((CategoricalRule(f.name, allowed, f.labels, f.boolean), rest))
    return out


def _key(rules: Sequence[Rule]) -> str:
    return definition_json(rules_definition(rules)) if rules else ""


def _round(
    sample: DataFrame, seeds: list[Seed], active: Sequence[int], ctx: _Ctx
) -> dict[tuple[int, int, int], dict[str, _Stats]]:
    """One pass: stats per (seed, slot, feature) and bucket.

    Each slot is a rule set (the seed without one condition, or the whole seed) and the
    feature whose buckets it needs; rows are exploded to one row per feature and grouped
    by (feature, bucket, rule bits), and every slot sums the groups of its feature that
    hold its rules (``suggestions.bits``). The whole seed's slot reads feature 0's buckets
    and adds them up.
    """
    index = {f.name: i for i, f in enumerate(ctx.features)}
    slots: list[tuple[int, int, int]] = []
    entries: list[tuple[int, int, tuple[Rule, ...]]] = []

    def slot(key: tuple[int, int, int], part: int, rules: tuple[Rule, ...]) -> None:
        entries.append((len(slots), part, rules))
        slots.append(key)

    for s in active:
        rules = seeds[s].rules
        used = {index[r.field] for r in rules}
        for j, r in enumerate(rules):
            slot((s, j, index[r.field]), index[r.field], rules[:j] + rules[j + 1 :])
        slot((s, _ALL, -1), 0, rules)
        if len(rules) < ctx.max_conditions:
            for fi in range(len(ctx.features)):
                if fi not in used:
                    slot((s, _ALL, fi), fi, rules)
    bits = RuleBits((seeds[s].rules for s in active), ctx.types, ctx.cache)
    label = [] if ctx.numeric_target else ["_label"]
    values = {"n": F.lit(1).cast("long")}
    if ctx.numeric_target:
        values["y"] = F.col("_label").cast("double")
    parts = F.posexplode(F.array(*ctx.buckets))
    groups = (
        sample.select(
            *label,
            *[v.alias(k) for k, v in values.items()],
            *bits.columns(),
            parts.alias("_fi", "_b"),
        )
        .groupBy("_fi", "_b", *label, *bits.names)
        .agg(*[F.sum(k).alias(k) for k in values])
    )
    sets = bits.sets(sample.sparkSession, entries)
    agg = (
        groups.join(F.broadcast(sets), (F.col("_fi") == F.col("_part")) & bits.holds())
        .groupBy("_set", "_part", "_b", *label)
        .agg(*[F.sum(k).alias(k) for k in values])
    )
    out: dict[tuple[int, int, int], dict[str, _Stats]] = {}
    # from Arrow: the rows of a round (thousands) cost less than as pickled Rows
    for rec in agg.toArrow().to_pylist():
        d = out.setdefault(slots[int(rec["_set"])], {})
        key = _bucket_key(ctx.features[int(rec["_part"])], int(rec["_b"]))
        if ctx.numeric_target:
            d[key] = _Stats(float(rec["n"]), float(rec["y"] or 0.0))
        else:
            st = d.setdefault(key, _Stats(per={}))
            st.n += float(rec["n"])
            assert st.per is not None
            st.per[rec["_label"]] = st.per.get(rec["_label"], 0.0) + float(rec["n"])
    return out


def _best_move(
    s: int, seed: Seed, stats: dict[tuple[int, int, int], dict[str, _Stats]], ctx: _Ctx
) -> tuple[tuple[Rule, ...], float] | None:
    rules = seed.rules
    current = _Stats()
    for v in stats.get((s, _ALL, -1), {}).values():
        current.add(v)
    options: list[tuple[float, int, tuple[Rule, ...]]] = [
        (_score(current, seed, ctx), len(rules), rules)
    ]
    for j, r in enumerate(rules):
        fi = next(i for i, f in enumerate(ctx.features) if f.name == r.field)
        buckets = stats.get((s, j, fi), {})
        rest = rules[:j] + rules[j + 1 :]
        if rest:
            whole = _Stats()
            for v in buckets.values():
                whole.add(v)
            options.append((_score(whole, seed, ctx), len(rest), rest))
        for rule, st in _moves(ctx.features[fi], fi, buckets, ctx):
            options.append((_score(st, seed, ctx), len(rules), (*rules[:j], rule, *rules[j + 1 :])))
    for fi, f in enumerate(ctx.features):
        buckets = stats.get((s, _ALL, fi), {})
        if not buckets:
            continue
        for rule, st in _moves(f, fi, buckets, ctx):
            options.append((_score(st, seed, ctx), len(rules) + 1, (*rules, rule)))
    base = options[0][0] if math.isfinite(options[0][0]) else 0.0
    # each condition more (or fewer) than now costs (or earns) _PER_CONDITION of the score
    ranked = [(sc - abs(base) * _PER_CONDITION * (k - len(rules)), k, rs) for sc, k, rs in options]
    top = max(o[0] for o in ranked)
    if not math.isfinite(top):
        return None
    near = [o for o in ranked if o[0] >= top - abs(top) * _TIE]
    score, _, chosen = min(near, key=lambda o: (o[1], -o[0]))
    return chosen, score


@dataclass(frozen=True)
class Survey:
    """What refinement needs to know of its rows first: their totals and each number's grid."""

    n: float
    y: float  # numeric target: the sum of ``_label``
    grids: dict[int, tuple[float, int, int]]  # feature index -> (step, lowest, highest bucket)
    per: dict[str, float] | None = None  # categorical target: the rows per category


def survey(fit: DataFrame, features: Sequence[Feature], *, numeric_target: bool) -> Survey:
    """One pass over ``fit``: its size, the target's sum, and each number's grid.

    A grid spans the number's 0.5% and 99.5% quantiles in ``grid_step`` steps. A
    categorical target takes a second, grouped pass for its rows per category. The
    passes only need the rows, so a run takes them while its tree is being fitted.
    """
    nums = [i for i, f in enumerate(features) if f.numeric]
    totals = [F.count(F.lit(1)).alias("n")]
    if numeric_target:
        totals.append(F.sum("_label").alias("y"))
    row = fit.agg(
        *totals,
        *[
            F.percentile_approx(F.col(features[i].name).cast("double"), [0.005, 0.995], 1000).alias(
                f"q{i}"
            )
            for i in nums
        ],
    ).first()
    assert row is not None
    grids: dict[int, tuple[float, int, int]] = {}
    for i in nums:
        q = row[f"q{i}"]
        lo, hi = (float(q[0]), float(q[1])) if q else (0.0, 1.0)
        step = grid_step(lo, hi)
        grids[i] = (step, math.floor(lo / step), math.ceil(hi / step) + 1)
    if numeric_target:
        return Survey(float(row["n"]), float(row["y"] or 0.0), grids)
    per = {
        r["_label"]: float(r["n"])
        for r in fit.groupBy("_label").agg(F.count(F.lit(1)).alias("n")).collect()
    }
    return Survey(float(row["n"]), 0.0, grids, per)


def refine(
    fit: DataFrame,
    seeds: Sequence[Seed],
    features: Sequence[Feature],
    types: dict[str, str],
    *,
    numeric_target: bool,
    min_members: float,
    max_conditions: int = 4,
    rounds: int = 5,
    cache: dict[str, Column] | None = None,
    surveyed: Survey | None = None,
) -> list[Seed]:
    """Refine each seed greedily, one pass per round (at most ``rounds``).

    ``fit`` holds the catalog-named influencer columns and ``_label`` (non-null) of the
    fitting rows; ``min_members`` is the size floor scaled to ``fit``. ``cache`` keeps
    the rules' conditions (``suggestions.bits``) for a later pass over the same columns.
    ``surveyed`` is ``survey(fit, …)`` when the caller has taken it already. The rows
    of ``fit`` are cached here with their buckets.
    """
    if not seeds:
        return []
    feats = list(features)
    attrs = sorted({f.name for f in feats})
    found = surveyed or survey(fit, feats, numeric_target=numeric_target)
    grids = found.grids
    # every round reads each row's buckets: computed once, kept beside the columns
    # the rules test (the first round fills the cache)
    sample = fit.select(
        "_label",
        *attrs,
        *[_bucket(f, grids.get(i)).alias(f"_k{i}") for i, f in enumerate(feats)],
    ).persist()
    try:
        total = _Stats(found.n, found.y, None if numeric_target else dict(found.per or {}))
        buckets = [F.col(f"_k{i}") for i in range(len(feats))]
        ctx = _Ctx(
            feats,
            types,
            numeric_target,
            grids,
            buckets,
            total,
            min_members,
            max_conditions,
            {} if cache is None else cache,
        )
        current = list(seeds)
        active = list(range(len(current)))
        order = {f.name: i for i, f in enumerate(feats)}
        for step in range(rounds):
            if not active:
                break
            stats = _round(sample, current, active, ctx)
            changed = []
            for s in active:
                best = _best_move(s, current[s], stats, ctx)
                if best is not None and _key(best[0]) != _key(current[s].rules):
                    current[s] = replace(current[s], rules=best[0])
                    changed.append(s)
                    log.debug("seed %d -> %s (score %.4f)", s, best[0], best[1])
            log.info(
                "refinement round %d: %d rule sets, %d changed", step + 1, len(active), len(changed)
            )
            active = changed
        return [
            replace(s, rules=tuple(sorted(s.rules, key=lambda r: order.get(r.field, 0))))
            for s in current
        ]
    finally:
        sample.unpersist()
