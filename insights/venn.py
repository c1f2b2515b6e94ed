"""An area-proportional Venn diagram of 2-3 segments, with labels that do not collide.

Circle areas are in proportion to the segment sizes and each pair's lens to its shared
count (the distance between centres found by bisection); the labels are the exact
region counts. Small driver-side geometry over the counts, never over customers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from cohortlake.display import format_count, wrap_label
from insights.chart_style import COLORS, TEXT_COLORS, heading
from insights.overlap import Overlap

__all__ = ["venn_figure"]


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


def venn_figure(result: Overlap, title: str) -> Figure:
    """Area-proportional Venn diagram of 2–3 segments, its labels clear of each other."""
    k = len(result.segments)
    regions = {frozenset(r.segments): r.members for r in result.regions}
    centres, radii = _venn_layout(result.sizes, result.shared)
    deepest = _region_points(centres, radii)

    fig = Figure(figsize=(7, 5.6))
    canvas = FigureCanvasAgg(fig)
    renderer: RendererBase = canvas.get_renderer()
    title_text = heading(fig, title)
    title_text.set(y=0.98, va="top")
    top = title_text.get_window_extent(renderer).y0 / fig.bbox.height - 0.02
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
        color = COLORS[i % len(COLORS)]
        ax.add_patch(Circle(c, r, facecolor=color, alpha=0.3, edgecolor="none"))
        ax.add_patch(Circle(c, r, fill=False, edgecolor=color, lw=2))
    for lab, spot, target in placed:
        style = count_style if lab.kind == "count" else name_style
        if lab.kind == "name":
            style = {**style, "color": TEXT_COLORS[lab.mask % len(TEXT_COLORS)]}
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
