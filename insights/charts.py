"""PNG charts of insight results (matplotlib's object API on the Agg canvas, no pyplot state).

Overlap: a Venn diagram for 2–3 segments (circles with exact region counts), an
UpSet-style chart (largest exact regions with their membership dots) and a pairwise
Jaccard heat map for more. Differentiators: the ranked scores and one side-by-side
distribution per field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from insights.differentiators import OTHER_SIDE, PRIMARY_SIDE, FieldScore
from insights.distributions import DistRow
from insights.overlap import Overlap

__all__ = ["differentiator_charts", "overlap_charts"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


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
        out.append(_venn(result, folder / "venn.png", title))
    else:
        out.append(_upset(result, folder / "upset.png", title))
        out.append(_heatmap(result, folder / "heatmap.png", title))
    groups = ["all", *result.segments]
    labels = {"all": "in all", **{s: f"only {s}" for s in result.segments}}
    for field in sorted({d.field for d in result.distributions}):
        rows = [d for d in result.distributions if d.field == field]
        out.append(
            _distribution(
                rows, groups, labels, folder / f"field_{_safe(field)}.png", f"{title}: {field}"
            )
        )
    return out


def _venn(result: Overlap, path: Path, title: str) -> str:
    k = len(result.segments)
    regions = {frozenset(r.segments): r.members for r in result.regions}
    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    centres = [(-0.5, 0.0), (0.5, 0.0)] if k == 2 else [(-0.5, 0.35), (0.5, 0.35), (0.0, -0.5)]
    radius = 0.9
    for i, (c, name) in enumerate(zip(centres, result.segments, strict=False)):
        ax.add_patch(Circle(c, radius, alpha=0.3, color=_COLORS[i], lw=2))
        if k == 2:
            x, y = c[0] * 1.2, radius + 0.15
        else:  # outside the circle, away from the centre of the figure
            norm = math.hypot(*c)
            x, y = c[0] + c[0] / norm * (radius + 0.3), c[1] + c[1] / norm * (radius + 0.3)
        label = f"{name}\n({result.sizes[i]:,})"
        ax.text(x, y, label, ha="center", va="center", fontsize=9)
    for r in range(1, 1 << k):
        members = frozenset(result.segments[i] for i in range(k) if r >> i & 1)
        inside = [centres[i] for i in range(k) if r >> i & 1]
        outside = [centres[i] for i in range(k) if not r >> i & 1]
        x = sum(p[0] for p in inside) / len(inside)
        y = sum(p[1] for p in inside) / len(inside)
        for p in outside:  # push the label away from circles the region is not in
            x += (x - p[0]) * 0.35
            y += (y - p[1]) * 0.35
        ax.text(
            x,
            y,
            f"{regions.get(members, 0):,}",
            ha="center",
            va="center",
            fontsize=11,
            weight="bold",
        )
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-2.0, 1.9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return _save(fig, path)


def _upset(result: Overlap, path: Path, title: str) -> str:
    regions = result.regions
    k = len(result.segments)
    fig = Figure(figsize=(max(8, 0.35 * len(regions) + 3), 3 + 0.3 * k))
    grid = fig.add_gridspec(
        2, 2, width_ratios=[1, 4], height_ratios=[2, max(1, 0.25 * k)], hspace=0.05, wspace=0.05
    )
    bars = fig.add_subplot(grid[0, 1])
    dots = fig.add_subplot(grid[1, 1], sharex=bars)
    sizes = fig.add_subplot(grid[1, 0], sharey=dots)
    xs = list(range(len(regions)))
    bars.bar(xs, [r.members for r in regions], color="#444")
    bars.set_ylabel("members")
    bars.set_title(
        f"{title}\n(largest {len(regions)} of {result.regions_total} exact intersections)"
    )
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
    sizes.barh(range(k), result.sizes, color="#888")
    sizes.invert_xaxis()
    sizes.set_yticks(range(k))
    sizes.set_yticklabels(result.segments, fontsize=8)
    sizes.set_xlabel("segment size")
    return _save(fig, path)


def _heatmap(result: Overlap, path: Path, title: str) -> str:
    k = len(result.segments)
    values = [[result.jaccard(i, j) or 0.0 for j in range(k)] for i in range(k)]
    fig = Figure(figsize=(2 + 0.45 * k, 1.5 + 0.45 * k))
    ax = fig.add_subplot()
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
    fig.colorbar(image, ax=ax, label="Jaccard")
    ax.set_xticks(range(k))
    ax.set_xticklabels(result.segments, rotation=90, fontsize=8)
    ax.set_yticks(range(k))
    ax.set_yticklabels(result.segments, fontsize=8)
    if k <= 15:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{values[i][j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if values[i][j] < 0.6 else "k",
                )
    ax.set_title(f"{title}: pairwise Jaccard")
    return _save(fig, path)


def _distribution(
    rows: list[DistRow], groups: Iterable[str], labels: dict[str, str], path: Path, title: str
) -> str:
    groups = [g for g in groups if any(d.group == g for d in rows)]
    slots = sorted({d.bin for d in rows if d.bin is not None})
    fig = Figure(figsize=(max(7, 0.45 * len(slots) * max(1, len(groups)) / 2), 4))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(groups))
    numeric = any(d.low is not None for d in rows)
    for gi, group in enumerate(groups):
        by_slot = {d.bin: d for d in rows if d.group == group}
        ys = [(by_slot[s].share or 0.0) if s in by_slot else 0.0 for s in slots]
        ax.bar(
            [s + (gi - (len(groups) - 1) / 2) * width for s in slots],
            ys,
            width,
            label=labels.get(group, group),
            color=_COLORS[gi % len(_COLORS)],
        )
    first = [d for d in rows if d.group == groups[0]] if groups else []
    ticks = {d.bin: d for d in first}
    ax.set_xticks(slots)
    if numeric:
        ax.set_xticklabels(
            [_fmt(ticks[s].low) if s in ticks else "" for s in slots], rotation=60, fontsize=7
        )
    else:
        ax.set_xticklabels(
            [str(ticks[s].category) if s in ticks else "" for s in slots],
            rotation=45,
            fontsize=8,
            ha="right",
        )
    ax.set_ylabel("share of non-null values")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def _fmt(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


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
    fig = Figure(figsize=(7, 1.5 + 0.35 * len(scores)))
    ax = fig.add_subplot()
    shown = [s for s in scores if s.score is not None]
    ax.barh(range(len(shown)), [s.score or 0.0 for s in shown], color="#1f77b4")
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([s.display for s in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("difference score (0.5 = same, 1 = fully separated)")
    ax.set_title(title)
    out.append(_save(fig, folder / "scores.png"))
    labels = {PRIMARY_SIDE: primary, OTHER_SIDE: other}
    for s in scores:
        rows = [d for d in dists if d.field == s.field]
        if rows:
            out.append(
                _distribution(
                    rows,
                    [PRIMARY_SIDE, OTHER_SIDE],
                    labels,
                    folder / f"field_{_safe(s.field)}.png",
                    f"{s.display}: score {s.score or 0:.3f}",
                )
            )
    return out
