"""The catalog: profile entity, activity entities, typed attributes and measure declarations.

Attribute names are matched case-insensitively against names and display names, so
``Average Store Purchase ($)`` and ``AverageStorePurchase`` name the same field.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cohortlake.config import load_document, pydantic_problems
from cohortlake.errors import InputError, Problem
from cohortlake.tables import table_ref_problem

__all__ = [
    "ActivitySpec",
    "AttributeSpec",
    "Catalog",
    "FieldRef",
    "FieldType",
    "MeasureSpec",
    "load_catalog",
    "valid_name",
]

FieldType = Literal["string", "number", "integer", "date", "timestamp", "boolean"]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
_NUMERIC: tuple[FieldType, ...] = ("number", "integer")

# How many decimals a number is shown and exported with (docs/numbers.md); strict, so
# YAML's `true` or `"2"` is no count of decimals.
_Decimals = Annotated[int, Field(strict=True, ge=0, le=12)]


class AttributeSpec(BaseModel):
    """One column: its type, an optional display name, and whether it is personal data."""

    model_config = ConfigDict(extra="forbid")

    type: FieldType
    display: str | None = None
    personal: bool = False
    description: str | None = None
    decimals: _Decimals | None = None
    format: str | None = None

    @field_validator("format")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None and v != "iso" and not _DATETIME_PATTERN.match(v):
            raise ValueError(
                f"format {v!r} is neither iso nor a Spark datetime pattern "
                "(like yyyy-MM-dd or dd/MM/yyyy HH:mm)"
            )
        return v


# How a date or timestamp stored as text is parsed: `iso` (ISO 8601, as Spark casts text)
# or Spark's datetime pattern letters, punctuation and 'quoted text' (docs: "Datetime
# Patterns for Formatting and Parsing"). A value that does not parse is null, and
# `cohortlake check` counts them.
_DATETIME_PATTERN = re.compile(r"^(?:[GyuDMLdQqEecFahKkHmsSnNVzOXxZ]|[ \-/.,:_\[\]]|'[^'\n]*')+$")


def valid_name(text: str) -> bool:
    """A catalog name: a letter, then letters, digits or _ (at most 128 characters)."""
    return bool(_NAME.match(text))


def _check_table(v: str | None) -> str | None:
    problem = table_ref_problem(v) if v is not None else None
    if problem:
        raise ValueError(problem)
    return v


def _check_names(names: dict[str, Any], what: str) -> dict[str, Any]:
    lowered: dict[str, str] = {}
    for name in names:
        if not _NAME.match(name):
            raise ValueError(
                f"{what} name {name!r} must start with a letter and hold letters, digits or _"
            )
        if name.lower() in lowered:
            raise ValueError(
                f"{what} names {lowered[name.lower()]!r} and {name!r} differ only in case"
            )
        lowered[name.lower()] = name
    return names


class ProfileSpec(BaseModel):
    """The unified customer profile: one row per customer, keyed by ``key``."""

    model_config = ConfigDict(extra="forbid")

    entity: str = "Customer"
    key: str = "CustomerId"
    table: str | None = None
    attributes: dict[str, AttributeSpec]

    _table = field_validator("table")(_check_table)

    @field_validator("entity", "key")
    @classmethod
    def _name(cls, v: str, info: ValidationInfo) -> str:
        # The entity names a table folder and the key a column: no paths, no blanks.
        if not _NAME.match(v):
            raise ValueError(
                f"{info.field_name} {v!r} must start with a letter and hold letters, digits or _"
            )
        return v

    @field_validator("attributes")
    @classmethod
    def _names(cls, v: dict[str, AttributeSpec]) -> dict[str, AttributeSpec]:
        return _check_names(v, "attribute")


class ActivitySpec(BaseModel):
    """An activity entity linked to the profile by the customer key, with an event time.

    ``key`` names the activity's own customer-key column when it is not the profile's.
    """

    model_config = ConfigDict(extra="forbid")

    event_time: str
    table: str | None = None
    key: str | None = None
    attributes: dict[str, AttributeSpec]

    _table = field_validator("table")(_check_table)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(f"key {v!r} must start with a letter and hold letters, digits or _")
        return v

    @field_validator("attributes")
    @classmethod
    def _names(cls, v: dict[str, AttributeSpec]) -> dict[str, AttributeSpec]:
        return _check_names(v, "attribute")

    @model_validator(mode="after")
    def _event_time_is_temporal(self) -> ActivitySpec:
        spec = self.attributes.get(self.event_time)
        if spec is None:
            raise ValueError(
                f"event_time {self.event_time!r} is not one of the entity's attributes"
            )
        if spec.type not in ("date", "timestamp"):
            raise ValueError(
                f"event_time {self.event_time!r} must be a date or timestamp, not {spec.type}"
            )
        return self


MeasureAgg = Literal["count", "sum", "avg", "min", "max", "count_distinct"]


class MeasureSpec(BaseModel):
    """A per-customer aggregate over one activity, optionally filtered by a condition tree."""

    model_config = ConfigDict(extra="forbid")

    source: str
    agg: MeasureAgg
    attribute: str | None = None
    where: dict[str, Any] | None = None
    display: str | None = None
    description: str | None = None
    decimals: _Decimals | None = None

    @model_validator(mode="after")
    def _attribute_needed(self) -> MeasureSpec:
        if self.agg != "count" and not self.attribute:
            raise ValueError(f"agg {self.agg!r} needs an attribute")
        if self.agg == "count" and self.attribute:
            raise ValueError("agg 'count' counts rows and takes no attribute")
        return self


class _CatalogModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: ProfileSpec
    activities: dict[str, ActivitySpec] = Field(default_factory=dict)
    measures: dict[str, MeasureSpec] = Field(default_factory=dict)

    @field_validator("activities", "measures")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_names(v, "entity or measure")


@dataclass(frozen=True)
class FieldRef:
    """A resolved customer-level field: a profile column or a measure column."""

    name: str
    type: FieldType
    display: str
    source: Literal["profile", "measure"]
    personal: bool = False
    decimals: int | None = None


def _norm(s: str) -> str:
    return s.strip().lower()


class Catalog:
    """Validated catalog with case-insensitive lookups by name or display name."""

    def __init__(self, model: _CatalogModel, file: str = "<catalog>"):
        self.file = file
        self.model = model
        self.profile = model.profile
        self.activities = model.activities
        self.measures = model.measures
        self._fields: dict[str, FieldRef] = {}
        self._by_key: dict[str, FieldRef] = {}
        for name, a in self.profile.attributes.items():
            self._add(FieldRef(name, a.type, a.display or name, "profile", a.personal, a.decimals))
        for name, m in self.measures.items():
            self._add(
                FieldRef(
                    name,
                    self.measure_type(name),
                    m.display or name,
                    "measure",
                    decimals=self.measure_decimals(name),
                )
            )

    def _add(self, ref: FieldRef) -> None:
        self._fields[ref.name] = ref
        self._by_key[_norm(ref.name)] = ref
        self._by_key.setdefault(_norm(ref.display), ref)

    @property
    def key(self) -> str:
        return self.profile.key

    @property
    def profile_entity(self) -> str:
        return self.profile.entity

    def fields(self) -> list[FieldRef]:
        """Every customer-level field: profile attributes first, then measures."""
        return list(self._fields.values())

    def resolve(self, name: str) -> FieldRef | None:
        """Find a profile attribute or measure by name or display name, ignoring case."""
        return self._by_key.get(_norm(name))

    def suggest(
        self, name: str, choices: list[str] | None = None, cutoff: float = 0.7
    ) -> list[str]:
        """The closest known names, for 'did you mean' messages."""
        pool = choices if choices is not None else [f.name for f in self._fields.values()]
        lowered = {c.lower(): c for c in pool}
        hits = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=cutoff)
        return [lowered[h] for h in hits]

    def activity(self, name: str) -> tuple[str, ActivitySpec] | None:
        """An activity entity by name, ignoring case."""
        for n, spec in self.activities.items():
            if n.lower() == name.strip().lower():
                return n, spec
        return None

    def activity_attribute(self, entity: str, name: str) -> tuple[str, AttributeSpec] | None:
        """An activity entity's column by name or display name, ignoring case (the key included)."""
        found = self.activity(entity)
        if found is None:
            return None
        _, spec = found
        for n, a in spec.attributes.items():
            if _norm(n) == _norm(name) or (a.display and _norm(a.display) == _norm(name)):
                return n, a
        if _norm(name) == _norm(self.key):
            return self.key, AttributeSpec(type="string")
        return None

    def measure_type(self, name: str) -> FieldType:
        """The type of a measure's value: counts are integers, sums and averages numbers."""
        m = self.measures[name]
        if m.agg in ("count", "count_distinct"):
            return "integer"
        if m.agg in ("sum", "avg"):
            return "number"
        found = self.activity_attribute(m.source, m.attribute or "")
        return found[1].type if found else "number"

    def measure_decimals(self, name: str) -> int | None:
        """A measure's declared decimals, else its attribute's for ``sum``, ``min`` and ``max``.

        A sum, minimum or maximum of numbers with at most d decimals has at most d
        decimals, so rounding it to d removes only float noise; an average does not.
        """
        m = self.measures[name]
        if m.decimals is not None or m.agg not in ("sum", "min", "max"):
            return m.decimals
        found = self.activity_attribute(m.source, m.attribute or "")
        return found[1].decimals if found and found[1].type in _NUMERIC else None


