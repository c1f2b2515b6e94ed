"""Run suggestion definitions: check categories, mine, score, write ``suggestions/<Output>``, track.

Order of work: every selected definition is validated (schema, catalog) and its category
counts are checked against the data before any table is written; then each run fits its
tree on the fitting rows (all but the seeded ``holdout`` share), turns every non-root
node into a candidate, refines the strongest ones (``suggestions.refine``), scores all
candidates exactly over every customer (p-values on the hold-out rows), and replaces
its output table in one Delta commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.context import Context, parse_as_of
from cohortlake.errors import InputError, Problem
from cohortlake.lake import new_run_id
from cohortlake.tracking import tracked_run
from suggestions.model import (
    MAX_INFLUENCER_CATEGORIES,
    MAX_TARGET_CATEGORIES,
    SuggestionRun,
    load_suggestion_runs,
)
from suggestions.refine import Seed, Survey, refine, survey
from suggestions.rules import (
    MISSING,
    definition_json,
    rules_definition,
    rules_text,
)
from suggestions.stats import Candidate, Scored, categorical_stats, numeric_stats, select
from suggestions.tracking import draw_chart, log_run, save_model
from suggestions.tree import (
    Feature,
    FittedTree,
    fit_tree,
    path_rules,
    provisional_cuts,
    rounding_map,
)

__all__ = [
    "SUGGESTIONS_SCHEMA",
    "SuggestionResult",
    "customer_base",
    "run_suggestions",
    "select_runs",
]

log = logging.getLogger(__name__)

EXPERIMENT = "cohortlake-suggestions"

SUGGESTIONS_SCHEMA = T.StructType(
    [
        T.StructField("Rank", T.IntegerType(), False),
        T.StructField("Target", T.StringType(), False),
        T.StructField("Category", T.StringType(), True),
        T.StructField("Members", T.LongType(), False),
        T.StructField("Share", T.DoubleType(), False),
        T.StructField("SegmentValue", T.DoubleType(), False),
        T.StructField("OverallValue", T.DoubleType(), False),
        T.StructField("Lift", T.DoubleType(), True),
        T.StructField("Effect", T.DoubleType(), False),
        T.StructField("Strength", T.DoubleType(), False),
        T.StructField("PValue", T.DoubleType(), False),
        T.StructField("AdjustedPValue", T.DoubleType(), False),
        T.StructField("Rules", T.StringType(), False),
        T.StructField("Definition", T.StringType(), False),
        T.StructField("Summary", T.StringType(), False),
        T.StructField("Conditions", T.IntegerType(), False),
        T.StructField("MissingTarget", T.LongType(), False),
        T.StructField("Name", T.StringType(), False),
        T.StructField("RunId", T.StringType(), False),
        T.StructField("AsOf", T.TimestampType(), False),
        T.StructField("MlflowRunId", T.StringType(), True),
    ]
)


@dataclass
class SuggestionResult:
    """What one mining run did."""

    output: str
    name: str
    target: str
    run_id: str
    path: str
    customers: int
    missing_target: int
    candidates: int
    kept: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    table_version: int | None = None
    mlflow_run_id: str | None = None
    chart: str | None = None
    seconds: float = 0.0


@dataclass
class _Profile:
    customers: int
    known: int
    target_min: float | None
    target_max: float | None
    target_mean: float | None
    target_categories: int
    features: list[Feature]
    target_labels: tuple[str, ...] = ()


def select_runs(
    runs: Sequence[SuggestionRun], outputs: Sequence[str] | None
) -> list[SuggestionRun]:
    """The runs named (output or name, ignoring case), or all; an unknown name is an InputError."""
    if not outputs:
        return list(runs)
    by = {r.output.lower(): r for r in runs} | {r.name.lower(): r for r in runs}
    problems = []
    chosen: list[SuggestionRun] = []
    for i, name in enumerate(outputs):
        run = by.get(name.lower())
        if run is None:
            known = ", ".join(r.output for r in runs) or "none"
            problems.append(
                Problem(
                    "--only",
                    f"[{i}]" if len(outputs) > 1 else "",
                    f"unknown suggestion run {name!r} (known: {known})",
                )
            )
        elif run not in chosen:
            chosen.append(run)
    if problems:
        raise InputError(problems)
    return chosen


def customer_base(ctx: Context, run: SuggestionRun) -> DataFrame:
    """One row per customer: the key, the target and the influencers under their catalog names."""
    key = ctx.catalog.key
    fields = [run.target, *run.influencers]
    lake = ctx.lake
    profile_cols = [f.name for f in fields if f.source == "profile"]
    measure_cols = [f.name for f in fields if f.source == "measure"]
    df = lake.read(lake.profile_path(ctx.catalog.profile_entity)).select(key, *profile_cols)
    if measure_cols:
        measures = lake.read(lake.measures_path()).select(key, *measure_cols)
        df = df.join(measures, key, "left")
    return df


def _profile(run: SuggestionRun, base: DataFrame) -> _Profile:
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
    return _Profile(
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


def _check_categories(run: SuggestionRun, prof: _Profile) -> list[Problem]:
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


def _encode(run: SuggestionRun, base: DataFrame, prof: _Profile, key: str) -> DataFrame:
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


def _seeds(fitted: FittedTree, numeric_target: bool, floor: float, top: int) -> list[int]:
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


def _candidates(
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
        _seeds(fitted, run.numeric_target, floor * tree_share, refine_top) if refine_top > 0 else []
    )

    def refined(cuts_now: dict[tuple[int, float], float | None]) -> tuple[list[Seed], list[Seed]]:
        seeds = _seed_rules(run, fitted, chosen, cuts_now)
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


def _seed_rules(
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


def _summary(run: SuggestionRun, s: Scored) -> str:
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


def _row(
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
        "Summary": _summary(run, s),
        "Conditions": s.candidate.conditions,
        "MissingTarget": s.missing_target,
        "Name": run.name,
        "RunId": run_id,
        "AsOf": as_of,
        "MlflowRunId": None,
    }


def _mine(
    ctx: Context, run: SuggestionRun, base: DataFrame, prof: _Profile, as_of: dt.datetime
) -> SuggestionResult:
    """Mine one run, with a background thread for the work off its critical path.

    In that thread, in order: refinement's survey of the tree's rows (beside the tree),
    the rounding of the tree's thresholds, the output table's warm-up and the fitted
    model's save (beside refinement).
    """
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cohortlake-model-")))
        # shut down (waiting for a save under way) before the folder is removed
        pool = stack.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohortlake-model")
        )
        return _mine_saving(ctx, run, base, prof, as_of, pool, folder / "model")


def _mine_saving(
    ctx: Context,
    run: SuggestionRun,
    base: DataFrame,
    prof: _Profile,
    as_of: dt.datetime,
    pool: ThreadPoolExecutor,
    model_dir: Path,
) -> SuggestionResult:
    started = time.monotonic()
    run_id = new_run_id()
    key = ctx.catalog.key
    types: dict[str, str] = {f.name: f.type for f in (run.target, *run.influencers)}
    data = _encode(run, base, prof, key)
    train: DataFrame | None = None
    conditions: dict[str, Column] = {}  # each rule's Column, built once for refinement and stats
    try:
        min_members = run.min_members_for(prof.customers)
        constant = (
            prof.known < 2
            or (run.numeric_target and prof.target_min == prof.target_max)
            or (not run.numeric_target and prof.target_categories < 2)
        )
        fitted: FittedTree | None = None
        saved: Future[Path] | None = None
        candidates: list[Candidate] = []
        if not constant:
            fit_rows = data.where(~F.col("_holdout") & F.col("_label").isNotNull())
            train_share = 1 - run.spec.holdout
            fitting = prof.known * train_share
            tree_share = 1.0
            if fitting > run.spec.tree_rows:
                # the tree only proposes candidates: a seeded sample finds the same splits
                tree_share = run.spec.tree_rows / fitting
                fit_rows = fit_rows.sample(fraction=tree_share, seed=run.spec.seed)
                log.info("%s: tree fitted on a %.1f%% sample", run.output, tree_share * 100)
            # the tree's passes and refinement's rounds read these rows from the cache, in
            # as many partitions as cores: a pass over a sample is mostly per-task overhead
            attrs = sorted({f.name for f in prof.features})
            cores = max(1, ctx.spark.sparkContext.defaultParallelism)
            train = (
                fit_rows.select("_label", *attrs, *[f.column for f in prof.features])
                .coalesce(cores)
                .persist()
            )
            # refinement's first pass and the rounding of thresholds run in the background,
            # beside the tree and the refinement rounds (each a few small Spark jobs)
            surveyed = (
                pool.submit(survey, train, prof.features, numeric_target=run.numeric_target)
                if run.spec.refine_top > 0
                else None
            )
            t0 = time.monotonic()
            fitted = fit_tree(
                train,
                prof.features,
                numeric_target=run.numeric_target,
                max_depth=run.spec.max_depth,
                min_instances=int(min_members * train_share * tree_share * 0.8),
                max_bins=run.spec.max_bins,
                seed=run.spec.seed,
                target_labels=prof.target_labels,
            )
            log.info("%s: tree fitted in %.1f s", run.output, time.monotonic() - t0)
            cuts = pool.submit(rounding_map, data, fitted.features, fitted.paths)
            pool.submit(ctx.lake.warm, ctx.lake.suggestion_path(run.output))
            saved = pool.submit(save_model, fitted.model, model_dir)
            candidates, refined = _candidates(
                run,
                fitted,
                cuts,
                train,
                types,
                min_members * train_share * 0.8,
                run.spec.refine_top,
                tree_share,
                conditions,
                surveyed,
            )
            log.info("%s: %d candidates (%d refined)", run.output, len(candidates), refined)
        else:
            log.info("%s: the target is constant or unknown; nothing to mine", run.output)
        if candidates:
            t0 = time.monotonic()
            if run.numeric_target:
                scored, _totals = numeric_stats(
                    data, candidates, prof.target_mean or 0.0, types, conditions
                )
            else:
                scored, _totals = categorical_stats(data, candidates, types, conditions)
            log.info(
                "%s: %d candidates scored in %.1f s",
                run.output,
                len(candidates),
                time.monotonic() - t0,
            )
        else:
            scored = []
        kept = select(
            scored,
            alpha=run.spec.alpha,
            min_members=min_members,
            categorical=not run.numeric_target,
        )
    finally:
        if train is not None:
            train.unpersist()
    rows = [_row(run, s, i + 1, run_id, as_of) for i, s in enumerate(kept)]
    all_rows = [_row(run, s, 0, run_id, as_of) for s in scored]
    result = SuggestionResult(
        output=run.output,
        name=run.name,
        target=run.target.name,
        run_id=run_id,
        path=ctx.lake.suggestion_path(run.output),
        customers=prof.customers,
        missing_target=prof.customers - prof.known,
        candidates=len(candidates),
        kept=len(kept),
        rows=rows,
    )
    t0 = time.monotonic()
    _write_and_track(ctx, run, result, fitted, saved, all_rows)
    log.info("%s: written and tracked in %.1f s", run.output, time.monotonic() - t0)
    result.seconds = time.monotonic() - started
    log.info(
        "%s: %d customers (%d with no %s), %d candidates, %d suggestions, %.1f s",
        run.output,
        result.customers,
        result.missing_target,
        run.target.name,
        result.candidates,
        result.kept,
        result.seconds,
    )
    return result


def _report_dir(ctx: Context, output: str) -> Path | None:
    reports = ctx.lake.reports_dir()
    if "://" in reports and not reports.startswith("file:"):
        return None
    return Path(reports.removeprefix("file:")) / "suggestions" / output


def _write_and_track(
    ctx: Context,
    run: SuggestionRun,
    result: SuggestionResult,
    fitted: FittedTree | None,
    saved: Future[Path] | None,
    all_rows: list[dict[str, Any]],
) -> None:
    params: dict[str, Any] = {
        "name": run.name,
        "output": run.output,
        "target": run.target.name,
        "target_kind": "numeric" if run.numeric_target else "categorical",
        "influencers": [f.name for f in run.influencers],
        "max_depth": run.spec.max_depth,
        "min_members": run.min_members_for(result.customers),
        "alpha": run.spec.alpha,
        "holdout": run.spec.holdout,
        "max_bins": run.spec.max_bins,
        "refine_top": run.spec.refine_top,
        "tree_rows": run.spec.tree_rows,
        "seed": run.spec.seed,
        "run_id": result.run_id,
        "as_of": result.rows[0]["AsOf"].isoformat() if result.rows else "",
    }
    metrics = {
        "customers": result.customers,
        "missing_target": result.missing_target,
        "candidates": result.candidates,
        "kept": result.kept,
        "best_effect": abs(result.rows[0]["Effect"]) if result.rows else 0.0,
    }
    tags = {
        "cohortlake.kind": "suggestions",
        "cohortlake.output": run.output,
        "cohortlake.run_id": result.run_id,
    }
    with tracked_run(
        ctx.tracking_uri(), ctx.root, EXPERIMENT, run_name=run.output, tags=tags
    ) as mlrun:
        mlflow_id = str(mlrun.info.run_id)  # type: ignore[attr-defined]
        for r in result.rows:
            r["MlflowRunId"] = mlflow_id
        df = ctx.spark.createDataFrame(
            [tuple(r[f.name] for f in SUGGESTIONS_SCHEMA.fields) for r in result.rows],
            SUGGESTIONS_SCHEMA,
        )
        # the Delta commit and the MLflow logging (chart, artifacts, model) overlap
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohortlake-write") as pool:
            written = pool.submit(ctx.lake.overwrite, df, result.path, metadata=result.run_id)
            report = _report_dir(ctx, run.output)
            with tempfile.TemporaryDirectory(prefix="cohortlake-chart-") as tmp:
                chart = draw_chart(
                    result.rows,
                    (report or Path(tmp)) / "top.png",
                    f"{run.name}: top suggestions for {run.target.name}",
                )
                log_run(
                    params=params,
                    metrics=metrics,
                    suggestions=[
                        {
                            k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                            for k, v in r.items()
                        }
                        for r in result.rows
                    ],
                    candidates=[
                        {k: v for k, v in r.items() if k not in ("AsOf", "MlflowRunId", "Rank")}
                        for r in all_rows
                    ],
                    tree_text=fitted.text
                    if fitted
                    else "(no tree: the target is constant or unknown)",
                    chart=chart,
                    model_dir=saved.result() if saved else None,
                )
            result.table_version = written.result()
        result.chart = str(chart) if report else None
        result.mlflow_run_id = mlflow_id


def run_suggestions(
    ctx: Context, outputs: Sequence[str] | None = None, as_of: str | dt.datetime | None = None
) -> list[SuggestionResult]:
    """Run the suggestion definitions of ``ctx.conf_dir`` (all, or those named in ``outputs``)."""
    when = as_of if isinstance(as_of, dt.datetime) else parse_as_of(as_of)
    runs = select_runs(load_suggestion_runs(ctx.conf_dir, ctx.catalog), outputs)
    prepared: list[tuple[SuggestionRun, DataFrame, _Profile]] = []
    problems: list[Problem] = []
    for run in runs:
        base = customer_base(ctx, run).persist()
        prof = _profile(run, base)
        problems += _check_categories(run, prof)
        prepared.append((run, base, prof))
    if problems:
        raise InputError(problems)
    try:
        return [_mine(ctx, run, base, prof, when) for run, base, prof in prepared]
    finally:
        for _, base, _ in prepared:
            base.unpersist()
