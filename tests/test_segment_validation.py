"""Segment definitions: naming rules, and bad definitions with the exact errors expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cohortlake.catalog import load_catalog
from cohortlake.cli import main
from cohortlake.config import load_document
from cohortlake.errors import InputError
from cohortlake.naming import derive_output_name
from segmentation.validate import load_definitions, parse_definitions

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("name", "output"),
    [
        ("Customers from California", "CustomersFromCalifornia"),
        ("High Value Online Customers", "HighValueOnlineCustomers"),
        ("Summer Promotion", "SummerPromotion"),
        ("  summer   promotion!! ", "SummerPromotion"),
        ("2024 spring sale", "SpringSale"),
        ("top-10% spenders (web)", "Top10SpendersWeb"),
        ("iPhone users", "IPhoneUsers"),
        ("already CamelCase", "AlreadyCamelCase"),
    ],
)
def test_output_names_derive_from_names(name: str, output: str) -> None:
    assert derive_output_name(name) == output


def _errors(doc: object, known: dict[str, str] | None = None, catalog=None) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_definitions([("seg.yaml", doc)], catalog, known or {"hvoc": "HVOC"})
    return [f"{p.path}: {p.reason}" for p in info.value.problems]


def _leaf(**kw: object) -> dict[str, object]:
    return {"name": "Bad", "where": kw}


BAD = [
    ({"where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["name: required key is missing"]),
    ({"name": "", "where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["name: expected a name, got ''"]),
    ({"name": "x" * 201, "where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["name: name is 201 characters; at most 200"]),
    ({"name": "!!!", "where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["name: name '!!!' derives to no output name; set output"]),
    ({"name": "Café", "where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["name: name derives to 'Café', not a valid output name; set output"]),
    ({"name": "A", "output": "../etc", "where": {"attribute": "State", "op": "eq", "value": "CA"}},
     ["output: output '../etc' must start with a letter and hold only letters and digits (max 128)"]),
    ({"name": "A", "output": "1abc", "where": {"attribute": "State", "op": "eq", "value": "CA"}},
     ["output: output '1abc' must start with a letter and hold only letters and digits (max 128)"]),
    ({"name": "A", "type": "weekly", "where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["type: expected dynamic or static, got 'weekly'"]),
    ({"name": "A", "colour": "red", "where": {"attribute": "State", "op": "eq", "value": "CA"}}, ["colour: unknown key"]),
    ({"name": "A"}, ["where: required key is missing"]),
    (_leaf(attribute="Incme", op="gt", value=5), ["where.attribute: unknown attribute 'Incme'; did you mean Income?"]),
    (_leaf(attribute="State", op="equals", value="CA"), ["where.op: unknown operator 'equals'; did you mean eq?"]),
    (_leaf(attribute="Income", op="contains", value="5"), ["where.op: operator 'contains' does not apply to number attribute Income"]),
    (_leaf(attribute="Income", op="gt", value="lots"), ["where.value: expected a number, got 'lots'"]),
    (_leaf(attribute="Income", op="gt", value=float("nan")), ["where.value: expected a finite number, got nan"]),
    (_leaf(attribute="RewardPoints", op="gt", value=2.5), ["where.value: expected a whole number, got 2.5"]),
    (_leaf(attribute="RewardPoints", op="eq", value=10**30), ["where.value: number out of range for an integer (64-bit)"]),
    (_leaf(attribute="Income", op="gt", value=10**400), ["where.value: number out of range"]),
    (_leaf(attribute="State", op="eq", value=5), ["where.value: expected a string, got 5 (quote it)"]),
    (_leaf(attribute="EmailSubscriber", op="eq", value="yes"), ["where.value: expected true or false, got 'yes'"]),
    (_leaf(attribute="DateOfBirth", op="gt", value="31/12/1996"), ["where.value: expected a date YYYY-MM-DD, got '31/12/1996'"]),
    (_leaf(attribute="DateOfBirth", op="gt", value="1996-02-30"), ["where.value: not a valid date: '1996-02-30'"]),
    (_leaf(attribute="DateOfBirth", op="between", value=["1996-12-31", "1981-01-01"]),
     ["where.value: 'between' needs low <= high, got [1996-12-31, 1981-01-01]"]),
    (_leaf(attribute="Income", op="between", value=[1]), ["where.value: 'between' needs [low, high], got [1]"]),
    (_leaf(attribute="State", op="in", value=[]), ["where.value: 'in' needs a non-empty list, got []"]),
    (_leaf(attribute="State", op="in", value=["CA", 3]), ["where.value[1]: expected a string, got 3 (quote it)"]),
    (_leaf(attribute="State", op="is_null", value="x"), ["where.value: operator 'is_null' takes no value"]),
    (_leaf(attribute="State", op="eq"), ["where.value: operator 'eq' needs a value"]),
    (_leaf(attribute="State", op="eq", value=None), ["where.value: expected a string value, got null (use is_null to test for nulls)"]),
    (_leaf(attribute="Income", op="gt", value=5, ignore_case=True), ["where.ignore_case: ignore_case applies to string attributes, Income is number"]),
    (_leaf(attribute="DateOfBirth", op="in_last", value={"n": 3, "unit": "fortnights"}),
     ["where.value.unit: expected one of days, weeks, months, years, got 'fortnights'"]),
    (_leaf(attribute="DateOfBirth", op="in_last", value={"n": -1, "unit": "days"}),
     ["where.value.n: expected a whole number from 0 to 100000, got -1"]),
    ({"name": "A", "where": {"all": []}}, ["where.all: 'all' needs a non-empty list of conditions"]),
    ({"name": "A", "where": {"all": [{"attribute": "State", "op": "eq", "value": "CA"}], "any": []}},
     ["where: a condition is exactly one of all, any, not, attribute, related, segment; found all and any"]),
    ({"name": "A", "where": {"foo": 1}}, ["where: expected one of all, any, not, attribute, related, segment; found foo"]),
    ({"name": "A", "where": ["State"]}, ["where: expected a condition (a mapping with one of all, any, not, attribute, related, segment), got ['State']"]),
    ({"name": "A", "where": {"segment": "Nope"}}, ["where.segment: unknown segment 'Nope'"]),
    ({"name": "A", "where": {"related": "Purchase"}}, ["where.related: unknown activity entity 'Purchase' (known: Purchases)"]),
    ({"name": "A", "where": {"related": "Purchases", "where": {"attribute": "Chanel", "op": "eq", "value": "web"}}},
     ["where.where.attribute: unknown attribute 'Chanel' of Purchases; did you mean Channel?"]),
    ({"name": "A", "where": {"related": "Purchases", "having": {"agg": "sum", "attribute": "Channel", "op": "gt", "value": 1}}},
     ["where.having.attribute: 'sum' needs a number attribute, Channel is string"]),
    ({"name": "A", "where": {"related": "Purchases", "having": {"agg": "median", "op": "gt", "value": 1}}},
     ["where.having.agg: expected one of count, sum, avg, min, max, count_distinct, got 'median'"]),
    ({"name": "A", "where": {"related": "Purchases", "having": {"agg": "count", "attribute": "Amount", "op": "gt", "value": 1}}},
     ["where.having.attribute: 'count' counts rows and takes no attribute"]),
    ({"name": "A", "where": {"related": "Purchases", "having": {"agg": "count", "op": "gt", "value": 1.5}}},
     ["where.having.value: expected a whole number, got 1.5"]),
    ({"name": "A", "where": {"related": "Purchases", "where": {"segment": "HVOC"}}},
     ["where.where.segment: segment leaves are not allowed inside an entity's condition"]),
    ({"name": "A", "project": ["Email", "Emial"], "where": {"attribute": "State", "op": "eq", "value": "CA"}},
     ["project[1]: unknown attribute 'Emial'; did you mean Email?"]),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "expected"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_definitions_give_exact_errors(catalog, doc: object, expected: list[str]) -> None:
    assert _errors(doc, catalog=catalog) == expected


def test_every_problem_is_reported_at_once(catalog) -> None:
    doc = {
        "name": "A",
        "where": {"all": [
            {"attribute": "Incme", "op": "gt", "value": 5},
            {"attribute": "State", "op": "eq", "value": 5},
            {"not": {"attribute": "DateOfBirth", "op": "before", "value": "soon"}},
        ]},
    }  # fmt: skip
    assert _errors(doc, catalog=catalog) == [
        "where.all[0].attribute: unknown attribute 'Incme'; did you mean Income?",
        "where.all[1].value: expected a string, got 5 (quote it)",
        "where.all[2].not.value: expected a date YYYY-MM-DD, got 'soon'",
    ]


def test_aliases_and_display_names_resolve(catalog) -> None:
    doc = {
        "name": "Summer Promotion",
        "where": {"all": [
            {"attribute": "average store purchase ($)", "op": "gte", "value": 113},
            {"attribute": "DATEOFBIRTH", "op": "on_or_after", "value": "1981-01-01"},
            {"attribute": "Date of Birth", "op": "before", "value": "1997-01-01"},
        ]},
    }  # fmt: skip
    (d,) = parse_definitions([("s.yaml", doc)], catalog)
    leaves = d.where.children  # type: ignore[union-attr]
    assert [(leaf.column, leaf.op) for leaf in leaves] == [
        ("AverageStorePurchase", "gte"),
        ("DateOfBirth", "gte"),
        ("DateOfBirth", "lt"),
    ]
    assert d.output == "SummerPromotion" and d.type == "dynamic"


def test_many_definitions_per_file_duplicates_and_cycles(catalog) -> None:
    doc = {
        "segments": [
            {"name": "A", "where": {"segment": "B"}},
            {
                "name": "B",
                "where": {
                    "any": [{"segment": "c"}, {"attribute": "State", "op": "eq", "value": "CA"}]
                },
            },
            {"name": "C", "where": {"not": {"segment": "A"}}},
            {"name": "a", "where": {"attribute": "State", "op": "eq", "value": "CA"}},
        ]
    }
    assert _errors(doc, catalog=catalog) == [
        "segments[3].name: output name 'A' is already used in seg.yaml",
        "segments[0].where: cycle between segment leaves: A -> B -> C -> A",
    ]


def test_dependency_order(catalog) -> None:
    doc = {
        "segments": [
            {"name": "Top", "where": {"all": [{"segment": "Mid"}, {"segment": "Base"}]}},
            {"name": "Mid", "where": {"segment": "base"}},
            {"name": "Base", "where": {"attribute": "State", "op": "eq", "value": "CA"}},
        ]
    }
    assert [d.output for d in parse_definitions([("s.yaml", doc)], catalog)] == [
        "Base",
        "Mid",
        "Top",
    ]


# -- files and the command line -------------------------------------------------------------
@pytest.fixture
def conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "lakehouse.yaml").write_text(f"root: {tmp_path / 'lake'}\n")
    return conf


def test_malformed_yaml_names_the_file_and_line(conf: Path) -> None:
    bad = conf / "segments" / "broken.yaml"
    bad.write_text("name: Broken\nwhere: {attribute: State, op: eq, value: [CA\n")
    with pytest.raises(InputError) as info:
        load_definitions(conf, load_from(conf))
    assert [str(p) for p in info.value.problems] == [
        f"{bad}: invalid YAML at line 3: expected ',' or ']', but got '<stream end>'"
    ]


def test_duplicate_yaml_keys_are_rejected(conf: Path) -> None:
    bad = conf / "segments" / "dup.yaml"
    bad.write_text("name: A\nname: B\nwhere: {attribute: State, op: eq, value: CA}\n")
    with pytest.raises(InputError) as info:
        load_document(bad)
    assert str(info.value) == f"{bad}: invalid YAML at line 2: duplicate key 'name'"


def load_from(conf: Path):
    from cohortlake.catalog import load_catalog

    return load_catalog(conf / "catalog.yaml")


def test_cli_bad_definition_exits_2_and_writes_nothing(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = conf / "segments" / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "name": "Bad one",
                "where": {
                    "all": [{"attribute": "Incme", "op": "gt", "value": 1}, {"segment": "Nope"}]
                },
            }
        )
    )
    code = main(["run", "--conf", str(conf)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"error: {bad}: where.all[0].attribute: unknown attribute 'Incme'; did you mean Income?",
        f"error: {bad}: where.all[1].segment: unknown segment 'Nope'",
    ]
    assert not (conf.parent / "lake").exists()


def test_cli_output_name_clash_across_kinds(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (conf / "insights").mkdir(exist_ok=True)
    clash = conf / "insights" / "zz_clash.yaml"
    clash.write_text("name: Summer promotion\nkind: overlap\nsegments: [A, B]\n")
    code = main(["validate", "--conf", str(conf)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    # validate checks every kind, so the clash is reported from both files' sides
    assert err == [
        f"error: {conf / 'segments' / 'summer_promotion.yaml'}: name: output name 'SummerPromotion' is already used by insights in {clash}",
        f"error: {clash}: output: output name 'SummerPromotion' is already used by segments in {conf / 'segments' / 'summer_promotion.yaml'}",
    ]


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["preview"])
    assert info.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: cohortlake preview: the following arguments are required: segment"
    )


def test_cli_bad_as_of_exits_2(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--conf", str(conf), "--as-of", "yesterday"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: --as-of: not an ISO date or timestamp: 'yesterday'"
    )
    assert not (conf.parent / "lake").exists()


def test_cli_path_like_segment_name_exits_2(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "../../etc", "--conf", str(conf)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: segment: output: output name '../../etc' must start with a letter and hold only letters and digits (max 128)"
    )


def test_a_column_named_segment_cannot_be_projected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``memberships`` keeps each row's segment in ``Segment``: a profile attribute of that
    name may be tested but not copied next to the members."""
    (tmp_path / "catalog.yaml").write_text(
        "profile:\n  entity: Customer\n  key: CustomerId\n  attributes:\n"
        "    Segment: {type: string}\n    State: {type: string}\n"
    )
    cat = load_catalog(tmp_path / "catalog.yaml")
    leaf = {"attribute": "segment", "op": "eq", "value": "gold"}
    assert parse_definitions(
        [("ok.yaml", {"name": "Gold", "where": leaf, "project": ["State"]})], cat
    )
    assert _errors(
        {"name": "Gold", "where": leaf, "project": ["State", "segment"]}, catalog=cat
    ) == [
        "project[1]: Segment cannot be projected: memberships keeps the segment's name in Segment"
    ]
    # The command line: one line naming the file and the path inside it, exit code 2.
    (tmp_path / "segments").mkdir()
    bad = tmp_path / "segments" / "gold.yaml"
    bad.write_text(yaml.safe_dump({"name": "Gold", "where": leaf, "project": ["Segment"]}))
    (tmp_path / "lakehouse.yaml").write_text(f"root: {tmp_path / 'lake'}\n")
    assert main(["validate", "--conf", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {bad}: project[0]: Segment cannot be projected: "
        "memberships keeps the segment's name in Segment"
    ]
    assert not (tmp_path / "lake").exists()
