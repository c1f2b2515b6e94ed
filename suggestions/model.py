"""Suggestion-run definitions (``conf/suggestions/*.yaml``): parsing and catalog checks.

A run names a target (numeric, or categorical with at most 10 categories; a boolean is
categorical with two values) and the influencing attributes the tree may split on
(numeric, boolean, or categorical with at most 100 categories); without ``influencers``
they are every field of the catalog that may be one (``default_influencers``). Category
counts need the data, so ``check_categories`` runs after this validation and before
anything is written. A file holds one definition, several ``---``-separated documents,
or a list under ``definitions:``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
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
    "MAX_INFLUENCER_CATEGORIES",
    "MAX_TARGET_CATEGORIES",
    "SaveSpec",
    "SuggestionRun",
    "SuggestionSpec",
    "default_influencers",
    "load_suggestion_runs",
    "validate_suggestion",
]

log = logging.getLogger(__name__)

MAX_TARGET_CATEGORIES = 10
MAX_INFLUENCER_CATEGORIES = 100
_NUMERIC = ("number", "integer")
_CATEGORICAL = ("string", "boolean")


class SaveSpec(BaseModel):
    """Which suggestion the demo saves as a segment: a rank, or the best one above/below average."""

    model_config = ConfigDict(extra="forbid")

    name: DefinitionName
    output: str | None = None
    rank: int | None = Field(default=None, ge=1)
    direction: Literal["above", "below"] | None = None


class SuggestionSpec(BaseModel):
    """One suggestion run as written in the file (names not yet resolved against the catalog)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: DefinitionName
    output: str | None = None
    description: str | None = None
    target: str = Field(min_length=1)
    influencers: list[str] | None = Field(default=None, min_length=1)  # None: the default
    max_depth: int = Field(default=4, ge=1, le=10)
    min_members: int | None = Field(default=None, ge=1)
    min_share: float | None = Field(default=None, gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    seed: int = Field(default=42, ge=-(2**63), le=2**63 - 1)  # Spark's long
    holdout: float = Field(default=0.3, ge=0, le=0.9)
    max_bins: int = Field(default=128, ge=4, le=1024)
    refine_top: int = Field(default=8, ge=0, le=50)
    tree_rows: int = Field(default=100_000, ge=1_000)
    save: SaveSpec | None = None

    @field_validator("influencers", mode="before")
    @classmethod
    def _no_null_influencers(cls, v: Any) -> Any:
        # `influencers:` with nothing after it is more likely a list left out than a wish
        # for the default, which leaving the key out gives (a default is not validated).
        if v is None:
            raise ValueError(
                "expected a list of attributes, got null; leave the key out for the default"
            )
        return v

    @model_validator(mode="after")
    def _output_rule(self) -> SuggestionSpec:
        if self.output is not None and not OUTPUT_NAME.match(self.output):
            raise ValueError(
                f"output name {self.output!r} must start with a letter and hold only letters and digits (max 128)"
            )
        return self


@dataclass(frozen=True)
class SuggestionRun:
    """A validated run: resolved target and influencers, where it came from, its output."""

    spec: SuggestionSpec
    file: str
    path: str  # "" for a one-definition file, "definitions[i]" in a list
    output: str
    target: FieldRef
    influencers: tuple[FieldRef, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def influencers_defaulted(self) -> bool:
        """True when the file leaves ``influencers`` out (``default_influencers`` chose them)."""
        return self.spec.influencers is None

    def without(self, names: set[str]) -> SuggestionRun:
        """This run without the influencers named (catalog names), e.g. ones the data rules out."""
        kept = tuple(f for f in self.influencers if f.name not in names)
        return replace(self, influencers=kept)

    @property
    def numeric_target(self) -> bool:
        return self.target.type in _NUMERIC

    def where(self, sub: str) -> str:
        """A path inside the file, prefixed for list documents.

        With the default influencers, ``influencers[i]`` is not in the file: it is reported
        at ``influencers``, the key to write to choose others.
        """
        if self.influencers_defaulted and sub.startswith("influencers["):
            sub = "influencers"
        return f"{self.path}.{sub}" if self.path else sub

    def min_members_for(self, customers: int) -> int:
        """The size floor: the larger of ``min_members`` and ``min_share`` (default 1% of customers)."""
        floor = 1
        if self.spec.min_members is not None:
            floor = max(floor, self.spec.min_members)
        share = (
            self.spec.min_share
            if self.spec.min_share is not None
            else (None if self.spec.min_members else 0.01)
        )
        if share is not None:
            floor = max(floor, int(-(-share * customers // 1)))
        return floor


def _field(
    catalog: Catalog, name: str, file: str, path: str, allowed: tuple[str, ...], role: str
) -> tuple[FieldRef | None, list[Problem]]:
    ref = catalog.resolve(name)
    if ref is None:
        near = catalog.suggest(name)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return None, [Problem(file, path, f"unknown attribute {name!r}{hint}")]
    if ref.type not in allowed:
        return None, [
            Problem(
                file,
                path,
                f"{role} {ref.name} is a {ref.type}; use a number, integer, string or boolean attribute",
            )
        ]
    return ref, []


def default_influencers(catalog: Catalog, target: FieldRef | None) -> tuple[FieldRef, ...]:
    """A run's influencers when its file names none, from the catalog alone (no data).

    Every profile attribute and measure the tree can split on (number, integer, string or
    boolean; no date or timestamp), except personal ones, the customer key and the target,
    in catalog order. Category counts need the data and are checked when the run starts.
    """
    return tuple(
        f
        for f in catalog.fields()
        if f.type in (*_NUMERIC, *_CATEGORICAL)
        and not f.personal
        and f.name != catalog.key
        and (target is None or f.name != target.name)
    )


def validate_suggestion(data: Any, catalog: Catalog, file: str, path: str = "") -> SuggestionRun:
    """Validate one definition document against the schema and the catalog (all problems at once)."""
    prefix = (path,) if path else ()
    if not isinstance(data, dict):
        raise InputError(
            Problem(file, path, "expected a mapping with name, target and influencers")
        )
    try:
        spec = SuggestionSpec.model_validate(data)
    except ValidationError as exc:
        loc_prefix: tuple[int | str, ...] = ()
        if prefix:
            loc_prefix = (prefix[0],)
        raise InputError(pydantic_problems(file, exc, loc_prefix)) from None

    def at(sub: str) -> str:
        return f"{path}.{sub}" if path else sub

    problems: list[Problem] = []
    target, found = _field(
        catalog, spec.target, file, at("target"), (*_NUMERIC, *_CATEGORICAL), "target"
    )
    problems += found
    influencers: list[FieldRef] = []
    seen: dict[str, int] = {}
    if spec.influencers is None:
        influencers = list(default_influencers(catalog, target))
        if not influencers:
            problems.append(
                Problem(
                    file,
                    at("influencers"),
                    "required key is missing: the catalog has no non-personal number, integer, "
                    "string or boolean field besides the target",
                )
            )
    for i, name in enumerate(spec.influencers or ()):
        where = at(f"influencers[{i}]")
        ref, found = _field(catalog, name, file, where, (*_NUMERIC, *_CATEGORICAL), "influencer")
        problems += found
        if ref is None:
            continue
        if target is not None and ref.name == target.name:
            problems.append(
                Problem(file, where, f"{ref.name} is the target; it cannot also be an influencer")
            )
        elif ref.name in seen:
            problems.append(
                Problem(
                    file, where, f"{ref.name} is already listed at influencers[{seen[ref.name]}]"
                )
            )
        else:
            seen[ref.name] = i
            influencers.append(ref)
    output = spec.output
    if output is None:
        output = derive_output_name(spec.name)
        if not OUTPUT_NAME.match(output):
            problems.append(
                Problem(
                    file,
                    at("name"),
                    f"name {spec.name!r} derives the output name {output!r}, which is not valid; set output",
                )
            )
    if (
        spec.save is not None
        and spec.save.output is not None
        and not OUTPUT_NAME.match(spec.save.output)
    ):
        problems.append(
            Problem(
                file,
                at("save.output"),
                f"output name {spec.save.output!r} must start with a letter and hold only letters and digits (max 128)",
            )
        )
    if problems:
        raise InputError(problems)
    assert target is not None
    return SuggestionRun(spec, file, path, output, target, tuple(influencers))


def _documents(data: Any) -> list[tuple[str, Any]]:
    """A file's definitions: one or more ``---`` documents, each one or a list under ``definitions``."""
    return split_documents(data, _listed)


def _listed(data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("definitions"), list) and "name" not in data:
        return [(f"definitions[{i}]", d) for i, d in enumerate(data["definitions"])]
    return [("", data)]


def load_suggestion_runs(conf_dir: str | Path, catalog: Catalog) -> list[SuggestionRun]:
    """Every run in ``<conf>/suggestions``, validated; problems of all files are reported together.

    Output names are checked for clashes across segments, insights, expansions and
    suggestions (ignoring case) as the naming rule requires.
    """
    conf = Path(conf_dir)
    runs: list[SuggestionRun] = []
    files, problems = read_definition_files(conf / "suggestions")
    for file, data in files:
        for path, doc in _documents(data):
            try:
                run = validate_suggestion(doc, catalog, str(file), path)
            except InputError as exc:
                problems += exc.problems
                continue
            runs.append(run)
            if run.influencers_defaulted:
                log.info(
                    "%s: influencers not listed; using %s",
                    run.output,
                    ", ".join(f.name for f in run.influencers),
                )
    try:
        registered_outputs(conf)
    except InputError as exc:
        problems += exc.problems
    if problems:
        raise InputError(problems)
    return runs
