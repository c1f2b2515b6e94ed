"""PNG charts of insight results (matplotlib's object API on the Agg canvas, no pyplot state).

Overlap: an area-proportional Venn diagram for 2–3 segments (circle areas in proportion
to the segment sizes, each pair's lens to its shared count; labels are the exact region
counts), an UpSet-style chart (largest exact regions with their membership dots) and a
pairwise Jaccard heat map for more. Differentiators: the ranked scores and one
side-by-side distribution per field. Numbers follow the report's one rule
(``cohortlake.report``): shares as percentages, counts with thousands separators,
money and measures with two decimals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, PercentFormatter

from cohortlake.report import format_count, format_measure, format_share, is_money, wrap_label
from insights.differentiators import OTHER_SIDE, PRIMARY_SIDE, FieldScore
from insights.distributions import DistRow
from insights.overlap import Overlap

__all__ = ["differentiator_charts", "overlap_charts"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
_TEXT_COLORS = ["#174f7a", "#a34f00", "#1d6e1d", "#8e1b1b", "#5e3b80", "#5a3a33"]
_COUNTS = FuncFormatter(lambda v, _pos: format_count(v))


def _save(fig: Figure, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return str(path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name)


def _heading(fig: Figure, text: str, fontsize: float = 12) -> Text:
    """The figure's title, wrapped until every line fits the figure's width."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    width = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    heading = fig.suptitle(wrap_label(text, width), fontsize=fontsize)
    while heading.get_window_extent(renderer).width > 0.96 * fig.bbox.width and width > 12:
        width -= 4
        heading.set_text(wrap_label(text, width))
    return heading


def overlap_charts(result: Overlap, folder: Path, title: str) -> list[str]:
    """Venn (2–3 segments) or UpSet + heat map (more); also field distributions."""
    out = []
    if len(result.segments) <= 3:
        out.append(_save(_venn(result, title), folder / "venn.png"))
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


# --- Venn geometry: small driver-side math over the counts --------------------------------


