"""What every insight chart shares: the segment colours and a title that fits."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from cohortlake.display import wrap_label

__all__ = ["COLORS", "TEXT_COLORS", "heading"]

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
TEXT_COLORS = ["#174f7a", "#a34f00", "#1d6e1d", "#8e1b1b", "#5e3b80", "#5a3a33"]


def heading(fig: Figure, text: str, fontsize: float = 12) -> Text:
    """The figure's title, wrapped until every line fits the figure's width."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    width = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    heading = fig.suptitle(wrap_label(text, width), fontsize=fontsize)
    while heading.get_window_extent(renderer).width > 0.96 * fig.bbox.width and width > 12:
        width -= 4
        heading.set_text(wrap_label(text, width))
    return heading
