"""The report's charts and tables: Venn geometry and labels, one number format, size chart.

No Spark: the charts take small result objects and the tables pandas frames. Every
expectation is computed here independently (Monte Carlo areas from the drawn circles,
text extents from matplotlib's renderer, hand-written strings, a real Chromium layout).
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PATIENCE
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle
from matplotlib.text import Annotation, Text

import insights.charts as charts
from cohortlake.display import (
    format_count,
    format_measure,
    format_pvalue,
    format_share,
    wrap_label,
)
from insights.differentiators import FieldScore
from insights.distributions import DistRow
from insights.overlap import Overlap, Region
from lab import report

LONG = "Customers who bought a seasonal drink every single summer weekend"


def _overlap(names: tuple[str, ...], regions: dict[tuple[int, ...], int]) -> Overlap:
    """An Overlap whose sizes and shared counts are sums of the given exact regions."""
    k = len(names)
    sizes = [sum(n for r, n in regions.items() if i in r) for i in range(k)]
    shared = {
        (i, j): sum(n for r, n in regions.items() if i in r and j in r)
        for i, j in itertools.combinations(range(k), 2)
    }
    return Overlap(
        names,
        sizes,
        shared,
        [regions.get((i,), 0) for i in range(k)],
        regions.get(tuple(range(k)), 0),
        [Region(tuple(names[i] for i in r), n) for r, n in regions.items() if n],
        len(regions),
        [],
    )


# The demo's pair: 2,168 and 776 members, 324 in both.
DEMO = _overlap(
    ("HighValueOnlineCustomers", "CustomersFromCalifornia"), {(0,): 1844, (1,): 452, (0, 1): 324}
)
THREE = _overlap(
    ("HighValueOnlineCustomers", "CustomersFromCalifornia", "SummerPromotion"),
    {(0,): 1724, (1,): 402, (2,): 447, (0, 1): 294, (0, 2): 120, (1, 2): 50, (0, 1, 2): 30},
)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure the chart functions save (the PNGs are still written)."""
    figures: list[Figure] = []
    real = charts._save

    def keep(fig: Figure, path: Path) -> str:
        figures.append(fig)
        return real(fig, path)

    monkeypatch.setattr(charts, "_save", keep)
    return figures