def _lens_area(r1: float, r2: float, d: float) -> float:
    """Area shared by two circles of radii ``r1``, ``r2`` whose centres are ``d`` apart."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a1 = math.acos(min(1.0, max(-1.0, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1))))
    a2 = math.acos(min(1.0, max(-1.0, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2))))
    kite = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)
    return r1 * r1 * a1 + r2 * r2 * a2 - 0.5 * math.sqrt(max(kite, 0.0))


def _centre_distance(r1: float, r2: float, area: float, gap: float) -> float:
    """The distance whose lens has ``area``, by bisection (the lens shrinks as ``d`` grows)."""
    if area <= 0:
        return r1 + r2 + gap
    if area >= math.pi * min(r1, r2) ** 2:
        return abs(r1 - r2)
    lo, hi = abs(r1 - r2), r1 + r2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _lens_area(r1, r2, mid) > area else (lo, mid)
    return (lo + hi) / 2


def _venn_layout(
    sizes: Sequence[int], shared: Mapping[tuple[int, int], int]
) -> tuple[list[tuple[float, float]], list[float]]:
    """Centres and radii: areas in proportion to ``sizes`` (the largest radius is 1) and
    each pair's lens to its shared count; three circles take the three pairwise
    distances as the sides of their triangle (exact when the triangle exists)."""
    k = len(sizes)
    unit = max(max(sizes, default=0), 1)
    radii = [math.sqrt(max(s, 0) / unit) for s in sizes]

    def dist(i: int, j: int) -> float:
        both = min(max(shared.get((i, j), 0), 0), sizes[i], sizes[j])
        return _centre_distance(radii[i], radii[j], math.pi * both / unit, 0.15)

    if k == 1:
        centres = [(0.0, 0.0)]
    elif k == 2:
        centres = [(0.0, 0.0), (dist(0, 1), 0.0)]
    else:
        d01, d02, d12 = dist(0, 1), dist(0, 2), dist(1, 2)
        x = (d01 * d01 + d02 * d02 - d12 * d12) / (2 * d01) if d01 > 0 else d02
        x = min(max(x, -d02), d02)
        centres = [(0.0, 0.0), (d01, 0.0), (x, -math.sqrt(max(d02 * d02 - x * x, 0.0)))]
    lo_x = min(c[0] - r for c, r in zip(centres, radii, strict=True))
    hi_x = max(c[0] + r for c, r in zip(centres, radii, strict=True))
    lo_y = min(c[1] - r for c, r in zip(centres, radii, strict=True))
    hi_y = max(c[1] + r for c, r in zip(centres, radii, strict=True))
    mx, my = (lo_x + hi_x) / 2, (lo_y + hi_y) / 2
    return [(c[0] - mx, c[1] - my) for c in centres], radii


def _region_points(
    centres: Sequence[tuple[float, float]], radii: Sequence[float]
) -> dict[int, tuple[float, float, float]]:
    """Per region bitmask: the grid point deepest inside that region and its clearance
    (distance to the nearest circle edge; negative when the region is not drawn)."""
    k = len(centres)
    extent = max(max(abs(c[0]) + r, abs(c[1]) + r) for c, r in zip(centres, radii, strict=True))
    axis = np.linspace(-extent, extent, 301)
    gx, gy = np.meshgrid(axis, axis)
    inside = np.stack(
        [r - np.hypot(gx - c[0], gy - c[1]) for c, r in zip(centres, radii, strict=True)]
    )
    out = {}
    for mask in range(1, 1 << k):
        sign = np.array([1.0 if mask >> i & 1 else -1.0 for i in range(k)])[:, None, None]
        depth = (inside * sign).min(axis=0)
        best = np.unravel_index(int(np.argmax(depth)), depth.shape)
        out[mask] = (float(gx[best]), float(gy[best]), float(depth[best]))
    return out


# --- Venn labels: candidates tried in order, nothing overlapping, all inside the axes --------

_Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in data units


@dataclass(frozen=True)
class _Spot:
    x: float
    y: float
    ha: str
    va: str


def _rect(spot: _Spot, w: float, h: float) -> _Rect:
    x0 = spot.x - {"left": 0.0, "center": w / 2, "right": w}[spot.ha]
    y0 = spot.y - {"bottom": 0.0, "center": h / 2, "top": h}[spot.va]
    return (x0, y0, x0 + w, y0 + h)


def _overlaps(a: _Rect, b: _Rect, pad: float) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _hits_circle(rect: _Rect, c: tuple[float, float], r: float, pad: float) -> bool:
    nx, ny = min(max(c[0], rect[0]), rect[2]), min(max(c[1], rect[1]), rect[3])
    return math.hypot(nx - c[0], ny - c[1]) < r + pad


def _aligned(angle: float) -> tuple[str, str]:
    """Alignment that makes a label grow away from its anchor in direction ``angle``."""
    cx, cy = math.cos(angle), math.sin(angle)
    return (
        "left" if cx > 0.3 else "right" if cx < -0.3 else "center",
        "bottom" if cy > 0.3 else "top" if cy < -0.3 else "center",
    )


def _angles(preferred: float) -> list[float]:
    steps = sorted(range(-12, 12), key=lambda s: (abs(s), -s))
    return [preferred + s * math.pi / 12 for s in steps]


def _reach(
    origin: tuple[float, float],
    angle: float,
    centres: Sequence[tuple[float, float]],
    radii: Sequence[float],
) -> float:
    """How far from ``origin`` a ray at ``angle`` leaves the last circle it crosses."""
    ux, uy = math.cos(angle), math.sin(angle)
    far = 0.0
    for (cx, cy), r in zip(centres, radii, strict=True):
        dx, dy = cx - origin[0], cy - origin[1]
        along = ux * dx + uy * dy
        disc = along * along - (dx * dx + dy * dy - r * r)
        if disc >= 0:
            far = max(far, along + math.sqrt(disc))
    return far


@dataclass(frozen=True)
class _Label:
    text: str
    w_px: float
    h_px: float
    kind: str  # "count" (of region ``mask``) or "name" (of circle ``mask``)
    mask: int


def _place(
    labels: Sequence[_Label],
    centres: Sequence[tuple[float, float]],
    radii: Sequence[float],
    regions: Mapping[int, tuple[float, float, float]],
    s: float,
    half_w: float,
    half_h: float,
    strict: bool,
    window: float | None = None,
) -> list[tuple[_Label, _Spot, tuple[float, float] | None]] | None:
    """Spots for every label at ``s`` pixels per data unit, or None when one does not fit.

    Region counts sit at their region's deepest point when the whole label fits in the
    region; names (and counts that do not fit) go outside every circle, counts with a
    leader line to their region. ``window`` keeps those within that angle (radians) of
    their preferred direction.
    """
    pad = 4 / s
    bounds = (-half_w + pad, -half_h + pad, half_w - pad, half_h - pad)
    taken: list[_Rect] = []
    placed: list[tuple[_Label, _Spot, tuple[float, float] | None]] = []
    k = len(centres)

    def free(rect: _Rect, clear_of_circles: bool) -> bool:
        inside = (
            rect[0] >= bounds[0]
            and rect[1] >= bounds[1]
            and rect[2] <= bounds[2]
            and rect[3] <= bounds[3]
        )
        if not inside or any(_overlaps(rect, t, pad) for t in taken):
            return False
        return not clear_of_circles or not any(
            _hits_circle(rect, c, r, pad) for c, r in zip(centres, radii, strict=True)
        )

    def in_region(rect: _Rect, mask: int) -> bool:
        xs = np.linspace(rect[0], rect[2], 7)
        ys = np.linspace(rect[1], rect[3], 5)
        px = np.concatenate([xs, xs, np.full(5, rect[0]), np.full(5, rect[2])])
        py = np.concatenate([np.full(7, rect[1]), np.full(7, rect[3]), ys, ys])
        for i, (c, r) in enumerate(zip(centres, radii, strict=True)):
            d = np.hypot(px - c[0], py - c[1])
            ok = d <= r - pad / 2 if mask >> i & 1 else d >= r + pad / 2
            if not ok.all():
                return False
        return True

    outside: list[_Label] = []
    for lab in labels:
        if lab.kind != "count":
            continue
        x, y, depth = regions[lab.mask]
        spot = _Spot(x, y, "center", "center")
        rect = _rect(spot, lab.w_px / s, lab.h_px / s)
        if depth > 0 and in_region(rect, lab.mask) and free(rect, False):
            taken.append(rect)
            placed.append((lab, spot, None))
        else:
            outside.append(lab)
    for lab in [lab for lab in labels if lab.kind == "name"] + outside:
        w, h = lab.w_px / s, lab.h_px / s
        if lab.kind == "name":  # outside every circle, beside its own
            origin, target = centres[lab.mask], None
            gaps: tuple[float, ...] = (2 * pad,)
            preferred = math.atan2(origin[1], origin[0]) if math.hypot(*origin) > 1e-9 else 1.57
            if k == 2:  # the two names above the circles, on their outer sides
                preferred = 3 * math.pi / 4 if math.cos(preferred) < 0 else math.pi / 4
        else:  # a count too big for its region: outside, with a leader line to it
            origin = target = regions[lab.mask][:2]
            gaps = (12 / s, 36 / s, 64 / s)
            preferred = -math.pi / 2
        reach = [(a, _reach(origin, a, centres, radii)) for a in _angles(preferred)]
        tries = [
            (origin[0] + (far + gap) * math.cos(a), origin[1] + (far + gap) * math.sin(a), a)
            for gap in gaps
            for a, far in reach
            if window is None or target is not None or abs(a - preferred) <= window
        ]
        if target is not None:  # the shortest leaders first: they cross the fewest circles
            tries.sort(key=lambda t: math.hypot(t[0] - origin[0], t[1] - origin[1]))
        chosen = None
        for x, y, a in tries:
            spot = _Spot(x, y, *_aligned(a))
            rect = _rect(spot, w, h)
            if free(rect, True):
                chosen = spot, rect
                break
        if chosen is None:
            if strict:
                return None
            x, y, a = tries[0]
            spot = _Spot(x, y, *_aligned(a))
            chosen = spot, _rect(spot, w, h)
        taken.append(chosen[1])
        placed.append((lab, chosen[0], target))
    return placed


def _venn(result: Overlap, title: str) -> Figure:
    """Area-proportional Venn diagram of 2–3 segments, its labels clear of each other."""
    k = len(result.segments)
    regions = {frozenset(r.segments): r.members for r in result.regions}
    centres, radii = _venn_layout(result.sizes, result.shared)
    deepest = _region_points(centres, radii)

    fig = Figure(figsize=(7, 5.6))
    canvas = FigureCanvasAgg(fig)
    renderer: RendererBase = canvas.get_renderer()
    heading = _heading(fig, title)
    heading.set(y=0.98, va="top")
    top = heading.get_window_extent(renderer).y0 / fig.bbox.height - 0.02
    ax = fig.add_axes((0.01, 0.01, 0.98, top - 0.01))
    ax.axis("off")
    box = ax.get_window_extent(renderer)

    def measure(text: str, **style: object) -> tuple[float, float]:
        probe = ax.text(0, 0, text, **style)  # type: ignore[arg-type]
        extent = probe.get_window_extent(renderer)
        probe.remove()
        return extent.width, extent.height

    count_style: dict[str, object] = {"fontsize": 11, "weight": "bold", "color": "#1d2630"}
    name_style: dict[str, object] = {"fontsize": 10}
    labels = []
    for mask in range(1, 1 << k):
        members = regions.get(frozenset(result.segments[i] for i in range(k) if mask >> i & 1), 0)
        if members or deepest[mask][2] > 0:
            text = format_count(members)
            labels.append(_Label(text, *measure(text, **count_style), "count", mask))
    for i, name in enumerate(result.segments):
        text = f"{wrap_label(name, 18)}\n{format_count(result.sizes[i])} members"
        labels.append(_Label(text, *measure(text, **name_style), "name", i))

    extent_x = max(abs(c[0]) + r for c, r in zip(centres, radii, strict=True)) or 1.0
    extent_y = max(abs(c[1]) + r for c, r in zip(centres, radii, strict=True)) or 1.0
    fill = min(box.width / (2 * extent_x), box.height / (2 * extent_y))
    placed = None
    for window in (math.radians(50), None):  # near the preferred side first, then anywhere
        for step in range(40):  # zoom out until every label fits
            s = fill * 0.94**step
            placed = _place(
                labels, centres, radii, deepest, s, box.width / 2 / s, box.height / 2 / s, True,
                window,
            )  # fmt: skip
            if placed is not None:
                break
        if placed is not None:
            break
    if placed is None:  # the best effort at the smallest zoom
        placed = _place(
            labels, centres, radii, deepest, s, box.width / 2 / s, box.height / 2 / s, False
        )
    assert placed is not None  # not strict: every label gets its first spot
    ax.set_xlim(-box.width / 2 / s, box.width / 2 / s)
    ax.set_ylim(-box.height / 2 / s, box.height / 2 / s)
    ax.set_aspect("equal", adjustable="datalim")
    for i, (c, r) in enumerate(zip(centres, radii, strict=True)):
        color = _COLORS[i % len(_COLORS)]
        ax.add_patch(Circle(c, r, facecolor=color, alpha=0.3, edgecolor="none"))
        ax.add_patch(Circle(c, r, fill=False, edgecolor=color, lw=2))
    for lab, spot, target in placed:
        style = count_style if lab.kind == "count" else name_style
        if lab.kind == "name":
            style = {**style, "color": _TEXT_COLORS[lab.mask % len(_TEXT_COLORS)]}
        if target is None:
            ax.text(spot.x, spot.y, lab.text, ha=spot.ha, va=spot.va, **style)  # type: ignore[arg-type]
        else:
            ax.annotate(
                lab.text,
                xy=target,
                xytext=(spot.x, spot.y),
                ha=spot.ha,
                va=spot.va,
                arrowprops={"arrowstyle": "-", "color": "#555", "lw": 0.8},
                **style,  # type: ignore[arg-type]
            )
    return fig


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
    _heading(fig, f"{title} (largest {len(regions)} of {total} exact intersections)")
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
    _heading(fig, f"{title}: pairwise Jaccard", fontsize=11)
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
            color=_COLORS[gi % len(_COLORS)],
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
    _heading(fig, title)
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
    _heading(fig, title)
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
