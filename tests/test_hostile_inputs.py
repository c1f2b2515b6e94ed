"""Hostile and bad input corpus (issue #8): every case exits 2 with one clear line per problem.

Each case drives the real ``cohortlake`` CLI in-process against a fresh copy of ``conf/``
with one bad file (or bad arguments) and a small shared lakehouse. The checks: exit code
2, every stderr line starts with ``error: `` and names the file (and the path inside it)
and the reason, no traceback, and nothing written (the lakehouse and the case's folder
are snapshotted before and after). Positive tests at the end show that values with SQL in
them, and a display name full of quotes, are plain values: members match pandas.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from _memberships import keys
from profile_schema import PROFILE_SCHEMA
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cohortlake.cli import main
from cohortlake.lake import Lake

REPO = Path(__file__).resolve().parent.parent
SQL_VALUE = "x' OR '1'='1"
DROP_VALUE = "'; DROP TABLE Customer; --"
BIG_INT = str(10**30)
HUGE_INT = "9" * 400

STATES = ["California", "Texas", "Washington", SQL_VALUE, DROP_VALUE, "1=1 OR", "Zürich 🎉", None]


def _profile_rows(n: int) -> list[tuple[object, ...]]:
    rows = []
    for i in range(n):
        rows.append(
            (
                f"C{i:04d}",
                f"First{i}",
                f"Last{i}",
                f"c{i}@example.com",
                STATES[(i * 7) % len(STATES)] if i % 11 else STATES[i % 3],
                f"{10000 + i % 50:05d}",
                dt.date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
                20000.0 + 379.0 * i,
                ["low", "medium", "high"][i % 3],
                ["Teacher", "Nurse", "Engineer", "Chef"][i % 4],
                i % 2 == 0,
                i * 13 % 500,
                ["low", "medium", "high"][(i // 3) % 3],
            )
        )
    return rows


@pytest.fixture(scope="module")
def lakes(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """Lakehouse roots: ``lake`` (a profile, no measures or activity), ``empty`` (nothing),
    ``emptyprofile`` (a 0-row profile table), ``file`` (a plain file), ``badschema`` (a
    profile without State and with Income as text, purchases with a text PurchaseDate),
    ``truncated`` (``lake`` with its profile's first commit file cut short) and
    ``readonly`` (``lake`` that cannot be written, when this machine can make one)."""
    base = tmp_path_factory.mktemp("hostile")
    roots = {name: base / name for name in ("lake", "empty", "emptyprofile", "badschema")}
    Lake(spark, str(roots["lake"])).overwrite(
        spark.createDataFrame(_profile_rows(240), PROFILE_SCHEMA),
        str(roots["lake"] / "profile" / "Customer"),
    )
    Lake(spark, str(roots["emptyprofile"])).overwrite(
        spark.createDataFrame([], PROFILE_SCHEMA),
        str(roots["emptyprofile"] / "profile" / "Customer"),
    )
    roots["file"] = base / "root-is-a-file"
    roots["file"].write_text("not a folder\n")
    bad = Lake(spark, str(roots["badschema"]))
    names = PROFILE_SCHEMA.fieldNames()
    schema = T.StructType(
        [
            T.StructField("Income", T.StringType()) if f.name == "Income" else f
            for f in PROFILE_SCHEMA.fields
            if f.name != "State"
        ]
    )
    rows = [
        tuple(str(v) if n == "Income" else v for n, v in zip(names, r, strict=True) if n != "State")
        for r in _profile_rows(4)
    ]
    bad.overwrite(spark.createDataFrame(rows, schema), bad.profile_path("Customer"))
    purchases = "CustomerId string, PurchaseId string, PurchaseDate string, Channel string, Product string, Amount double"
    bad.overwrite(
        spark.createDataFrame([("C0001", "P1", "2024-05-01", "web", "Latte", 3.5)], purchases),
        bad.activity_path("Purchases"),
    )
    roots["truncated"] = base / "truncated"
    shutil.copytree(roots["lake"], roots["truncated"])
    log = roots["truncated"] / "profile" / "Customer" / "_delta_log"
    first = log / f"{0:020d}.json"
    first.write_bytes(first.read_bytes()[:200])
    for crc in log.glob("*.crc"):  # Delta's checksum and the local file system's (hidden)
        crc.unlink()
    readonly = base / "readonly"
    shutil.copytree(roots["lake"], readonly)
    undo = _make_read_only(readonly)
    if undo is not None:
        roots["readonly"] = readonly
    yield roots
    if undo is not None:
        undo()


def _make_read_only(path: Path) -> Callable[[], None] | None:
    """Make a folder tree unwritable (for root too: the immutable flag); None if this
    machine cannot (root on a file system without the flag)."""
    files = [path, *path.rglob("*")]
    if os.geteuid() != 0:
        for p in files:
            p.chmod(0o555 if p.is_dir() else 0o444)

        def undo() -> None:
            for p in files:
                p.chmod(0o755 if p.is_dir() else 0o644)

        return undo
    flag = ["chattr", "-R", "+i", str(path)]
    if subprocess.run(flag, capture_output=True, check=False).returncode != 0:
        return None

    def unflag() -> None:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=True)

    return unflag


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``path``: size and mtime (ns), to prove nothing was written."""
    if not path.exists():
        return {}
    if path.is_file():
        st = path.stat()
        return {".": (st.st_size, st.st_mtime_ns)}
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()  # a link as itself (it may point nowhere, or into the lakehouse)
        size = st.st_size if stat.S_ISREG(st.st_mode) else -1
        out[str(p.relative_to(path))] = (size, st.st_mtime_ns)
    return out


def _cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors exit through SystemExit
        return int(exc.code or 0)


# -- the corpus -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: files written into the conf copy, the command, and the expected lines.

    ``expect`` holds, per expected stderr line and in order, the distinctive substrings
    (one, or a tuple of them) that line must contain;
    ``file`` is the conf-relative file every line must name ("" for CLI arguments);
    ``links`` are symbolic links to make (case-folder-relative path -> target);
    ``code`` is 2 for bad input (``error:`` lines), 1 for a failure (one ``failed:`` line).
    """

    id: str
    category: str
    argv: tuple[str, ...]
    expect: tuple[str | tuple[str, ...], ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    file: str = ""
    root: str = "lake"
    links: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2


def _seg(where: str, name: str = "Bad segment", extra: str = "") -> str:
    return f"name: {name}\n{extra}where: {where}\n"


def _leaf(attribute: str, op: str, value: str) -> str:
    return _seg(f"{{attribute: {attribute}, op: {op}, value: {value}}}")


SEG = "segments/bad.yaml"
INS = "insights/bad.yaml"
EXP = "expansions/bad.yaml"
SUG = "suggestions/bad.yaml"


def _segment(id: str, text: str | bytes, *expect: str, cmd: str = "run", file: str = SEG) -> Case:
    return Case(id, "segment", (cmd,), expect, {file: text}, file)


def _insight(id: str, text: str, *expect: str) -> Case:
    return Case(id, "insight", ("insights",), expect, {INS: text}, INS)


def _expansion(id: str, text: str, *expect: str) -> Case:
    return Case(id, "expansion", ("expand",), expect, {EXP: text}, EXP)


def _suggestion(id: str, text: str, *expect: str) -> Case:
    return Case(id, "suggestion", ("suggest",), expect, {SUG: text}, SUG)


_EXPANSION_OK = "name: Bad expansion\nsource: SummerPromotion\nfields: [PostCode, Income]\n"
_SUGGESTION_OK = "name: Bad suggestions\ntarget: Income\ninfluencers: [State, LoyaltyTier]\n"
_OVERLAP = "name: Bad overlap\nkind: overlap\n"
_DIFF = "name: Bad differentiators\nkind: differentiators\n"

SEGMENT_CASES = [
    _segment("yaml-tab-indent", "name: Bad\nwhere:\n\t{attribute: State, op: eq, value: CA}\n",
             "invalid YAML at line 3"),
    _segment("yaml-unclosed-bracket",
             "name: Bad\nwhere: {all: [{attribute: State, op: eq, value: CA}\n", "invalid YAML"),
    _segment("yaml-duplicate-key",
             "name: Bad\nname: Other\nwhere: {attribute: State, op: eq, value: CA}\n",
             "duplicate key 'name'"),
    _segment("empty-file", "", "expected a segment definition (a mapping), got None"),
    _segment("top-level-scalar", "just some text\n", "expected a segment definition (a mapping)"),
    _segment("top-level-list", "- name: A\n- name: B\n", "expected a segment definition (a mapping)"),
    _segment("name-is-number", "name: 123\nwhere: {attribute: State, op: eq, value: CA}\n",
             "name: expected a name, got 123"),
    _segment("where-is-sql-text", _seg("\"State = 'CA' OR 1=1\""), "where: expected a condition"),
    _segment("value-wrong-type", _leaf("Income", "gt", "lots"), "where.value: expected a number, got 'lots'"),
    _segment("value-float-overflow", _leaf("Income", "gt", "1.0e+400"),
             "where.value: expected a finite number, got inf"),
    _segment("value-nan", _leaf("Income", "gt", ".nan"), "where.value: expected a finite number, got nan"),
    _segment("value-inf-in-between", _leaf("Income", "between", "[-.inf, 5]"),
             "where.value[0]: expected a finite number, got -inf"),
    _segment("integer-10e30", _leaf("RewardPoints", "eq", BIG_INT),
             "where.value: number out of range for an integer (64-bit)"),
    _segment("number-400-digits", _leaf("Income", "lt", HUGE_INT), "where.value: number out of range"),
    _segment("in-empty-list", _leaf("State", "in", "[]"), "where.value: 'in' needs a non-empty list, got []"),
    _segment("all-empty-list", _seg("{all: []}"), "where.all: 'all' needs a non-empty list of conditions"),
    _segment("segments-empty-list", "segments: []\n", "segments: 'segments' needs a non-empty list of definitions"),
    _segment("not-given-a-list", _seg("{not: [{attribute: State, op: eq, value: CA}]}"),
             "where.not: expected a condition"),
    _segment("emoji-only-name", _seg("{attribute: State, op: eq, value: CA}", name="🎉🎉🎉"),
             "name: name '🎉🎉🎉' derives to no output name; set output"),
    _segment("accented-name", _seg("{attribute: State, op: eq, value: CA}", name="Café Crème"),
             "name: name derives to 'CaféCrème', not a valid output name; set output"),
    _segment("emoji-output", _seg("{attribute: State, op: eq, value: CA}", extra="output: Seg🎉\n"),
             "output: output 'Seg🎉' must start with a letter and hold only letters and digits"),
    _segment("emoji-attribute", _leaf("'Stäte 🎉'", "eq", "CA"), "where.attribute: unknown attribute 'Stäte 🎉'"),
    _segment("sql-attribute", _leaf("'State; DROP TABLE Customer; --'", "eq", "CA"),
             "where.attribute: unknown attribute 'State; DROP TABLE Customer; --'"),
    _segment("quoted-attribute", _leaf('"State\' OR \'1\'=\'1"', "eq", "CA"),
             "where.attribute: unknown attribute \"State' OR '1'='1\""),
    _segment("output-dotdot", _seg("{attribute: State, op: eq, value: CA}", extra="output: ../etc\n"),
             "output: output '../etc' must start with a letter"),
    _segment("output-slash", _seg("{attribute: State, op: eq, value: CA}", extra="output: seg/evil\n"),
             "output: output 'seg/evil' must start with a letter"),
    _segment("output-absolute", _seg("{attribute: State, op: eq, value: CA}", extra="output: /tmp/evil\n"),
             "output: output '/tmp/evil' must start with a letter"),
    _segment("output-dotted", _seg("{attribute: State, op: eq, value: CA}", extra="output: Seg.delta\n"),
             "output: output 'Seg.delta' must start with a letter"),
    _segment("output-129-chars", _seg("{attribute: State, op: eq, value: CA}", extra=f"output: {'A' * 129}\n"),
             "must start with a letter and hold only letters and digits (max 128)"),
    _segment("cycle-two",
             "segments:\n- {name: Alpha, where: {segment: Beta}}\n- {name: Beta, where: {segment: alpha}}\n",
             "segments[0].where: cycle between segment leaves: Alpha -> Beta -> Alpha"),
    _segment("cycle-self", "name: Loop\nwhere: {any: [{segment: Loop}, {attribute: State, op: eq, value: CA}]}\n",
             "where: cycle between segment leaves: Loop -> Loop"),
    _segment("cycle-three",
             "segments:\n- {name: A, where: {segment: B}}\n- {name: B, where: {segment: C}}\n"
             "- {name: C, where: {not: {segment: A}}}\n",
             "segments[0].where: cycle between segment leaves: A -> B -> C -> A"),
    _segment("segment-leaf-sql", _seg("{segment: \"Seg'; DROP TABLE x; --\"}"),
             "where.segment: unknown segment \"Seg'; DROP TABLE x; --\""),
    _segment("in-last-huge-n", _leaf("DateOfBirth", "in_last", f"{{n: {BIG_INT}, unit: days}}"),
             "where.value.n: expected a whole number from 0 to 100000"),
    _segment("in-last-bad-unit", _leaf("DateOfBirth", "in_last", "{n: 2, unit: fortnights}"),
             "where.value.unit: expected one of days, weeks, months, years, got 'fortnights'"),
    _segment("related-sql-entity", _seg("{related: 'Purchases; DROP TABLE x'}"),
             "where.related: unknown activity entity 'Purchases; DROP TABLE x'"),
    _segment("having-unknown-agg", _seg("{related: Purchases, having: {agg: median, op: gt, value: 1}}"),
             "where.having.agg: expected one of count, sum, avg, min, max, count_distinct, got 'median'"),
    _segment("ignore-case-not-bool", _seg("{attribute: State, op: eq, value: CA, ignore_case: 'yes'}"),
             "where.ignore_case: expected true or false, got 'yes'"),
    _segment("value-is-mapping", _leaf("State", "eq", "{a: 1}"), "where.value: expected a single string value"),
    _segment("date-month-13", _leaf("DateOfBirth", "gt", "2024-13-45"), "where.value: not a valid date: '2024-13-45'"),
    _segment("invalid-utf8", b"name: Bad\nwhere: {attribute: State, op: eq, value: \xff\xfe}\n",
             "cannot read file"),
    _segment("json-syntax", '{"name": "Bad", "where": {', "invalid JSON at line 1", file="segments/bad.json"),
    _segment("json-nan", '{"name": "Bad", "where": {"attribute": "Income", "op": "gt", "value": NaN}}',
             "where.value: expected a finite number, got nan", file="segments/bad.json"),
    _segment("three-problems-at-once",
             "name: Bad\ncolour: red\nwhere: {all: [{attribute: Incme, op: gt, value: 1},"
             " {attribute: State, op: equals, value: CA}]}\n",
             "colour: unknown key", "where.all[0].attribute: unknown attribute 'Incme'; did you mean Income?",
             "where.all[1].op: unknown operator 'equals'; did you mean eq?", cmd="validate"),
    _segment("deep-nesting", "name: Deep\nwhere: " + "{not: " * 400 + "{attribute: State, op: eq, value: CA}"
             + "}" * 400 + "\n", "invalid YAML: nested too deeply"),
    _segment("deep-but-parsable", "name: Deep\nwhere: " + "{not: " * 80 + "{attribute: State, op: eq, value: CA}"
             + "}" * 80 + "\n", ("where" + ".not" * 65 + ": ", "conditions are nested more than 64 levels deep")),
]  # fmt: skip

SEGMENT_CASES += [
    Case("duplicate-output-two-files", "segment", ("run",),
         ("output: output name 'dup' is already used in",),
         {"segments/a.yaml": _seg("{attribute: State, op: eq, value: CA}", extra="output: Dup\n"),
          "segments/b.yaml": _seg("{attribute: State, op: eq, value: TX}", extra="output: dup\n")},
         "segments/b.yaml"),
    _segment("output-taken-by-insight",
             _seg("{attribute: State, op: eq, value: CA}", extra="output: HighValueOnlinevsCustomersfromCalifornia\n"),
             "output: output name 'HighValueOnlinevsCustomersfromCalifornia' is already used by insights"),
]  # fmt: skip

INSIGHT_CASES = [
    _insight("yaml-unclosed", "name: Bad\nkind: overlap\nsegments: [A, B\n", "invalid YAML"),
    _insight("unknown-kind", "name: Bad\nkind: venn\nsegments: [A, B]\n",
             "kind: unknown kind 'venn' (expected overlap or differentiators)"),
    _insight("kind-missing", "name: Bad\nsegments: [A, B]\n", "kind: required key is missing"),
    _insight("overlap-empty-list", _OVERLAP + "segments: []\n", "segments: overlap needs 2 to 50 segments, got 0"),
    _insight("overlap-sql-segment", _OVERLAP + f"segments: [SummerPromotion, \"{DROP_VALUE}\"]\n",
             f"segments[1]: unknown segment \"{DROP_VALUE}\""),
    _insight("fields-not-a-list", _DIFF + "primary: SummerPromotion\nfields: RewardPoints\n",
             "fields: Input should be a valid list"),
    _insight("primary-is-compare-to", _DIFF + "primary: SummerPromotion\ncompare_to: summerpromotion\n",
             "compare_to: compare_to must differ from the primary segment 'SummerPromotion'"),
    _insight("output-dotdot", _OVERLAP + "output: ../x\nsegments: [SummerPromotion, CustomersFromCalifornia]\n",
             "output: output name '../x' must start with a letter"),
    _insight("empty-name", "name: ''\nkind: overlap\nsegments: [SummerPromotion, CustomersFromCalifornia]\n",
             "name: String should have at least 1 character"),
    _insight("segment-is-an-insight",
             _OVERLAP + "segments: [SummerPromotion, HighValueOnlinevsCustomersfromCalifornia]\n",
             "segments[1]: 'HighValueOnlinevsCustomersfromCalifornia' is an insight in"),
    _insight("nan-field", _DIFF + "primary: SummerPromotion\nfields: [.nan]\n",
             "fields[0]: Input should be a valid string"),
    _insight("emoji-field", _DIFF + "primary: SummerPromotion\nfields: ['Incöme 🎉']\n",
             "fields[0]: unknown field 'Incöme 🎉'"),
    _insight("emoji-only-name", "name: 🎉\nkind: overlap\nsegments: [SummerPromotion, CustomersFromCalifornia]\n",
             "name: the name derives to an empty output name; give an explicit output"),
]  # fmt: skip

EXPANSION_CASES = [
    _expansion("fields-empty", "name: X\nsource: SummerPromotion\nfields: []\n",
               "fields: List should have at least 1 item"),
    _expansion("percent-inf", _EXPANSION_OK + "max_size: {percent: .inf}\n",
               "max_size.percent: Input should be a finite number"),
    _expansion("percent-nan", _EXPANSION_OK + "max_size: {percent: .nan}\n",
               "max_size.percent: Input should be a finite number"),
    _expansion("count-10e30", _EXPANSION_OK + f"max_size: {{count: {BIG_INT}}}\n",
               "max_size.count: Input should be less than or equal to 9223372036854775807"),
    _expansion("seed-10e30", _EXPANSION_OK + f"seed: {BIG_INT}\n",
               "seed: Input should be less than or equal to 9223372036854775807"),
    _expansion("pool-wrong-type", _EXPANSION_OK + "pool: 5\n", "pool: expected all_except_source or {segment: NAME}, got 5"),
    _expansion("neighbours-zero", _EXPANSION_OK + "neighbours: 0\n",
               "neighbours: Input should be greater than or equal to 1"),
    _expansion("sql-source", f"name: X\nsource: \"{DROP_VALUE}\"\nfields: [Income]\n",
               f"source: unknown segment \"{DROP_VALUE}\""),
    _expansion("pool-is-source", _EXPANSION_OK + "pool: {segment: summerpromotion}\n",
               "pool.segment: the pool is the source segment"),
    _expansion("output-slash", _EXPANSION_OK + "output: a/b\n", "output: 'a/b' is not a valid output name"),
    _expansion("include-source-maybe", _EXPANSION_OK + "include_source: maybe\n",
               "include_source: Input should be a valid boolean"),
    _expansion("source-is-own-output", "name: Self\nsource: Self\nfields: [Income]\n",
               "source: an expansion cannot use its own output"),
    _expansion("percent-and-count", _EXPANSION_OK + "max_size: {percent: 5, count: 10}\n",
               "max_size: give exactly one of percent or count"),
    _expansion("field-listed-twice", "name: X\nsource: SummerPromotion\nfields: [Income, 'income ($)']\n",
               "fields[1]: field 'Income' is listed twice"),
]  # fmt: skip

SUGGESTION_CASES = [
    _suggestion("influencers-empty", "name: X\ntarget: Income\ninfluencers: []\n",
                "influencers: List should have at least 1 item"),
    _suggestion("sql-target", "name: X\ntarget: 'LifetimeSpend; DROP TABLE x'\ninfluencers: [State]\n",
                "target: unknown attribute 'LifetimeSpend; DROP TABLE x'"),
    _suggestion("date-target", "name: X\ntarget: DateOfBirth\ninfluencers: [State]\n",
                "target: target DateOfBirth is a date"),
    _suggestion("max-depth-inf", _SUGGESTION_OK + "max_depth: 1.0e+400\n", "max_depth: Input should be a finite number"),
    _suggestion("max-depth-10e30", _SUGGESTION_OK + f"max_depth: {BIG_INT}\n",
                "max_depth: Input should be less than or equal to 10"),
    _suggestion("alpha-nan", _SUGGESTION_OK + "alpha: .nan\n", "alpha: Input should be a finite number"),
    _suggestion("seed-10e30", _SUGGESTION_OK + f"seed: {BIG_INT}\n",
                "seed: Input should be less than or equal to 9223372036854775807"),
    _suggestion("tree-rows-inf", _SUGGESTION_OK + "tree_rows: .inf\n", "tree_rows: Input should be a finite number"),
    _suggestion("output-absolute", _SUGGESTION_OK + "output: /abs/path\n",
                "output name '/abs/path' must start with a letter"),
    _suggestion("save-output-dotdot", _SUGGESTION_OK + "save: {name: S, output: ../x, rank: 1}\n",
                "save.output: output name '../x' must start with a letter"),
    _suggestion("min-share-above-one", _SUGGESTION_OK + "min_share: 1.5\n", "min_share: Input should be less than 1"),
    _suggestion("emoji-influencer", "name: X\ntarget: Income\ninfluencers: ['Stäte 🎉']\n",
                "influencers[0]: unknown attribute 'Stäte 🎉'"),
]  # fmt: skip

_CAT = "catalog.yaml"
_LH = "lakehouse.yaml"


def _catalog(replace: str, by: str) -> str:
    text = (REPO / "conf" / "catalog.yaml").read_text()
    assert replace in text
    return text.replace(replace, by, 1)


CONFIG_CASES = [
    Case("catalog-yaml-unclosed", "config", ("validate",), ("invalid YAML",),
         {_CAT: _catalog("State: {type: string}", "State: {type: string")}, _CAT),
    Case("catalog-sql-attribute-name", "config", ("validate",),
         ("profile.attributes: attribute name 'State; DROP TABLE x' must start with a letter",),
         {_CAT: _catalog("State: {type: string}", "'State; DROP TABLE x': {type: string}")}, _CAT),
    Case("catalog-emoji-attribute-name", "config", ("validate",),
         ("profile.attributes: attribute name 'Stäte🎉' must start with a letter",),
         {_CAT: _catalog("State: {type: string}", "Stäte🎉: {type: string}")}, _CAT),
    Case("catalog-unknown-type", "config", ("validate",),
         ("profile.attributes.State.type: Input should be 'string'",),
         {_CAT: _catalog("State: {type: string}", "State: {type: money}")}, _CAT),
    Case("catalog-duplicate-key", "config", ("validate",), ("duplicate key 'State'",),
         {_CAT: _catalog("State: {type: string}", "State: {type: string}\n    State: {type: string}")}, _CAT),
    Case("lakehouse-root-number", "config", ("validate",), ("root: Input should be a valid string",),
         {_LH: "root: 123\n"}, _LH, root=""),
    Case("lakehouse-unknown-key", "config", ("validate",), ("warehouse: unknown key",),
         {_LH: "root: lakehouse\nwarehouse: x\n"}, _LH),
    Case("lakehouse-root-is-a-file", "config", ("validate",), (("root: lakehouse root", "is a file, not a folder"),),
         {_LH: "root: {file}\n"}, _LH, root=""),
    Case("lakehouse-is-a-list", "config", ("validate",), ("expected a mapping at the top level",),
         {_LH: "- root\n- lakehouse\n"}, _LH),
    Case("lakehouse-spark-conf-list", "config", ("validate",), ("spark.conf: option 'spark.driver.memory' needs a text, number or true/false value",),
         {_LH: "spark:\n  conf:\n    spark.driver.memory: [4g]\n"}, _LH),
]  # fmt: skip

CLI_CASES = [
    Case("root-is-a-file", "cli", ("run", "--root", "{file}"), ("is a file, not a folder",), root=""),
    Case("conf-folder-missing", "cli", ("validate", "--conf", "{tmp}/no-such-conf"),
         ("configuration folder not found",)),
    Case("as-of-word", "cli", ("run", "--as-of", "yesterday"), ("--as-of: not an ISO date or timestamp: 'yesterday'",)),
    Case("as-of-feb-30", "cli", ("run", "--as-of", "2024-02-30"), ("not an ISO date or timestamp: '2024-02-30'",)),
    Case("only-unknown", "cli", ("run", "--only", "NoSuchSegment"), ("unknown segment 'NoSuchSegment'",)),
    Case("only-dotdot", "cli", ("run", "--only", "../SummerPromotion"), ("unknown segment '../SummerPromotion'",)),
    Case("preview-dotdot", "cli", ("preview", "../etc"), ("output name '../etc' must start with a letter",)),
    Case("preview-absolute", "cli", ("preview", "/etc/passwd"), ("output name '/etc/passwd' must start with a letter",)),
    Case("preview-limit-huge", "cli", ("preview", "SummerPromotion", "--limit", "1e400"), (("--limit", "not a whole number: '1e400'"),)),
    Case("export-slash", "cli", ("export", "a/b", "--out", "{tmp}/x.csv"), ("output name 'a/b' must start with a letter",)),
    Case("generate-zero", "cli", ("generate", "--customers", "0"), ("must be at least 1: '0'",)),
    Case("generate-1e400", "cli", ("generate", "--customers", "1e400"), ("not a whole number: '1e400'",)),
    Case("generate-10e30", "cli", ("generate", "--customers", BIG_INT), ("--customers: must be a whole number from 1 to 1000000000",)),
    Case("generate-nan", "cli", ("generate", "--purchases-per-customer", "nan"), ("--purchases-per-customer: must be a number from",)),
    Case("generate-inf", "cli", ("generate", "--purchases-per-customer", "inf"), ("--purchases-per-customer: must be a number from",)),
    Case("generate-bad-end", "cli", ("generate", "--end", "2024-13-01"), ("not an ISO date: '2024-13-01'",)),
    Case("generate-seed-10e30", "cli", ("generate", "--seed", BIG_INT), ("argument --seed: must fit in 64 bits",)),
    Case("demo-seed-10e30", "cli", ("demo", "--seed", BIG_INT), ("argument --seed: must fit in 64 bits",)),
    Case("quick-sql-field", "cli", ("quick-create", "--field", DROP_VALUE, "--value", "CA"),
         (f"--field: unknown attribute \"{DROP_VALUE}\"",)),
    Case("quick-sql-op", "cli", ("quick-create", "--field", "State", "--op", "eq OR 1=1", "--value", "CA"),
         ("--op: unknown operator 'eq OR 1=1'",)),
    Case("quick-sql-number", "cli", ("quick-create", "--field", "Income", "--op", "gt", "--value", "1=1 OR"),
         ("--value: expected a number, got '1=1 OR'",)),
    Case("quick-emoji-name", "cli", ("quick-create", "--field", "State", "--value", "CA", "--name", "🎉"),
         ("name '🎉' derives to no output name; set output",)),
    Case("save-rank-and-direction", "cli",
         ("save-suggestion", "LifetimeSpendSuggestions", "--rank", "1", "--direction", "above", "--name", "N"),
         ("give --rank or --direction, not both",)),
    Case("save-dotdot", "cli", ("save-suggestion", "../x", "--name", "N"), ("--suggestions: output name '../x' must start with a letter",)),
    Case("expand-unknown-output", "cli", ("expand", "--output", "NoSuch"), ("unknown expansion 'NoSuch'",)),
    Case("insights-unknown-only", "cli", ("insights", "--only", "NoSuch"), ("--only: [0]: no insight with output 'NoSuch'",)),
    Case("unknown-sub-command", "cli", ("frobnicate",), ("unknown command 'frobnicate'; one of generate, demo, report",)),
]  # fmt: skip

DATA_CASES = [
    Case("run-empty-root", "data", ("run",),
         (("{root}/profile/Customer: ", "missing Delta table: the customer profile"),
          ("{root}/measures/CustomerMeasures: ", "missing Delta table: the measures (run `cohortlake measures`)")),
         root="empty"),
    Case("run-no-measures-table", "data", ("run",),
         (("{root}/measures/CustomerMeasures: ", "missing Delta table: the measures"),)),
    Case("run-no-activity-table", "data", ("run", "--only", "Buyers"),
         (("{root}/activity/Purchases: ", "missing Delta table: activity Purchases"),),
         {"segments/buyers.yaml": "name: Buyers\nwhere: {related: Purchases}\n"}),
    Case("run-segment-leaf-never-run", "data", ("run", "--only", "InCalifornia"),
         (("{root}/memberships: ", "segment CustomersFromCalifornia has not been run yet"),),
         {"segments/in_ca.yaml": "name: In California\nwhere: {segment: CustomersFromCalifornia}\n"}),
    Case("run-empty-profile", "data", ("run", "--only", "CustomersFromCalifornia"),
         (("{root}/profile/Customer: ", "the customer profile table has no rows"),), root="emptyprofile"),
    Case("measures-empty-root", "data", ("measures",),
         (("{root}/profile/Customer: ", "missing Delta table"),
          ("{root}/activity/Purchases: ", "missing Delta table: activity Purchases")), root="empty"),
    Case("measures-empty-profile", "data", ("measures",),
         (("{root}/profile/Customer: ", "has no rows"),
          ("{root}/activity/Purchases: ", "missing Delta table: activity Purchases")), root="emptyprofile"),
    Case("preview-never-run", "data", ("preview", "SummerPromotion"),
         (("{root}/memberships: ", "segment SummerPromotion has not been run yet"),)),
    Case("export-never-run", "data", ("export", "SummerPromotion", "--out", "{tmp}/out.csv"),
         (("{root}/memberships: ", "segment SummerPromotion has not been run yet"),)),
    Case("expand-source-never-run", "data", ("expand",),
         (("{root}/measures/CustomerMeasures: ", "missing Delta table: the measures"),
          ("{root}/memberships: ", "segment SummerPromotion has not been run yet"))),
    Case("suggest-no-measures", "data", ("suggest",),
         (("{root}/measures/CustomerMeasures: ", "missing Delta table: the measures"),)),
]  # fmt: skip

# -- issue 33: hostile input, part two ------------------------------------------------

_CA = "{attribute: State, op: eq, value: CA}"
_ALIAS_BOMB = (
    "x-anchors:\n  a0: &a0 ["
    + _CA
    + "]\n"
    + "".join(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    + "name: Bomb\nwhere: {all: *a8}\n"
)
_MB = "# " + "x" * (1024 * 1024) + "\n"
_EXPORT = ("export", "SummerPromotion")
_INSIDE = "is inside the lakehouse root {root}; write it outside the lakehouse"
_NOT_MASTER = "is not a Spark master: local[*], local[N], spark://HOST:PORT, yarn or k8s://URL"
_SCHEMES = "(one of file, sqlite, http, https, databricks, databricks-uc, uc, postgresql, mysql, mssql, or a local path)"
_AS_OF_RANGE = "is out of range: from 1900-01-01 to 9999-12-31 (UTC)"


def _out(id: str, argv: tuple[str, ...], expect: str, **kw: object) -> Case:
    return Case(id, "output", argv, (expect,), **kw)  # type: ignore[arg-type]


def _setting(id: str, argv: tuple[str, ...], expect: str, **kw: object) -> Case:
    return Case(id, "settings", argv, (expect,), **kw)  # type: ignore[arg-type]


OUTPUT_CASES = [
    # The export that replaced a segment table with CSV parts: a table folder in the lakehouse.
    _out("export-folder-over-profile-table", (*_EXPORT, "--folder", "--out", "{root}/profile/Customer"),
         "--out: {root}/profile/Customer: " + _INSIDE),
    _out("export-folder-replace-over-table", (*_EXPORT, "--folder", "--replace", "--out", "{root}/profile/Customer"),
         "--out: {root}/profile/Customer: " + _INSIDE),
    _out("export-file-into-table-folder", (*_EXPORT, "--out", "{root}/profile/Customer/part.csv"),
         "--out: {root}/profile/Customer/part.csv: " + _INSIDE),
    _out("export-file-over-table-folder", (*_EXPORT, "--out", "{root}/profile/Customer", "--replace"),
         "--out: {root}/profile/Customer: " + _INSIDE),
    _out("export-into-lake-root", (*_EXPORT, "--out", "{root}/members.csv"), "--out: {root}/members.csv: " + _INSIDE),
    _out("export-folder-is-lake-root", (*_EXPORT, "--folder", "--replace", "--out", "{root}"), "--out: {root}: " + _INSIDE),
    _out("export-folder-holds-lake-root", (*_EXPORT, "--folder", "--replace", "--out", "{root}/.."),
         "--out: {root}/..: holds the lakehouse root {root}; write it outside the lakehouse"),
    _out("export-relative-into-lake", (*_EXPORT, "--out", "{rootrel}/segments/S.csv"),
         "--out: {rootrel}/segments/S.csv: " + _INSIDE),
    _out("export-dotdot-into-lake", (*_EXPORT, "--out", "{root}/segments/../profile/x.csv"),
         "--out: {root}/segments/../profile/x.csv: " + _INSIDE),
    _out("export-file-uri-into-lake", (*_EXPORT, "--out", "file://{root}/segments/S"),
         "--out: file://{root}/segments/S: " + _INSIDE),
    _out("export-through-link-into-lake", (*_EXPORT, "--out", "lk/profile/Customer/x.csv"),
         "--out: lk/profile/Customer/x.csv: " + _INSIDE, links={"lk": "{root}"}),
    _out("export-dangling-link-into-lake", (*_EXPORT, "--out", "members.csv"),
         "--out: members.csv: " + _INSIDE, links={"members.csv": "{root}/segments/New.csv"}),
    _out("export-over-existing-file", (*_EXPORT, "--out", "keep.csv"),
         "--out: keep.csv: exists; pass --replace to overwrite it", files={"../keep.csv": "mine\n"}),
    _out("export-over-existing-link", (*_EXPORT, "--out", "old.csv"),
         "--out: old.csv: exists; pass --replace to overwrite it", links={"old.csv": "{tmp}/nowhere.csv"}),
    _out("export-folder-over-existing-folder", (*_EXPORT, "--folder", "--out", "parts"),
         "--out: parts: exists; pass --replace to overwrite it", files={"../parts/part-0.csv": "a\n"}),
    _out("export-replace-folder-of-other-files", (*_EXPORT, "--folder", "--replace", "--out", "docs"),
         "--out: docs: holds files other than CSV parts; Cohortlake replaces only an earlier export",
         files={"../docs/notes.txt": "mine\n", "../docs/part-0.csv": "a\n"}),
    _out("export-replace-folder-with-a-file", (*_EXPORT, "--replace", "--out", "dir.csv"),
         "--out: dir.csv: is a folder; give a file path (or --folder to write a folder of parts)",
         files={"../dir.csv/part-0.csv": "a\n"}),
    _out("export-replace-file-with-a-folder", (*_EXPORT, "--folder", "--replace", "--out", "f.csv"),
         "--out: f.csv: is a file, not a folder", files={"../f.csv": "a\n"}),
    _out("export-under-a-file", (*_EXPORT, "--out", "conf/catalog.yaml/x.csv"),
         "--out: conf/catalog.yaml/x.csv: {tmp}/conf/catalog.yaml is a file, not a folder"),
    _out("export-empty-path", (*_EXPORT, "--out", ""), "--out: an output path is required"),
    _out("export-path-with-newline", (*_EXPORT, "--out", "a\nb.csv"),
         "--out: 'a\\nb.csv': the path holds a control character (a line break or a tab)"),
    _out("quick-out-inside-lake", ("quick-create", "--field", "State", "--value", "CA", "--out", "{root}/segments"),
         "--out: {root}/segments/state_eq_ca.yaml: " + _INSIDE),
    _out("quick-out-through-link", ("quick-create", "--field", "State", "--value", "CA", "--out", "lk"),
         "--out: lk/state_eq_ca.yaml: " + _INSIDE, links={"lk": "{root}"}),
    _out("save-suggestion-over-existing", ("save-suggestion", "LifetimeSpendSuggestions", "--name", "Summer promotion"),
         "--name: {tmp}/conf/segments/summer_promotion.yaml: exists; pass --replace to overwrite it"),
]  # fmt: skip

SETTINGS_CASES = [
    _setting("master-unknown-scheme", ("validate", "--master", "foo://x"), "--master: 'foo://x' " + _NOT_MASTER),
    _setting("master-empty", ("validate", "--master", ""), "--master: '' " + _NOT_MASTER),
    _setting("master-local-zero", ("run", "--master", "local[0]"), "--master: 'local[0]' " + _NOT_MASTER),
    _setting("master-with-flags", ("run", "--master", "local[*] --conf a=b"),
             "--master: 'local[*] --conf a=b' " + _NOT_MASTER),
    _setting("conf-master-unknown", ("validate",), "spark.master: 'mesos-ish' " + _NOT_MASTER,
             files={_LH: "spark:\n  master: mesos-ish\n"}, file=_LH),
    _setting("conf-not-a-spark-key", ("validate",), "spark.conf: option 'driver.memory' is not a Spark setting (spark.*)",
             files={_LH: "spark:\n  conf:\n    driver.memory: 4g\n"}, file=_LH),
    _setting("conf-memory-word", ("validate",),
             "spark.conf: option 'spark.driver.memory' needs a size such as 512m or 4g, got 'lots'",
             files={_LH: "spark:\n  conf:\n    spark.driver.memory: lots\n"}, file=_LH),
    _setting("conf-spark-master-option", ("validate",), "spark.conf: option 'spark.master': 'nowhere' " + _NOT_MASTER,
             files={_LH: "spark:\n  conf:\n    spark.master: nowhere\n"}, file=_LH),
    _setting("tracking-ftp", ("suggest", "--tracking-uri", "ftp://x"),
             "--tracking-uri: unsupported MLflow tracking URI scheme 'ftp' " + _SCHEMES),
    _setting("tracking-empty", ("insights", "--tracking-uri", ""), "--tracking-uri: expected an MLflow tracking URI, got ''"),
    _setting("tracking-in-file", ("validate",), "tracking_uri: unsupported MLflow tracking URI scheme 'gopher'",
             files={_LH: "tracking_uri: gopher://old\n"}, file=_LH),
    _setting("tracking-from-environment", ("expand",), "MLFLOW_TRACKING_URI: unsupported MLflow tracking URI scheme 'ftp'",
             env={"MLFLOW_TRACKING_URI": "ftp://x"}),
    _setting("root-flag-empty", ("validate", "--root", ""), "--root: the lakehouse root must not be empty", root=""),
    _setting("root-flag-blank", ("run", "--root", "  "), "--root: the lakehouse root must not be empty", root=""),
    _setting("root-flag-slash", ("validate", "--root", "/"), "--root: the file system's root cannot be the lakehouse root",
             root=""),
    _setting("root-file-empty", ("validate",), "root: the lakehouse root must not be empty",
             files={_LH: "root: ''\n"}, file=_LH, root=""),
    _setting("root-file-padded", ("validate",),
             "root: root ' lakehouse' starts or ends with a space or holds a control character",
             files={_LH: "root: ' lakehouse'\n"}, file=_LH, root=""),
    _setting("root-flag-is-a-file", ("run", "--root", "{file}"), "root: lakehouse root {file} is a file, not a folder",
             root=""),
    _setting("as-of-year-1", ("run", "--as-of", "0001-01-05"), "--as-of: '0001-01-05' " + _AS_OF_RANGE),
    _setting("as-of-offset-before-year-1", ("run", "--as-of", "0001-01-01T00:00:00+05:00"),
             "--as-of: '0001-01-01T00:00:00+05:00' " + _AS_OF_RANGE),
    _setting("as-of-offset-past-9999", ("measures", "--as-of", "9999-12-31T23:00:00-05:00"),
             "--as-of: '9999-12-31T23:00:00-05:00' " + _AS_OF_RANGE),
    _setting("as-of-1899", ("quick-create", "--field", "State", "--value", "CA", "--as-of", "1899-12-31"),
             "--as-of: '1899-12-31' " + _AS_OF_RANGE),
]  # fmt: skip

FILE_CASES = [
    Case("segment-over-1mb", "files", ("run",), ("file is larger than 1 MB, the limit for configuration files",),
         {SEG: _seg(_CA) + _MB}, SEG),
    Case("catalog-over-1mb", "files", ("validate",), ("file is larger than 1 MB, the limit for configuration files",),
         {_CAT: _catalog("State: {type: string}", "State: {type: string}") + _MB}, _CAT),
    Case("definition-is-a-folder", "files", ("validate",), ("not a regular file",),
         {"segments/dir.yaml/inner.yaml": _seg(_CA)}, "segments/dir.yaml"),
    Case("definition-links-to-dev-zero", "files", ("run",), ("not a regular file",),
         links={"conf/segments/zero.yaml": "/dev/zero"}, file="segments/zero.yaml"),
    Case("lakehouse-yaml-is-a-folder", "files", ("validate",), ("not a regular file",),
         {"lakehouse.yaml.d/x": "", }, links={"conf/lakehouse.yaml": "{tmp}/conf/lakehouse.yaml.d"},
         file="lakehouse.yaml"),
    Case("file-name-with-newline", "files", ("run",),
         ("segments/bad\\nname.yaml: where.attribute: unknown attribute 'Stat'; did you mean State?",),
         {"segments/bad\nname.yaml": _seg("{attribute: Stat, op: eq, value: CA}")}),
]  # fmt: skip

SEGMENT_CASES_2 = [
    _segment("yaml-alias-bomb", _ALIAS_BOMB, "invalid YAML at line 3: aliases (*a0) are not supported; write the value out"),
    _segment("yaml-alias-of-a-typo",
             "name: Typo\nwhere:\n  all:\n  - &t {attribute: Stat, op: eq, value: CA}\n  - *t\n  - *t\n",
             "invalid YAML at line 5: aliases (*t) are not supported"),
    _segment("yaml-merge-key", "base: &b {op: eq, value: CA}\nname: M\nwhere: {<<: *b, attribute: State}\n",
             "invalid YAML at line 3: aliases (*b) are not supported"),
    _segment("yaml-list-key", "name: Cx\nwhere:\n  ? [a, b]\n  : 1\n",
             "invalid YAML at line 3: a key must be a plain value, not a list or mapping"),
    _segment("yaml-mapping-key", "? {name: X}\n: 1\n", "invalid YAML at line 1: a key must be a plain value"),
    _segment("yaml-set-tag", _leaf("State", "in", "!!set {CA, TX}"), "invalid YAML at line 2: the tag !!set is not supported"),
    _segment("yaml-binary-tag", _leaf("State", "eq", "!!binary aGk="), "the tag !!binary is not supported"),
    _segment("yaml-timestamp-tag", _leaf("DateOfBirth", "gt", "!!timestamp 2001-01-01"),
             "the tag !!timestamp is not supported"),
    _segment("yaml-python-tag", _leaf("State", "eq", "!!python/object/apply:os.system ['true']"),
             "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    _segment("yaml-5000-digits", _leaf("Income", "gt", "9" * 5000), "invalid YAML: a number has more than 4300 digits"),
    _segment("json-5000-digits", '{"name": "J", "where": {"attribute": "Income", "op": "gt", "value": ' + "9" * 5000 + "}}",
             "invalid JSON: a number has more than 4300 digits", file="segments/bad.json"),
    _segment("json-duplicate-key", '{"name": "A", "name": "B", "where": {"attribute": "State", "op": "eq", "value": "CA"}}',
             "invalid JSON: duplicate key 'name'", file="segments/bad.json"),
    _segment("json-with-bom-and-typo", '\ufeff{"name": "J", "where": {"attribute": "Stat", "op": "eq", "value": "CA"}}',
             "where.attribute: unknown attribute 'Stat'; did you mean State?", file="segments/bad.json"),
    _segment("name-null", "name: null\nwhere: " + _CA + "\n", "name: must be a string, got null"),
    _segment("name-tilde-null", "name: ~\nwhere: " + _CA + "\n", "name: must be a string, got null"),
    _segment("name-trailing-space", _seg(_CA, name="'Trail '"), "name: name 'Trail ' starts or ends with a space or a line break"),
    _segment("name-tab-inside", _seg(_CA, name='"A\\tB"'), "name: name 'A\\tB' holds a control character (a line break or a tab)"),
    _segment("name-bell", _seg(_CA, name='"Ding\\a"'), "name: name 'Ding\\x07' holds a control character"),
    _segment("name-line-separator", _seg(_CA, name='"A\\LB"'), "name: name 'A\\u2028B' holds a control character"),
    _segment("in-10001-values", _leaf("RewardPoints", "in", "[" + ", ".join(str(i) for i in range(10_001)) + "]"),
             "where.value: 'in' takes at most 10000 values, got 10001"),
    _segment("not-in-10001-values", _leaf("State", "not_in", "[" + ", ".join(f"s{i}" for i in range(10_001)) + "]"),
             "where.value: 'not_in' takes at most 10000 values, got 10001"),
    _segment("timestamp-offset-before-year-1",
             _seg("{related: Purchases, where: {attribute: PurchaseDate, op: gt, value: '0001-01-01T00:00:00+05:00'}}"),
             "where.where.value: expected an ISO timestamp (years 1-9999), got '0001-01-01T00:00:00+05:00'", cmd="validate"),
    Case("names-differ-by-trailing-space-and-newline", "segment", ("validate",),
         ("name: name 'Trail ' starts or ends with a space or a line break",
          "name: name 'Trail\\n' starts or ends with a space or a line break"),
         {"segments/a.yaml": _seg(_CA, name="'Trail '"), "segments/b.yaml": _seg(_CA, name='"Trail\\n"')}, "segments/"),
    _insight("insight-name-trailing-space", "name: 'Overlap '\nkind: overlap\nsegments: [SummerPromotion, CustomersFromCalifornia]\n",
             "name: name 'Overlap ' starts or ends with a space or a line break"),
    _insight("insight-name-null", "name: null\nkind: overlap\nsegments: [SummerPromotion, CustomersFromCalifornia]\n",
             "name: must be a string, got null"),
    _expansion("expansion-name-newline", "name: \"X\\n\"\nsource: SummerPromotion\nfields: [Income]\n",
               "name: name 'X\\n' starts or ends with a space or a line break"),
    _suggestion("suggestion-name-control", "name: \"A\\u0007B\"\ntarget: Income\ninfluencers: [State]\n",
                "name: name 'A\\x07B' holds a control character"),
    Case("quick-name-padded", "cli", ("quick-create", "--field", "State", "--value", "CA", "--name", " Padded"),
         ("quick-create: name: name ' Padded' starts or ends with a space or a line break",)),
    Case("save-suggestion-name-newline", "cli", ("save-suggestion", "LifetimeSpendSuggestions", "--name", "Low\n"),
         ("--name: name 'Low\\n' starts or ends with a space or a line break",)),
]  # fmt: skip

CONFIG_CASES_2 = [
    Case("catalog-entity-dotdot", "config", ("validate",),
         ("profile.entity: entity '..' must start with a letter and hold letters, digits or _",),
         {_CAT: _catalog("entity: Customer", "entity: '..'")}, _CAT),
    Case("catalog-entity-empty", "config", ("validate",),
         ("profile.entity: entity '' must start with a letter and hold letters, digits or _",),
         {_CAT: _catalog("entity: Customer", "entity: ''")}, _CAT),
    Case("catalog-entity-path", "config", ("run",),
         ("profile.entity: entity '../segments/X' must start with a letter",),
         {_CAT: _catalog("entity: Customer", "entity: ../segments/X")}, _CAT),
    Case("catalog-key-slash", "config", ("validate",),
         ("profile.key: key 'a/b' must start with a letter and hold letters, digits or _",),
         {_CAT: _catalog("key: CustomerId", "key: a/b")}, _CAT),
    Case("catalog-alias", "config", ("validate",), ("aliases (*s) are not supported",),
         {_CAT: _catalog("State: {type: string}", "State: &s {type: string}\n    Region: *s")}, _CAT),
    Case("catalog-list-key", "config", ("validate",), ("a key must be a plain value, not a list or mapping",),
         {_CAT: _catalog("State: {type: string}", "? [State, Region]\n    : {type: string}")}, _CAT),
    Case("lakehouse-list-key", "config", ("validate",), ("invalid YAML at line 1: a key must be a plain value",),
         {_LH: "? [root]\n: lakehouse\n"}, _LH),
]  # fmt: skip

DATA_CASES_2 = [
    Case("profile-columns-missing-and-mistyped", "data", ("run", "--only", "CustomersFromCalifornia"),
         (("conf/catalog.yaml: profile.attributes.State: ", "column State is not in table {root}/profile/Customer"),
          ("conf/catalog.yaml: profile.attributes.Income.type: ",
           "column Income is string in table {root}/profile/Customer, which does not hold number values")),
         root="badschema"),
    Case("activity-column-mistyped", "data", ("measures", "--as-of", "2024-06-01"),
         (("conf/catalog.yaml: profile.attributes.State: ", "column State is not in table {root}/profile/Customer"),
          ("conf/catalog.yaml: profile.attributes.Income.type: ", "column Income is string in table"),
          ("conf/catalog.yaml: activities.Purchases.attributes.PurchaseDate.type: ",
           "column PurchaseDate is string in table {root}/activity/Purchases, which does not hold timestamp values; "
           "add a format (like yyyy-MM-dd) to parse text dates")),
         root="badschema"),
    Case("truncated-commit-file", "data", ("run", "--only", "CustomersFromCalifornia"),
         (("failed: run: ", "{root}/profile/Customer/_delta_log/00000000000000000000.json"),),
         root="truncated", code=1),
    Case("read-only-lakehouse", "data", ("run", "--only", "CustomersFromCalifornia", "--as-of", "2024-06-01"),
         (("failed: run: [Errno ", "{root}/.memberships.lock"),), root="readonly", code=1),
]  # fmt: skip

CASES = [
    *SEGMENT_CASES,
    *INSIGHT_CASES,
    *EXPANSION_CASES,
    *SUGGESTION_CASES,
    *CONFIG_CASES,
    *CLI_CASES,
    *DATA_CASES,
    *OUTPUT_CASES,
    *SETTINGS_CASES,
    *FILE_CASES,
    *SEGMENT_CASES_2,
    *CONFIG_CASES_2,
    *DATA_CASES_2,
]


@pytest.fixture
def case_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh copy of conf/ in a folder that is also the working directory."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}-{c.id}" for c in CASES])
def test_bad_input_exits_2_with_one_line_per_problem(
    case: Case,
    lakes: dict[str, Path],
    case_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = case_dir / "conf"
    subs = {"{file}": str(lakes["file"]), "{tmp}": str(case_dir)}
    if case.root not in ("", *lakes):
        pytest.skip(f"this machine cannot make the {case.root} lakehouse (root without chattr)")
    if case.root:
        subs["{rootrel}"] = os.path.relpath(lakes[case.root], case_dir)
        subs["{root}"] = str(lakes[case.root])

    def fill(text: str) -> str:
        for k, v in subs.items():
            text = text.replace(k, v)
        return text

    for rel, content in case.files.items():
        target = conf / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(fill(content), encoding="utf-8")
    for rel, to in case.links.items():
        link = case_dir / rel
        if link.exists():
            link.unlink()
        link.symlink_to(fill(to))
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    argv = [fill(a) for a in case.argv]
    if "--conf" not in argv:
        argv += ["--conf", str(conf)]
    if case.root and "--root" not in argv:
        argv += ["--root", str(lakes[case.root])]
    watched = [*lakes.values(), case_dir]
    before = [_tree(p) for p in watched]
    capsys.readouterr()

    code = _cli(argv)

    captured = capsys.readouterr()
    after = [_tree(p) for p in watched]
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.splitlines()
    assert code == case.code, captured.err
    assert len(lines) == len(case.expect), lines
    for line, expected in zip(lines, case.expect, strict=True):
        assert line.startswith("error: " if case.code == 2 else "failed: "), line
        for part in (expected,) if isinstance(expected, str) else expected:
            assert fill(part) in line, (part, line)
        if case.file:
            assert str(conf / case.file) in line, line
    assert after == before, "something was written"


def test_corpus_is_large_and_covers_every_category() -> None:
    by_category: dict[str, int] = {}
    for c in CASES:
        by_category[c.category] = by_category.get(c.category, 0) + 1
    assert len(CASES) >= 220
    assert len({c.id for c in CASES if c.category == "segment"}) == by_category["segment"]
    assert set(by_category) == {
        "segment",
        "insight",
        "expansion",
        "suggestion",
        "config",
        "cli",
        "data",
        "output",
        "settings",
        "files",
    }
    assert len({f"{c.category}-{c.id}" for c in CASES}) == len(CASES)


# -- values with SQL in them are plain values -----------------------------------------

_DISPLAY = 'Customer\'s "Home" State; --'
_PLAIN = {
    "SqlEquals": ("{attribute: State, op: eq, value: \"x' OR '1'='1\"}", lambda s: s == SQL_VALUE),
    "SqlIn": (
        "{attribute: State, op: in, value: [\"'; DROP TABLE Customer; --\", '1=1 OR']}",
        lambda s: s in (DROP_VALUE, "1=1 OR"),
    ),
    "QuoteContains": ('{attribute: State, op: contains, value: "\'"}', lambda s: "'" in s),
    "ByQuotedDisplayName": (
        "{attribute: '" + _DISPLAY.replace("'", "''") + "', op: ne, value: \"x' OR '1'='1\"}",
        lambda s: s != SQL_VALUE,
    ),
    "NoSuchValue": ('{attribute: State, op: eq, value: "\' OR 1=1 --"}', lambda s: False),
}


def test_sql_in_values_and_display_names_is_plain_text(
    spark: SparkSession, lakes: dict[str, Path], case_dir: Path
) -> None:
    conf = case_dir / "plain"
    (conf / "segments").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "lakehouse.yaml", conf / "lakehouse.yaml")
    (conf / "catalog.yaml").write_text(
        _catalog(
            "State: {type: string}",
            "State: {type: string, display: '" + _DISPLAY.replace("'", "''") + "'}",
        ),
        encoding="utf-8",
    )
    for output, (where, _) in _PLAIN.items():
        text = f"name: {output}\nwhere: {where}\n"
        assert yaml.safe_load(text)["where"]  # the YAML says what the test means
        (conf / "segments" / f"{output.lower()}.yaml").write_text(text, encoding="utf-8")
    root = lakes["lake"]

    code = _cli(["run", "--conf", str(conf), "--root", str(root), "--as-of", "2024-06-01", "-q"])

    assert code == 0
    profile = pd.DataFrame(_profile_rows(240), columns=PROFILE_SCHEMA.fieldNames())
    for output, (_, test) in _PLAIN.items():
        expected = {
            cid for cid, s in zip(profile.CustomerId, profile.State, strict=True) if s and test(s)
        }
        assert keys(spark, root, output) == expected, output
    assert len(set(profile.loc[profile.State == SQL_VALUE, "CustomerId"])) > 0  # planted rows exist
    assert spark.read.format("delta").load(str(root / "profile" / "Customer")).count() == 240


# -- values with quotes, and the calendar's edges ---------------------------------------


@pytest.mark.parametrize("value", [SQL_VALUE, 'O\'Brien "x"'], ids=["sql", "both-quotes"])
def test_quick_create_value_with_quotes_round_trips(
    value: str, lakes: dict[str, Path], case_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = case_dir / "conf"
    argv = ["quick-create", "--field", "State", "--value", value, "--name", "Quoted"]
    root = ["--conf", str(conf), "--root", str(lakes["lake"]), "--as-of", "2024-06-01"]

    code = _cli([*argv, *root])

    out = capsys.readouterr().out
    assert code == 0
    written = yaml.safe_load((conf / "segments" / "quoted.yaml").read_text(encoding="utf-8"))
    assert written["where"] == {"attribute": "State", "op": "eq", "value": value}
    profile = pd.DataFrame(_profile_rows(240), columns=PROFILE_SCHEMA.fieldNames())
    members = int((profile.State == value).sum())
    assert f"estimated size: {members:,} of 240 customers" in out


def test_as_of_range_and_windows_past_year_1() -> None:
    from cohortlake.conditions.compile import window_start
    from cohortlake.conditions.model import Window
    from cohortlake.context import parse_as_of
    from cohortlake.errors import InputError

    utc = dt.UTC
    assert parse_as_of("1900-01-01") == dt.datetime(1900, 1, 1, tzinfo=utc)
    assert parse_as_of("9999-12-31T23:59:59Z") == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=utc)
    with pytest.raises(InputError, match="out of range"):  # 1899-12-31 23:00 in UTC
        parse_as_of("1900-01-01T04:00:00+05:00")
    # 100000 weeks (about 1917 years) before 1900 is before year 1: the window starts at year 1.
    start = dt.datetime(1900, 1, 1, tzinfo=utc)
    year_1 = dt.datetime(1, 1, 1, tzinfo=utc)
    assert window_start(start, Window(100_000, "weeks")) == year_1
    assert window_start(start, Window(100_000, "years")) == year_1
    assert window_start(start, Window(7, "days")) == dt.datetime(1899, 12, 25, tzinfo=utc)
