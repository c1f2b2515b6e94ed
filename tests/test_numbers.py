"""Numbers as people write them: the catalog's ``decimals``, preview cells and exported CSV.

The expected texts are written by hand (docs/numbers.md's rule), not computed by the code.
"""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import load_catalog
from cohortlake.cli import main
from cohortlake.context import Context, load_context
from cohortlake.errors import InputError
from cohortlake.lake import Lake
from cohortlake.numbers import number_text
from segmentation.export import export_segment
from segmentation.preview import preview_segment

REPO = Path(__file__).resolve().parent.parent
NOISY = 675.4599999999999  # what a double sum of purchase amounts can store for 675.46

# CustomerId, Income (decimals 2), RewardPoints (integer, undeclared)
PROFILE = [
    ("C1", 0.1 + 0.2, 7),
    ("C2", 1e-7, None),
    ("C3", 123456789012.345, -3),
    ("C4", -0.001, 0),
    ("C5", None, 12),
]
# CustomerId, LifetimeSpend (decimals 2 from Amount), AverageWebPurchase (decimals 2)
MEASURES = [
    ("C1", NOISY, None),
    ("C2", -NOISY, 2.675),
    ("C3", 0.0, 1e15 / 3),
    ("C4", -0.0, 20000.0),
    ("C5", 1e-7, 0.125),
]
# The segment's own columns: CustomerId, Score (an undeclared double), Rank, Label
SEGMENT = [
    ("C1", 0.1 + 0.2, 3, "-x"),
    ("C2", 1e-7, None, "plain"),
    ("C3", 1e16, -1, None),
    ("C4", -0.0, 0, "=1+1"),
    ("C5", 1 / 3, 9, "-2.5"),
]
SEG = "NumberSegment"

# What people write for each, by hand: money with two decimals, undeclared doubles with
# at most 15 significant digits and no trailing zeros, integers and nulls as they are.
EXPECTED_CATALOG_COLUMNS = {
    "C1": {"Income": "0.30", "LifetimeSpend": "675.46", "AverageWebPurchase": ""},
    "C2": {"Income": "0.00", "LifetimeSpend": "-675.46", "AverageWebPurchase": "2.68"},
    "C3": {
        "Income": "123456789012.35",
        "LifetimeSpend": "0.00",
        "AverageWebPurchase": "333333333333333.30",
    },
    "C4": {"Income": "0.00", "LifetimeSpend": "0.00", "AverageWebPurchase": "20000.00"},
    "C5": {"Income": "", "LifetimeSpend": "0.00", "AverageWebPurchase": "0.13"},
}
EXPECTED_POINTS = {"C1": "7", "C2": "", "C3": "-3", "C4": "0", "C5": "12"}
EXPECTED_SCORE = {"C1": "0.3", "C2": "1e-07", "C3": "1e+16", "C4": "0", "C5": "0.333333333333333"}
EXPECTED_SEGMENT_CSV = [
    "CustomerId,Score,Rank,Label",
    "C1,0.3,3,'-x",
    "C2,1e-07,,plain",
    "C3,1e+16,-1,",
    "C4,0,0,'=1+1",
    "C5,0.333333333333333,9,'-2.5",
]


