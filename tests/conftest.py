"""One session-scoped SparkSession for the whole suite (local[2], 2 shuffle partitions, UI off)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from _kill_series import KillSeries, start_kill_series
from pyspark.sql import SparkSession

from cohortlake.catalog import Catalog, load_catalog
from cohortlake.session import get_spark

REPO = Path(__file__).resolve().parent.parent

TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.driver.memory": "2g",
    # Test data is tiny: compiling generated code for each new query costs more CPU
    # than interpreting it (the interpreted path gives the same results).
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = get_spark("cohortlake-tests", master="local[2]", conf=TEST_SPARK_CONF)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The Contoso catalog shipped in conf/."""
    return load_catalog(REPO / "conf" / "catalog.yaml")


@pytest.fixture
def conf_dir() -> Path:
    return REPO / "conf"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that wait for a background harness run last, after the work they wait for."""
    items.sort(key=lambda item: item.get_closest_marker("reliability") is not None)


@pytest.fixture(scope="session")
def kill_series(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KillSeries, Future[KillSeries]]]:
    """The SIGKILL harness's series, running in a background thread (see _kill_series.py)."""
    series, future, pool = start_kill_series(
        spark, tmp_path_factory.getbasetemp(), tmp_path_factory.mktemp("kill-series")
    )
    yield series, future
    series.stop.set()  # a session cut short: no new runs; the current one is killed below
    pool.shutdown(wait=True)


@pytest.fixture(scope="session", autouse=True)
def _background_harnesses(request: pytest.FixtureRequest) -> None:
    """Start the kill series with the first test when its test was collected."""
    if any(item.get_closest_marker("reliability") for item in request.session.items):
        request.getfixturevalue("kill_series")
