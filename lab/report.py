"""The lab report: one self-contained HTML page of everything the demo produced.

It reads only small tables (``segment_runs``, insight and suggestion results: rows per
segment, pair, field or suggestion, never per customer), the expansion summaries and
the charts the jobs drew, and embeds the PNGs as data URIs so the file can be mailed.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import logging
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cohortlake.context import Context
from cohortlake.display import (
    format_count,
    format_measure,
    format_pvalue,
    format_share,
    is_money,
    missing,
    wrap_label,
)
from cohortlake.sources import read_profile

__all__ = ["SECTIONS", "write_report"]

log = logging.getLogger(__name__)

SECTIONS = ("segments", "quick-create", "overlap", "differentiators", "expansion", "suggestions")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2630}
header{background:#1f3b57;color:#fff;padding:20px 32px}header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;opacity:.85}main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 24px;margin:20px 0;min-width:0}
h2{margin-top:4px;font-size:20px;color:#1f3b57}h3{font-size:16px;margin:18px 0 8px;overflow-wrap:anywhere}
.table-wrap{overflow-x:auto;max-width:100%;margin:8px 0}
table{border-collapse:collapse;font-size:13px;max-width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:left;vertical-align:top}
th{background:#eef2f6;white-space:normal}td{overflow-wrap:break-word}
th.num{text-align:right}td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #e3e6ea;border-radius:4px;margin:6px 8px 6px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #d5dce4;border-radius:8px;padding:12px 14px;width:340px;background:#fbfcfd}
.card .big{font-size:18px;font-weight:600;color:#1f3b57}.card .rules{font-family:ui-monospace,monospace;font-size:12px;color:#444;margin-top:6px}
.muted{color:#6b7785;font-size:13px}.nowrap{white-space:nowrap}.pill{display:inline-block;background:#e8f0fa;border-radius:10px;padding:1px 8px;font-size:12px;overflow-wrap:anywhere}
"""

# The report's one rule for numbers: shares as percentages with one decimal, counts with
# thousands separators, money and measures with two decimals. Columns not listed here
# are formatted by the type of their value (``_auto``).
_COUNT_COLUMNS = frozenset(
    {"Members", "Joined", "Left", "Runs", "TableVersion", "Rank", "Degree", "Categories", "Low", "High",
     "PrimaryCount", "OtherCount", "PrimaryNulls", "OtherNulls", "members"}
)  # fmt: skip
_SHARE_COLUMNS = frozenset({"Share", "ShareOfA", "ShareOfB", "Jaccard", "Share of customers"})
_MEASURE_COLUMNS = frozenset({"Score", "seconds"})
_PVALUE_COLUMNS = frozenset({"PValue"})


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _auto(v: Any) -> str:
    """A cell of a column without a rule of its own, by the type of its value."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(str(x) for x in v)
    if missing(v):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Integral):
        return format_count(v)
    if isinstance(v, numbers.Real):
        return format_measure(v)
    if isinstance(v, (pd.Timestamp, dt.datetime)):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def _cell(column: str, v: Any) -> tuple[str, bool]:
    """A cell's text and whether it is a number (right-aligned)."""
    if column in _COUNT_COLUMNS:
        return format_count(v), True
    if column in _SHARE_COLUMNS:
        return format_share(v), True
    if column in _MEASURE_COLUMNS:
        return format_measure(v), True
    if column in _PVALUE_COLUMNS:
        return format_pvalue(v), True
    number = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
    return _auto(v), number


_NUM = ' class="num"'


