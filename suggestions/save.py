"""Save a suggestion as a dynamic segment definition (``conf/segments/<output_name>.yaml``).

The written ``where`` is the suggestion's ``Definition`` unchanged, so the segment's
members on the same data are the suggestion's members; it is an ordinary definition,
editable like any other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pyspark.sql import DataFrame

from cohortlake.context import Context
from cohortlake.errors import InputError, Problem, RunFailure
from cohortlake.lake import OUTPUT_NAME
from cohortlake.naming import derive_output_name, name_problem, registered_outputs
from cohortlake.outputs import check_user_output
from cohortlake.sources import read_fields
from segmentation.quick import definition_file_name
from suggestions.model import load_suggestion_runs
from suggestions.rules import definition_to_column
from suggestions.run import select_runs

__all__ = ["save_configured_suggestions", "save_suggestion", "suggestion_members", "suggestion_row"]


def suggestion_row(
    ctx: Context,
    output: str,
    rank: int | None = None,
    direction: Literal["above", "below"] | None = None,
) -> dict[str, Any]:
    """The suggestion of that rank, or the strongest above / below average, of a suggestions table.

    For a direction the pick is the largest ``|Strength|`` (``sqrt(share) × difference``)
    among the suggestions on that side (all significant and large enough); ties go to
    the better rank.
    """
    lake = ctx.lake
    path = lake.suggestion_path(output)
    if not lake.exists(path):
        raise RunFailure(
            f"no suggestions table {path}: run `cohortlake suggest --only {output}` first"
        )
    # A suggestions table holds one row per suggestion (tens), never customers.
    rows = sorted((r.asDict() for r in lake.read(path).collect()), key=lambda r: r["Rank"])
    if not rows:
        raise RunFailure(f"{output} holds no suggestion (none was significant)")
    if rank is not None:
        for r in rows:
            if r["Rank"] == rank:
                return r
        raise InputError(
            f"{output} has no suggestion of rank {rank} (ranks 1..{len(rows)})", file="--rank"
        )
    if direction is not None:
        # the strongest by sqrt(share) × difference: purer than the top-ranked by WRAcc,
        # which in that direction is often "everyone but the best group"
        side = [r for r in rows if (r["Effect"] > 0) == (direction == "above")]
        if not side:
            raise RunFailure(f"{output} has no suggestion {direction} average")
        return max(side, key=lambda r: (abs(r["Strength"]), -r["Rank"]))
    return rows[0]


def suggestion_members(ctx: Context, output: str, rank: int) -> DataFrame:
    """The customers (key only) matching a stored suggestion's rule tree."""
    row = suggestion_row(ctx, output, rank)
    definition = json.loads(row["Definition"])
    fields = _fields(definition)
    types: dict[str, str] = {}
    for name in fields:
        ref = ctx.catalog.resolve(name)
        if ref is None:
            raise RunFailure(f"{output} rank {rank} names {name}, which the catalog no longer has")
        types[ref.name] = ref.type
    key = ctx.catalog.key
    lake = ctx.lake
    profile_cols = [n for n in types if ctx.catalog.resolve(n).source == "profile"]  # type: ignore[union-attr]
    measure_cols = [n for n in types if n not in profile_cols]
    df = read_fields(lake, ctx.catalog, profile_cols, measure_cols)
    return df.where(definition_to_column(definition, types)).select(key)


def _fields(node: dict[str, Any]) -> list[str]:
    if "all" in node or "any" in node:
        out: list[str] = []
        for child in node.get("all", node.get("any", [])):
            out += [f for f in _fields(child) if f not in out]
        return out
    if "not" in node:
        return _fields(node["not"])
    return [node["attribute"]]


def save_suggestion(
    ctx: Context,
    output: str,
    rank: int | None = None,
    name: str = "",
    segment_output: str | None = None,
    *,
    direction: Literal["above", "below"] | None = None,
    replace: bool = False,
) -> Path:
    """Write a suggestion as ``<conf>/segments/<snake_case_output>.yaml`` and return the file's path.

    ``segment_output`` defaults to the name's derived output. The output must not be used
    by another definition (ignoring case); an existing file of that name is replaced only
    with ``replace``.
    """
    problems: list[Problem] = []
    if not OUTPUT_NAME.match(output or ""):
        problems.append(
            Problem(
                "--suggestions",
                "",
                f"output name {output!r} must start with a letter and hold only letters and digits (max 128)",
            )
        )
    if not name or len(name) > 200:
        problems.append(Problem("--name", "", "a segment name of 1 to 200 characters is required"))
    elif name_problem(name):
        problems.append(Problem("--name", "", str(name_problem(name))))
    if rank is not None and rank < 1:
        problems.append(Problem("--rank", "", f"rank must be 1 or more, not {rank}"))
    seg_output = segment_output or derive_output_name(name or "")
    if name and not OUTPUT_NAME.match(seg_output):
        where = "--output" if segment_output else "--name"
        problems.append(
            Problem(
                where,
                "",
                f"output name {seg_output!r} must start with a letter and hold only letters and digits (max 128)",
            )
        )
    if problems:
        raise InputError(problems)
    target = ctx.conf_path("segments", definition_file_name(seg_output))
    taken = registered_outputs(ctx.conf_dir).get(seg_output.lower())
    if taken is not None and Path(taken[2]).resolve() != target.resolve():
        raise InputError(
            f"output name {seg_output!r} is already used by {taken[1]} in {taken[2]}",
            file="--output" if segment_output else "--name",
        )
    check_user_output(target, ctx.root, replace, flag="--output" if segment_output else "--name")
    row = suggestion_row(ctx, output, rank, direction)
    document = {
        "name": name,
        "output": seg_output,
        "type": "dynamic",
        "description": f"{row['Summary']} (suggestion {row['Rank']} of {output})",
        "where": json.loads(row["Definition"]),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".yaml.tmp")
    header = f"# Saved from suggestion {row['Rank']} of {output}; edit like any segment.\n"
    tmp.write_text(
        header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    os.replace(tmp, target)
    return target


def save_configured_suggestions(ctx: Context, outputs: Sequence[str] | None = None) -> list[Path]:
    """Apply the ``save:`` entries of the suggestion definitions (replacing earlier saves)."""
    runs = select_runs(load_suggestion_runs(ctx.conf_dir, ctx.catalog), outputs)
    written = []
    for run in runs:
        s = run.spec.save
        if s is None:
            continue
        written.append(
            save_suggestion(
                ctx, run.output, s.rank, s.name, s.output, direction=s.direction, replace=True
            )
        )
    return written
