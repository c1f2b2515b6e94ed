"""Suggestions' candidates: the tree's nodes and refined rules as scored rule sets, and the
printed summary and output row of each kept suggestion."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from pyspark.sql import Column, DataFrame

from suggestions.model import (
    SuggestionRun,
)
from suggestions.refine import Seed, Survey, refine
from suggestions.rules import (
    definition_json,
    rules_definition,
    rules_text,
)
from suggestions.stats import Candidate, Scored
from suggestions.tree import (
    FittedTree,
    path_rules,
    provisional_cuts,
)

__all__ = ["result_row", "seed_nodes", "seed_rules", "summary", "tree_candidates"]

log = logging.getLogger(__name__)


def seed_nodes(fitted: FittedTree, numeric_target: bool, floor: float, top: int) -> list[int]:
    """The paths worth refining: the strongest by the tree's own node statistics.

    Strength is ``sqrt(share) × (node value − root value)`` (see ``suggestions.refine``);
    a numeric target keeps the ``top`` strongest above and the ``top`` strongest below
    average, a categorical one the ``top`` strongest over any category.
    """
    root = fitted.root_stats
    if not root or root[0] <= 0:
        return []
    scored: list[tuple[float, int, int]] = []  # (strength, sign or category, path index)
    for i, p in enumerate(fitted.paths):
        st = p.stats
        n = st[0] if numeric_target else sum(st)
        if not st or n < floor:
            continue
        if numeric_target:
            total = root[0]
            diff = st[1] / n - root[1] / total
            scored.append((math.sqrt(n / total) * abs(diff), 1 if diff > 0 else -1, i))
        else:
            total = sum(root)
            k = max(
                range(len(st)),
                key=lambda c: math.sqrt(n / total) * (st[c] / n - root[c] / total),
            )
            strength = math.sqrt(n / total) * (st[k] / n - root[k] / total)
            scored.append((strength, k, i))
    chosen: list[int] = []
    for group in {g for _, g, _ in scored}:
        best = sorted((s for s in scored if s[1] == group), reverse=True)
        chosen += [i for _, _, i in best[: top if numeric_target else max(2, top // 2)]]
    return sorted(set(chosen))


def tree_candidates(
    run: SuggestionRun,
    fitted: FittedTree,
    cuts: Future[dict[tuple[int, float], float | None]],
    train: DataFrame,
    types: dict[str, str],
    floor: float,
    refine_top: int,
    tree_share: float = 1.0,
    cache: dict[str, Column] | None = None,
    surveyed: Future[Survey] | None = None,
) -> tuple[list[Candidate], int]:
    """The tree's nodes as candidates, plus the refined versions of the strongest ones.

    ``cuts`` is ``rounding_map`` over every customer, under way in the background;
    refinement works on ``train``, the tree's rows, a ``tree_share`` of the fitting rows,
    and starts from the paths' ``provisional_cuts``, which select the same rows. The
    rounded numbers replace the provisional ones in the refined rules that kept them.
    """
    for f in fitted.features:
        if not f.numeric:
            f.minimum = None  # category count, only needed for the check
    chosen = (
        seed_nodes(fitted, run.numeric_target, floor * tree_share, refine_top)
        if refine_top > 0
        else []
    )

    def refined(cuts_now: dict[tuple[int, float], float | None]) -> tuple[list[Seed], list[Seed]]:
        seeds = seed_rules(run, fitted, chosen, cuts_now)
        out = refine(
            train,
            seeds,
            fitted.features,
            types,
            numeric_target=run.numeric_target,
            min_members=floor * tree_share,
            max_conditions=run.spec.max_depth,
            cache=cache,
            surveyed=surveyed.result() if surveyed and seeds else None,
        )
        return seeds, out

    provisional = provisional_cuts(fitted.features, fitted.paths)
    seeds, out = refined(provisional)
    rounded = cuts.result()
    rule_sets = [(tuple(path_rules(p, fitted.features, rounded)), p.depth) for p in fitted.paths]
    if seeds and any((rounded.get(k) is None) != (v is None) for k, v in provisional.items()):
        # not expected (the profile's minimum decides both): refine from the rounded rules
        log.warning("%s: provisional cuts disagree with the data; refining again", run.output)
        _, out = refined(rounded)
    else:
        for i, (seed, kept) in enumerate(zip(seeds, list(out), strict=True)):
            swap = dict(zip(seed.rules, rule_sets[chosen[i]][0], strict=True))
            out[i] = replace(kept, rules=tuple(swap.get(r, r) for r in kept.rules))
    rule_sets += [(s.rules, len(s.rules)) for s in out]
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for rules, depth in rule_sets:
        definition = rules_definition(rules)
        text = definition_json(definition)
        if not rules or text in seen:
            continue
        seen.add(text)
        candidates.append(
            Candidate(
                rules_text(rules),
                definition,
                len(rules),
                depth,
                rules,
            )
        )
    return candidates, len(out)


def seed_rules(
    run: SuggestionRun,
    fitted: FittedTree,
    chosen: Sequence[int],
    cuts: dict[tuple[int, float], float | None],
) -> list[Seed]:
    """The chosen paths as seeds: their rules, and the direction (or category) they stand out in."""
    seeds = []
    root = fitted.root_stats
    for i in chosen:
        rules = tuple(path_rules(fitted.paths[i], fitted.features, cuts))
        st = fitted.paths[i].stats
        if run.numeric_target:
            sign = 1 if st[1] / st[0] > root[1] / root[0] else -1
            seeds.append(Seed(rules, sign))
        else:
            n, total = sum(st), sum(root)
            k = max(range(len(st)), key=lambda c: st[c] / n - root[c] / total)
            seeds.append(Seed(rules, 1, fitted.target_labels[k]))
    return seeds


def summary(run: SuggestionRun, s: Scored) -> str:
    target = run.target.name
    rules = s.candidate.rules
    if s.category is None:
        if s.overall_value:
            pct = (s.segment_value / s.overall_value - 1) * 100
            where = "above" if pct > 0 else "below"
            head = f"{target} is {abs(pct):.0f}% {where} average"
        else:
            head = f"{target} averages {s.segment_value:,.2f} vs {s.overall_value:,.2f}"
        return f"{head} — {s.members:,} members — {rules}"
    return (
        f"{s.segment_value * 100:.0f}% have {target} = {s.category} vs {s.overall_value * 100:.0f}% of all customers"
        f" — {s.members:,} members — {rules}"
    )


def result_row(
    run: SuggestionRun, s: Scored, rank: int, run_id: str, as_of: dt.datetime
) -> dict[str, Any]:
    return {
        "Rank": rank,
        "Target": run.target.name,
        "Category": s.category,
        "Members": s.members,
        "Share": s.share,
        "SegmentValue": s.segment_value,
        "OverallValue": s.overall_value,
        "Lift": s.lift,
        "Effect": s.effect,
        "Strength": s.strength,
        "PValue": s.p_value,
        "AdjustedPValue": s.adjusted,
        "Rules": s.candidate.rules,
        "Definition": definition_json(s.candidate.definition),
        "Summary": summary(run, s),
        "Conditions": s.candidate.conditions,
        "MissingTarget": s.missing_target,
        "Name": run.name,
        "RunId": run_id,
        "AsOf": as_of,
        "MlflowRunId": None,
    }
