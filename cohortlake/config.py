"""YAML/JSON loading with file-and-path errors, and the lakehouse configuration."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cohortlake.errors import InputError, Problem

__all__ = [
    "MAX_CONFIG_BYTES",
    "TRACKING_SCHEMES",
    "LakehouseConfig",
    "SparkSettings",
    "format_loc",
    "load_document",
    "load_documents",
    "load_lakehouse_config",
    "master_problem",
    "pydantic_problems",
    "tracking_uri_problem",
]


# Configuration files are small (the shipped catalog is 3 kB): anything larger is refused
# before it is read, so a wrong file or a hostile one costs nothing (docs/reliability.md).
MAX_CONFIG_BYTES = 1024 * 1024


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, keys that are lists or mappings, and aliases.

    An alias (``*name``) repeats a node without copying it, so a few lines can stand for
    billions of nodes (an "alias bomb"), and one typo inside an aliased part would be
    reported once per repetition. Definitions are short enough to write out, so an alias
    is refused where it is met, before anything is expanded.
    """

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not supported; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a key must be a plain value, not a list or mapping",
                key_node.start_mark,
            )
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


def _unsupported_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {tag} is not supported", node.start_mark
    )


# Values are what JSON can say (text, numbers, true/false, null, lists, mappings): no sets,
# bytes or ordered pairs, which no definition means.
for _tag in ("set", "binary", "timestamp", "omap", "pairs"):
    _UniqueKeyLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _unsupported_tag)
# Dates stay strings: the segment language parses them per attribute type.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects as YAML mappings are read: a repeated key is an error, not the last wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _read_text(p: Path, name: str) -> str:
    """A configuration file's text: a missing, large or undecodable file is an InputError."""
    if not p.is_file():
        reason = "not a regular file" if p.exists() else "file not found"
        raise InputError(Problem(name, "", reason))
    try:
        with p.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise InputError(
                Problem(name, "", "file is larger than 1 MB, the limit for configuration files")
            )
        return data.decode("utf-8-sig")  # a byte-order mark from a Windows editor is fine
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Problem(name, "", f"cannot read file: {exc}")) from None


def _yaml_stream(text: str) -> list[tuple[int, Any]]:
    """``(line of the document's start, data)`` of every document of a YAML stream."""
    loader = _UniqueKeyLoader(text)
    out: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            line = loader.peek_event().start_mark.line + 1
            out.append((line, loader.construct_document(loader.get_node())))
    finally:
        loader.dispose()
    return out


def _parse(path: str | Path) -> list[tuple[int, Any]]:
    """Every document of a YAML or JSON file (JSON holds one) with the line it starts on."""
    p = Path(path)
    name = str(path)
    text = _read_text(p, name)
    kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            return [(1, json.loads(text, object_pairs_hook=_unique_pairs))]
        return _yaml_stream(text)
    except RecursionError:
        raise InputError(Problem(name, "", f"invalid {kind}: nested too deeply")) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            Problem(name, "", f"invalid JSON at line {exc.lineno}: {exc.msg}")
        ) from None
    except ValueError as exc:  # a repeated JSON key, or a number of over 4300 digits
        digits = "integer string conversion" in str(exc)
        reason = "a number has more than 4300 digits" if digits else str(exc).splitlines()[0]
        raise InputError(Problem(name, "", f"invalid {kind}: {reason}")) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(Problem(name, "", f"invalid YAML{where}: {what}")) from None


def load_document(path: str | Path) -> Any:
    """Parse a YAML or JSON file of at most 1 MB holding one document; a missing, large or
    malformed file, or a second ``---`` document, is an InputError (one line, naming the file).

    Empty documents (a trailing ``---``) are ignored; a file without any gives None.
    """
    found = [(line, data) for line, data in _parse(path) if data is not None]
    if len(found) > 1:
        raise InputError(
            Problem(
                str(path),
                "",
                f"a second document starts at line {found[1][0]} (after ---); "
                "this file holds one document",
            )
        )
    return found[0][1] if found else None


def load_documents(path: str | Path) -> list[Any]:
    """Every document of a YAML file (``---`` between them; a JSON file holds one), in order.

    The same limits as ``load_document`` apply to the whole file. An empty document (a
    trailing ``---``) is kept as None, so positions stay those of the file.
    """
    return [data for _, data in _parse(path)]


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


