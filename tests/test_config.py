"""Bad configuration: exit 2, one clear line per problem, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cohortlake.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "lakehouse.yaml").write_text(f"root: {tmp_path / 'lake'}\n")
    return conf


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


CASES = [
    ("source: Purchases\n    agg: avg", "source: Purchase\n    agg: avg",
     "measures.AverageWebPurchase.source: unknown activity entity 'Purchase' (known: Purchases)"),
    ("Income: {type: number", "Income: {type: money",
     "profile.attributes.Income.type: Input should be 'string', 'number', 'integer', 'date', 'timestamp' or 'boolean'"),
    ("profile:\n  entity: Customer", "customers:\n  entity: Customer", ("profile: required key is missing", "customers: unknown key")),
    ("    attribute: Amount\n    where: {attribute: Channel, op: eq, value: web}",
     "    attribute: Amonut\n    where: {attribute: Channel, op: eq, value: web}",
     "measures.AverageWebPurchase.attribute: unknown attribute 'Amonut' of Purchases; did you mean Amount?"),
    ("where: {attribute: Channel, op: eq, value: store}", "where: {attribute: Channel, op: equals, value: store}",
     "measures.AverageStorePurchase.where.op: unknown operator 'equals'; did you mean eq?"),
    ("    agg: sum\n    attribute: Amount", "    agg: sum\n    attribute: Channel",
     "measures.LifetimeSpend.attribute: agg 'sum' needs a number attribute, Channel is string"),
    ("event_time: PurchaseDate", "event_time: Channel",
     "activities.Purchases: event_time 'Channel' must be a date or timestamp, not string"),
    ("    Email: {type: string, personal: true}", "    Email: {type: string, secret: true}",
     "profile.attributes.Email.secret: unknown key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "message"), CASES, ids=[f"case{i}" for i in range(len(CASES))]
)
def test_bad_catalog_exits_2_with_one_line(
    conf: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    message: str | tuple[str, ...],
) -> None:
    _edit(conf / "catalog.yaml", old, new)
    assert main(["measures", "--conf", str(conf)]) == 2
    lines = (message,) if isinstance(message, str) else message
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {conf / 'catalog.yaml'}: {m}" for m in lines
    ]
    assert not (conf.parent / "lake").exists()


def test_bad_lakehouse_config(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (conf / "lakehouse.yaml").write_text("root: [a, b]\nsparks: {}\n")
    assert main(["generate", "--conf", str(conf)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {conf / 'lakehouse.yaml'}: root: Input should be a valid string",
        f"error: {conf / 'lakehouse.yaml'}: sparks: unknown key",
    ]


def test_root_that_is_a_file(
    conf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    assert main(["generate", "--conf", str(conf), "--root", str(target)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {conf / 'lakehouse.yaml'}: root: lakehouse root {target} is a file, not a folder"
    )


def test_missing_conf_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measures", "--conf", str(tmp_path / "nope")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'nope'}: configuration folder not found: {tmp_path / 'nope'}"
    )


def test_bad_generator_arguments(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--conf", str(conf), "--customers", "-5"])
    assert info.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: cohortlake generate: argument --customers: must be at least 1: '-5'"
    )
    assert not (conf.parent / "lake").exists()
