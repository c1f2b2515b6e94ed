"""Preview a segment: member count, the first members, and its size over runs.

Number columns are shown as people write them (``cohortlake.numbers``, docs/numbers.md):
``675.46``, not the ``675.4599999999999`` a sum in binary floating point can store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import functions as F

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem
from cohortlake.memberships import read_membership
from cohortlake.numbers import number_text
from cohortlake.sources import read_fields, read_profile

__all__ = ["SegmentPreview", "preview_segment"]


@dataclass
class SegmentPreview:
    """What ``cohortlake preview`` prints (bounded by ``limit`` and the number of runs).

    ``rows`` hold number columns as their shown text (``cohortlake.numbers``).
    """

    output: str
    members: int
    customers: int
    rows: list[dict[str, Any]]
    history: list[dict[str, Any]]

    def render(self) -> str:
        share = 100.0 * self.members / self.customers if self.customers else 0.0
        lines = [
            f"{self.output}: {self.members:,} members ({share:.1f}% of {self.customers:,} customers)"
        ]
        if self.rows:
            cols = list(self.rows[0])
            widths = [max(len(c), *(len(_cell(r[c])) for r in self.rows)) for c in cols]
            lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
            for r in self.rows:
                lines.append(
                    "  ".join(_cell(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True))
                )
        if self.history:
            lines.append("size over runs:")
            for h in self.history:
                lines.append(
                    f"  {h['EvaluatedAt']:%Y-%m-%d %H:%M:%S}  as of {h['AsOf']:%Y-%m-%d}  {h['Status']:<9} "
                    f"{h['Members']:>9,}  +{h['Joined']:,} / -{h['Left']:,}  v{h['TableVersion']}"
                )
        return "\n".join(lines)


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def _decimals(ctx: Context, column: str) -> int | None:
    ref = ctx.catalog.resolve(column)
    return ref.decimals if ref is not None else None


def preview_segment(
    ctx: Context, output: str, limit: int = 10, columns: Sequence[str] = ()
) -> SegmentPreview:
    """Count, first ``limit`` members (ordered by key) with chosen profile/measure columns, history."""
    key = ctx.catalog.key
    resolved: list[tuple[str, str]] = []
    problems = []
    for i, name in enumerate(columns):
        ref = ctx.catalog.resolve(name)
        if ref is None:
            near = ctx.catalog.suggest(name)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            problems.append(Problem("--columns", f"[{i}]", f"unknown attribute {name!r}{hint}"))
        else:
            resolved.append((ref.name, ref.source))
    if problems:
        raise InputError(problems)
    lake = ctx.lake
    members = read_membership(lake, output, key)
    customers = read_profile(lake, ctx.catalog).count()
    frame = members.select(key)
    profile_cols = [n for n, s in resolved if s == "profile"]
    measure_cols = [n for n, s in resolved if s == "measure"]
    if profile_cols or measure_cols:
        fields = read_fields(lake, ctx.catalog, profile_cols, measure_cols)
        frame = frame.join(fields, key, "left")
    chosen = frame.select(key, *[n for n, _ in resolved]).orderBy(key).limit(limit)
    shown = chosen.select(
        *[
            number_text(F.col(f.name), f.dataType, _decimals(ctx, f.name)).alias(f.name)
            for f in chosen.schema.fields
        ]
    )
    rows = [r.asDict() for r in shown.collect()]
    history: list[dict[str, Any]] = []
    runs = lake.segment_runs()
    if runs is not None:
        history = [
            r.asDict()
            for r in runs.filter(F.lower("Segment") == output.lower())
            .orderBy("EvaluatedAt")
            .collect()
        ]
    return SegmentPreview(output, members.count(), customers, rows, history)
