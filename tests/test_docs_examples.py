"""The YAML examples of ``README.md`` and ``docs/*.md`` load through the project's real loaders.

Every fenced ```yaml block of a page is a definition or a configuration file unless
the HTML comment just before it says ``<!-- not-a-definition -->``. Its kind comes from
a ``<!-- check: KIND [PATH] -->`` comment, or else from its keys; a block of no known
shape must be marked. ``<!-- check: invalid KIND PATH -->`` marks an example that must
be rejected with exactly the ``error:`` lines of the ```text block after it. A
definition block may hold several ``---``-separated documents, as a file may.

Each example is written into a copy of the shipped ``conf/`` (replacing a shipped file
of the same output name) and loaded as the commands load it; no Spark is needed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cohortlake.catalog import Catalog, load_catalog
from cohortlake.config import load_document, load_documents, load_lakehouse_config
from cohortlake.errors import InputError
from cohortlake.naming import derive_output_name, registered_outputs
from expansion.model import load_expansions
from insights.model import load_insights
from segmentation.model import ALIASES, OPERATORS
from segmentation.validate import load_definitions
from suggestions.model import load_suggestion_runs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SKIP = "not-a-definition"
KINDS = ("lakehouse", "catalog", "segment", "condition", "insight", "expansion", "suggestion")
FOLDERS = {
    "segment": "segments",
    "condition": "segments",
    "insight": "insights",
    "expansion": "expansions",
    "suggestion": "suggestions",
}
LOADERS: dict[str, Callable[[Path, Catalog], object]] = {
    "segments": load_definitions,
    "insights": load_insights,
    "expansions": load_expansions,
    "suggestions": load_suggestion_runs,
}
_COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")
_CONDITION_KEYS = {"all", "any", "not", "attribute", "related", "segment"}


@dataclass(frozen=True)
class Example:
    """One fenced YAML block of a page, with what it must be."""

    page: str
    line: int
    kind: str  # one of KINDS, or "unknown"
    text: str
    invalid: bool = False
    file: str | None = None  # where it is written, relative to the folder holding conf/
    expected: tuple[str, ...] = ()  # the error lines of an invalid example

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _fences(lines: list[str]) -> list[tuple[int, str, str]]:
    """``(line of the opening fence, language, body)`` of every fenced block."""
    out: list[tuple[int, str, str]] = []
    i = 0
    while i < len(lines):
        opening = lines[i].strip()
        if opening.startswith("```"):
            lang, body = opening[3:].strip(), []
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                body.append(lines[j])
                j += 1
            out.append((i, lang, "\n".join(body) + "\n"))
            i = j
        i += 1
    return out


def _marker(lines: list[str], fence: int) -> str | None:
    """The HTML comment on the nearest non-blank line above a fence, if any."""
    for k in range(fence - 1, -1, -1):
        if lines[k].strip():
            found = _COMMENT.match(lines[k].strip())
            return found.group(1) if found else None
    return None


def _guess(text: str) -> str:
    """A block's kind from its keys, for blocks without a ``check:`` marker."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return "unknown"
    data = docs[0] if docs else None
    if not isinstance(data, dict):
        return "unknown"
    keys = set(data)
    for key, kind in (("segments", "segment"), ("insights", "insight")):
        if isinstance(data.get(key), list) and "name" not in keys:
            return kind
    if isinstance(data.get("definitions"), list) and data["definitions"]:
        first = data["definitions"][0]
        keys = set(first) if isinstance(first, dict) else set()
    if "profile" in keys:
        return "catalog"
    if keys and keys <= {"root", "spark", "tracking_uri"}:
        return "lakehouse"
    if "kind" in keys:
        return "insight"
    if "target" in keys:
        return "suggestion"
    if {"source", "fields"} <= keys:
        return "expansion"
    if {"name", "where"} <= keys:
        return "segment"
    if keys & _CONDITION_KEYS:
        return "condition"
    return "unknown"


def _examples() -> list[Example]:
    found: list[Example] = []
    for page in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]:
        lines = page.read_text(encoding="utf-8").splitlines()
        blocks = _fences(lines)
        for n, (start, lang, body) in enumerate(blocks):
            if lang not in ("yaml", "yml"):
                continue
            mark = _marker(lines, start)
            if mark == SKIP:
                continue
            words = mark.split()[1:] if mark and mark.startswith("check:") else []
            invalid = bool(words) and words[0] == "invalid"
            words = words[1:] if invalid else words
            kind = words[0] if words else _guess(body)
            expected: tuple[str, ...] = ()
            if invalid:
                after = blocks[n + 1][2] if n + 1 < len(blocks) else ""
                expected = tuple(x for x in after.splitlines() if x.startswith("error: "))
            found.append(
                Example(
                    page.name,
                    start + 1,
                    kind,
                    body,
                    invalid,
                    words[1] if len(words) > 1 else None,
                    expected,
                )
            )
    return found


EXAMPLES = _examples()


def _outputs(documents: list[Any], folder: str) -> set[str]:
    """The output names a definition file's documents claim (lower-cased)."""
    out = set()
    for data in documents:
        docs = data.get(folder, data.get("definitions")) if isinstance(data, dict) else None
        for d in docs if isinstance(docs, list) else [data]:
            if isinstance(d, dict):
                name = d.get("output") or derive_output_name(str(d.get("name", "")))
                out.add(str(name).lower())
    return out


