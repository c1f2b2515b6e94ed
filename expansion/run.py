"""Run expansions: read the source and pool, check them, measure held-out recall, publish.

Each run first hides a seeded 20% of the source in the pool, fits on the other 80% and
counts how many hidden members the same size-capped selection returns (held-out recall),
next to a random pick of the same size (cap / candidates). Then it scores the pool
against the whole source and writes ``segments/<Output>`` with ``segment_runs``, logs to
MLflow and writes ``reports/expansions/<Output>/`` (scores.png, summary.json).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem
from cohortlake.lake import SegmentRun, new_run_id
from cohortlake.memberships import publish_segment, read_membership
from cohortlake.sketches import record_published_sketch
from cohortlake.sources import read_fields
from expansion.features import BLOCK, ID, fit_encoding, z_columns
from expansion.model import MIN_SOURCE_MEMBERS, Expansion, load_expansions
from expansion.quality import (
    BANDS,
    FLOOR,
    HeldOut,
    band,
    bandwidth,
    held_out_split,
    hidden_count,
    score,
    select_top,
)

__all__ = ["METHOD", "ExpansionResult", "run_expansion", "run_expansions"]

log = logging.getLogger(__name__)

METHOD = "knn-grid"
EXPERIMENT = "cohortlake-expansion"
_BINS = 20


@dataclass
class ExpansionResult:
    """What one expansion run produced and how well it recovered its hidden source members."""

    output: str
    run: SegmentRun
    pool: int
    source: int
    cap: int
    radius: float
    held_out: HeldOut
    bands: dict[str, int]
    seconds: float
    report_dir: str | None = None
    encoding: list[dict[str, Any]] = field(default_factory=list)


def run_expansions(
    ctx: Context,
    outputs: list[str] | None = None,
    as_of: dt.datetime | None = None,
    expansions: list[Expansion] | None = None,
) -> list[ExpansionResult]:
    """Validate every definition in ``<conf>/expansions`` and run them (or the named ``outputs``)."""
    defs = expansions if expansions is not None else load_expansions(ctx.conf_dir, ctx.catalog)
    if outputs:
        by_lower = {e.output.lower(): e for e in defs}
        missing = [o for o in outputs if o.lower() not in by_lower]
        if missing:
            known = ", ".join(e.output for e in defs) or "none"
            raise InputError(
                [
                    Problem("--output", "", f"unknown expansion {o!r} (known: {known})")
                    for o in missing
                ]
            )
        wanted = {o.lower() for o in outputs}
        defs = [e for e in defs if e.output.lower() in wanted]
    when = as_of or dt.datetime.now(dt.UTC).replace(microsecond=0)
    return [run_expansion(ctx, e, when) for e in defs]


def _population(ctx: Context, exp: Expansion) -> DataFrame:
    lake, cat = ctx.lake, ctx.catalog
    profile_cols = [f.name for f in exp.fields if f.source == "profile"]
    measure_cols = [f.name for f in exp.fields if f.source == "measure"]
    return read_fields(lake, cat, profile_cols, measure_cols)


def _members(ctx: Context, output: str) -> DataFrame:
    members = read_membership(ctx.lake, output, ctx.catalog.key)
    return members.select(F.col(ctx.catalog.key).alias(ID)).distinct()


def _cap(exp: Expansion, pool: int) -> int:
    if exp.count is not None:
        return exp.count
    assert exp.percent is not None
    return math.floor(exp.percent / 100.0 * pool)


def _check(exp: Expansion, source: int, pool: int) -> int:
    problems: list[Problem] = []
    if source < MIN_SOURCE_MEMBERS:
        problems.append(
            Problem(
                exp.file,
                exp.where("source"),
                f"source segment {exp.source} has {source} members with a profile; at least {MIN_SOURCE_MEMBERS} are needed",
            )
        )
    if pool == 0:
        what = (
            f"segment {exp.pool_segment} has no members outside the source"
            if exp.pool_segment
            else "every customer is in the source"
        )
        problems.append(Problem(exp.file, exp.where("pool"), f"the pool is empty: {what}"))
    elif exp.count is not None and exp.count > pool:
        problems.append(
            Problem(
                exp.file,
                exp.where("max_size.count"),
                f"max_size.count {exp.count} is larger than the pool ({pool} customers)",
            )
        )
    elif _cap(exp, pool) < 1:
        problems.append(
            Problem(
                exp.file,
                exp.where("max_size.percent"),
                f"{exp.percent}% of a pool of {pool} customers is less than one customer",
            )
        )
    if problems:
        raise InputError(problems)
    return _cap(exp, pool)


def run_expansion(ctx: Context, exp: Expansion, as_of: dt.datetime) -> ExpansionResult:
    """Run one validated expansion (see the module doc); data problems raise before any write."""
    started = time.perf_counter()
    key = ctx.catalog.key
    people = _population(ctx, exp)
    source_ids = _members(ctx, exp.source)
    enc = fit_encoding(people, key, exp.fields)
    dims = enc.dims
    encoded = enc.apply(people)
    if exp.pool_segment:
        pool_ids = (
            _members(ctx, exp.pool_segment)
            .join(source_ids, ID, "left_anti")
            .withColumn("_pool", F.lit(True))
        )
    else:
        pool_ids = None
    src = source_ids.withColumn("_src", F.lit(True))
    flagged = encoded.join(src, ID, "left")
    if pool_ids is not None:
        flagged = flagged.join(pool_ids, ID, "left")
    else:
        flagged = flagged.withColumn("_pool", F.col("_src").isNull())
    flagged = flagged.select(
        ID,
        BLOCK,
        *z_columns(dims),
        F.coalesce("_src", F.lit(False)).alias("_src"),
        F.coalesce("_pool", F.lit(False)).alias("_pool"),
    ).cache()
    try:
        counts = flagged.agg(
            F.sum(F.col("_src").cast("long")).alias("s"),
            F.sum(F.col("_pool").cast("long")).alias("p"),
        ).first()
        assert counts is not None
        n_source, n_pool = int(counts["s"] or 0), int(counts["p"] or 0)
        log.info(
            "expansion %s: %d source members, %d candidates in the pool (%.1f s)",
            exp.output,
            n_source,
            n_pool,
            time.perf_counter() - started,
        )
        cap = _check(exp, n_source, n_pool)
        held = _held_out(flagged, exp, dims, cap, n_source, n_pool)
        t0 = time.perf_counter()
        source = flagged.where("_src")
        radius = bandwidth(source, dims, exp.neighbours)
        scores = score(flagged.where("_pool"), source, dims, exp.neighbours, radius).cache()
        try:
            chosen = select_top(scores, cap)
            members = chosen.select(
                F.col(ID).alias(key),
                "SimilarityScore",
                band(F.col("SimilarityScore")).alias("SimilarityBand"),
            )
            if exp.include_source:
                members = members.withColumn("IsSourceMember", F.lit(False)).unionByName(
                    source_ids.select(
                        F.col(ID).alias(key),
                        F.lit(1.0).alias("SimilarityScore"),
                        F.lit(BANDS[0][0]).alias("SimilarityBand"),
                        F.lit(True).alias("IsSourceMember"),
                    )
                )
            run_id = new_run_id()
            run = publish_segment(
                ctx.lake, members, output=exp.output, name=exp.name, type="expansion", run_id=run_id, as_of=as_of,
                definition_hash=exp.definition_hash(), key=key,
            )  # fmt: skip
            record_published_sketch(ctx.lake, run, key)
            log.info(
                "expansion %s: scored and published in %.1f s", exp.output, time.perf_counter() - t0
            )
            hist, bands = _histogram(scores, chosen, n_pool)
            if exp.include_source:
                returned = sum(bands.values())
                bands[BANDS[0][0]] = bands.get(BANDS[0][0], 0) + run.members - returned
        finally:
            scores.unpersist()
    finally:
        flagged.unpersist()
    seconds = time.perf_counter() - started
    result = ExpansionResult(
        exp.output,
        run,
        n_pool,
        n_source,
        cap,
        radius,
        held,
        bands,
        seconds,
        encoding=enc.describe(),
    )
    _report(ctx, exp, result, hist)
    log.info(
        "expansion %s: %d members, held-out recall %.3f vs random %.3f, %.1f s",
        exp.output, run.members, held.recall, held.random_recall, seconds,
    )  # fmt: skip
    return result


def _held_out(
    flagged: DataFrame, exp: Expansion, dims: int, cap: int, n_source: int, n_pool: int
) -> HeldOut:
    """Fit on 80% of the source, search the pool plus the hidden 20% with the same cap."""
    t0 = time.perf_counter()
    split = held_out_split(flagged.where("_src").select(ID), exp.seed)
    marked = (
        flagged.join(split, ID, "left")
        .withColumn("_hid", F.coalesce("_hid", F.lit(False)))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        fit = marked.where(F.col("_src") & ~F.col("_hid"))
        query = marked.where(F.col("_pool") | F.col("_hid"))
        radius = bandwidth(fit, dims, exp.neighbours)
        chosen = select_top(score(query, fit, dims, exp.neighbours, radius), cap)
        row = (
            chosen.join(marked.select(ID, "_hid"), ID)
            .agg(F.sum(F.col("_hid").cast("long")).alias("found"))
            .first()
        )
    finally:
        marked.unpersist()
    assert row is not None
    hidden = hidden_count(n_source)
    held = HeldOut(
        hidden=hidden, recovered=int(row["found"] or 0), cap=cap, candidates=n_pool + hidden
    )
    log.info(
        "expansion %s: held-out recall %d/%d in %.1f s",
        exp.output,
        held.recovered,
        held.hidden,
        time.perf_counter() - t0,
    )
    return held


def _histogram(
    scores: DataFrame, chosen: DataFrame, pool: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Score counts in 20 bins of 0.05 split into returned or not, and returned counts per band.

    One aggregate, bounded by bins and bands; pool customers without any source member
    within R have no score row and are counted in the first bin.
    """
    b = F.least(F.floor(F.col("SimilarityScore") * F.lit(_BINS)), F.lit(_BINS - 1)).cast("int")
    marked = scores.join(chosen.select(ID, F.lit(True).alias("_in")), ID, "left")
    rows = (
        marked.groupBy(
            b.alias("bin"),
            F.coalesce("_in", F.lit(False)).alias("returned"),
            band(F.col("SimilarityScore")).alias("band"),
        )
        .count()
        .collect()
    )
    hist = {(i, r): 0 for i in range(_BINS) for r in (False, True)}
    bands: dict[str, int] = {}
    for r in rows:
        hist[(int(r["bin"]), bool(r["returned"]))] += int(r["count"])
        if r["returned"]:
            bands[str(r["band"])] = bands.get(str(r["band"]), 0) + int(r["count"])
    scored = sum(hist.values())
    hist[(0, False)] += max(0, pool - scored)
    out = [
        {
            "low": i / _BINS,
            "high": (i + 1) / _BINS,
            "returned": hist[(i, True)],
            "not_returned": hist[(i, False)],
        }
        for i in range(_BINS)
    ]
    return out, bands


