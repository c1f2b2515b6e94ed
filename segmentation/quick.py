"""Quick create (the lab's "Create from Profiles / Measures"): one condition, its data, a file.

Shows the field's top-10 values (text, boolean) or its percentile table and chart
(numbers), the estimated size of the segment, and writes the definition file with the
derived output name. An existing file with the same definition is left as it is.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import functions as F

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem
from cohortlake.naming import load_definition_file, registered_outputs
from cohortlake.outputs import check_user_output
from segmentation.compile import CustomerFrame
from segmentation.model import ALIASES, OPERATORS, SegmentDefinition
from segmentation.validate import parse_definitions

__all__ = ["QuickCreate", "definition_file_name", "quick_create"]

log = logging.getLogger(__name__)

PERCENTILES = tuple(range(0, 101))
_SHOWN = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 100)


@dataclass
class QuickCreate:
    """What quick create found and did."""

    definition: SegmentDefinition
    raw: dict[str, Any]
    path: Path
    status: str
    members: int
    customers: int
    top_values: list[tuple[Any, int]] | None = None
    percentiles: list[tuple[int, float]] | None = None
    chart: str | None = None
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        d = self.definition
        share = 100.0 * self.members / self.customers if self.customers else 0.0
        lines = [f"{d.name} ({d.output})"]
        if self.top_values is not None:
            lines.append("top values:")
            lines += [f"  {'(null)' if v is None else v!s:<30} {n:>9,}" for v, n in self.top_values]
        if self.percentiles is not None:
            lines.append("percentiles:")
            lines += [f"  p{p:<3} {v:>14,.2f}" for p, v in self.percentiles if p in _SHOWN]
        if self.chart:
            lines.append(f"percentile chart: {self.chart}")
        lines.append(
            f"estimated size: {self.members:,} of {self.customers:,} customers ({share:.1f}%)"
        )
        lines.append(f"definition {self.status}: {self.path}")
        return "\n".join(lines)


def definition_file_name(output: str) -> str:
    """``CustomersFromCalifornia`` -> ``customers_from_california.yaml``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", output).lower() + ".yaml"


def _parse_value(text: str | None, ftype: str, op: str) -> Any:
    op = ALIASES.get(op, op)
    if op in ("is_null", "is_not_null"):
        if text is not None:
            raise InputError(f"operator {op!r} takes no value", file="--value")
        return None
    if text is None:
        raise InputError(f"operator {op!r} needs a value", file="--value")
    if op in ("in", "not_in", "between"):
        return [_scalar(part.strip(), ftype) for part in text.split(",")]
    if op == "in_last":
        m = re.fullmatch(r"\s*(\d+)\s*(days|weeks|months|years)\s*", text)
        if not m:
            raise InputError(f"expected 'N days|weeks|months|years', got {text!r}", file="--value")
        return {"n": int(m.group(1)), "unit": m.group(2)}
    return _scalar(text, ftype)


def _scalar(text: str, ftype: str) -> Any:
    try:
        if ftype == "number":
            return float(text)
        if ftype == "integer":
            return int(text)
    except ValueError:
        raise InputError(f"expected a {ftype}, got {text!r}", file="--value") from None
    if ftype == "boolean":
        if text.lower() not in ("true", "false"):
            raise InputError(f"expected true or false, got {text!r}", file="--value")
        return text.lower() == "true"
    return text


