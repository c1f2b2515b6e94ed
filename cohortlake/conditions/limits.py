"""The condition language's limits on values (docs/reliability.md, "Limits")."""

from __future__ import annotations

import datetime as dt

__all__ = ["MAX_IN_VALUES", "utc"]

# An `in` list is a literal in every Spark plan that tests it; a list longer than this is
# better a table. A 1 MB definition file holds about 150,000 short values.
MAX_IN_VALUES = 10_000


def utc(ts: dt.datetime) -> dt.datetime | None:
    """``ts`` in UTC (a naive time is UTC already), or None when its offset moves it out of
    the calendar (before year 1 or after 9999)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=dt.UTC)
    try:
        return ts.astimezone(dt.UTC)
    except OverflowError:
        return None