def _local_dir(root: str, *parts: str) -> Path | None:
    if "://" in root and not root.startswith("file:"):
        return None
    return Path(root.removeprefix("file:")).joinpath(*parts)


def _plot(path: Path, exp: Expansion, hist: list[dict[str, Any]], held: HeldOut) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = {"very similar": "#1b7837", "similar": "#7fbf7b", "somewhat similar": "#d9f0d3"}
    upper = 1.0
    for name, low in BANDS:
        ax.axvspan(
            low,
            upper,
            color=colours[name],
            alpha=0.5,
            label=f"{name} [{low:.2f}, {upper:.2f}{']' if upper == 1.0 else ')'}",
        )
        upper = low
    lefts = [h["low"] for h in hist]
    width = 1.0 / _BINS
    nots = [h["not_returned"] for h in hist]
    ax.bar(
        lefts,
        nots,
        width=width,
        align="edge",
        color="#bbbbbb",
        edgecolor="white",
        label="not returned",
    )
    ax.bar(
        lefts,
        [h["returned"] for h in hist],
        width=width,
        align="edge",
        bottom=nots,
        color="#2166ac",
        edgecolor="white",
        label="returned",
    )
    ax.axvline(FLOOR, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("symlog")
    ax.set_xlim(0, 1)
    ax.set_xlabel("SimilarityScore")
    ax.set_ylabel("candidates (log scale)")
    ax.set_title(
        f"{exp.name}: held-out recall {100 * held.recall:.1f}% "
        f"(random pick {100 * held.random_recall:.1f}%)"
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(
    ctx: Context, exp: Expansion, result: ExpansionResult, hist: list[dict[str, Any]]
) -> None:
    """summary.json and scores.png under reports/expansions/<Output>, and the MLflow run."""
    import tempfile

    from cohortlake.tracking import tracked_run

    held = result.held_out
    summary = {
        "output": exp.output,
        "name": exp.name,
        "source": exp.source,
        "pool": exp.describe_pool(),
        "fields": [f.name for f in exp.fields],
        "method": METHOD,
        "neighbours": exp.neighbours,
        "radius": result.radius,
        "encoding": result.encoding,
        "seed": exp.seed,
        "source_members": result.source,
        "pool_size": result.pool,
        "cap": result.cap,
        "include_source": exp.include_source,
        "members": result.run.members,
        "bands": result.bands,
        "held_out": {
            **asdict(held),
            "recall": held.recall,
            "random_recall": held.random_recall,
            "lift": held.lift,
        },
        "histogram": hist,
        "run_id": result.run.run_id,
        "table_version": result.run.table_version,
        "seconds": round(result.seconds, 3),
    }
    target = _local_dir(ctx.root, "reports", "expansions", exp.output)
    with tempfile.TemporaryDirectory() as tmp:
        out = target or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        png, js = out / "scores.png", out / "summary.json"
        js.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        _plot(png, exp, hist, held)
        import mlflow

        with tracked_run(
            ctx.tracking_uri(),
            ctx.root,
            EXPERIMENT,
            run_name=exp.output,
            tags={"segment_run_id": result.run.run_id},
        ):
            mlflow.log_params(
                {
                    "source": exp.source, "fields": ",".join(f.name for f in exp.fields), "pool": exp.describe_pool(),
                    "max_size": f"{exp.percent}%" if exp.percent is not None else str(exp.count), "cap": result.cap,
                    "include_source": exp.include_source, "seed": exp.seed, "method": METHOD,
                    "neighbours": exp.neighbours, "radius": round(result.radius, 6),
                }
            )  # fmt: skip
            mlflow.log_metrics(
                {
                    "held_out_recall": held.recall, "random_recall": held.random_recall, "recall_lift": held.lift,
                    "hidden": held.hidden, "members": result.run.members, "pool_size": result.pool,
                    "source_members": result.source, "seconds": result.seconds,
                }
            )  # fmt: skip
            mlflow.log_artifact(str(png))
            mlflow.log_artifact(str(js))
    result.report_dir = str(target) if target else None
