"""Cluster mode: ``make dist``'s zip and job under spark-submit on a standalone cluster.

``make dist`` (into a temporary folder) builds what docs/cluster.md ships: the packages
as ``cohortlake.zip``, importable from the zip alone, the ``jobs/`` entry points and
the wheel. The master and worker are started from the pyspark installation on
127.0.0.1, the zip goes with ``--py-files`` and Delta's jars with ``--jars``; the
segment tables the cluster writes must equal the ones a local run writes.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from _memberships import keys
from conftest import PATIENCE

from cohortlake.context import load_context
from cohortlake.jars import jar_files
from cohortlake.measures import compute_measures
from lab.contoso import generate_contoso
from segmentation.run import run_segments

REPO = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).parent
AS_OF = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
PACKAGES = ("cohortlake", "segmentation", "insights", "expansion", "suggestions", "lab")
JOBS = sorted(f.name for f in (REPO / "jobs").glob("*.py"))
# Short-lived JVMs on tiny data, as in the suite's own session: the client compiler only,
# serial GC, and no generated code to compile (the results are the same).
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
QUICK_SQL = ("spark.sql.codegen.wholeStage=false", "spark.sql.codegen.factoryMode=NO_CODEGEN")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_MASTER_HOST="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_DAEMON_JAVA_OPTS=QUICK_JVM,  # the master and the worker
    )
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    return env


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and one worker (1 core, 1 GB) on loopback; stopped afterwards."""
    logs = tmp_path_factory.mktemp("standalone")
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    procs = []
    try:
        master_log = (logs / "master.log").open("w")
        procs.append(
            subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
                env=_env(), stdout=master_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        _wait_for(port)
        url = f"spark://127.0.0.1:{port}"
        worker_log = (logs / "worker.log").open("w")
        procs.append(
            subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
                 "--memory", "1g", "--webui-port", str(worker_ui), "--work-dir", str(logs / "work")],
                env=_env(), stdout=worker_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        deadline = time.monotonic() + PATIENCE
        while "registered with master" not in (logs / "worker.log").read_text():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "worker did not register:\n" + (logs / "worker.log").read_text()[-2000:]
                )
            time.sleep(0.5)
        yield url
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make dist`` into a temporary folder: the documented command, run as documented."""
    folder = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), "dist", f"DIST={folder}"],
        capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_dist_zip_and_wheel_hold_the_packages(dist: Path, tmp_path: Path) -> None:
    zipped = dist / "cohortlake.zip"
    expected = sorted(
        f.relative_to(REPO).as_posix()
        for package in PACKAGES
        for f in (REPO / package).rglob("*.py")
        if "__pycache__" not in f.parts
    )
    with zipfile.ZipFile(zipped) as z:
        assert sorted(n for n in z.namelist() if n.endswith(".py")) == expected
    (wheel,) = dist.glob("cohortlake-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as w:
        assert sorted(n for n in w.namelist() if n.endswith(".py")) == expected
    assert sorted(f.name for f in (dist / "jobs").iterdir()) == JOBS
    # Imported from the zip, not the checkout (the editable install finds it after sys.path).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import cohortlake.cli, segmentation, insights, expansion, suggestions, lab\n"
        "print('\\n'.join(sys.modules[p].__file__ for p in sys.argv[2:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(zipped), *PACKAGES],
        capture_output=True, text=True, timeout=PATIENCE, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    files = done.stdout.split()
    assert len(files) == len(PACKAGES)
    assert all(f.startswith(str(zipped) + os.sep) for f in files), files


@pytest.mark.slow
def test_segment_job_on_standalone_cluster_equals_local(
    spark, standalone: str, dist: Path, tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(REPO / "conf" / "catalog.yaml", conf / "catalog.yaml")
    shutil.copytree(REPO / "conf" / "segments", conf / "segments")
    for extra in (conf / "segments").iterdir():
        if extra.name not in (
            "customers_from_california.yaml",
            "high_value_online_customers.yaml",
            "summer_promotion.yaml",
        ):
            extra.unlink()
    local_root, cluster_root = tmp_path / "local", tmp_path / "cluster"
    ctx = load_context(conf, root=str(local_root), spark=spark)
    generate_contoso(spark, ctx.lake, customers=600, seed=5)
    compute_measures(spark, ctx.lake, ctx.catalog, AS_OF)
    shutil.copytree(local_root, cluster_root)
    local = {r.segment: r.members for r in run_segments(ctx, as_of=AS_OF)}

    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master", standalone,
        "--driver-memory", "1g",
        "--conf", "spark.executor.memory=768m",
        "--conf", "spark.cores.max=1",
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.driver.extraJavaOptions={QUICK_JVM}",
        "--conf", f"spark.executor.extraJavaOptions={QUICK_JVM}",
        *[arg for setting in QUICK_SQL for arg in ("--conf", setting)],
        "--jars", ",".join(str(j) for j in jar_files()),
        "--py-files", str(dist / "cohortlake.zip"),
        str(dist / "jobs" / "run_segments.py"),
        "--conf", str(conf), "--root", str(cluster_root), "--as-of", "2026-07-01",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, env=_env(), capture_output=True, text=True, timeout=PATIENCE, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for output, members in local.items():
        cluster = keys(spark, cluster_root, output)
        here = keys(spark, local_root, output)
        assert cluster == here and len(cluster) == members
        assert f"{output}" in done.stdout
    runs = spark.read.format("delta").load(str(cluster_root / "segment_runs")).toPandas()
    assert dict(zip(runs["Segment"], runs["Members"], strict=True)) == local