@pytest.fixture(scope="module")
def template(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("numbers") / "lake"
    lake = Lake(spark, str(root))
    lake.overwrite(
        spark.createDataFrame(PROFILE, "CustomerId string, Income double, RewardPoints int"),
        lake.profile_path("Customer"),
    )
    lake.overwrite(
        spark.createDataFrame(
            MEASURES,
            "CustomerId string, LifetimeSpend double, AverageWebPurchase double",
        ),
        lake.measures_path(),
    )
    lake.overwrite(
        spark.createDataFrame(
            SEGMENT, "CustomerId string, Score double, Rank bigint, Label string"
        ),
        lake.segment_path(SEG),
    )
    return root


@pytest.fixture
def lab(spark: SparkSession, tmp_path: Path, template: Path) -> Context:
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(REPO / "conf" / "catalog.yaml", conf / "catalog.yaml")
    (conf / "lakehouse.yaml").write_text(f"root: {template}\n")
    return load_context(conf, spark=spark)


def test_number_text_of_each_type(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [
            (NOISY, Decimal("675.4600000000"), 5, 0.1),
            (0.1 + 0.2, Decimal("-0.0010000000"), None, None),
            (None, None, -42, 1e-8),
            (2.5e-5, Decimal("100.0000000000"), 0, 1234.5),
            (123456789.123456789, Decimal("0E-10"), 7, -3.25),
            (float("nan"), Decimal("12.3450000000"), 1, 0.0),
        ],
        "d double, m decimal(20,10), i int, f float",
    )
    rows = df.select(
        number_text(F.col("d"), T.DoubleType()).alias("d"),
        number_text(F.col("d"), T.DoubleType(), 3).alias("d3"),
        number_text(F.col("m"), T.DecimalType(20, 10)).alias("m"),
        number_text(F.col("m"), T.DecimalType(20, 10), 2).alias("m2"),
        number_text(F.col("m"), T.DecimalType(20, 10), 12).alias("m12"),
        number_text(F.col("i"), T.IntegerType()).alias("i"),
        number_text(F.col("i"), T.IntegerType(), 2).alias("i2"),
        number_text(F.col("f"), T.FloatType()).alias("f"),
    ).collect()
    assert [tuple(r) for r in rows] == [
        ("675.46", "675.460", "675.46", "675.46", "675.460000000000", 5, "5.00", "0.1"),
        ("0.3", "0.300", "-0.001", "0.00", "-0.001000000000", None, None, None),
        (None, None, None, None, None, -42, "-42.00", "1e-08"),
        ("2.5e-05", "0.000", "100", "100.00", "100.000000000000", 0, "0.00", "1234.5"),
        ("123456789.123457", "123456789.123", "0", "0.00", "0.000000000000", 7, "7.00", "-3.25"),
        ("NaN", "NaN", "12.345", "12.35", "12.345000000000", 1, "1.00", "0"),
    ]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def test_preview_cells_are_numbers_as_people_write_them(lab: Context) -> None:
    columns = ["Income", "LifetimeSpend", "AverageWebPurchase", "RewardPoints"]
    p = preview_segment(lab, SEG, limit=10, columns=columns)
    got = {r["CustomerId"]: r for r in p.rows}
    for cid, expected in EXPECTED_CATALOG_COLUMNS.items():
        for name, text in expected.items():
            assert _text(got[cid][name]) == text, (cid, name)
        assert _text(got[cid]["RewardPoints"]) == EXPECTED_POINTS[cid]
    printed = p.render().splitlines()  # what `cohortlake preview` prints
    # The member line, the header, one line per member; split on the column gaps.
    table = [line.split() for line in printed[2:7]]
    assert printed[1].split() == ["CustomerId", *columns]
    assert table[0] == ["C1", "0.30", "675.46", "7"]  # the null average is blank
    assert table[2] == ["C3", "123456789012.35", "0.00", "333333333333333.30", "-3"]
    assert "675.4599999999999" not in "\n".join(printed)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_export_writes_numbers_as_people_write_them(lab: Context, tmp_path: Path) -> None:
    target = tmp_path / "out" / "numbers.csv"
    columns = ["Income", "LifetimeSpend", "AverageWebPurchase", "RewardPoints", "Score"]
    export_segment(lab, SEG, str(target), columns)
    rows = {r["CustomerId"]: r for r in _read_csv(target)}
    assert sorted(rows) == sorted(EXPECTED_CATALOG_COLUMNS)
    for cid, expected in EXPECTED_CATALOG_COLUMNS.items():
        want = expected | {"RewardPoints": EXPECTED_POINTS[cid], "Score": EXPECTED_SCORE[cid]}
        assert {k: v for k, v in rows[cid].items() if k != "CustomerId"} == want, cid
    # The segment's own columns, as text: numbers unquoted and not taken for formulas.
    default = tmp_path / "default.csv"
    export_segment(lab, SEG, str(default))
    assert default.read_text().splitlines() == EXPECTED_SEGMENT_CSV


def test_folder_export_writes_the_same_numbers(lab: Context, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    export_segment(lab, SEG, str(folder), ["LifetimeSpend", "Score"], folder=True)
    rows = [r for part in sorted(folder.glob("part-*.csv")) for r in _read_csv(part)]
    assert sorted((r["CustomerId"], r["LifetimeSpend"], r["Score"]) for r in rows) == [
        (cid, EXPECTED_CATALOG_COLUMNS[cid]["LifetimeSpend"], EXPECTED_SCORE[cid])
        for cid in sorted(EXPECTED_SCORE)
    ]


def _catalog_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "conf" / "catalog.yaml").read_text()
    assert old in text, old
    path = tmp_path / "catalog.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_decimals_come_from_the_catalog(tmp_path: Path) -> None:
    shipped = load_catalog(REPO / "conf" / "catalog.yaml")
    decimals = {f.name: f.decimals for f in shipped.fields() if f.decimals is not None}
    assert decimals == {
        "Income": 2,
        "AverageWebPurchase": 2,
        "AverageStorePurchase": 2,
        "LifetimeSpend": 2,  # a sum takes its attribute's (Amount's) decimals
    }
    three = load_catalog(
        _catalog_with(
            tmp_path, "display: Amount ($), decimals: 2", "display: Amount ($), decimals: 3"
        )
    )
    assert three.resolve("Lifetime Spend ($)").decimals == 3  # type: ignore[union-attr]
    assert three.resolve("AverageWebPurchase").decimals == 2  # type: ignore[union-attr]


BAD = [
    ("Income: {type: number, display: Income ($), decimals: 2}",
     "Income: {type: number, display: Income ($), decimals: -1}",
     "profile.attributes.Income.decimals: Input should be greater than or equal to 0"),
    ("Income: {type: number, display: Income ($), decimals: 2}",
     "Income: {type: number, display: Income ($), decimals: 13}",
     "profile.attributes.Income.decimals: Input should be less than or equal to 12"),
    ("Income: {type: number, display: Income ($), decimals: 2}",
     "Income: {type: number, display: Income ($), decimals: 2.5}",
     "profile.attributes.Income.decimals: Input should be a valid integer"),
    ("Income: {type: number, display: Income ($), decimals: 2}",
     "Income: {type: number, display: Income ($), decimals: true}",
     "profile.attributes.Income.decimals: Input should be a valid integer"),
    ("State: {type: string}", "State: {type: string, decimals: 2}",
     "profile.attributes.State.decimals: decimals apply to number and integer attributes, State is string"),
    ("Channel: {type: string}", "Channel: {type: string, decimals: 0}",
     "activities.Purchases.attributes.Channel.decimals: decimals apply to number and integer attributes, Channel is string"),
    ("    agg: sum\n    attribute: Amount", "    agg: max\n    decimals: 1\n    attribute: PurchaseDate",
     "measures.LifetimeSpend.decimals: decimals apply to number and integer measures, LifetimeSpend is timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_decimals_are_input_errors(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _catalog_with(tmp_path, old, new)
    with pytest.raises(InputError) as caught:
        load_catalog(path)
    assert caught.value.exit_code == 2
    assert [str(p) for p in caught.value.problems] == [f"{path}: {message}"]


def test_bad_decimals_exit_2_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(
        _catalog_with(tmp_path, "decimals: 2}", "decimals: 13}"),
        conf / "catalog.yaml",
    )
    (conf / "lakehouse.yaml").write_text(f"root: {tmp_path / 'lake'}\n")
    assert main(["measures", "--conf", str(conf)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {conf / 'catalog.yaml'}: profile.attributes.Income.decimals: "
        "Input should be less than or equal to 12"
    ]
    assert not (tmp_path / "lake").exists()
