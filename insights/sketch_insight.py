"""The ``estimated_overlap`` insight: pairwise overlap from sketches, as a Delta table and charts.

``insights/<Output>`` holds, besides ``Insight``, ``RunId`` and ``AsOf`` on every row:

* ``Kind = segment_size``: ``SegmentA``, ``Members`` (estimated), ``Low``/``High``
  (3-sigma bounds), ``TableVersionA`` (the membership version the sketch is of);
* ``Kind = pair`` (each unordered pair once, best first by ``Rank``): ``SegmentA``,
  ``SegmentB``, ``Members`` (estimated shared), ``Low``/``High``, ``ShareOfA``,
  ``ShareOfB``, ``Jaccard``, ``JaccardLow``/``JaccardHigh``, ``TableVersionA``/``B``.

Charts (local roots): ``pairs.png``, the top pairs (at most 50) as a ranked bar chart
with their bounds, and ``heatmap.png``, pairwise Jaccard of up to 40 segments (the
largest, when there are more).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from cohortlake.context import Context
from cohortlake.display import format_count
from cohortlake.sketches import LG_K, latest_sketches
from insights.model import EstimatedOverlapDefinition
from insights.sketch_estimate import segment_outputs
from insights.theta import SketchOverlap, load_sketches, sketch_overlap

__all__ = ["ESTIMATED_OVERLAP_COLUMNS", "estimated_overlap", "run_estimated_overlap"]

log = logging.getLogger(__name__)

ESTIMATED_OVERLAP_COLUMNS = {
    "Insight": pa.string(), "Kind": pa.string(), "Rank": pa.int32(), "SegmentA": pa.string(),
    "SegmentB": pa.string(), "Members": pa.float64(), "Low": pa.float64(), "High": pa.float64(),
    "ShareOfA": pa.float64(), "ShareOfB": pa.float64(), "Jaccard": pa.float64(),
    "JaccardLow": pa.float64(), "JaccardHigh": pa.float64(), "TableVersionA": pa.int64(),
    "TableVersionB": pa.int64(), "RunId": pa.string(), "AsOf": pa.timestamp("us", tz="UTC"),
}  # fmt: skip
_HEATMAP_MAX = 40
_BARS_MAX = 50


def estimated_overlap(
    ctx: Context, segments: list[str] | None, with_: str | None, file: str
) -> SketchOverlap:
    """Estimate the overlap of ``segments`` (None: every segment or expansion of the conf
    that has a sketch; the others are named in a warning) or of
    ``with_`` against them, from the latest sketches; no member table is read. A segment
    without a sketch is bad input at ``file``: ``segments[i]`` (or ``with``)."""
    if segments is None:
        found = latest_sketches(ctx.lake)
        defined = segment_outputs(ctx.conf_dir)
        rows = sorted((found[k] for k in defined if k in found), key=lambda r: r.segment.lower())
        unsketched = sorted(v for k, v in defined.items() if k not in found)
        if unsketched:
            log.warning("no sketch yet (never run), left out: %s", ", ".join(unsketched))
        if with_ is not None and with_.lower() not in found:
            rows += load_sketches(ctx.lake, [with_], file, ["with"])
    else:
        paths = [f"segments[{i}]" for i in range(len(segments))]
        if with_ is not None:
            paths = ["with" if s == with_ else p for s, p in zip(segments, paths, strict=True)]
        rows = load_sketches(ctx.lake, segments, file, paths)
    names = [r.segment.lower() for r in rows]
    index = names.index(with_.lower()) if with_ is not None else None
    return sketch_overlap(rows, index)


def _table(
    d: EstimatedOverlapDefinition, o: SketchOverlap, run_id: str, when: dt.datetime
) -> pa.Table:
    pairs = o.pairs(d.top, d.by)
    version = dict(zip(o.segments, o.table_versions, strict=True))
    shown = range(len(o.segments)) if len(o.rows) == len(o.segments) else o.rows
    sizes = pd.DataFrame(
        {
            "Kind": "segment_size",
            "SegmentA": [o.segments[i] for i in shown],
            "Members": [o.sizes[i] for i in shown],
            "Low": [o.size_low[i] for i in shown],
            "High": [o.size_high[i] for i in shown],
        }
    )
    pairs = pairs.assign(
        Kind="pair",
        Rank=np.arange(1, len(pairs) + 1, dtype=np.int32),
        TableVersionB=pairs.SegmentB.map(version),
    )
    frame = pd.concat([sizes, pairs], ignore_index=True)
    frame["TableVersionA"] = frame.SegmentA.map(version)
    frame = frame.assign(Insight=d.name, RunId=run_id, AsOf=pd.Timestamp(when))
    schema = pa.schema(list(ESTIMATED_OVERLAP_COLUMNS.items()))
    for name in schema.names:
        if name not in frame:
            frame[name] = None
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def run_estimated_overlap(
    ctx: Context,
    d: EstimatedOverlapDefinition,
    run_id: str,
    when: dt.datetime,
    folder: Path | None,
) -> tuple[dict[str, int], list[str], SketchOverlap]:
    """Write ``insights/<Output>`` (one commit) and the charts; returns the table with its
    version, the chart paths and the overlap."""
    segments = list(d.segments) if d.segments is not None else None
    overlap = estimated_overlap(ctx, segments, d.with_, d.file)
    path = ctx.lake.insight_path(d.output)
    table = ctx.spark.createDataFrame(_table(d, overlap, run_id, when))
    version = ctx.lake.overwrite(table, path, metadata=run_id)
    charts = overlap_sketch_charts(overlap, folder, d.name, d.by) if folder is not None else []
    log.info(
        "estimated overlap %s: %d segments; wrote %s v%d",
        d.output,
        len(overlap.segments),
        path,
        version,
    )
    return {path: version}, charts, overlap


def _save(fig: Figure, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return str(path)


def overlap_sketch_charts(
    o: SketchOverlap, folder: Path, title: str, by: str = "shared"
) -> list[str]:
    """A ranked bar chart of the top pairs with their bounds, and a Jaccard heat map."""
    out: list[str] = []
    pairs = o.pairs(_BARS_MAX, by)
    if len(pairs):
        column, low, high = (
            ("Members", "Low", "High")
            if by == "shared"
            else ("Jaccard", "JaccardLow", "JaccardHigh")
        )
        fig = Figure(figsize=(9, 1.5 + 0.28 * len(pairs)), layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(len(pairs))[::-1]
        values = pairs[column].to_numpy()
        errors = np.vstack([values - pairs[low].to_numpy(), pairs[high].to_numpy() - values])
        errors = np.clip(errors, 0.0, None)  # rounding aside, the bounds hold the estimate
        ax.barh(y, values, xerr=errors, color="#1f77b4", ecolor="#444", capsize=2)
        ax.set_yticks(y)
        ax.set_yticklabels(
            [f"{a} & {b}" for a, b in zip(pairs.SegmentA, pairs.SegmentB, strict=True)], fontsize=7
        )
        if by == "shared":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_count(v)))
            ax.set_xlabel("estimated shared members (bars: 3-sigma bounds)")
        else:
            ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
            ax.set_xlabel("estimated Jaccard (bars: 3-sigma bounds)")
        fig.suptitle(f"{title}: top {len(pairs)} pairs (theta sketches, lgK {LG_K})", fontsize=11)
        out.append(_save(fig, folder / "pairs.png"))
    if len(o.rows) == len(o.segments) and len(o.segments) >= 2:
        keep = np.sort(np.argsort(-o.sizes, kind="stable")[:_HEATMAP_MAX])
        union = o.sizes[keep][:, None] + o.sizes[keep][None, :] - o.shared[np.ix_(keep, keep)]
        with np.errstate(divide="ignore", invalid="ignore"):
            jaccard = np.clip(np.where(union > 0, o.shared[np.ix_(keep, keep)] / union, 0.0), 0, 1)
        k = len(keep)
        fig = Figure(figsize=(3.5 + 0.3 * k, 2.5 + 0.28 * k), layout="constrained")
        ax = fig.add_subplot()
        image = ax.imshow(jaccard, vmin=0.0, vmax=1.0, cmap="viridis")
        bar = fig.colorbar(image, ax=ax, label="estimated Jaccard")
        bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        labels = [o.segments[i] for i in keep]
        ax.set_xticks(range(k))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_yticks(range(k))
        ax.set_yticklabels(labels, fontsize=7)
        shown = "" if k == len(o.segments) else f" (largest {k} of {len(o.segments)})"
        fig.suptitle(f"{title}: pairwise Jaccard{shown}", fontsize=11)
        out.append(_save(fig, folder / "heatmap.png"))
    return out
