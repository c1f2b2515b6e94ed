"""Expansion definitions: what to expand, on which fields, from which pool, how many.

A file in ``conf/expansions/`` holds one definition (or several ``---``-separated documents,
or a list under ``definitions:``).
Validation is complete before any data is read: unknown keys, fields unknown to the
catalog (with did-you-mean), source and pool segments unknown to ``conf/``, a size cap
out of range. Every problem carries its file and path (``fields[1]``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

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
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_PERCENT",
    "MAX_NUMERIC_FIELDS",
    "MIN_SOURCE_MEMBERS",
    "Expansion",
    "load_expansions",
]

DEFAULT_PERCENT = 20.0
DEFAULT_NEIGHBOURS = 10
MAX_NUMERIC_FIELDS = 6
# 20% of the source is held out to measure recall; 30 keeps >= 6 hidden and >= 24 to fit on.
MIN_SOURCE_MEMBERS = 30
_NUMERIC_TYPES = ("number", "integer", "date", "timestamp")


class _MaxSize(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    percent: float | None = Field(default=None, gt=0, le=100)
    count: int | None = Field(default=None, ge=1, le=2**63 - 1)

    @model_validator(mode="after")
    def _exactly_one(self) -> _MaxSize:
        if (self.percent is None) == (self.count is None):
            raise ValueError("give exactly one of percent or count")
        return self


class _PoolSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: str = Field(min_length=1)


class _Definition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DefinitionName
    output: str | None = None
    description: str | None = None
    source: str = Field(min_length=1)
    fields: list[str] = Field(min_length=1, max_length=12)
    pool: Literal["all_except_source"] | _PoolSegment = "all_except_source"
    max_size: _MaxSize = Field(default_factory=lambda: _MaxSize(percent=DEFAULT_PERCENT))
    include_source: bool = False
    seed: int = Field(default=0, ge=-(2**63), le=2**63 - 1)  # Spark's long
    neighbours: int = Field(default=DEFAULT_NEIGHBOURS, ge=1, le=50)

    @field_validator("pool", mode="before")
    @classmethod
    def _pool_shape(cls, v: Any) -> Any:
        # One clear line instead of one per member of the union.
        if v != "all_except_source" and not isinstance(v, dict):
            raise ValueError(f"expected all_except_source or {{segment: NAME}}, got {v!r}")
        return v


@dataclass(frozen=True)
class Expansion:
    """A validated expansion definition with catalog fields and segment names resolved."""

    name: str
    output: str
    source: str
    fields: tuple[FieldRef, ...]
    pool_segment: str | None
    percent: float | None
    count: int | None
    include_source: bool
    seed: int
    neighbours: int
    file: str
    path: str
    description: str | None = None

    @property
    def type(self) -> str:
        return "expansion"

    def where(self, key: str) -> str:
        """A path inside the definition's document (``fields[1]``), for problems."""
        return f"{self.path}.{key}" if self.path else key

    def describe_pool(self) -> str:
        return (
            f"segment {self.pool_segment}"
            if self.pool_segment
            else "all customers except the source"
        )

    def definition_hash(self) -> str:
        """SHA-256 of the resolved definition, so a changed definition is visible in segment_runs."""
        doc: dict[str, Any] = {
            "name": self.name,
            "output": self.output,
            "source": self.source,
            "fields": [f.name for f in self.fields],
            "pool": self.pool_segment,
            "percent": self.percent,
            "count": self.count,
            "include_source": self.include_source,
            "seed": self.seed,
            "neighbours": self.neighbours,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _documents(data: Any) -> list[tuple[str, Any]]:
    """A file's definitions: one or more ``---`` documents, each one or a list under ``definitions``."""
    return split_documents(data, _listed)


def _listed(data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("definitions"), list) and "name" not in data:
        return [(f"definitions[{i}]", d) for i, d in enumerate(data["definitions"])]
    return [("", data)]


def _segment_ref(
    value: str, registry: dict[str, tuple[str, str, str]], own: str, file: str, path: str
) -> tuple[str | None, list[Problem]]:
    found = registry.get(value.strip().lower())
    if found is None or found[1] not in ("segments", "expansions"):
        known = sorted(o for o, kind, _ in registry.values() if kind in ("segments", "expansions"))
        near = [k for k in known if k.lower() != own.lower()]
        import difflib

        hits = difflib.get_close_matches(value.lower(), [k.lower() for k in near], n=3, cutoff=0.5)
        names = [k for k in near if k.lower() in hits]
        hint = f"; did you mean {', '.join(names)}?" if names else ""
        return None, [Problem(file, path, f"unknown segment {value!r}{hint}")]
    if found[0].lower() == own.lower():
        return None, [Problem(file, path, "an expansion cannot use its own output")]
    return found[0], []


def _validate_one(
    raw: Any, catalog: Catalog, registry: dict[str, tuple[str, str, str]], file: str, base: str
) -> tuple[Expansion | None, list[Problem]]:
    def at(key: str) -> str:
        return f"{base}.{key}" if base else key

    if not isinstance(raw, dict):
        return None, [Problem(file, base, "expected a mapping with name, source, fields")]
    try:
        model = _Definition.model_validate(raw)
    except ValidationError as exc:
        prefix: tuple[int | str, ...] = (base,) if base else ()
        return None, pydantic_problems(file, exc, prefix)
    problems: list[Problem] = []
    output = model.output or derive_output_name(model.name)
    if not OUTPUT_NAME.match(output):
        why = (
            "is not a valid output name"
            if model.output
            else f"derives to {output!r}, not a valid output name; give an explicit output"
        )
        problems.append(
            Problem(
                file,
                at("output" if model.output else "name"),
                f"{(model.output or model.name)!r} {why} (a letter, then letters and digits)",
            )
        )
    refs: list[FieldRef] = []
    seen: set[str] = set()
    for i, name in enumerate(model.fields):
        ref = catalog.resolve(name)
        if ref is None:
            near = catalog.suggest(name)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            problems.append(Problem(file, at(f"fields[{i}]"), f"unknown field {name!r}{hint}"))
            continue
        if ref.name in seen:
            problems.append(
                Problem(file, at(f"fields[{i}]"), f"field {ref.name!r} is listed twice")
            )
            continue
        seen.add(ref.name)
        refs.append(ref)
    numeric = [r.name for r in refs if r.type in _NUMERIC_TYPES]
    if len(numeric) > MAX_NUMERIC_FIELDS:
        problems.append(
            Problem(
                file,
                at("fields"),
                f"at most {MAX_NUMERIC_FIELDS} numeric, date or timestamp fields, got {len(numeric)}",
            )
        )
    source, errs = _segment_ref(model.source, registry, output, file, at("source"))
    problems.extend(errs)
    pool: str | None = None
    if not isinstance(model.pool, str):
        pool, errs = _segment_ref(model.pool.segment, registry, output, file, at("pool.segment"))
        problems.extend(errs)
        if pool is not None and source is not None and pool.lower() == source.lower():
            problems.append(
                Problem(
                    file,
                    at("pool.segment"),
                    "the pool is the source segment: no candidates would be left",
                )
            )
    if problems or source is None:
        return None, problems
    return Expansion(
        name=model.name,
        output=output,
        source=source,
        fields=tuple(refs),
        pool_segment=pool,
        percent=model.max_size.percent,
        count=model.max_size.count,
        include_source=model.include_source,
        seed=model.seed,
        neighbours=model.neighbours,
        file=file,
        path=base,
        description=model.description,
    ), []


def _order(expansions: list[Expansion]) -> list[Expansion]:
    """Expansions whose source or pool is another expansion run after it."""
    by_output = {e.output.lower(): e for e in expansions}
    done: list[Expansion] = []
    state: dict[str, int] = {}
    problems: list[Problem] = []

    def visit(e: Expansion) -> None:
        key = e.output.lower()
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            problems.append(
                Problem(
                    e.file,
                    e.where("source"),
                    f"expansions depend on each other in a cycle through {e.output}",
                )
            )
            return
        state[key] = 1
        for dep in (e.source, e.pool_segment):
            if dep and dep.lower() in by_output:
                visit(by_output[dep.lower()])
        state[key] = 2
        done.append(e)

    for e in expansions:
        visit(e)
    if problems:
        raise InputError(sorted(set(problems)))
    return done


def load_expansions(conf_dir: str | Path, catalog: Catalog) -> list[Expansion]:
    """Validate every definition in ``<conf>/expansions``; all problems at once, in run order."""
    conf = Path(conf_dir)
    registry = registered_outputs(conf)
    out: list[Expansion] = []
    files, problems = read_definition_files(conf / "expansions")
    for file, data in files:
        for base, raw in _documents(data):
            exp, errs = _validate_one(raw, catalog, registry, file, base)
            problems.extend(errs)
            if exp is not None:
                out.append(exp)
    if problems:
        raise InputError(problems)
    return _order(out)
