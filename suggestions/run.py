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
import dataclasses
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.context import Context, parse_as_of
from cohortlake.errors import InputError, Problem
from cohortlake.lake import new_run_id
from cohortlake.tracking import tracked_run
from suggestions.candidates import result_row, tree_candidates
from suggestions.model import (
    MAX_INFLUENCER_CATEGORIES,
    SuggestionRun,
    load_suggestion_runs,
)
from suggestions.profile import (
    Profile,
    check_categories,
    customer_base,
    encode,
    profile_customers,
)
from suggestions.refine import survey
from suggestions.stats import Candidate, categorical_stats, numeric_stats, select
from suggestions.tracking import draw_chart, log_run, save_model
from suggestions.tree import (
    FittedTree,
    fit_tree,
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


def _mine(
    ctx: Context, run: SuggestionRun, base: DataFrame, prof: Profile, as_of: dt.datetime
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
    prof: Profile,
    as_of: dt.datetime,
    pool: ThreadPoolExecutor,
    model_dir: Path,
) -> SuggestionResult:
    started = time.monotonic()
    run_id = new_run_id()
    key = ctx.catalog.key
    types: dict[str, str] = {f.name: f.type for f in (run.target, *run.influencers)}
    data = encode(run, base, prof, key)
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
            candidates, refined = tree_candidates(
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
    rows = [result_row(run, s, i + 1, run_id, as_of) for i, s in enumerate(kept)]
    all_rows = [result_row(run, s, 0, run_id, as_of) for s in scored]
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


def _narrowed(run: SuggestionRun, prof: Profile) -> tuple[SuggestionRun, Profile]:
    """Default influencers without the text fields with too many categories to split on
    (known only from the data: a post code of 400 values); a listed one is an error."""
    wide = {
        f.name
        for f in prof.features
        if not f.numeric and (f.minimum or 0) > MAX_INFLUENCER_CATEGORIES
    }
    if not wide:
        return run, prof
    log.info(
        "%s: default influencers without %s (over %d categories)",
        run.output,
        ", ".join(sorted(wide)),
        MAX_INFLUENCER_CATEGORIES,
    )
    kept = [f for f in prof.features if f.name not in wide]
    return run.without(wide), dataclasses.replace(prof, features=kept)


def run_suggestions(
    ctx: Context, outputs: Sequence[str] | None = None, as_of: str | dt.datetime | None = None
) -> list[SuggestionResult]:
    """Run the suggestion definitions of ``ctx.conf_dir`` (all, or those named in ``outputs``)."""
    when = as_of if isinstance(as_of, dt.datetime) else parse_as_of(as_of)
    runs = select_runs(load_suggestion_runs(ctx.conf_dir, ctx.catalog), outputs)
    prepared: list[tuple[SuggestionRun, DataFrame, Profile]] = []
    problems: list[Problem] = []
    for run in runs:
        base = customer_base(ctx, run).persist()
        prof = profile_customers(run, base)
        if run.influencers_defaulted:
            run, prof = _narrowed(run, prof)
        problems += check_categories(run, prof)
        prepared.append((run, base, prof))
    if problems:
        raise InputError(problems)
    try:
        return [_mine(ctx, run, base, prof, when) for run, base, prof in prepared]
    finally:
        for _, base, _ in prepared:
            base.unpersist()