def _venn(result: Overlap, tmp_path: Path, drawn: list[Figure], title: str = "Overlap") -> Figure:
    paths = charts.overlap_charts(result, tmp_path, title)
    assert [Path(p).name for p in paths] == ["venn.png"]
    assert Path(paths[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return drawn[-1]


def _circles(fig: Figure) -> list[tuple[np.ndarray, float]]:
    """The filled circles, in drawing order (one per segment)."""
    return [
        (np.asarray(p.center, dtype=float), float(p.radius))
        for p in fig.axes[0].patches
        if isinstance(p, Circle) and p.get_fill()
    ]


def _share_inside(
    inner: tuple[np.ndarray, float], outer: tuple[np.ndarray, float], n: int = 400_000
) -> float:
    """Monte Carlo: the share of circle ``inner``'s area that lies inside circle ``outer``."""
    (c, r), (oc, orad) = inner, outer
    pts = np.random.default_rng(7).uniform(-r, r, size=(n, 2)) + c
    pts = pts[np.hypot(*(pts - c).T) <= r]
    return float(np.mean(np.hypot(*(pts - oc).T) <= orad))


def test_venn_of_two_has_areas_and_lens_in_proportion_to_the_counts(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    fig = _venn(DEMO, tmp_path, drawn)
    (big, small) = _circles(fig)
    assert big[1] ** 2 / small[1] ** 2 == pytest.approx(2168 / 776, rel=0.01)
    assert _share_inside(small, big) == pytest.approx(324 / 776, rel=0.02)
    assert _share_inside(big, small) == pytest.approx(324 / 2168, rel=0.03)
    # Circles on screen: one data unit is as many pixels across as up.
    ax = fig.axes[0]
    c, r = big
    x0, y0 = ax.transData.transform(c)
    x1, _ = ax.transData.transform(c + np.array([r, 0.0]))
    _, y1 = ax.transData.transform(c + np.array([0.0, r]))
    assert x1 - x0 == pytest.approx(y1 - y0, rel=0.01)


def test_venn_of_two_disjoint_and_nested_segments(tmp_path: Path, drawn: list[Figure]) -> None:
    names = ("A", "B")
    apart = _circles(_venn(_overlap(names, {(0,): 500, (1,): 200}), tmp_path / "a", drawn))
    (ca, ra), (cb, rb) = apart
    assert np.hypot(*(ca - cb)) >= ra + rb
    inside = _circles(_venn(_overlap(names, {(0,): 300, (0, 1): 200}), tmp_path / "b", drawn))
    (ca, ra), (cb, rb) = inside
    assert ra**2 / rb**2 == pytest.approx(500 / 200, rel=0.01)
    assert np.hypot(*(ca - cb)) + rb <= ra + 1e-9


def test_venn_of_three_keeps_areas_and_pairwise_lenses_in_proportion(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    circles = _circles(_venn(THREE, tmp_path, drawn))
    for i, j in itertools.combinations(range(3), 2):
        assert circles[i][1] ** 2 / circles[j][1] ** 2 == pytest.approx(
            THREE.sizes[i] / THREE.sizes[j], rel=0.01
        )
        assert _share_inside(circles[j], circles[i]) == pytest.approx(
            THREE.shared[(i, j)] / THREE.sizes[j], rel=0.05
        )


def _texts(fig: Figure) -> list[Text]:
    return [t for t in [*fig.texts, *fig.axes[0].texts] if t.get_text()]


def _in_region(
    point: np.ndarray, circles: list[tuple[np.ndarray, float]], mask: tuple[int, ...]
) -> bool:
    return all((np.hypot(*(point - c)) < r) == (i in mask) for i, (c, r) in enumerate(circles))


# Distinct counts, so that each count label names its region.
LABELLED = [
    DEMO,
    THREE,
    _overlap(("HighValueOnlineCustomers", LONG), {(0,): 2156, (1,): 764, (0, 1): 12}),
    _overlap((LONG, "Small", "Tiny"), {(0,): 4930, (0, 1): 40, (0, 2): 30}),
    _overlap(("A", "B", "C"), {(0,): 500, (1,): 510, (2,): 520, (0, 1): 200, (0, 2): 210,
                               (1, 2): 220, (0, 1, 2): 100}),
]  # fmt: skip


@pytest.mark.parametrize(
    "result", LABELLED, ids=["demo", "three", "tiny-lens-long-name", "nested-long-name", "even"]
)
def test_venn_labels_do_not_overlap_stay_in_the_figure_and_sit_in_their_place(
    result: Overlap, tmp_path: Path, drawn: list[Figure]
) -> None:
    fig = _venn(result, tmp_path, drawn, title=f"{LONG}: {LONG}")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = _texts(fig)
    boxes = [t.get_window_extent(renderer) for t in texts]
    for (a, ta), (b, tb) in itertools.combinations(zip(boxes, texts, strict=True), 2):
        assert not a.overlaps(b), (ta.get_text(), tb.get_text())
    for box, t in zip(boxes, texts, strict=True):
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, t.get_text()
        assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1, t.get_text()
    ax = fig.axes[0]
    circles = _circles(fig)
    # Every name (wrapped: no line longer than the longest word) is outside every circle.
    for i, name in enumerate(result.segments):
        (label,) = [
            t
            for t in texts
            if t.get_text().split("\n")[-1] == f"{format_count(result.sizes[i])} members"
            and "".join(t.get_text().split("\n")[:-1]).replace(" ", "") == name.replace(" ", "")
        ]
        assert max(len(line) for line in label.get_text().split("\n")[:-1]) <= 18
        box = label.get_window_extent(renderer)
        for c, r in circles:
            cx, cy = ax.transData.transform(c)
            rpx = ax.transData.transform(c + np.array([r, 0.0]))[0] - cx
            nx, ny = min(max(cx, box.x0), box.x1), min(max(cy, box.y0), box.y1)
            assert np.hypot(nx - cx, ny - cy) >= rpx, (name, i)
    # Every non-empty region's count is shown once, in its region or pointing at it.
    counts = {t.get_text(): t for t in texts if re.fullmatch(r"[\d,]+", t.get_text())}
    for region in result.regions:
        mask = tuple(result.segments.index(s) for s in region.segments)
        label = counts[format_count(region.members)]
        where = label.xy if isinstance(label, Annotation) else label.get_position()
        assert _in_region(np.asarray(where, dtype=float), circles, mask), region
    assert len(counts) >= len(result.regions)


def test_the_demo_pair_has_its_counts_inside_the_circles(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    texts = {t.get_text(): t for t in _texts(_venn(DEMO, tmp_path, drawn))}
    assert {"1,844", "324", "452"} <= set(texts)
    assert not any(isinstance(texts[c], Annotation) for c in ("1,844", "324", "452"))


def test_number_formats_follow_one_rule() -> None:
    assert format_share(0.1494) == "14.9%"
    assert format_share(np.float64(0.4176)) == "41.8%"
    assert format_share(1.0) == "100.0%"
    assert format_count(2168) == "2,168"
    assert format_count(np.int64(1234567)) == "1,234,567"
    assert format_count(776.0) == "776"
    assert format_measure(1015.234) == "1,015.23"
    assert format_measure(1015.234, money=True) == "$1,015.23"
    assert format_measure(-3.5, money=True) == "-$3.50"
    assert format_pvalue(1.857e-18) == "< 0.001"
    assert format_pvalue(0.1537) == "0.154"
    for empty in (None, float("nan"), np.nan, pd.NaT):
        assert format_share(empty) == format_count(empty) == format_measure(empty) == ""


def test_wrap_label_breaks_camel_case_and_sentences() -> None:
    assert wrap_label("HighValueOnlineCustomers", 18) == "HighValueOnline\nCustomers"
    wrapped = wrap_label(LONG, 18)
    assert wrapped.replace("\n", " ") == LONG
    assert max(len(line) for line in wrapped.split("\n")) <= 18
    assert wrap_label("A", 18) == "A"


def _cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]


def test_overlap_table_shows_lists_as_text_and_shares_as_percentages() -> None:
    frame = pd.DataFrame(
        {
            "Kind": ["segment_size", "pair", "exclusive", "all", "region", "field_distribution"],
            "SegmentA": ["A", "A", "A", None, None, "A"],
            "SegmentB": [None, "B", None, None, None, None],
            "Segments": [None, None, None, np.array(["A", "B"], dtype=object),
                         np.array(["A"], dtype=object), None],
            "Members": np.array([2168, 324, 1844, 324, 1844, 7], dtype=np.int64),
            "ShareOfA": [np.nan, 0.1494, 0.8506, np.nan, np.nan, np.nan],
            "ShareOfB": [np.nan, 0.4176, np.nan, np.nan, np.nan, np.nan],
            "Jaccard": [np.nan, 0.1237, np.nan, np.nan, np.nan, np.nan],
        }
    )  # fmt: skip
    html = report._overlap_table(frame)
    head, *rows = _cells(html)
    assert head == ["Kind", "Segment A", "Segment B", "Segments", "Members", "Share of A",
                    "Share of B", "Jaccard"]  # fmt: skip
    assert rows == [
        ["segment_size", "A", "", "", "2,168", "", "", ""],
        ["pair", "A", "B", "", "324", "14.9%", "41.8%", "12.4%"],
        ["exclusive", "A", "", "", "1,844", "85.1%", "", ""],
        ["all", "", "", "A, B", "324", "", "", ""],
    ]
    assert "[" not in html and "table-wrap" in html


DIFFERENTIATORS = pd.DataFrame(
    {
        "Rank": [1, 2],
        "Field": ["LifetimeSpend", "RewardPoints"],
        "Display": ["Lifetime Spend ($)", "Reward Points"],
        "FieldType": ["number", "integer"],
        "Score": [0.6059, 0.5172],
        "PValue": [1.857e-18, 0.1537],
        "PrimaryMean": [1015.2345, 89.5233],
        "OtherMean": [872.9, 87.11],
        "PrimaryMedian": [1005.0, 86.0],
        "OtherMedian": [857.9, 84.0],
        "PrimaryNulls": [0, 1234],
        "OtherNulls": [0, 0],
        "Primary": ["HighValueOnlineCustomers"] * 2,
        "CompareTo": ["CustomersFromCalifornia"] * 2,
    }
)


def test_differentiators_table_is_short_and_formatted_by_the_rule() -> None:
    html = report._differentiators_table(DIFFERENTIATORS.iloc[::-1])
    head, *rows = _cells(html)
    assert "Primary" not in head and "CompareTo" not in head
    assert "HighValueOnlineCustomers" in html and "CustomersFromCalifornia" in html
    assert rows == [
        ["1", "Lifetime Spend ($)", "0.61", "&lt; 0.001", "$1,015.23", "$872.90", "$1,005.00",
         "$857.90", "0", "0"],
        ["2", "Reward Points", "0.52", "0.154", "89.52", "87.11", "86.00", "84.00", "1,234", "0"],
    ]  # fmt: skip


def test_differentiators_table_fits_its_card_in_chromium(tmp_path: Path) -> None:
    """A real browser lays the section out: nothing sticks out of the card."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (make chromium)")
    wide = DIFFERENTIATORS.copy()
    wide["Display"] = [f"{LONG} ($)", f"Reward points earned since {LONG.lower()}"]
    wide["PrimaryMean"] = [123456789.125, 1.5]
    wide["Primary"] = "CustomersWhoBoughtASeasonalDrinkEverySingleSummerWeekendOfTheYear"
    page = report._page(
        "test",
        {"differentiators": ("Segment differentiators", report._differentiators_table(wide))},
    ).replace(
        "</body>",
        "<script>window.addEventListener('load',function(){var s=document.querySelector('section'),"
        "t=document.querySelector('table'),r=s.getBoundingClientRect(),b=t.getBoundingClientRect();"
        "document.body.setAttribute('data-fits',(b.right<=r.right&&s.scrollWidth<=s.clientWidth)?'yes':'no')});"
        "</script></body>",
    )
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1024,800",
         "--virtual-time-budget=3000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-fits="yes"' in dom.stdout


def _runs(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Segment": s, "Members": m, "EvaluatedAt": pd.Timestamp(t)} for s, m, t in rows]
    )


def _bars(ax: Axes) -> list[float]:
    return sorted(p.get_width() for p in ax.patches if isinstance(p, Rectangle))


def test_size_chart_with_one_run_each_draws_bars_not_lone_points() -> None:
    fig = report._size_figure(
        _runs([("A", 776, "2026-07-01"), ("B", 2168, "2026-07-01"), ("C", 647, "2026-07-01")])
    )
    assert fig is not None
    (ax,) = fig.axes
    assert _bars(ax) == [647, 776, 2168]
    assert len(ax.lines) == 0
    assert ax.get_xlabel() == "members"
    assert {t.get_text() for t in ax.texts} == {" 647", " 776", " 2,168"}


def test_size_chart_with_several_runs_draws_lines_with_markers() -> None:
    runs = _runs([("A", 800, "2026-07-02"), ("A", 776, "2026-07-01"), ("A", 790, "2026-07-03"),
                  ("B", 2168, "2026-07-01"), ("C", 647, "2026-07-01"), ("C", 700, "2026-07-05")])  # fmt: skip
    fig = report._size_figure(runs)
    assert fig is not None
    bars, lines = fig.axes
    assert _bars(bars) == [700, 790, 2168]  # each segment's latest size
    got = {
        ln.get_label(): (np.asarray(ln.get_xdata()).tolist(), np.asarray(ln.get_ydata()).tolist())
        for ln in lines.lines
    }
    assert got == {"A": ([1, 2, 3], [776, 800, 790]), "C": ([1, 2], [647, 700])}
    assert all(ln.get_marker() == "o" for ln in lines.lines)
    assert lines.get_ylabel() == "members" and "run" in lines.get_xlabel()
    assert report._size_figure(runs.iloc[0:0]) is None


def _inside(fig: Figure, text: Text) -> bool:
    box = text.get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    return bool(fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1)


def test_differentiator_charts_have_units_short_numbers_and_whole_titles(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    score = FieldScore("LifetimeSpend", "Lifetime Spend ($)", "number", "numeric", 0.6059,
                       0.6059, None, 1e-18, "mann_whitney", 10, 10, 0, 0, None, None, None, None,
                       None, 1)  # fmt: skip
    dists = [DistRow("LifetimeSpend", side, b, 90.2 + 120 * b, 210.2 + 120 * b, None, 5, share)
             for side in ("primary", "other") for b, share in enumerate([0.25, 0.5, 0.25])]  # fmt: skip
    title = f"High Value Online vs {LONG}"
    charts.differentiator_charts([score], dists, tmp_path, title, "HighValue", "California")
    scores, dist = drawn
    (ax,) = scores.axes
    assert "score" in ax.get_xlabel() and ax.get_ylabel() == "field"
    assert [t.get_text() for t in ax.texts] == ["0.61"]
    (heading,) = scores.texts
    assert "\n" in heading.get_text() and _inside(scores, heading)
    (ax,) = dist.axes
    assert "($)" in ax.get_xlabel() and "%" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["$90.2", "$210", "$330"]
    assert ax.yaxis.get_major_formatter()(0.25, 0) == "25%"
    assert [t.get_text() for t in dist.texts] == ["Lifetime Spend ($): difference score 0.61"]


def test_upset_and_heatmap_label_their_axes_and_show_jaccard_as_percentages(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    names = tuple(f"S{i}" for i in range(4))
    result = _overlap(names, {(0,): 50, (1,): 40, (2,): 30, (3,): 20, (0, 1): 10, (2, 3): 5})
    charts.overlap_charts(result, tmp_path, f"Four segments: {LONG}")
    upset, heat = drawn
    bars = upset.axes[0]
    assert bars.get_ylabel() == "members"
    assert any("members" in a.get_xlabel() for a in upset.axes)
    (heading,) = upset.texts
    assert "\n" in heading.get_text() and _inside(upset, heading)
    ax = heat.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and "%" in heat.axes[1].get_ylabel()
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    # S0 and S1: 10 shared of 60 + 50 - 10 = 100 in either.
    assert cells[(0, 1)] == "10.0%" and cells[(0, 0)] == "100.0%" and cells[(0, 2)] == "0.0%"
    (heading,) = heat.texts
    assert heading.get_text().endswith("pairwise Jaccard") and _inside(heat, heading)


def test_an_estimated_overlap_shows_sizes_and_ranked_pairs_with_bounds() -> None:
    frame = pd.DataFrame(
        [
            {"Kind": "segment_size", "SegmentA": "A", "SegmentB": None, "Members": 12345.6,
             "Low": 11800.2, "High": 12900.9, "Jaccard": None, "Rank": None},
            {"Kind": "pair", "SegmentA": "A", "SegmentB": "C", "Members": 40.0,
             "Low": 20.0, "High": 61.0, "Jaccard": 0.004, "Rank": 2},
            {"Kind": "pair", "SegmentA": "A", "SegmentB": "B", "Members": 3000.0,
             "Low": 2800.0, "High": 3200.0, "Jaccard": 0.2512, "Rank": 1},
        ]
    )  # fmt: skip
    html = report._estimated_table(frame)
    assert "Members (estimated)" in html
    assert ">12,346<" in html and ">11,800<" in html and ">12,901<" in html
    assert html.index(">3,000<") < html.index(">40<")  # ranked best first
    assert ">25.1%<" in html and ">0.4%<" in html
