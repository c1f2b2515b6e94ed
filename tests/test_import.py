"""``cohortlake import``: CSV, JSON and Parquet files into one Delta table, in one commit.

Expected values come from pandas or the json module reading the same files, or from
hand-counted data; types and renames are written out by hand.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cohortlake.cli import build_parser, main
from cohortlake.errors import InputError
from cohortlake.importing import check_import, import_files

REPO = Path(__file__).resolve().parent.parent

CSV = textwrap.dedent(
    """\
    Customer Id,Amount,Visits,Big,Active,Joined,SeenAt,Mixed,Zip,e-mail,2nd Phone,Note
    1,10.5,3,3000000000,true,2024-01-31,2024-01-31T10:00:00Z,2024-01-01,02134,a@x.org,555,"has ""quotes"", and a comma"
    2,-2,0,-3000000000,FALSE,2023-12-01,2024-02-01 08:30:00.250+02:00,n/a,10001,,556,
    3,1e3,,42,True,,2024-03-01T00:00:00,2024-03-03,,c@x.org,,""
    """
)
CSV_TYPES = {
    "CustomerId": "int",
    "Amount": "double",
    "Visits": "int",
    "Big": "bigint",
    "Active": "boolean",
    "Joined": "date",
    "SeenAt": "timestamp",
    "Mixed": "string",  # one "n/a" among dates
    "Zip": "string",  # leading zero: an identifier, not a number
    "EMail": "string",
    "C2ndPhone": "int",
    "Note": "string",
}


def _types(spark: SparkSession, path: str) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in spark.read.format("delta").load(path).schema}


def _versions(spark: SparkSession, path: str) -> list[int]:
    history = DeltaTable.forPath(spark, path).history().select("version").collect()
    return sorted(r[0] for r in history)


def test_csv_types_names_and_values(spark: SparkSession, tmp_path: Path) -> None:
    src = tmp_path / "customers.csv"
    src.write_text(CSV)
    out = str(tmp_path / "Customer")
    result = import_files(spark, [str(src)], out, key="Customer Id")

    assert _types(spark, out) == CSV_TYPES
    assert result.renamed == (
        ("Customer Id", "CustomerId"),
        ("e-mail", "EMail"),
        ("2nd Phone", "C2ndPhone"),
    )
    assert (result.dates, result.timestamps) == (("Joined",), ("SeenAt",))
    assert result.summary() == (
        f"import: 1 file, 3 rows, 12 columns -> {out} (version 0); dates: Joined; "
        'timestamps: SeenAt; renamed: "Customer Id" -> CustomerId, "e-mail" -> EMail, '
        '"2nd Phone" -> C2ndPhone'
    )
    # One commit, Change Data Feed on.
    assert _versions(spark, out) == [0]
    props = DeltaTable.forPath(spark, out).detail().first()["properties"]
    assert props.get("delta.enableChangeDataFeed") == "true"

    expected = pd.read_csv(
        src, dtype={"Zip": str}, keep_default_na=False, na_values=[""]
    ).sort_values("Customer Id")
    got = (
        spark.read.format("delta")
        .load(out)
        .withColumn("SeenAt", F.unix_micros("SeenAt"))
        .orderBy("CustomerId")
        .toPandas()
    )
    stamps = [pd.Timestamp(v) for v in expected["SeenAt"]]
    seen = [t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC") for t in stamps]
    joined = [None if pd.isna(v) else dt.date.fromisoformat(v) for v in expected["Joined"]]

    def values(series: pd.Series) -> list[object]:
        return [None if pd.isna(v) else v for v in series]

    assert values(got["CustomerId"]) == values(expected["Customer Id"])
    assert values(got["Amount"]) == values(expected["Amount"])
    assert values(got["Visits"]) == values(expected["Visits"])
    assert values(got["Big"]) == values(expected["Big"])
    assert values(got["Active"]) == values(expected["Active"])
    assert values(got["Joined"]) == joined
    assert values(got["SeenAt"]) == [t.value // 1000 for t in seen]
    assert values(got["Mixed"]) == values(expected["Mixed"])
    assert values(got["Zip"]) == values(expected["Zip"]) == ["02134", "10001", None]
    assert values(got["EMail"]) == values(expected["e-mail"])
    assert values(got["C2ndPhone"]) == values(expected["2nd Phone"])
    assert values(got["Note"]) == values(expected["Note"])  # empty fields are nulls


def test_json_lines_and_arrays(spark: SparkSession, tmp_path: Path) -> None:
    records = [
        {"id": 1, "born": "1990-05-17", "seen": "2024-01-02T03:04:05Z", "code": "A1", "vip": True},
        {"id": 2, "born": "2001-12-31", "seen": None, "code": "2024-01-01", "vip": False},
        {"id": 3, "born": None, "seen": "2024-01-02 03:04:05.5", "code": "B", "vip": None},
    ]
    lines = tmp_path / "people.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = str(tmp_path / "people")
    result = import_files(spark, [str(lines)], out)
    assert _types(spark, out) == {
        "id": "bigint",
        "born": "date",
        "seen": "timestamp",
        "code": "string",
        "vip": "boolean",
    }
    assert (result.rows, result.dates, result.timestamps) == (3, ("born",), ("seen",))
    got = spark.read.format("delta").load(out).orderBy("id").collect()
    assert [r["born"] for r in got] == [
        None if r["born"] is None else dt.date.fromisoformat(r["born"]) for r in records
    ]
    assert [r["code"] for r in got] == [r["code"] for r in records]

    # A local .json file holding one (pretty-printed) array of objects.
    array = tmp_path / "people.json"
    array.write_text(json.dumps(records, indent=2))
    out2 = str(tmp_path / "people2")
    assert import_files(spark, [str(array)], out2).rows == len(json.loads(array.read_text()))
    assert _types(spark, out2) == _types(spark, out)


def test_parquet_keeps_stored_types(spark: SparkSession, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "First Name": ["Ann", "Bob", None],
            "Age": pd.array([31, 42, 7], dtype="int32"),
            "Score": [0.5, 1.25, None],
            "Vip": [True, False, True],
            "Joined": [dt.date(2024, 1, 2), dt.date(2023, 5, 6), None],
            "DateText": ["2024-01-02", "2024-01-03", "2024-01-04"],  # stays text in Parquet
        }
    )
    src = tmp_path / "people.parquet"
    frame.to_parquet(src, index=False)
    out = str(tmp_path / "people")
    result = import_files(spark, [str(src)], out)
    assert _types(spark, out) == {
        "FirstName": "string",
        "Age": "int",
        "Score": "double",
        "Vip": "boolean",
        "Joined": "date",
        "DateText": "string",
    }
    assert result.renamed == (("First Name", "FirstName"),)
    got = spark.read.format("delta").load(out).toPandas()
    got = got.sort_values("Age").reset_index(drop=True)
    want = (
        frame.rename(columns={"First Name": "FirstName"}).sort_values("Age").reset_index(drop=True)
    )
    for column in want.columns:
        assert [None if pd.isna(v) else v for v in got[column]] == [
            None if pd.isna(v) else v for v in want[column]
        ], column


def test_several_files_one_table(spark: SparkSession, tmp_path: Path) -> None:
    one, two = tmp_path / "a.csv", tmp_path / "b.csv.gz"
    one.write_text("Id;Amount\n1;2.5\n2;3\n")
    with gzip.open(two, "wt") as fh:
        fh.write("Id;Amount\n3;4\n4;\n5;6.25\n")
    out = str(tmp_path / "t")
    result = import_files(spark, [str(one), str(two)], out, delimiter=";", key="Id")
    frames = [pd.read_csv(one, sep=";"), pd.read_csv(two, sep=";")]
    want = pd.concat(frames)
    assert result.rows == len(want) == 5
    got = spark.read.format("delta").load(out).orderBy("Id").collect()
    assert [r["Id"] for r in got] == list(want["Id"])
    assert sum(r["Amount"] or 0 for r in got) == pytest.approx(want["Amount"].sum())
    assert _types(spark, out) == {"Id": "int", "Amount": "double"}


def test_key_with_duplicates_or_nulls_writes_nothing(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "dups.csv"
    # Hand-counted: 2 and 3 repeat (2 values on 5 rows), one key is empty.
    src.write_text("Id,Name\n1,a\n2,b\n2,c\n3,d\n3,e\n3,f\n,g\n4,h\n")
    out = tmp_path / "t"
    argv = ["import", str(src), "--table", str(out), "--conf", str(REPO / "conf"), "--key", "Id"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --key: key Id has 2 duplicate values (on 5 rows) and 1 null"
    assert not out.exists()
    with pytest.raises(InputError, match="column 'Nope' is not in the files"):
        import_files(spark, [str(src)], str(out), key="Nope")
    assert not out.exists()


def test_existing_table_needs_replace(spark: SparkSession, tmp_path: Path) -> None:
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text("Id,Name\n1,a\n2,b\n")
    new.write_text("Id,Score,Joined\n7,1.5,2024-01-01\n8,2.5,2024-01-02\n9,,\n")
    out = str(tmp_path / "t")
    assert import_files(spark, [str(old)], out).version == 0
    with pytest.raises(InputError, match=r"exists; pass --replace to replace it"):
        import_files(spark, [str(new)], out)
    assert _versions(spark, out) == [0]
    assert spark.read.format("delta").load(out).count() == 2

    result = import_files(spark, [str(new)], out, replace=True)
    assert (result.version, result.rows) == (1, 3)
    assert _versions(spark, out) == [0, 1]
    assert _types(spark, out) == {"Id": "int", "Score": "double", "Joined": "date"}
    ids = [r["Id"] for r in spark.read.format("delta").load(out).orderBy("Id").collect()]
    assert ids == list(pd.read_csv(new)["Id"])


def test_bad_data_and_names_are_input_errors(spark: SparkSession, tmp_path: Path) -> None:
    clash = tmp_path / "clash.csv"
    clash.write_text("First Name,firstname\na,b\n")
    with pytest.raises(InputError, match="'First Name' and 'firstname' become FirstName and"):
        import_files(spark, [str(clash)], str(tmp_path / "t1"))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("Id,Name\n1,a\n2,b,extra\n")
    with pytest.raises(InputError, match=r"ragged\.csv: not readable as csv: Malformed CSV"):
        import_files(spark, [str(ragged)], str(tmp_path / "t2"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"Id": 1}\n{"Id": 2, oops\n')
    with pytest.raises(InputError, match=r"broken\.jsonl: not readable as json: "):
        import_files(spark, [str(broken)], str(tmp_path / "t3"))
    with pytest.raises(InputError, match=r"catalogImplementation: hive"):
        import_files(spark, [str(clash)], "imported_people")
    assert not spark.catalog.tableExists("imported_people")
    assert not any((tmp_path / t).exists() for t in ("t1", "t2", "t3"))


def test_checks_before_spark(tmp_path: Path) -> None:
    good, other = tmp_path / "a.csv", tmp_path / "b.json"
    good.write_text("Id\n1\n")
    other.write_text('{"Id": 1}\n')
    (tmp_path / "c.csv").write_text("Key\n2\n")
    arr = tmp_path / "arr.json"
    arr.write_text('[{"Id": 1}]')
    cases = {
        (str(tmp_path / "missing.csv"),): "missing.csv: no such file",
        (str(tmp_path),): "is a folder",
        (str(tmp_path / "a.txt"),): "cannot tell the format from the name",
        (str(good), str(other)): f"b.json: is json but {good} is csv",
        (str(good), str(tmp_path / "c.csv")): "column 1 is 'Key' here, 'Id' there",
        ("s3a://bucket/x.parquet.gz",): "cannot tell the format",
        (str(arr), str(other)): f"b.json: is one object per line but {arr} is not",
    }
    (tmp_path / "a.txt").write_text("Id\n1\n")
    for files, message in cases.items():
        with pytest.raises(InputError, match=message):
            check_import(files, str(tmp_path / "t"))
    with pytest.raises(InputError, match=r"--table: .* is neither a path"):
        check_import([str(good)], "not a table")
    with pytest.raises(InputError, match="--delimiter: applies to CSV files only"):
        check_import([str(other)], "x/t", delimiter=";")
    assert check_import(["s3a://bucket/x.csv.gz"], "db.t").fmt == "csv"  # URIs unchecked
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["import", str(good), "--table", "t", "--format", "xls"])
    assert info.value.code == 2
