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
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from profile_schema import PROFILE_SCHEMA
from pyspark.sql import SparkSession

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
def lakes(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Lakehouse roots: ``lake`` (a profile, no measures or activity), ``empty`` (nothing),
    ``emptyprofile`` (a 0-row profile table) and ``file`` (a plain file)."""
    base = tmp_path_factory.mktemp("hostile")
    roots = {name: base / name for name in ("lake", "empty", "emptyprofile")}
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
    return roots


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``path``: size and mtime (ns), to prove nothing was written."""
    if not path.exists():
        return {}
    if path.is_file():
        st = path.stat()
        return {".": (st.st_size, st.st_mtime_ns)}
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(path))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
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
    ``file`` is the conf-relative file every line must name ("" for CLI arguments).
    """

    id: str
    category: str
    argv: tuple[str, ...]
    expect: tuple[str | tuple[str, ...], ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    file: str = ""
    root: str = "lake"


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
    Case("unknown-sub-command", "cli", ("frobnicate",), ("unknown command 'frobnicate'; one of generate, measures, validate",)),
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
         (("{root}/segments/CustomersFromCalifornia: ", "segment CustomersFromCalifornia has not been run yet"),),
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
         (("{root}/segments/SummerPromotion: ", "segment SummerPromotion has not been run yet"),)),
    Case("export-never-run", "data", ("export", "SummerPromotion", "--out", "{tmp}/out.csv"),
         (("{root}/segments/SummerPromotion: ", "segment SummerPromotion has not been run yet"),)),
    Case("expand-source-never-run", "data", ("expand",),
         (("{root}/measures/CustomerMeasures: ", "missing Delta table: the measures"),
          ("{root}/segments/SummerPromotion: ", "segment SummerPromotion has not been run yet"))),
    Case("suggest-no-measures", "data", ("suggest",),
         (("{root}/measures/CustomerMeasures: ", "missing Delta table: the measures"),)),
]  # fmt: skip

CASES = [
    *SEGMENT_CASES,
    *INSIGHT_CASES,
    *EXPANSION_CASES,
    *SUGGESTION_CASES,
    *CONFIG_CASES,
    *CLI_CASES,
    *DATA_CASES,
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
) -> None:
    conf = case_dir / "conf"
    subs = {"{file}": str(lakes["file"]), "{tmp}": str(case_dir)}
    if case.root:
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
    argv = [fill(a) for a in case.argv]
    if "--conf" not in argv:
        argv += ["--conf", str(conf)]
    if case.root and "--root" not in argv:
        argv += ["--root", str(lakes[case.root])]
    watched = [lakes[k] for k in ("lake", "empty", "emptyprofile", "file")] + [case_dir]
    before = [_tree(p) for p in watched]
    capsys.readouterr()

    code = _cli(argv)

    captured = capsys.readouterr()
    after = [_tree(p) for p in watched]
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == len(case.expect), lines
    for line, expected in zip(lines, case.expect, strict=True):
        assert line.startswith("error: "), line
        for part in (expected,) if isinstance(expected, str) else expected:
            assert fill(part) in line, (part, line)
        if case.file:
            assert str(conf / case.file) in line, line
    assert after == before, "something was written"


def test_corpus_is_large_and_covers_every_category() -> None:
    by_category: dict[str, int] = {}
    for c in CASES:
        by_category[c.category] = by_category.get(c.category, 0) + 1
    assert len(CASES) >= 60
    assert len({c.id for c in CASES if c.category == "segment"}) == by_category["segment"]
    assert set(by_category) == {
        "segment",
        "insight",
        "expansion",
        "suggestion",
        "config",
        "cli",
        "data",
    }


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
        got = {
            r[0] for r in spark.read.format("delta").load(str(root / "segments" / output)).collect()
        }
        assert got == expected, output
    assert len(set(profile.loc[profile.State == SQL_VALUE, "CustomerId"])) > 0  # planted rows exist
    assert spark.read.format("delta").load(str(root / "profile" / "Customer")).count() == 240
