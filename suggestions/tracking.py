"""MLflow record of a mining run, and the chart of its top suggestions.

One MLflow run per mining run (experiment ``cohortlake-suggestions``): the definition as
parameters; candidates, kept and best effect as metrics; the suggestions as JSON and CSV,
every scored candidate as CSV, the tree as text, the chart, and the fitted Spark
``PipelineModel`` (saved with ``model.write()`` into a temporary folder by ``save_model``,
while the run goes on, and logged as the
``model`` artifact folder; load it with ``PipelineModel.load``). ``mlflow.spark.log_model``
is not used: it needs the model to round-trip through a DFS temp path and pulls in a
conda/pip environment capture that is slow and fails offline.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel

__all__ = ["draw_chart", "log_run", "save_model"]

log = logging.getLogger(__name__)


def draw_chart(rows: Sequence[dict[str, Any]], path: Path, title: str, top: int = 10) -> Path:
    """A horizontal bar chart: each top suggestion's value next to the overall value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(rows[:top])
    height = 1.2 + 0.55 * max(1, len(shown))
    fig, ax = plt.subplots(figsize=(10, height))
    if shown:
        labels = [
            f"#{r['Rank']} "
            + _short(str(r["Rules"]))
            + (f"  [{r['Category']}]" if r.get("Category") else "")
            for r in shown
        ]
        ys = list(range(len(shown)))[::-1]
        seg = [float(r["SegmentValue"]) for r in shown]
        overall = [float(r["OverallValue"]) for r in shown]
        ax.barh([y + 0.2 for y in ys], seg, height=0.4, label="suggestion", color="#2b7bba")
        ax.barh([y - 0.2 for y in ys], overall, height=0.4, label="all customers", color="#bbbbbb")
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=8)
        ax.legend(loc="lower right", fontsize=8)
        if any(r.get("Category") for r in shown):
            from matplotlib.ticker import PercentFormatter

            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xlabel("share of the members in the category (%)")
        else:
            ax.set_xlabel(f"mean {shown[0].get('Target', 'target')}")
    else:
        ax.text(
            0.5, 0.5, "no significant suggestion", ha="center", va="center", transform=ax.transAxes
        )
        ax.set_yticks([])
    ax.set_title(textwrap.fill(title, 100), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        if not rows:
            fh.write("")
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
            )


def log_run(
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    suggestions: Sequence[dict[str, Any]],
    candidates: Sequence[dict[str, Any]],
    tree_text: str,
    chart: Path,
    model_dir: Path | None,
) -> None:
    """Log everything into the active MLflow run (``model_dir`` from ``save_model``)."""
    import mlflow

    mlflow.log_params(
        {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in params.items()}
    )
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    with tempfile.TemporaryDirectory(prefix="cohortlake-suggest-") as tmp:
        d = Path(tmp)
        (d / "suggestions.json").write_text(
            json.dumps(list(suggestions), indent=2, default=str), encoding="utf-8"
        )
        _write_csv(suggestions, d / "suggestions.csv")
        _write_csv(candidates, d / "candidates.csv")
        (d / "tree.txt").write_text(tree_text, encoding="utf-8")
        for name in ("suggestions.json", "suggestions.csv", "candidates.csv", "tree.txt"):
            mlflow.log_artifact(str(d / name))
        mlflow.log_artifact(str(chart))
        if model_dir is not None:
            mlflow.log_artifacts(str(model_dir), "model")


def save_model(model: PipelineModel, folder: Path) -> Path:
    """Save ``model`` into a local ``folder`` for ``log_run`` (Spark jobs; run it beside others)."""
    model.write().overwrite().save(folder.as_uri())
    return folder
