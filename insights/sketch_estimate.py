"""The estimated size of a condition made of segment leaves, from their theta sketches.

The condition is the segment language's tree (``docs/segment-language.md``) with only
``all``, ``any``, ``not`` and segment leaves. It becomes one Spark expression over the
latest sketches: ``all`` intersects (``theta_intersection``), its ``not`` children are
taken away one by one (``theta_difference``, which keeps the larger theta of the two,
so ``A and not B`` is as precise as A and B allow), ``any`` unites (``theta_union`` at
lgK 12) and any other ``not X`` is the whole profile minus X. The profile's sketch is
the newest one a segment run recorded (``Segment = '*'``); before any run it is
computed on demand from the profile table (one scan of the key column, not stored).
The estimate is Spark's ``theta_sketch_estimate``; its bounds come from the resulting
sketch's retained count and theta (``insights.theta.bounds``). Attribute and related
leaves need the data itself, so a tree with one is bad input: it needs a run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.conditions import All, AnyOf, Node, Not, SegmentLeaf
from cohortlake.conditions.validate import ConditionValidator, Scope, join_path
from cohortlake.config import load_document
from cohortlake.context import Context
from cohortlake.errors import InputError, Problem
from cohortlake.naming import registered_outputs
from cohortlake.sketches import LG_K, PROFILE, SketchRow, latest_sketches, profile_sketch
from cohortlake.sources import profile_ref, ref_version
from insights.theta import bounds, decode, load_sketches

__all__ = ["SetEstimate", "estimate_condition", "parse_condition", "segment_outputs"]

_SEGMENT_KINDS = ("segments", "expansions")


@dataclass(frozen=True)
class SetEstimate:
    """A condition's estimated size with 3-sigma bounds, and the sketches it used."""

    estimate: int
    low: float
    high: float
    sketches: tuple[SketchRow, ...]
    profile_on_demand: bool = False


def segment_outputs(conf_dir: str | Path) -> dict[str, str]:
    """Lower-cased output name -> output, for every segment and expansion in conf."""
    found = registered_outputs(Path(conf_dir), _SEGMENT_KINDS)
    return {k: v[0] for k, v in found.items()}


def _leaves(raw: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """``(kind, path, value)`` of every leaf of a raw tree, in document order."""
    if not isinstance(raw, dict):
        return
    for kind in ("all", "any"):
        if isinstance(raw.get(kind), list):
            for i, child in enumerate(raw[kind]):
                yield from _leaves(child, join_path(join_path(path, kind), i))
            return
    if "not" in raw:
        yield from _leaves(raw["not"], join_path(path, "not"))
        return
    for kind in ("attribute", "related", "segment"):
        if kind in raw:
            yield kind, join_path(path, kind), raw[kind]
            return


def parse_condition(
    ctx: Context, *, where: str | None = None, file: str | None = None
) -> tuple[Node, list[tuple[str, str]], str]:
    """Read and validate a condition given as YAML/JSON text or in a file (a bare
    condition, or one segment definition whose ``where`` is used).

    Returns the tree, ``(path, output)`` of each segment leaf, and the source's name.
    """
    if (where is None) == (file is None):
        raise InputError("give the condition with --where or --file (one of them)", file="estimate")
    source = "--where" if where is not None else str(file)
    base = ""
    if where is not None:
        try:
            raw = yaml.safe_load(where)
        except yaml.YAMLError as exc:
            reason = str(exc).splitlines()[0]
            raise InputError(f"invalid YAML or JSON: {reason}", file=source) from None
    else:
        raw = load_document(str(file))
        if isinstance(raw, dict) and "where" in raw:
            raw, base = raw["where"], "where"
    for kind, path, _ in _leaves(raw, base):
        if kind != "segment":
            reason = (
                f"{'an attribute' if kind == 'attribute' else 'a related'} leaf needs a run: "
                "estimates from sketches take only segment leaves with all, any and not"
            )
            raise InputError(reason, file=source, path=path)
    check = ConditionValidator(ctx.catalog, source, segment_outputs(ctx.conf_dir))
    node = check.node(raw, base, Scope())
    if check.problems or node is None:
        raise InputError(check.problems or [Problem(source, base, "invalid condition")])
    named = check.segments
    leaves = [(path, named[str(v).strip().lower()]) for _, path, v in _leaves(raw, base)]
    return node, leaves, source


def _uses_profile(node: Node) -> bool:
    match node:
        case All(children):
            positive = any(not isinstance(c, Not) for c in children)
            return any(
                _uses_profile(c.child if positive and isinstance(c, Not) else c) for c in children
            )
        case AnyOf(children):
            return any(_uses_profile(c) for c in children)
        case Not():
            return True
    return False


def _expression(node: Node, column: dict[str, str]) -> Column:
    """The sketch of ``node``'s members, as a Spark expression over one row of sketches."""
    match node:
        case SegmentLeaf(output):
            return F.col(column[output.lower()])
        case All(children):
            positive = [_expression(c, column) for c in children if not isinstance(c, Not)]
            negative = [_expression(c.child, column) for c in children if isinstance(c, Not)]
            kept = (
                functools.reduce(F.theta_intersection, positive)
                if positive
                else F.col(column[PROFILE])
            )
            return functools.reduce(F.theta_difference, negative, kept)
        case AnyOf(children):
            parts = [_expression(c, column) for c in children]
            return functools.reduce(lambda a, b: F.theta_union(a, b, LG_K), parts)
        case Not(child):
            return F.theta_difference(F.col(column[PROFILE]), _expression(child, column))
    raise InputError(f"{type(node).__name__} leaves need a run", file="estimate")


def estimate_condition(
    ctx: Context, node: Node, leaves: list[tuple[str, str]], source: str
) -> SetEstimate:
    """Estimate the size of a validated segment-leaf tree from the latest sketches."""
    outputs = list(dict.fromkeys(output for _, output in leaves))
    paths = [next(p for p, o in leaves if o == output) for output in outputs]
    rows = load_sketches(ctx.lake, outputs, source, paths)
    on_demand = False
    if _uses_profile(node):
        profile = latest_sketches(ctx.lake, [PROFILE]).get(PROFILE)
        if profile is None:
            profile, on_demand = _profile_sketch(ctx), True
        rows.append(profile)
    column = {r.segment.lower(): f"s{i}" for i, r in enumerate(rows)}
    schema = T.StructType([T.StructField(f"s{i}", T.BinaryType()) for i in range(len(rows))])
    one = ctx.spark.createDataFrame([tuple(r.sketch for r in rows)], schema)
    result = one.select(_expression(node, column).alias("r")).select(
        "r", F.theta_sketch_estimate("r").alias("n")
    )
    found = result.first()
    assert found is not None, "one row in, one row out"
    decoded = decode(bytes(found["r"]))
    low, high = bounds(float(len(decoded.hashes)), decoded.theta)
    return SetEstimate(int(found["n"]), float(low), float(high), tuple(rows), on_demand)


def _profile_sketch(ctx: Context) -> SketchRow:
    """The whole profile's sketch, computed now (no segment run has recorded one yet)."""
    ctx.check_tables(profile=True)
    lake = ctx.lake
    version = ref_version(lake, profile_ref(lake, ctx.catalog)) or 0
    return profile_sketch(lake, ctx.catalog, "on-demand", version)
