"""Python values as people read them, one rule for the report, charts and summaries.

Shares as percentages with one decimal, counts with thousands separators, money and
measures with two decimals, p-values with three (or ``< 0.001``), and long labels
wrapped where they can be broken.
"""

from __future__ import annotations

import numbers
import re
import textwrap
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "format_count",
    "format_measure",
    "format_pvalue",
    "format_share",
    "is_money",
    "missing",
    "wrap_label",
]


def missing(v: Any) -> bool:
    """None, NaN or NaT (a list or array is a value, even when empty)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def format_share(v: Any) -> str:
    """A share (a fraction, 0.1494) as a percentage with one decimal: ``14.9%``."""
    return "" if missing(v) else f"{100 * float(v):.1f}%"


def format_count(v: Any) -> str:
    """A count with thousands separators: ``2,168``."""
    if missing(v):
        return ""
    return f"{int(v):,}" if isinstance(v, numbers.Integral) else f"{round(float(v)):,}"


def format_measure(v: Any, money: bool = False) -> str:
    """A measure with two decimals (``1,015.23``); money with its sign: ``$1,015.23``."""
    if missing(v):
        return ""
    x = float(v)
    if not money:
        return f"{x:,.2f}"
    return ("-$" if x < 0 and f"{-x:.2f}" != "0.00" else "$") + f"{abs(x):,.2f}"


def format_pvalue(v: Any) -> str:
    """A p-value with three decimals, or ``< 0.001``."""
    if missing(v):
        return ""
    return "< 0.001" if float(v) < 0.001 else f"{float(v):.3f}"


def is_money(label: str) -> bool:
    """Whether a field's display name says it is in dollars (the catalog's ``... ($)``)."""
    return label.rstrip().endswith("($)")


def wrap_label(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters where it can be broken.

    Words longer than ``width`` (segment outputs such as ``HighValueOnlineCustomers``)
    are broken at their CamelCase humps first.
    """
    words: list[str] = []
    for word in text.split():
        if len(word) <= width:
            words.append(word)
            continue
        line = ""
        for hump in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[^A-Za-z0-9]+", word):
            if line and len(line) + len(hump) > width:
                words.append(line)
                line = ""
            line += hump
        words.append(line)
    return "\n".join(textwrap.wrap(" ".join(words), width, break_on_hyphens=False)) or text