def _table(
    frame: pd.DataFrame,
    columns: Iterable[str],
    limit: int = 60,
    headers: dict[str, str] | None = None,
    numeric: Iterable[str] = (),
) -> str:
    """An HTML table of ``columns`` (those the frame has), its cells formatted by the rule;
    ``numeric`` names pre-formatted columns to right-align."""
    cols = [c for c in columns if c in frame.columns]
    right = set(numeric)
    rows = [[_cell(c, r[c]) for c in cols] for _, r in frame.head(limit).iterrows()]
    aligned = {
        c
        for i, c in enumerate(cols)
        if c in right or (rows and all(row[i][1] or not row[i][0] for row in rows))
    }
    num = {c: _NUM if c in aligned else "" for c in cols}
    head = "".join(f"<th{num[c]}>{html.escape((headers or {}).get(c, c))}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{num[c]}>{html.escape(text)}</td>" for c, (text, _) in zip(cols, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def _read(ctx: Context, path: str) -> pd.DataFrame | None:
    """A small result table as pandas (these tables hold rows per segment/field/suggestion)."""
    if not ctx.lake.exists(path):
        return None
    return ctx.lake.read(path).toPandas()


def _pngs(folder: Path) -> list[Path]:
    """The charts in ``folder``: summaries first, then one per field."""
    found = folder.glob("*.png") if folder.is_dir() else []
    return sorted(found, key=lambda p: (p.name.startswith("field_"), p.name))


def _size_figure(runs: pd.DataFrame) -> Figure | None:
    """Members per segment: bars of each segment's latest size and, when some segment
    has run more than once, lines with a marker per run for those segments."""
    if runs.empty:
        return None
    per = runs.sort_values("EvaluatedAt").groupby("Segment", sort=True)
    latest = per.tail(1).sort_values(["Members", "Segment"], ascending=[True, False])
    repeated = [(str(segment), rows) for segment, rows in per if len(rows) > 1]
    counts = FuncFormatter(lambda v, _pos: format_count(v))
    bar_height = 0.8 + 0.42 * len(latest)
    fig = Figure(figsize=(8, 0.6 + bar_height + (3.2 if repeated else 0)), layout="constrained")
    if repeated:
        bars, lines = fig.subplots(2, 1, height_ratios=[bar_height, 3.2])
    else:
        bars, lines = fig.add_subplot(), None
    members = [int(m) for m in latest["Members"]]
    bars.barh(range(len(members)), members, color="#2f6db5")
    for y, m in enumerate(members):
        bars.text(m, y, f" {format_count(m)}", va="center", fontsize=8)
    bars.set_yticks(
        range(len(members)), [wrap_label(str(x), 32) for x in latest["Segment"]], fontsize=8
    )
    bars.set_xlim(0, max(max(members), 1) * 1.15)
    bars.xaxis.set_major_formatter(counts)
    bars.set_xlabel("members")
    bars.set_ylabel("segment")
    bars.set_title("Segment size at its latest run", fontsize=11)
    bars.grid(axis="x", alpha=0.3)
    if lines is not None:
        for segment, rows in repeated:
            lines.plot(range(1, len(rows) + 1), rows["Members"], marker="o", label=segment)
        lines.xaxis.set_major_locator(MaxNLocator(integer=True))
        lines.yaxis.set_major_formatter(counts)
        lines.set_xlabel("run number (1 = the segment's first run)")
        lines.set_ylabel("members")
        lines.set_title("Size over runs (segments that ran more than once)", fontsize=11)
        lines.grid(alpha=0.3)
        lines.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _size_chart(runs: pd.DataFrame, target: Path) -> Path | None:
    fig = _size_figure(runs)
    if fig is None:
        return None
    FigureCanvasAgg(fig)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    return target


def _segments(ctx: Context, reports: Path, customers: int) -> str:
    runs = _read(ctx, ctx.lake.segment_runs_path())
    if runs is None or runs.empty:
        return "<p>No segment has run yet.</p>"
    latest = (
        runs.sort_values("EvaluatedAt").groupby("Segment").tail(1).sort_values("Segment").copy()
    )
    latest["Share of customers"] = latest["Members"] / max(customers, 1)
    runs_per = runs.groupby("Segment").size().rename("Runs")
    latest = latest.join(runs_per, on="Segment")
    columns = ["Segment", "Name", "Type", "Members", "Share of customers", "Joined", "Left", "Runs",
               "TableVersion", "Status", "AsOf"]  # fmt: skip
    parts = [
        f'<p class="muted">{format_count(customers)} customers in the profile.</p>',
        _table(latest, columns, headers={"TableVersion": "Table version", "AsOf": "As of"}),
    ]
    chart = _size_chart(runs, reports / "segment_sizes.png")
    if chart is not None:
        parts.append(_img(chart, "segment size over runs"))
    return "".join(parts)


def _quick(reports: Path) -> str:
    pngs = _pngs(reports / "quick")
    if not pngs:
        return "<p>No quick-create chart.</p>"
    return "".join(
        f"<h3>{html.escape(p.stem.replace('_percentiles', ''))}</h3>{_img(p, p.stem)}" for p in pngs
    )


def _overlap_table(frame: pd.DataFrame) -> str:
    """Sizes, pairs, exclusives and the all-segments count of an overlap insight."""
    counts = (
        frame[frame["Kind"].isin(["segment_size", "pair", "exclusive", "all"])]
        if "Kind" in frame
        else frame
    )
    return _table(
        counts,
        ["Kind", "SegmentA", "SegmentB", "Segments", "Members", "ShareOfA", "ShareOfB", "Jaccard"],
        headers={"SegmentA": "Segment A", "SegmentB": "Segment B", "ShareOfA": "Share of A",
                 "ShareOfB": "Share of B"},
    )  # fmt: skip


def _estimated_table(frame: pd.DataFrame) -> str:
    """Sizes and the top pairs of an estimated (sketch) overlap, with their 3-sigma bounds."""
    sizes = frame[frame["Kind"] == "segment_size"] if "Kind" in frame else frame
    pairs = frame[frame["Kind"] == "pair"].sort_values("Rank") if "Rank" in frame else frame
    columns = ["Kind", "SegmentA", "SegmentB", "Members", "Low", "High", "Jaccard"]
    headers = {"SegmentA": "Segment A", "SegmentB": "Segment B", "Members": "Members (estimated)"}
    return _table(sizes, columns, headers=headers) + _table(pairs, columns, 50, headers=headers)


def _field_value(v: Any, field_type: Any, money: bool) -> str:
    """A mean or median of a field: dates and timestamps as such (the table stores days
    and seconds since 1970-01-01), money with its sign, other measures with two decimals."""
    if missing(v):
        return ""
    epoch = dt.datetime(1970, 1, 1)
    if field_type == "date":
        return f"{epoch + dt.timedelta(days=float(v)):%Y-%m-%d}"
    if field_type == "timestamp":
        return f"{epoch + dt.timedelta(seconds=float(v)):%Y-%m-%d %H:%M}"
    return format_measure(v, money)


_DIFF_VALUES = {
    "PrimaryMean": "Mean (primary)",
    "OtherMean": "Mean (other)",
    "PrimaryMedian": "Median (primary)",
    "OtherMedian": "Median (other)",
}


def _differentiators_table(frame: pd.DataFrame) -> str:
    """Fields ranked by difference score; the two sides named once, above the table."""
    frame = frame.sort_values("Rank") if "Rank" in frame else frame
    shown = frame.copy()
    if "Display" in shown:
        shown["Field"] = shown["Display"].fillna(shown["Field"])
    for column in _DIFF_VALUES:
        if column in shown:
            shown[column] = [
                _field_value(v, t, is_money(str(f)))
                for v, t, f in zip(
                    shown[column], shown.get("FieldType", [None] * len(shown)), shown["Field"],
                    strict=True,
                )
            ]  # fmt: skip
    caption = ""
    if len(frame) and {"Primary", "CompareTo"} <= set(frame.columns):
        other = str(frame["CompareTo"].iloc[0])
        other = "all other customers" if other == "all_others" else other
        caption = (
            f"<p class='muted'>Primary: <b>{html.escape(str(frame['Primary'].iloc[0]))}</b> · "
            f"other: <b>{html.escape(other)}</b></p>"
        )
    return caption + _table(
        shown,
        ["Rank", "Field", "Score", "PValue", *_DIFF_VALUES, "PrimaryNulls", "OtherNulls"],
        headers={"Rank": "#", "PValue": "p-value", **_DIFF_VALUES,
                 "PrimaryNulls": "Nulls (primary)", "OtherNulls": "Nulls (other)"},
        numeric=_DIFF_VALUES,
    )  # fmt: skip


def _insights(ctx: Context, reports: Path) -> tuple[str, str]:
    from insights import load_insights

    overlap_html: list[str] = []
    diff_html: list[str] = []
    for d in load_insights(ctx.conf_dir, ctx.catalog):
        kind = getattr(d, "kind", "")
        frame = _read(ctx, ctx.lake.insight_path(d.output))
        charts = "".join(_img(p, p.stem) for p in _pngs(reports / "insights" / d.output))
        title = f"<h3>{html.escape(d.name)} <span class='pill'>{html.escape(d.output)}</span></h3>"
        if frame is None:
            body = "<p>Not run yet.</p>"
        elif kind == "overlap":
            body = _overlap_table(frame)
        elif kind == "estimated_overlap":
            body = _estimated_table(frame)
        else:
            body = _differentiators_table(frame)
        overlaps = kind in ("overlap", "estimated_overlap")
        (overlap_html if overlaps else diff_html).append(title + body + charts)
    return "".join(overlap_html) or "<p>No overlap insight.</p>", "".join(
        diff_html
    ) or "<p>No differentiators insight.</p>"


def _expansion_facts(summary: dict[str, Any]) -> pd.DataFrame:
    """An expansion's summary as (what, value) rows, each value formatted by the rule."""
    quality = summary.get("held_out") or {}
    pool = summary.get("pool")
    facts = [
        ("source", summary.get("source"), str),
        ("fields", ", ".join(summary.get("fields", [])), str),
        ("pool", pool, format_count if isinstance(pool, numbers.Real) else str),
        ("members returned", summary.get("members"), format_count),
        ("cap", summary.get("cap"), format_count),
        ("method", summary.get("method"), str),
        ("held-out recall", quality.get("recall"), format_share),
        ("random pick recall", quality.get("random_recall"), format_share),
        ("lift over random", quality.get("lift"), lambda v: f"{format_measure(v)}×"),
    ]
    return pd.DataFrame(
        [{"what": what, "value": fmt(v)} for what, v, fmt in facts if v is not None],
        columns=["what", "value"],
    )


def _expansion(ctx: Context, reports: Path) -> str:
    parts = []
    folder = reports / "expansions"
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        summary_path = sub / "summary.json"
        summary: dict[str, Any] = (
            json.loads(summary_path.read_text()) if summary_path.exists() else {}
        )
        parts.append(f"<h3>{html.escape(sub.name)}</h3>")
        if summary:
            parts.append(_table(_expansion_facts(summary), ["what", "value"]))
            bands = summary.get("bands") or {}
            if bands:
                parts.append(
                    _table(
                        pd.DataFrame([{"band": k, "members": v} for k, v in bands.items()]),
                        ["band", "members"],
                    )
                )
        parts += [_img(p, p.stem) for p in _pngs(sub)]
    return "".join(parts) or "<p>No expansion.</p>"


def _card(r: pd.Series) -> str:
    """One suggestion as a card: its summary, size, share of customers, p-value and rules."""
    summary = r.get("Summary") or ""
    p = format_pvalue(r["PValue"])
    return (
        "<div class='card'>"
        f"<div class='muted'>#{format_count(r['Rank'])}</div>"
        f"<div class='big'>{html.escape(str(summary).split(' — ')[0])}</div>"
        f"<div>{format_count(r['Members'])} members · {format_share(r['Share'])} of customers · "
        f"<span class='nowrap'>p {html.escape(p if p.startswith('<') else '= ' + p)}</span></div>"
        f"<div class='rules'>{html.escape(str(r['Rules']))}</div></div>"
    )


def _suggestions(ctx: Context, reports: Path) -> str:
    from suggestions import load_suggestion_runs

    parts = []
    for run in load_suggestion_runs(ctx.conf_dir, ctx.catalog):
        output = run.output
        frame = _read(ctx, ctx.lake.suggestion_path(output))
        parts.append(
            f"<h3>{html.escape(run.name)} <span class='pill'>{html.escape(output)}</span></h3>"
        )
        if frame is None or frame.empty:
            parts.append("<p>No significant suggestion.</p>")
        else:
            cards = [_card(r) for _, r in frame.sort_values("Rank").head(8).iterrows()]
            parts.append(f"<div class='cards'>{''.join(cards)}</div>")
        parts += [_img(p, p.stem) for p in _pngs(reports / "suggestions" / output)]
    return "".join(parts) or "<p>No suggestion run.</p>"


def _page(subtitle: str, sections: dict[str, tuple[str, str]], timings: str = "") -> str:
    """The whole HTML page; ``subtitle`` and the sections' contents are HTML already."""
    body = "".join(
        f"<section id='{sid}'><h2>{html.escape(title)}</h2>{content}</section>"
        for sid, (title, content) in sections.items()
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Cohortlake · Contoso Coffee lab</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Cohortlake · Contoso Coffee lab</h1><p>{subtitle}</p></header>"
        f"<main>{body}{timings}</main>"
        "<script>window.addEventListener('load',function(){var ok=Array.prototype.every.call("
        "document.images,function(i){return i.complete&&i.naturalWidth>0});"
        "document.body.setAttribute('data-images',ok?'ok':'broken')});</script></body></html>"
    )


def write_report(ctx: Context, demo: Any = None) -> str:
    """Write ``<root>/reports/contoso_lab.html`` and return its path."""
    reports = Path(ctx.lake.reports_dir().removeprefix("file:"))
    reports.mkdir(parents=True, exist_ok=True)
    customers = read_profile(ctx.lake, ctx.catalog).count()
    overlap, differentiators = _insights(ctx, reports)
    sections = {
        "segments": ("Segments", _segments(ctx, reports, customers)),
        "quick-create": ("Quick create: measure percentiles", _quick(reports)),
        "overlap": ("Segment overlap", overlap),
        "differentiators": ("Segment differentiators", differentiators),
        "expansion": ("Segment expansion", _expansion(ctx, reports)),
        "suggestions": ("Suggested segments", _suggestions(ctx, reports)),
    }
    timings = ""
    if demo is not None and getattr(demo, "timings", None):
        rows = pd.DataFrame([{"stage": k, "seconds": v} for k, v in demo.timings.items()])
        timings = f"<section id='timings'><h2>Time per stage</h2>{_table(rows, ['stage', 'seconds'])}</section>"
    as_of = getattr(demo, "as_of", None)
    subtitle = f"Lakehouse {html.escape(ctx.root)}" + (
        f" · as of {as_of:%Y-%m-%d}" if as_of else ""
    )
    page = _page(subtitle, sections, timings)
    target = reports / "contoso_lab.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    log.info("report written to %s", target)
    return str(target)
