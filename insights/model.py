"""Insight definitions in ``conf/insights/``: parsed with pydantic, checked against the catalog.

A file holds one definition, several separated by ``---`` lines, or a list of them under
``insights:``::

    name: High Value Online Overlapped with California Customers
    output: HighValueOnlineOverlappedwithCaliforniaCustomers   # optional, derived from name
    kind: overlap                  # overlap | differentiators
    description: ...               # optional
    segments: [HighValueOnlineCustomers, CustomersFromCalifornia]   # 2..50 output names
    fields: []                     # optional: attributes/measures to compare among the groups

    name: High Value Online vs Customers from California
    output: HighValueOnlinevsCustomersfromCalifornia
    kind: differentiators
    primary: HighValueOnlineCustomers
    compare_to: CustomersFromCalifornia   # a segment, or all_others (the default)
    fields: [RewardPoints, LifetimeSpend] # default: every non-personal attribute and measure

    name: Catalogue overlap
    kind: estimated_overlap        # from the segments' theta sketches (insights.theta)
    segments: all                  # or a list of 2 or more output names
    with: HighValueOnlineCustomers # optional: only this segment against every other
    top: 50                        # optional: the best 50 pairs; by: shared (default) | jaccard

Segment names match the output names of ``conf/segments`` and ``conf/expansions``
ignoring case; field names match catalog names or display names ignoring case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cohortlake.catalog import Catalog, FieldRef
from cohortlake.config import pydantic_problems
from cohortlake.errors import InputError, Problem
from cohortlake.lake import OUTPUT_NAME
from cohortlake.naming import (
    DefinitionName,
    derive_output_name,
    read_definition_files,
    registered_outputs,
    split_documents,
)

__all__ = [
    "ALL_OTHERS",
    "DISTRIBUTIONS_SUFFIX",
    "MAX_SEGMENTS",
    "DifferentiatorsDefinition",
    "EstimatedOverlapDefinition",
    "InsightDefinition",
    "OverlapDefinition",
    "load_insights",
    "validate_insight",
]

ALL_OTHERS = "all_others"
MAX_SEGMENTS = 50
DISTRIBUTIONS_SUFFIX = "Distributions"
_SEGMENT_KINDS = ("segments", "expansions")
_KIND_NOUN = {
    "segments": "segment",
    "insights": "insight",
    "expansions": "expansion",
    "suggestions": "suggestion",
}


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DefinitionName
    output: str | None = None
    description: str | None = None


class _OverlapModel(_Base):
    kind: Literal["overlap"]
    segments: list[str]
    fields: list[str] = Field(default_factory=list)

    @field_validator("segments")
    @classmethod
    def _count(cls, v: list[str]) -> list[str]:
        if not 2 <= len(v) <= MAX_SEGMENTS:
            raise ValueError(f"overlap needs 2 to {MAX_SEGMENTS} segments, got {len(v)}")
        return v


class _DifferentiatorsModel(_Base):
    kind: Literal["differentiators"]
    primary: str
    compare_to: str = ALL_OTHERS
    fields: list[str] | None = None


class _EstimatedOverlapModel(_Base):
    kind: Literal["estimated_overlap"]
    segments: list[str] | Literal["all"] = "all"
    with_: str | None = Field(default=None, alias="with")
    top: int | None = Field(default=None, ge=1)
    by: Literal["shared", "jaccard"] = "shared"


@dataclass(frozen=True)
class OverlapDefinition:
    """Overlap of 2..50 segments; ``segments`` hold the canonical output names."""

    name: str
    output: str
    segments: tuple[str, ...]
    fields: tuple[FieldRef, ...]
    file: str
    description: str | None = None
    kind: str = "overlap"


@dataclass(frozen=True)
class DifferentiatorsDefinition:
    """A primary segment against another segment (or ``None``: all other customers)."""

    name: str
    output: str
    primary: str
    compare_to: str | None
    fields: tuple[FieldRef, ...]
    file: str
    description: str | None = None
    kind: str = "differentiators"

    @property
    def distributions_output(self) -> str:
        return self.output + DISTRIBUTIONS_SUFFIX


@dataclass(frozen=True)
class EstimatedOverlapDefinition:
    """Pairwise overlap estimated from sketches: ``segments`` None means every segment."""

    name: str
    output: str
    segments: tuple[str, ...] | None
    with_: str | None
    top: int | None
    by: str
    file: str
    description: str | None = None
    kind: str = "estimated_overlap"
    fields: tuple[FieldRef, ...] = ()


InsightDefinition = OverlapDefinition | DifferentiatorsDefinition | EstimatedOverlapDefinition


def _documents(data: Any) -> list[tuple[str, Any]]:
    """A file's definitions: one or more ``---`` documents, each one or a list under ``insights``."""
    return split_documents(data, _listed)


