"""PNG charts of insight results (matplotlib's object API on the Agg canvas, no pyplot state).

Overlap: an area-proportional Venn diagram for 2–3 segments (circle areas in proportion
to the segment sizes, each pair's lens to its shared count; labels are the exact region
counts), an UpSet-style chart (largest exact regions with their membership dots) and a
pairwise Jaccard heat map for more. Differentiators: the ranked scores and one
side-by-side distribution per field. Numbers follow the report's one rule
(``cohortlake.display``): shares as percentages, counts with thousands separators,
money and measures with two decimals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from cohortlake.display import format_count, format_measure, format_share, is_money, wrap_label
from insights.chart_style import COLORS, heading
from insights.differentiators import OTHER_SIDE, PRIMARY_SIDE, FieldScore
from insights.distributions import DistRow
from insights.overlap import Overlap
from insights.venn import venn_figure

__all__ = ["differentiator_charts", "overlap_charts"]

_COUNTS = FuncFormatter(lambda v, _pos: format_count(v))


def _save(fig: Figure, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return str(path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name)


def overlap_charts(result: Overlap, folder: Path, title: str) -> list[str]:
    """Venn (2–3 segments) or UpSet + heat map (more); also field distributions."""
    out = []
    if len(result.segments) <= 3:
        out.append(_save(venn_figure(result, title), folder / "venn.png"))
    else:
        out.append(_upset(result, folder / "upset.png", title))
        out.append(_heatmap(result, folder / "heatmap.png", title))
    groups = ["all", *result.segments]
    labels = {"all": "in all", **{s: f"only {s}" for s in result.segments}}
    for field in sorted({d.field for d in result.distributions}):
        rows = [d for d in result.distributions if d.field == field]
        out.append(
            _distribution(
                rows,
                groups,
                labels,
                folder / f"field_{_safe(field)}.png",
                f"{title}: {field}",
                field,
            )
        )
    return out


def _upset(result: Overlap, path: Path, title: str) -> str:
    regions = result.regions
    k = len(result.segments)
    fig = Figure(figsize=(max(8, 0.35 * len(regions) + 3), 3.4 + 0.3 * k), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 4], height_ratios=[2, max(1, 0.25 * k)])
    bars = fig.add_subplot(grid[0, 1])
    dots = fig.add_subplot(grid[1, 1], sharex=bars)
    sizes = fig.add_subplot(grid[1, 0], sharey=dots)
    xs = list(range(len(regions)))
    bars.bar(xs, [r.members for r in regions], color="#444")
    bars.set_ylabel("members")
    bars.yaxis.set_major_formatter(_COUNTS)
    total = format_count(result.regions_total)
    heading(fig, f"{title} (largest {len(regions)} of {total} exact intersections)")
    bars.tick_params(labelbottom=False)
    index = {s: i for i, s in enumerate(result.segments)}
    for x, r in zip(xs, regions, strict=True):
        ys = sorted(index[s] for s in r.segments)
        dots.scatter([x] * k, range(k), color="#ddd", s=25)
        dots.scatter([x] * len(ys), ys, color="#222", s=25)
        if len(ys) > 1:
            dots.plot([x, x], [ys[0], ys[-1]], color="#222", lw=1.5)
    dots.set_yticks(range(k))
    dots.set_yticklabels(result.segments, fontsize=8)
    dots.tick_params(labelleft=False, labelbottom=False)
    dots.set_xlabel("exact intersection (dots: the segments it is in), largest first")
    sizes.barh(range(k), result.sizes, color="#888")
    sizes.invert_xaxis()
    sizes.set_yticks(range(k))
    sizes.set_yticklabels(result.segments, fontsize=8)
    sizes.set_xlabel("segment size (members)")
    sizes.xaxis.set_major_formatter(_COUNTS)
    sizes.tick_params(axis="x", labelrotation=45, labelsize=7)
    return _save(fig, path)


def _heatmap(result: Overlap, path: Path, title: str) -> str:
    k = len(result.segments)
    values = [[result.jaccard(i, j) or 0.0 for j in range(k)] for i in range(k)]
    fig = Figure(figsize=(3.5 + 0.5 * k, 2.5 + 0.45 * k), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
    bar = fig.colorbar(image, ax=ax, label="Jaccard (shared ÷ either, %)")
    bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_xticks(range(k))
    ax.set_xticklabels(result.segments, rotation=90, fontsize=8)
    ax.set_yticks(range(k))
    ax.set_yticklabels(result.segments, fontsize=8)
    ax.set_xlabel("segment")
    ax.set_ylabel("segment")
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    format_share(values[i][j]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="w" if values[i][j] < 0.6 else "k",
                )
    heading(fig, f"{title}: pairwise Jaccard", fontsize=11)
    return _save(fig, path)


def _distribution(
    rows: list[DistRow],
    groups: Iterable[str],
    labels: dict[str, str],
    path: Path,
    title: str,
    xlabel: str,
) -> str:
    groups = [g for g in groups if any(d.group == g for d in rows)]
    slots = sorted({d.bin for d in rows if d.bin is not None})
    fig = Figure(
        figsize=(max(7, 0.45 * len(slots) * max(1, len(groups)) / 2), 4.2), layout="constrained"
    )
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(groups))
    numeric = any(d.low is not None for d in rows)
    money = is_money(xlabel)
    for gi, group in enumerate(groups):
        by_slot = {d.bin: d for d in rows if d.group == group}
        ys = [(by_slot[s].share or 0.0) if s in by_slot else 0.0 for s in slots]
        ax.bar(
            [s + (gi - (len(groups) - 1) / 2) * width for s in slots],
            ys,
            width,
            label=labels.get(group, group),
            color=COLORS[gi % len(COLORS)],
        )
    first = [d for d in rows if d.group == groups[0]] if groups else []
    ticks = {d.bin: d for d in first}
    ax.set_xticks(slots)
    if numeric:
        ax.set_xticklabels(
            [_tick(ticks[s].low, money) if s in ticks else "" for s in slots],
            rotation=60,
            fontsize=7,
        )
        ax.set_xlabel(f"{xlabel}: lower edge of each bin")
    else:
        ax.set_xticklabels(
            [str(ticks[s].category) if s in ticks else "" for s in slots],
            rotation=45,
            fontsize=8,
            ha="right",
        )
        ax.set_xlabel(xlabel)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylabel("share of non-null values (%)")
    ax.legend(fontsize=8)
    heading(fig, title)
    return _save(fig, path)


def _tick(v: float | None, money: bool) -> str:
    """A bin edge for a tick label: short, and with its unit when it is money."""
    if v is None or not math.isfinite(v):
        return ""
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return ("-$" + text[1:] if text.startswith("-") else "$" + text) if money else text


def differentiator_charts(
    scores: list[FieldScore],
    dists: list[DistRow],
    folder: Path,
    title: str,
    primary: str,
    other: str,
) -> list[str]:
    """Ranked difference scores, and each field's primary-vs-other distribution."""
    out = []
    fig = Figure(figsize=(7, 1.9 + 0.4 * len(scores)), layout="constrained")
    ax = fig.add_subplot()
    shown = [s for s in scores if s.score is not None]
    values = [s.score or 0.0 for s in shown]
    ax.barh(range(len(shown)), values, color="#1f77b4")
    for y, v in enumerate(values):
        ax.text(v + 0.005, y, format_measure(v), va="center", fontsize=8)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([wrap_label(s.display, 28) for s in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("difference score (0.5 = same, 1 = fully separated)")
    ax.set_ylabel("field")
    heading(fig, title)
    out.append(_save(fig, folder / "scores.png"))
    labels = {PRIMARY_SIDE: primary, OTHER_SIDE: other}
    for s in scores:
        rows = [d for d in dists if d.field == s.field]
        if rows:
            score = "n/a" if s.score is None else format_measure(s.score)
            out.append(
                _distribution(
                    rows,
                    [PRIMARY_SIDE, OTHER_SIDE],
                    labels,
                    folder / f"field_{_safe(s.field)}.png",
                    f"{s.display}: difference score {score}",
                    s.display,
                )
            )
    return out
