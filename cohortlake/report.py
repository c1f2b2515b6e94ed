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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from cohortlake.context import Context

__all__ = ["SECTIONS", "write_report"]

log = logging.getLogger(__name__)

SECTIONS = ("segments", "quick-create", "overlap", "differentiators", "expansion", "suggestions")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2630}
header{background:#1f3b57;color:#fff;padding:20px 32px}header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;opacity:.85}main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 24px;margin:20px 0}
h2{margin-top:4px;font-size:20px;color:#1f3b57}h3{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:left}
th{background:#eef2f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #e3e6ea;border-radius:4px;margin:6px 8px 6px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #d5dce4;border-radius:8px;padding:12px 14px;width:340px;background:#fbfcfd}
.card .big{font-size:18px;font-weight:600;color:#1f3b57}.card .rules{font-family:ui-monospace,monospace;font-size:12px;color:#444;margin-top:6px}
.muted{color:#6b7785;font-size:13px}.pill{display:inline-block;background:#e8f0fa;border-radius:10px;padding:1px 8px;font-size:12px}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (pd.Timestamp, dt.datetime)):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def _table(frame: pd.DataFrame, columns: Iterable[str], limit: int = 60) -> str:
    cols = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, r in frame.head(limit).iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _read(ctx: Context, path: str) -> pd.DataFrame | None:
    """A small result table as pandas (these tables hold rows per segment/field/suggestion)."""
    if not ctx.lake.exists(path):
        return None
    return ctx.lake.read(path).toPandas()


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def _size_chart(runs: pd.DataFrame, target: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if runs.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for segment, rows in runs.sort_values("EvaluatedAt").groupby("Segment"):
        ax.plot(range(1, len(rows) + 1), rows["Members"], marker="o", label=str(segment))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("run")
    ax.set_ylabel("members")
    ax.set_title("Segment size over runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def _segments(ctx: Context, reports: Path, customers: int) -> str:
    runs = _read(ctx, ctx.lake.segment_runs_path())
    if runs is None or runs.empty:
        return "<p>No segment has run yet.</p>"
    latest = (
        runs.sort_values("EvaluatedAt").groupby("Segment").tail(1).sort_values("Segment").copy()
    )
    latest["% of customers"] = 100.0 * latest["Members"] / max(customers, 1)
    runs_per = runs.groupby("Segment").size().rename("Runs")
    latest = latest.join(runs_per, on="Segment")
    parts = [
        f'<p class="muted">{customers:,} customers in the profile.</p>',
        _table(
            latest,
            [
                "Segment",
                "Name",
                "Type",
                "Members",
                "% of customers",
                "Joined",
                "Left",
                "Runs",
                "TableVersion",
                "Status",
                "AsOf",
            ],
        ),
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
            counts = (
                frame[frame["Kind"].isin(["segment_size", "pair", "exclusive", "all"])]
                if "Kind" in frame
                else frame
            )
            body = _table(
                counts,
                [
                    "Kind",
                    "SegmentA",
                    "SegmentB",
                    "Segments",
                    "Members",
                    "ShareOfA",
                    "ShareOfB",
                    "Jaccard",
                ],
            )
        else:
            body = _table(
                frame.sort_values("Rank") if "Rank" in frame else frame,
                ["Rank", "Field", "Score", "PValue", "PrimaryMean", "OtherMean", "PrimaryMedian", "OtherMedian",
                 "PrimaryNulls", "OtherNulls", "Primary", "CompareTo"],
            )  # fmt: skip
        (overlap_html if kind == "overlap" else diff_html).append(title + body + charts)
    return "".join(overlap_html) or "<p>No overlap insight.</p>", "".join(
        diff_html
    ) or "<p>No differentiators insight.</p>"


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
            quality = summary.get("held_out") or {}
            facts = {
                "source": summary.get("source"),
                "fields": ", ".join(summary.get("fields", [])),
                "pool": summary.get("pool"),
                "members returned": summary.get("members"),
                "cap": summary.get("cap"),
                "method": summary.get("method"),
                "held-out recall": quality.get("recall"),
                "random pick recall": quality.get("random_recall"),
                "lift over random": quality.get("lift"),
            }
            rows = pd.DataFrame(
                [{"what": k, "value": v} for k, v in facts.items() if v is not None]
            )
            parts.append(_table(rows, ["what", "value"]))
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
            cards = []
            for _, r in frame.sort_values("Rank").head(8).iterrows():
                summary = r.get("Summary") or ""
                cards.append(
                    "<div class='card'>"
                    f"<div class='muted'>#{int(r['Rank'])}</div>"
                    f"<div class='big'>{html.escape(str(summary).split(' — ')[0])}</div>"
                    f"<div>{int(r['Members']):,} members · {100 * float(r['Share']):.1f}% of customers · p={float(r['PValue']):.2g}</div>"
                    f"<div class='rules'>{html.escape(str(r['Rules']))}</div></div>"
                )
            parts.append(f"<div class='cards'>{''.join(cards)}</div>")
        parts += [_img(p, p.stem) for p in _pngs(reports / "suggestions" / output)]
    return "".join(parts) or "<p>No suggestion run.</p>"


def write_report(ctx: Context, demo: Any = None) -> str:
    """Write ``<root>/reports/contoso_lab.html`` and return its path."""
    reports = Path(ctx.lake.reports_dir().removeprefix("file:"))
    reports.mkdir(parents=True, exist_ok=True)
    customers = ctx.lake.read(ctx.lake.profile_path(ctx.catalog.profile_entity)).count()
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
        rows = pd.DataFrame([{"stage": k, "seconds": round(v, 1)} for k, v in demo.timings.items()])
        timings = f"<section id='timings'><h2>Time per stage</h2>{_table(rows, ['stage', 'seconds'])}</section>"
    as_of = getattr(demo, "as_of", None)
    subtitle = f"Lakehouse {html.escape(ctx.root)}" + (
        f" · as of {as_of:%Y-%m-%d}" if as_of else ""
    )
    body = "".join(
        f"<section id='{sid}'><h2>{html.escape(title)}</h2>{content}</section>"
        for sid, (title, content) in sections.items()
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Cohortlake · Contoso Coffee lab</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Cohortlake · Contoso Coffee lab</h1><p>{subtitle}</p></header>"
        f"<main>{body}{timings}</main>"
        "<script>window.addEventListener('load',function(){var ok=Array.prototype.every.call("
        "document.images,function(i){return i.complete&&i.naturalWidth>0});"
        "document.body.setAttribute('data-images',ok?'ok':'broken')});</script></body></html>"
    )
    target = reports / "contoso_lab.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    log.info("report written to %s", target)
    return str(target)
