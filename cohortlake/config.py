"""YAML/JSON loading with file-and-path errors, and the lakehouse configuration."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cohortlake.errors import InputError, Problem

__all__ = [
    "LakehouseConfig",
    "SparkSettings",
    "format_loc",
    "load_document",
    "load_lakehouse_config",
    "pydantic_problems",
]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
# Dates stay strings: the segment language parses them per attribute type.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(path: str | Path) -> Any:
    """Parse a YAML or JSON file; a missing or malformed file is an InputError."""
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise InputError(Problem(name, "", "file not found"))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Problem(name, "", f"cannot read file: {exc}")) from None
    try:
        if p.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        raise InputError(Problem(name, "", f"invalid {kind}: nested too deeply")) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            Problem(name, "", f"invalid JSON at line {exc.lineno}: {exc.msg}")
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(Problem(name, "", f"invalid YAML{where}: {what}")) from None


def format_loc(loc: Sequence[int | str]) -> str:
    """Render a location tuple as ``where.all[1].value``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def pydantic_problems(
    file: str, exc: ValidationError, prefix: Sequence[int | str] = ()
) -> list[Problem]:
    """Turn a pydantic ValidationError into file/path problems with one-line reasons."""
    problems = []
    for err in exc.errors():
        loc = [
            p
            for p in (*prefix, *err["loc"])
            if not (isinstance(p, str) and p.startswith("function-"))
        ]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        problems.append(Problem(file, format_loc(loc), msg))
    return problems


class SparkSettings(BaseModel):
    """Spark options for the embedded default; a cluster's spark-submit flags win."""

    model_config = ConfigDict(extra="forbid")

    master: str = "local[*]"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("conf", mode="before")
    @classmethod
    def _scalar_values(cls, v: Any) -> Any:
        # One line per bad option, not one per member of the value's union type.
        if isinstance(v, dict):
            for key, value in v.items():
                if not isinstance(value, str | int | float | bool):
                    raise ValueError(f"option {key!r} needs a text, number or true/false value")
        return v


class LakehouseConfig(BaseModel):
    """``conf/lakehouse.yaml``: where the lakehouse lives and how Spark and MLflow run."""

    model_config = ConfigDict(extra="forbid")

    root: str = "lakehouse"
    spark: SparkSettings = Field(default_factory=SparkSettings)
    tracking_uri: str | None = None

    def resolved_root(self, base: Path) -> str:
        """The root as an absolute local path, or unchanged when it is a URI."""
        if "://" in self.root or self.root.startswith("/"):
            return self.root.rstrip("/") if self.root != "/" else self.root
        return str((base / self.root).resolve())


def load_lakehouse_config(
    path: str | Path, overrides: Mapping[str, Any] | None = None
) -> LakehouseConfig:
    """Load and validate ``conf/lakehouse.yaml`` (a missing file means all defaults)."""
    name = str(path)
    data: Any = load_document(path) if Path(path).exists() else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(Problem(name, "", "expected a mapping at the top level"))
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if os.environ.get("MLFLOW_TRACKING_URI") and not data.get("tracking_uri"):
        data["tracking_uri"] = os.environ["MLFLOW_TRACKING_URI"]
    try:
        return LakehouseConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(pydantic_problems(name, exc)) from None