def _load(example: Example, data_text: str, tmp_path: Path) -> None:
    """Load one example as the commands would; raises InputError when it is rejected."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    if example.kind == "lakehouse":
        path = tmp_path / (example.file or "conf/lakehouse.yaml")
        path.write_text(data_text, encoding="utf-8")
        load_lakehouse_config(path)
        return
    if example.kind == "catalog":
        path = tmp_path / (example.file or "conf/catalog.yaml")
        path.write_text(data_text, encoding="utf-8")
        load_catalog(path)
        return
    folder = FOLDERS[example.kind]
    scratch = tmp_path / "block.yaml"
    scratch.write_text(data_text, encoding="utf-8")
    documents = load_documents(scratch)
    if example.kind == "condition":
        data = {"name": "Docs example condition", "where": load_document(scratch)}
        data_text = json.dumps(data)
        documents = [data]
    claimed = _outputs(documents, folder)
    for output, (_, kind, file) in registered_outputs(conf, (folder,)).items():
        if kind == folder and output in claimed:
            Path(file).unlink(missing_ok=True)  # the example takes that shipped one's place
    path = tmp_path / (example.file or f"conf/{folder}/docs_example.yaml")
    path.write_text(data_text, encoding="utf-8")
    LOADERS[folder](conf, load_catalog(conf / "catalog.yaml"))


def _errors(example: Example, text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        _load(example, text, tmp_path)
    return [f"error: {p}".replace(f"{tmp_path}/", "") for p in info.value.problems]


def test_every_kind_of_example_is_on_the_pages() -> None:
    kinds = {e.kind for e in EXAMPLES if not e.invalid}
    assert set(KINDS) <= kinds, f"no example of {set(KINDS) - kinds}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_loads_as_documented(example: Example, tmp_path: Path) -> None:
    assert example.kind in KINDS, (
        f"{example.id}: a YAML block of no known shape; mark it <!-- {SKIP} --> "
        f"or <!-- check: KIND --> (one of {', '.join(KINDS)})"
    )
    if example.invalid:
        assert example.expected, f"{example.id}: an invalid example needs its error lines after it"
        assert _errors(example, example.text, tmp_path) == list(example.expected)
    else:
        _load(example, example.text, tmp_path)


def _broken(text: str, tmp_path: Path) -> str:
    """The example (its first document) with an unknown key added to its top mapping, as
    JSON (which YAML reads)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    scratch = tmp_path / "broken.yaml"
    scratch.write_text(text, encoding="utf-8")
    data = next(d for d in load_documents(scratch) if d is not None)
    assert isinstance(data, dict)
    return json.dumps({**data, "colour": "red"})


@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_example_is_rejected(kind: str, tmp_path: Path) -> None:
    """The check can fail: the first example of each kind with an unknown key is rejected."""
    example = next(e for e in EXAMPLES if e.kind == kind and not e.invalid)
    errors = _errors(example, _broken(example.text, tmp_path / "b"), tmp_path)
    assert any(
        re.search(r": (\w+\.)*colour: unknown key$", e) or "unknown key 'colour'" in e
        for e in errors
    ), errors


def _operator_rows() -> list[list[str]]:
    lines = (DOCS / "segment-language.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("<!-- operators-table -->")
    rows = []
    for line in lines[start + 3 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_the_operator_table_lists_every_operator_and_alias() -> None:
    rows = _operator_rows()
    ops = [re.findall(r"`(\w+)`", r[0])[0] for r in rows]
    aliases = {a: op for r, op in zip(rows, ops, strict=True) for a in re.findall(r"`(\w+)`", r[1])}
    assert sorted(ops) == sorted(OPERATORS)
    assert aliases == ALIASES


_TYPE_VALUES = {
    "string": "x",
    "number": 1.5,
    "integer": 2,
    "date": "2024-01-31",
    "timestamp": "2024-01-31T10:00:00",
    "boolean": True,
}


def test_the_operator_table_states_the_types_the_validator_accepts(tmp_path: Path) -> None:
    """Each operator applies to exactly the types its row names (asked of the validator)."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "profile:\n  attributes:\n" + "".join(f"    A{t}: {{type: {t}}}\n" for t in _TYPE_VALUES),
        encoding="utf-8",
    )
    loaded = load_catalog(catalog)
    from segmentation.validate import parse_definitions

    for row in _operator_rows():
        op = re.findall(r"`(\w+)`", row[0])[0]
        documented = set(_TYPE_VALUES) if row[2] == "all" else set(re.split(r",\s*", row[2]))
        accepted = set()
        for t, value in _TYPE_VALUES.items():
            leaf: dict[str, Any] = {"attribute": f"A{t}", "op": op, "value": value}
            try:
                parse_definitions([("t.yaml", {"name": "T", "where": leaf})], loaded, {})
                accepted.add(t)
            except InputError as exc:
                if not any("does not apply" in p.reason for p in exc.problems):
                    accepted.add(t)  # rejected for its value, not for its type
        assert accepted == documented, op


@pytest.mark.parametrize("row", _operator_rows(), ids=lambda r: r[0].strip("`"))
def test_the_operator_table_examples_are_valid(row: list[str], tmp_path: Path) -> None:
    example = re.search(r"`(\{.*\})`", row[4])
    assert example, row
    text = example.group(1)
    op = re.findall(r"`(\w+)`", row[0])[0]
    scratch = tmp_path / "leaf.yaml"
    scratch.write_text(text, encoding="utf-8")
    leaf = load_document(scratch)
    assert ALIASES.get(leaf["op"], leaf["op"]) == op
    _load(Example("segment-language.md", 0, "condition", text), text, tmp_path)