def _listed(data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, dict) and "name" not in data and isinstance(data.get("insights"), list):
        return [(f"insights[{i}]", d) for i, d in enumerate(data["insights"])]
    return [("", data)]


def _at(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path


class _Checker:
    """Resolves segment and field references, collecting problems instead of stopping."""

    def __init__(
        self, catalog: Catalog, registry: dict[str, tuple[str, str, str]], file: str, prefix: str
    ):
        self.catalog = catalog
        self.registry = registry
        self.file = file
        self.prefix = prefix
        self.problems: list[Problem] = []

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(Problem(self.file, _at(self.prefix, path), reason))

    def segment(self, ref: str, path: str) -> str | None:
        entry = self.registry.get(ref.strip().lower())
        if entry is None:
            known = [o for o, k, _ in self.registry.values() if k in _SEGMENT_KINDS]
            near = self.catalog.suggest(ref, known)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            self.problem(path, f"unknown segment {ref!r}{hint}")
            return None
        output, kind, where = entry
        if kind not in _SEGMENT_KINDS:
            self.problem(
                path, f"{output!r} is an {_KIND_NOUN.get(kind, kind)} in {where}, not a segment"
            )
            return None
        return output

    def fields(self, names: list[str], path: str) -> tuple[FieldRef, ...]:
        found: list[FieldRef] = []
        seen: set[str] = set()
        for i, name in enumerate(names):
            ref = self.catalog.resolve(name) if isinstance(name, str) else None
            if ref is None:
                near = self.catalog.suggest(str(name))
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                self.problem(f"{path}[{i}]", f"unknown field {name!r}{hint}")
            elif ref.name in seen:
                self.problem(f"{path}[{i}]", f"field {ref.name!r} is listed twice")
            else:
                seen.add(ref.name)
                found.append(ref)
        return tuple(found)

    def output(self, model: _Base) -> str | None:
        output = model.output or derive_output_name(model.name)
        if not output:
            self.problem(
                "name", "the name derives to an empty output name; give an explicit output"
            )
            return None
        if not OUTPUT_NAME.match(output):
            where = "output" if model.output else "name"
            self.problem(
                where,
                f"output name {output!r} must start with a letter and hold only letters and digits (max 128)"
                + ("" if model.output else "; give an explicit output"),
            )
            return None
        entry = self.registry.get(output.lower())
        if entry is not None and (entry[1] != "insights" or entry[2] != self.file):
            where = "output" if model.output else "name"
            self.problem(
                where,
                f"output name {output!r} is already used by {_KIND_NOUN.get(entry[1], entry[1])} in {entry[2]}",
            )
            return None
        return output


def validate_insight(
    data: Any,
    catalog: Catalog,
    registry: dict[str, tuple[str, str, str]],
    file: str,
    prefix: str = "",
) -> tuple[InsightDefinition | None, list[Problem]]:
    """Validate one definition document; returns the definition or the problems found."""
    if not isinstance(data, dict):
        return None, [
            Problem(file, prefix, "expected a mapping with name, kind and segments or primary")
        ]
    kind = data.get("kind")
    model_cls: type[_Base]
    if kind == "overlap":
        model_cls = _OverlapModel
    elif kind == "differentiators":
        model_cls = _DifferentiatorsModel
    elif kind == "estimated_overlap":
        model_cls = _EstimatedOverlapModel
    else:
        reason = "required key is missing" if kind is None else f"unknown kind {kind!r}"
        return None, [
            Problem(file, _at(prefix, "kind"), f"{reason} (expected overlap or differentiators)")
        ]
    loc: tuple[int | str, ...] = ()
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(file, exc, loc)
        return None, [Problem(p.file, _at(prefix, p.path), p.reason) for p in problems]
    check = _Checker(catalog, registry, file, prefix)
    output = check.output(model)
    if isinstance(model, _EstimatedOverlapModel):
        return _estimated(model, check, output, file)
    if isinstance(model, _OverlapModel):
        segments: list[str] = []
        for i, ref in enumerate(model.segments):
            seg = check.segment(ref, f"segments[{i}]")
            if seg is None:
                continue
            if seg in segments:
                check.problem(f"segments[{i}]", f"segment {seg!r} is listed twice")
            segments.append(seg)
        fields = check.fields(model.fields, "fields")
        if check.problems or output is None:
            return None, check.problems
        return OverlapDefinition(
            model.name, output, tuple(segments), fields, file, model.description
        ), []
    assert isinstance(model, _DifferentiatorsModel)
    primary = check.segment(model.primary, "primary")
    other: str | None = None
    if model.compare_to.strip().lower() != ALL_OTHERS:
        other = check.segment(model.compare_to, "compare_to")
        if other is not None and primary is not None and other == primary:
            check.problem(
                "compare_to", f"compare_to must differ from the primary segment {primary!r}"
            )
    if model.fields:
        fields = check.fields(model.fields, "fields")
    else:
        fields = tuple(f for f in catalog.fields() if not f.personal and f.name != catalog.key)
    if output is not None:
        dist = output + DISTRIBUTIONS_SUFFIX
        if not OUTPUT_NAME.match(dist):
            check.problem(
                "output" if model.output else "name",
                f"output name {output!r} is too long for {dist!r}",
            )
        elif dist.lower() in registry:
            check.problem(
                "output" if model.output else "name",
                f"{dist!r} (the distributions table) is already an output name",
            )
    if check.problems or output is None or primary is None:
        return None, check.problems
    return DifferentiatorsDefinition(
        model.name, output, primary, other, fields, file, model.description
    ), []


def _estimated(
    model: _EstimatedOverlapModel, check: _Checker, output: str | None, file: str
) -> tuple[InsightDefinition | None, list[Problem]]:
    segments: list[str] | None = None
    if isinstance(model.segments, list):
        if len(model.segments) < 2:
            check.problem(
                "segments", f"name 2 or more segments or 'all', got {len(model.segments)}"
            )
        found = [check.segment(ref, f"segments[{i}]") for i, ref in enumerate(model.segments)]
        segments = list(dict.fromkeys(s for s in found if s is not None))
    with_ = check.segment(model.with_, "with") if model.with_ is not None else None
    if with_ is not None and segments is not None and with_ not in segments:
        segments.append(with_)
    if check.problems or output is None:
        return None, check.problems
    return EstimatedOverlapDefinition(
        model.name, output, None if segments is None else tuple(segments), with_,
        model.top, model.by, file, model.description,
    ), []  # fmt: skip


def load_insights(conf_dir: str | Path, catalog: Catalog) -> list[InsightDefinition]:
    """Read and validate every definition in ``<conf>/insights``; all problems at once."""
    conf = Path(conf_dir)
    registry = registered_outputs(conf)
    definitions: list[InsightDefinition] = []
    outputs: dict[str, tuple[str, str]] = {}
    files, problems = read_definition_files(conf / "insights")
    for file, data in files:
        for prefix, doc in _documents(data):
            definition, found = validate_insight(doc, catalog, registry, file, prefix)
            problems.extend(found)
            if definition is None:
                continue
            prior = outputs.get(definition.output.lower())
            if prior is not None:
                problems.append(
                    Problem(
                        file,
                        _at(prefix, "output"),
                        f"output name {definition.output!r} is already used in {prior[1]}",
                    )
                )
                continue
            outputs[definition.output.lower()] = (definition.output, file)
            definitions.append(definition)
    if problems:
        raise InputError(problems)
    return definitions