_MASTER = re.compile(
    r"^(local(\[(\*|[1-9]\d*)(,\s*[1-9]\d*)?\])?|local-cluster\[\d+,\s*\d+,\s*\d+\]"
    r"|yarn|spark://[^\s/]+|k8s://\S+)$"
)
_SIZE = re.compile(r"^\d+[kmgtp]?b?$", re.IGNORECASE)
# MLflow's tracking stores (a SQLAlchemy scheme may name its driver: postgresql+psycopg2).
TRACKING_SCHEMES = (
    "file", "sqlite", "http", "https", "databricks", "databricks-uc", "uc",
    "postgresql", "mysql", "mssql",
)  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def master_problem(value: Any) -> str | None:
    """Why ``value`` is no Spark master URL Spark would take, or None when it is one."""
    if isinstance(value, str) and _MASTER.match(value):
        return None
    return (
        f"{value!r} is not a Spark master: local[*], local[N], spark://HOST:PORT, yarn or k8s://URL"
    )


def tracking_uri_problem(value: Any) -> str | None:
    """Why ``value`` is no MLflow tracking URI (checked before any run), or None."""
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        return f"expected an MLflow tracking URI, got {value!r}"
    scheme = urlparse(value).scheme.lower().split("+")[0]
    if scheme and scheme not in TRACKING_SCHEMES:
        return (
            f"unsupported MLflow tracking URI scheme {scheme!r} (one of "
            f"{', '.join(TRACKING_SCHEMES)}, or a local path)"
        )
    return None


class SparkSettings(BaseModel):
    """Spark options for the embedded default; a cluster's spark-submit flags win."""

    model_config = ConfigDict(extra="forbid")

    master: str = "local[*]"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("master")
    @classmethod
    def _master(cls, v: str) -> str:
        reason = master_problem(v)
        if reason:
            raise ValueError(reason)
        return v

    @field_validator("conf", mode="before")
    @classmethod
    def _scalar_values(cls, v: Any) -> Any:
        # One line per bad option, not one per member of the value's union type.
        if isinstance(v, dict):
            for key, value in v.items():
                if not isinstance(key, str) or not key.startswith("spark."):
                    raise ValueError(f"option {key!r} is not a Spark setting (spark.*)")
                if not isinstance(value, str | int | float | bool):
                    raise ValueError(f"option {key!r} needs a text, number or true/false value")
                if key.endswith((".memory", ".memoryOverhead")) and not _SIZE.match(str(value)):
                    raise ValueError(
                        f"option {key!r} needs a size such as 512m or 4g, got {value!r}"
                    )
                if key == "spark.master" and master_problem(value):
                    raise ValueError(f"option 'spark.master': {master_problem(value)}")
        return v


class LakehouseConfig(BaseModel):
    """``conf/lakehouse.yaml``: where the lakehouse lives and how Spark and MLflow run."""

    model_config = ConfigDict(extra="forbid")

    root: str = "lakehouse"
    spark: SparkSettings = Field(default_factory=SparkSettings)
    tracking_uri: str | None = None
    # Segment runs re-evaluate only the customers whose inputs changed (``run --incremental``).
    incremental: bool = False
    # ``memberships`` is created with deletion vectors: a MERGE marks the rows it removes
    # instead of rewriting each changed segment's files (readers must support them).
    deletion_vectors: bool = False

    @field_validator("root")
    @classmethod
    def _root(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the lakehouse root must not be empty")
        if v != v.strip() or _CONTROL.search(v):
            raise ValueError(f"root {v!r} starts or ends with a space or holds a control character")
        if v.rstrip("/") in ("", "file:", "file://"):
            raise ValueError("the file system's root cannot be the lakehouse root")
        return v

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_uri(cls, v: str | None) -> str | None:
        reason = tracking_uri_problem(v) if v is not None else None
        if reason:
            raise ValueError(reason)
        return v

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
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = {**data, **given}
    # A value from a flag or the environment is that flag's problem, not the file's.
    sources = {k: f"--{k.replace('_', '-')}" for k in given}
    if os.environ.get("MLFLOW_TRACKING_URI") and not data.get("tracking_uri"):
        data["tracking_uri"] = os.environ["MLFLOW_TRACKING_URI"]
        sources["tracking_uri"] = "MLFLOW_TRACKING_URI"
    try:
        return LakehouseConfig.model_validate(data)
    except ValidationError as exc:
        problems = pydantic_problems(name, exc)
        raise InputError(
            [Problem(sources[p.path], "", p.reason) if p.path in sources else p for p in problems]
        ) from None
