"""The differentiators' p-values: Mann-Whitney for numbers, chi-square for categories.

Both work from counts the Spark pass already summed, so they cost nothing per customer.
"""

from __future__ import annotations

import math

from scipy import stats

__all__ = ["chi_square_p", "mann_whitney_p"]


def mann_whitney_p(u_primary: float, n1: int, n2: int, ties: float) -> float | None:
    """Two-sided asymptotic Mann–Whitney p-value with tie and continuity correction."""
    if n1 == 0 or n2 == 0:
        return None
    n = n1 + n2
    u = max(u_primary, n1 * n2 - u_primary)
    mu = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - (ties / (n * (n - 1)) if n > 1 else 0.0))
    if var <= 0:
        return 1.0
    z = (u - mu - 0.5) / math.sqrt(var)
    return float(min(max(2.0 * stats.norm.sf(z), 0.0), 1.0))


def chi_square_p(chi2: float, categories: int) -> float:
    """The chi-square test's p-value over ``categories`` (1.0 for a single category)."""
    return float(stats.chi2.sf(chi2, categories - 1)) if categories > 1 else 1.0