def _validate_measures(model: _CatalogModel, file: str) -> list[Problem]:
    problems: list[Problem] = []
    cat = Catalog(model, file)
    for name, m in model.measures.items():
        base = f"measures.{name}"
        found = cat.activity(m.source)
        if found is None:
            known = ", ".join(model.activities) or "none"
            problems.append(
                Problem(
                    file, f"{base}.source", f"unknown activity entity {m.source!r} (known: {known})"
                )
            )
            continue
        if m.attribute:
            attr = cat.activity_attribute(m.source, m.attribute)
            if attr is None:
                near = cat.suggest(m.attribute, list(found[1].attributes))
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                problems.append(
                    Problem(
                        file,
                        f"{base}.attribute",
                        f"unknown attribute {m.attribute!r} of {found[0]}{hint}",
                    )
                )
            elif m.agg in ("sum", "avg") and attr[1].type not in ("number", "integer"):
                problems.append(
                    Problem(
                        file,
                        f"{base}.attribute",
                        f"agg {m.agg!r} needs a number attribute, {attr[0]} is {attr[1].type}",
                    )
                )
        if m.where is not None:
            from cohortlake.conditions.validate import validate_entity_condition

            problems.extend(
                validate_entity_condition(m.where, cat, found[0], file, f"{base}.where")
            )
        if name.lower() in {a.lower() for a in model.profile.attributes}:
            problems.append(
                Problem(file, base, f"measure {name!r} has the name of a profile attribute")
            )
    return problems


