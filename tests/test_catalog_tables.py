"""Bad input to the catalog's `table`, `key` and `format`, and to `catalog init` and `check`:
one exact line each, exit code 2, nothing written (the Hive end-to-end cases are in
tests/test_own_lakehouse.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cohortlake.cli import main
from tests.conftest import REPO


def _conf(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    catalog = conf / "catalog.yaml"
    text = catalog.read_text()
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    catalog.write_text(text)
    return conf


def _errors(capsys: pytest.CaptureFixture[str], conf: Path) -> list[str]:
    return capsys.readouterr().err.replace(str(conf), "CONF").strip().splitlines()


def test_catalog_table_key_and_format_are_validated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(
        tmp_path,
        ("  key: CustomerId\n", "  key: CustomerId\n  table: 'crm customers'\n"),
        ("personal: true}\n    Income", "personal: true, format: dd/MM/yyyy!}\n    Income"),
        ("    event_time: PurchaseDate\n", "    event_time: PurchaseDate\n    key: cust-id\n"),
    )
    assert main(["validate", "--conf", str(conf)]) == 2
    assert _errors(capsys, conf) == [
        "error: CONF/catalog.yaml: profile.table: 'crm customers' is neither a path (with / or "
        "a URI scheme) nor a table name (name, schema.name or catalog.schema.name: letters, "
        "digits and _)",
        "error: CONF/catalog.yaml: profile.attributes.DateOfBirth.format: format 'dd/MM/yyyy!' "
        "is neither iso nor a Spark datetime pattern (like yyyy-MM-dd or dd/MM/yyyy HH:mm)",
        "error: CONF/catalog.yaml: activities.Purchases.key: key 'cust-id' must start with a "
        "letter and hold letters, digits or _",
    ]


def test_format_only_on_dates_and_timestamps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(tmp_path, ("Income ($), decimals: 2}", "Income ($), decimals: 2, format: iso}"))
    assert main(["validate", "--conf", str(conf)]) == 2
    assert _errors(capsys, conf) == [
        "error: CONF/catalog.yaml: profile.attributes.Income.format: format applies to date and "
        "timestamp attributes stored as text, Income is number"
    ]


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--activity", "Bad"],
            "error: --activity: expected NAME=TABLE:EVENT_TIME_COLUMN, got 'Bad'",
        ),
        (
            ["--activity", "Orders=t:x", "--activity-key", "Other=c"],
            "error: --activity-key: no --activity named Other",
        ),
        (
            ["--activity", "1x=t:e"],
            "error: --activity 1x=t:e: activity name '1x' must be a letter, then letters, digits or _",
        ),
        (
            ["--activity", "O=t:e", "--activity", "o=u:e"],
            "error: --activity o=u:e: activity o is named twice",
        ),
        (
            ["--profile", "a b"],
            "error: --profile: 'a b' is neither a path (with / or a URI scheme) nor a table name "
            "(name, schema.name or catalog.schema.name: letters, digits and _)",
        ),
        (["--key", "a-b"], "error: --key: 'a-b' is no column name"),
    ],
)
def test_catalog_init_arguments_answer_before_spark(
    flags: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "catalog.yaml"
    argv = ["catalog", "init", "--profile", "crm.c", "--key", "id", "--out", str(out), *flags]
    assert main([*argv, "--conf", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [line]
    assert not out.exists()


def test_catalog_init_and_check_against_tables(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing key column, an event time that is no time, and a table name with the
    session's in-memory catalog: one line each, exit 2, no file written."""
    people = str(tmp_path / "people")
    spark.createDataFrame([(1, "a", 3)], "client_no int, name string, visits int").write.format(
        "delta"
    ).save(people)
    out = tmp_path / "catalog.yaml"
    base = ["catalog", "init", "--profile", people, "--out", str(out), "--conf", str(tmp_path)]
    assert main([*base, "--key", "client"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --key: table {people} has no column client; did you mean client_no?"
    ]
    assert main([*base, "--key", "client_no", "--activity", f"Visits={people}:visits"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --activity Visits: event time column visits is int in table "
        f"{people}, not a date or timestamp (nor ISO text)"
    ]
    assert not out.exists()
    conf = _conf(
        tmp_path / "named", ("  key: CustomerId\n", "  key: CustomerId\n  table: crm.people\n")
    )
    root = tmp_path / "lake"
    assert main(["check", "--conf", str(conf), "--root", str(root)]) == 2
    assert _errors(capsys, conf) == [
        "error: CONF/catalog.yaml: profile.table: table name crm.people needs a persistent "
        "metastore, and this session's catalog is in-memory: give a path, or set "
        "`spark.sql.catalogImplementation: hive` (and a metastore) under spark.conf in "
        "lakehouse.yaml",
        f"error: {root}/activity/Purchases: missing Delta table: activity Purchases",
    ]
    assert not root.exists()
