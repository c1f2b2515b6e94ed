"""The whole lab end to end at a small size, and its report in a real headless Chromium."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _memberships import keys, rs_members
from conftest import PATIENCE, TEST_SPARK_CONF
from deltalake import DeltaTable

from cohortlake.context import load_context
from lab.demo import run_demo
from lab.report import SECTIONS

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
AS_OF = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.slow


CUSTOMERS, SEED = 2000, 42
SEGMENT_OUTPUTS = (
    "CustomersFromCalifornia",
    "HighValueOnlineCustomers",
    "SummerPromotion",
    "SummerPromoExpansion",
)
LAB_SEGMENTS = (
    "customers_from_california.yaml",
    "high_value_online_customers.yaml",
    "summer_promotion.yaml",
)


def _lab_conf(base: Path) -> Path:
    """A fresh copy of conf/ with only the lab's segments, its Spark set as the suite's."""
    conf = base / "conf"
    shutil.copytree(REPO / "conf", conf)
    for extra in (conf / "segments").iterdir():
        if extra.name not in LAB_SEGMENTS:
            extra.unlink()
    spark = {"master": "local[2]", "conf": dict(TEST_SPARK_CONF)}
    (conf / "lakehouse.yaml").write_text(yaml.safe_dump({"spark": spark}, sort_keys=False))
    return conf


@pytest.fixture(scope="module")
def demo_again(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """The lab once more, as ``cohortlake demo`` in its own process, started before the
    in-process run so the two share the machine's cores (the determinism test compares them)."""
    base = tmp_path_factory.mktemp("demo-again")
    conf, root, log = _lab_conf(base), base / "lakehouse", base / "demo.log"
    cmd = [
        sys.executable, "-m", "cohortlake.cli", "demo", "--conf", str(conf), "--root", str(root),
        "--customers", str(CUSTOMERS), "--seed", str(SEED), "--as-of", AS_OF.date().isoformat(),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    try:
        yield proc, root, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def demo(spark, demo_again, tmp_path_factory: pytest.TempPathFactory):
    """The lab at 2000 customers in this process (a fresh copy of conf/ with the lab's segments)."""
    base = tmp_path_factory.mktemp("demo")
    ctx = load_context(_lab_conf(base), root=str(base / "lakehouse"), spark=spark)
    return ctx, run_demo(ctx, customers=CUSTOMERS, seed=SEED, as_of=AS_OF)


def test_demo_writes_every_table_of_the_layout(demo) -> None:
    ctx, result = demo
    lake = ctx.lake
    outputs = [
        lake.profile_path("Customer"), lake.activity_path("Purchases"), lake.measures_path(), lake.segment_runs_path(),
        lake.path("memberships"), lake.insight_path("HighValueOnlinevsCustomersfromCalifornia"),
        lake.insight_path("HighValueOnlineOverlappedwithCaliforniaCustomers"),
        lake.suggestion_path("LifetimeSpendSuggestions"), lake.suggestion_path("CustomerSatisfactionSuggestions"),
    ]  # fmt: skip
    assert [p for p in outputs if not lake.exists(p)] == []
    assert set(result.timings) >= {
        "generate",
        "measures",
        "segments",
        "insights",
        "expansion",
        "suggestions",
        "report",
    }
    saved = result.outputs.get("saved_segments") or []
    assert saved and all(r.members > 0 for r in saved)
    profile = lake.read(lake.profile_path("Customer")).toPandas()
    cal = set(profile.loc[profile["State"] == "California", "CustomerId"])
    assert keys(ctx.spark, ctx.root, "CustomersFromCalifornia") == cal
    # Every membership, the saved suggestion's too, is a partition of the one shared table;
    # no segment has a table of its own.
    for output in (*SEGMENT_OUTPUTS, *(r.segment for r in saved)):
        assert keys(ctx.spark, ctx.root, output), output
    assert not (Path(ctx.root) / "segments").exists()


def test_other_engines_read_the_outputs(demo) -> None:
    duckdb = pytest.importorskip("duckdb")
    deltalake = pytest.importorskip("deltalake")
    ctx, _ = demo
    frame = rs_members(ctx.root, "SummerPromoExpansion")
    assert len(frame) > 0
    assert {"CustomerId", "SimilarityScore", "SimilarityBand"} <= set(frame.columns)
    assert frame["SimilarityScore"].between(0.55, 1.0).all()
    con = (
        duckdb.connect()
    )  # DuckDB's own delta extension is a download; it reads delta-rs's Arrow here
    runs = deltalake.DeltaTable(ctx.lake.segment_runs_path()).to_pyarrow_table()
    counted = con.execute(
        "SELECT Segment, max(Members) FROM runs GROUP BY Segment ORDER BY Segment"
    ).fetchall()
    assert dict(counted) == {
        s: int(m)
        for s, m in zip(runs["Segment"].to_pylist(), runs["Members"].to_pylist(), strict=True)
    }


def test_report_loads_in_chromium_and_shows_every_section(demo) -> None:
    _, result = demo
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is required (make test installs Debian's chromium when missing)"
    report = Path(result.report)
    html = report.read_text()
    for section in SECTIONS:
        assert f"id='{section}'" in html, section
    profile_dir = report.parent / ".chromium-profile"
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--virtual-time-budget=5000", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-images="ok"' in dom.stdout, "an image of the report did not load"
    for section in SECTIONS:
        assert re.search(rf'<section id="{section}">\s*<h2>', dom.stdout), section
    assert "Uncaught" not in dom.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--window-size=1280,6000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert done.returncode == 0 and shot.stat().st_size > 50_000


# Columns (and suggestion JSON keys) that identify a run, not what it computed: segment_runs'
# RunId and EvaluatedAt, the insight and suggestion tables' RunId, suggestions' MlflowRunId.
RUN_SPECIFIC = ("RunId", "EvaluatedAt", "MlflowRunId")


def _delta_tables(root: Path) -> list[str]:
    """Every Delta table under a lakehouse root, as paths relative to it."""
    return sorted(str(log.parent.relative_to(root)) for log in root.rglob("_delta_log"))


def _segments_in(root: Path) -> set[str]:
    """The segments in the shared memberships table under ``root``, read with delta-rs."""
    return set(DeltaTable(str(root / "memberships")).to_pandas(columns=["Segment"])["Segment"])


def _canon(value: Any) -> Any:
    """A hashable, exactly comparable form of a collected cell (floats bit for bit)."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    if isinstance(value, list | tuple):
        return tuple(_canon(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((repr(k), _canon(v)) for k, v in value.items()))
    if hasattr(value, "asDict"):  # a struct
        return _canon(value.asDict(recursive=False))
    return value


def _table_rows(spark, path: Path) -> tuple[Any, Counter]:
    frame = spark.read.format("delta").load(str(path)).drop(*RUN_SPECIFIC)
    return frame.schema, Counter(tuple(_canon(v) for v in r) for r in frame.collect())


def _suggestion_artifacts(root: Path) -> list[str]:
    """The suggestions.json files MLflow logged under ``root``, without the run ids, canonical."""
    return sorted(
        json.dumps(
            [
                {k: v for k, v in r.items() if k not in RUN_SPECIFIC}
                for r in json.loads(p.read_text())
            ],
            sort_keys=True,
        )
        for p in (root / "mlartifacts").rglob("suggestions.json")
    )


def test_demo_twice_with_the_same_seed_and_as_of_gives_identical_tables(
    demo, demo_again, spark
) -> None:
    """The in-process lab and ``cohortlake demo`` in another process give identical tables."""
    ctx, _ = demo
    first = Path(ctx.root)
    proc, second, log = demo_again
    assert proc.wait(timeout=2 * PATIENCE) == 0, log.read_text(errors="replace")[-3000:]

    tables = _delta_tables(first)
    assert tables == _delta_tables(second)
    expected = {
        "profile/Customer", "activity/Purchases", "measures/CustomerMeasures", "segment_runs",
        "memberships",
        "insights/HighValueOnlinevsCustomersfromCalifornia",
        "insights/HighValueOnlineOverlappedwithCaliforniaCustomers",
        "suggestions/LifetimeSpendSuggestions", "suggestions/CustomerSatisfactionSuggestions",
    }  # fmt: skip
    assert expected <= set(tables)
    assert not any(t.startswith("segments/") for t in tables)
    segments = _segments_in(first)
    assert set(SEGMENT_OUTPUTS) < segments, "the saved suggestion's membership is missing"
    assert segments == _segments_in(second)
    differing = []
    for table in tables:
        schema_a, rows_a = _table_rows(spark, first / table)
        schema_b, rows_b = _table_rows(spark, second / table)
        assert rows_a, f"{table} is empty"
        if schema_a != schema_b or rows_a != rows_b:
            only_a = list((rows_a - rows_b).elements())[:3]
            only_b = list((rows_b - rows_a).elements())[:3]
            differing.append(f"{table}: schema equal={schema_a == schema_b}, {only_a} vs {only_b}")
    assert differing == []
    # Each lakehouse tracks into its own MLflow store: one suggestions.json per mining run.
    artifacts = _suggestion_artifacts(first)
    assert len(artifacts) == 2
    assert artifacts == _suggestion_artifacts(second)