def _validate_decimals(model: _CatalogModel, file: str) -> list[Problem]:
    """``decimals`` only where numbers are, ``format`` only where dates and timestamps are."""
    problems: list[Problem] = []
    entities = [("profile", model.profile.attributes)] + [
        (f"activities.{n}", a.attributes) for n, a in model.activities.items()
    ]
    for base, attributes in entities:
        for name, a in attributes.items():
            if a.format is not None and a.type not in ("date", "timestamp"):
                problems.append(
                    Problem(
                        file,
                        f"{base}.attributes.{name}.format",
                        f"format applies to date and timestamp attributes stored as text, {name} is {a.type}",
                    )
                )
            if a.decimals is not None and a.type not in _NUMERIC:
                problems.append(
                    Problem(
                        file,
                        f"{base}.attributes.{name}.decimals",
                        f"decimals apply to number and integer attributes, {name} is {a.type}",
                    )
                )
    cat = Catalog(model, file)
    for name, m in model.measures.items():
        if m.decimals is None or cat.activity(m.source) is None:
            continue
        kind = cat.measure_type(name)
        if kind not in _NUMERIC:
            problems.append(
                Problem(
                    file,
                    f"measures.{name}.decimals",
                    f"decimals apply to number and integer measures, {name} is {kind}",
                )
            )
    return problems


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file; every problem is reported with its path."""
    file = str(path)
    data = load_document(path)
    if not isinstance(data, dict):
        raise InputError(Problem(file, "", "expected a mapping with profile, activities, measures"))
    try:
        model = _CatalogModel.model_validate(data)
    except ValidationError as exc:
        raise InputError(pydantic_problems(file, exc)) from None
    problems = _validate_measures(model, file) + _validate_decimals(model, file)
    if problems:
        raise InputError(problems)
    return Catalog(model, file)