def quick_create(
    ctx: Context,
    *,
    field_name: str,
    op: str,
    value: str | None,
    name: str | None = None,
    out_dir: Path | None = None,
    as_of: dt.datetime | None = None,
    force: bool = False,
    write: bool = True,
) -> QuickCreate:
    """Validate the one-condition segment, show its data, write its definition file.

    With ``write=False`` nothing is written (a notebook over a lakehouse it must not
    change): the status says whether the file would be written.
    """
    ref = ctx.catalog.resolve(field_name)
    if ref is None:
        near = ctx.catalog.suggest(field_name)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InputError(f"unknown attribute {field_name!r}{hint}", file="--field")
    if ALIASES.get(op, op) not in OPERATORS:
        raise InputError(f"unknown operator {op!r}", file="--op")
    parsed = _parse_value(value, ref.type, op)
    label = f"{ref.display} {op} {value}" if value is not None else f"{ref.display} {op}"
    raw: dict[str, Any] = {
        "name": name or label,
        "type": "dynamic",
        "where": {"attribute": ref.name, "op": op},
    }
    if parsed is not None:
        raw["where"]["value"] = parsed
    registry = registered_outputs(ctx.conf_dir)
    known = {k: v[0] for k, v in registry.items() if v[1] in ("segments", "expansions")}
    (definition,) = parse_definitions([("quick-create", raw)], ctx.catalog, known)
    path = (out_dir or ctx.conf_path("segments")) / definition_file_name(definition.output)
    if out_dir is not None:  # a folder the user named; an existing file is --force's
        check_user_output(path, ctx.root, replace=True, flag="--out")
    status = _status(path, definition, ctx, force, registry)
    lake = ctx.lake  # Columns are built through the session: start it (validation is done)
    frame = CustomerFrame(ctx.catalog, as_of or dt.datetime.now(dt.UTC))
    test = frame.condition(definition.where)
    ctx.check_tables(measures=bool(frame.measure_columns))
    base = frame.build(lake)
    counts = base.agg(F.count(F.lit(1)).alias("n"), F.sum(test.cast("long")).alias("m")).first()
    customers, members = (int(counts["n"]), int(counts["m"] or 0)) if counts else (0, 0)
    result = QuickCreate(definition, raw, path, status, members, customers)
    column = F.col(ref.name)
    if ref.type in ("number", "integer"):
        fractions = [p / 100 for p in PERCENTILES]
        row = base.agg(
            F.percentile_approx(column.cast("double"), fractions, 10000).alias("p")
        ).first()
        values = list(row["p"] or []) if row else []
        result.percentiles = list(zip(PERCENTILES, values, strict=False))
        reports = ctx.lake.reports_dir()
        if values and ("://" not in reports or reports.startswith("file:")):  # local charts only
            result.chart = _chart(ctx, definition, ref.display, result.percentiles, parsed)
    else:
        top = (
            base.groupBy(column.alias("v"))
            .count()
            .orderBy(F.desc("count"), F.asc_nulls_last("v"))
            .limit(10)
            .collect()
        )
        result.top_values = [(r["v"], int(r["count"])) for r in top]
    if status == "written":
        if write:
            _write(path, raw)
        else:
            result.status = "not written (preview only)"
    log.info("quick create %s: %d of %d customers", definition.output, members, customers)
    return result


def _status(
    path: Path,
    definition: SegmentDefinition,
    ctx: Context,
    force: bool,
    registry: dict[str, tuple[str, str, str]],
) -> str:
    """'unchanged' when the file holds the same definition, else 'written' (if allowed)."""
    if path.exists():
        existing = parse_definitions(
            [(str(path), load_definition_file(path))],
            ctx.catalog,
            {k: v[0] for k, v in registry.items()},
        )
        if len(existing) == 1 and existing[0].definition_hash == definition.definition_hash:
            return "unchanged"
        if not force:
            raise InputError(
                Problem(
                    str(path),
                    "",
                    f"the file holds {len(existing)} definitions; pass --force to replace them all"
                    if len(existing) > 1
                    else "a different definition exists; pass --force to replace it",
                )
            )
    else:
        taken = registry.get(definition.output.lower())
        if taken is not None and not force:
            raise InputError(
                Problem(
                    taken[2],
                    "output",
                    f"output name {definition.output!r} is already used by {taken[1]}",
                )
            )
    return "written"


def _write(path: Path, raw: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(
        "# Written by `cohortlake quick-create`; edit freely.\n"
        + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    )
    tmp.replace(path)


def _chart(
    ctx: Context, d: SegmentDefinition, label: str, points: list[tuple[int, float]], threshold: Any
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = Path(ctx.lake.reports_dir().removeprefix("file:")) / "quick"
    reports.mkdir(parents=True, exist_ok=True)
    target = reports / f"{d.output}_percentiles.png"
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([p for p, _ in points], [v for _, v in points], color="#2f6db5", linewidth=2)
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        ax.axhline(threshold, color="#d9534f", linestyle="--", label=f"threshold {threshold:g}")
        ax.legend(loc="upper left")
    ax.set_xlabel("percentile of customers")
    ax.set_ylabel(label)
    ax.set_title(f"{label} by percentile")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return str(target)
