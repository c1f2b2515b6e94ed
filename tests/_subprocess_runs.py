"""Helpers for tests that run ``cohortlake run`` in subprocesses and inspect the lakehouse.

A small Contoso lakehouse, a conf copy with three relative-date segments (two over
Purchases activity, one naming another segment), memberships computed independently
with pandas for any as-of, subprocess runs that can be killed with their whole process
group (the JVM is a child of the Python driver), and the invariants every reader of a
lakehouse may rely on after a crash or a race.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import deltalake
import pandas as pd
import yaml
from conftest import PATIENCE
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import SparkSession

from cohortlake.catalog import load_catalog
from cohortlake.lake import Lake
from cohortlake.measures import compute_measures
from lab.contoso import generate_contoso

REPO = Path(__file__).resolve().parent.parent
KEY = "CustomerId"

# Two as-of dates inside the generated purchase history (it ends 2026-06-30).
AS_OF_A = "2026-04-15"
AS_OF_B = "2026-06-20"

STORE_DAYS = 45
SPEND_DAYS = 90
SPEND_MIN = 250.0
STATES = ("California", "Texas", "New York", "Florida")

SEGMENTS: dict[str, dict[str, Any]] = {
    "RecentStoreBuyers": {
        "name": "Recent store buyers",
        "output": "RecentStoreBuyers",
        "type": "dynamic",
        "where": {
            "related": "Purchases",
            "where": {"attribute": "Channel", "op": "eq", "value": "store"},
            "within": {"n": STORE_DAYS, "unit": "days"},
        },
    },
    "RecentBigSpenders": {
        "name": "Recent big spenders",
        "output": "RecentBigSpenders",
        "type": "dynamic",
        "where": {
            "related": "Purchases",
            "within": {"n": SPEND_DAYS, "unit": "days"},
            "having": {"agg": "sum", "attribute": "Amount", "op": "gte", "value": SPEND_MIN},
        },
    },
    # Names another segment, so a run has two levels: more commits, two segment_runs appends.
    "RecentStoreBuyersInBigStates": {
        "name": "Recent store buyers in big states",
        "output": "RecentStoreBuyersInBigStates",
        "type": "dynamic",
        "where": {
            "all": [
                {"segment": "RecentStoreBuyers"},
                {"attribute": "State", "op": "in", "value": list(STATES)},
            ]
        },
    },
}
OUTPUTS = tuple(SEGMENTS)

# A quick JVM: one core, no UI, client compiler only, serial GC, small heap.
SUBPROCESS_SPARK = {
    "master": "local[1]",
    "conf": {
        "spark.ui.enabled": False,
        "spark.ui.showConsoleProgress": False,
        "spark.sql.shuffle.partitions": 1,
        "spark.default.parallelism": 1,
        "spark.sql.adaptive.enabled": False,
        # Tiny data: compiling generated code costs more than interpreting it.
        "spark.sql.codegen.wholeStage": False,
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.databricks.delta.snapshotPartitions": 1,
        "spark.driver.memory": "768m",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    },
}


def report(name: str, line: str) -> None:
    """Print a test's figures and keep them in ``tests/artifacts/<name>.txt`` (pytest hides prints)."""
    print(f"\n{line}")
    folder = REPO / "tests" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text(line + "\n")


def write_conf(conf: Path, root: Path, java_options: str = "") -> Path:
    """A conf folder: the Contoso catalog, a fast lakehouse.yaml, and the three segments."""
    (conf / "segments").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "catalog.yaml", conf / "catalog.yaml")
    spark: dict[str, Any] = {**SUBPROCESS_SPARK, "conf": dict(SUBPROCESS_SPARK["conf"])}  # type: ignore[arg-type]
    spark["conf"]["spark.driver.extraJavaOptions"] += f" {java_options}".rstrip()
    lakehouse = {"root": str(root), "spark": spark}
    (conf / "lakehouse.yaml").write_text(yaml.safe_dump(lakehouse, sort_keys=False))
    for output, definition in SEGMENTS.items():
        (conf / "segments" / f"{output}.yaml").write_text(
            yaml.safe_dump(definition, sort_keys=False)
        )
    return conf


def make_lake(spark: SparkSession, root: Path, customers: int = 400, seed: int = 8) -> Lake:
    """Generate the Contoso profile and purchases and compute measures under ``root``."""
    lake = Lake(spark, str(root))
    generate_contoso(spark, lake, customers=customers, seed=seed)
    compute_measures(spark, lake, load_catalog(REPO / "conf" / "catalog.yaml"))
    return lake


def _instant(as_of: str) -> pd.Timestamp:
    return pd.Timestamp(dt.date.fromisoformat(as_of), tz="UTC")


def expected_members(lake: Lake) -> dict[str, dict[str, frozenset[str]]]:
    """{as-of: {output: members}} for both dates, by pandas from the tables themselves."""
    profile = lake.read(lake.profile_path("Customer")).select(KEY, "State").toPandas()
    purchases = (
        lake.read(lake.activity_path("Purchases"))
        .select(KEY, "PurchaseDate", "Channel", "Amount")
        .toPandas()
    )
    when = pd.to_datetime(purchases["PurchaseDate"])
    when = when.dt.tz_localize("UTC") if when.dt.tz is None else when.dt.tz_convert("UTC")
    big_states = set(profile.loc[profile["State"].isin(STATES), KEY])
    out: dict[str, dict[str, frozenset[str]]] = {}
    for as_of in (AS_OF_A, AS_OF_B):
        end = _instant(as_of)
        store = purchases[
            (purchases["Channel"] == "store")
            & (when >= end - pd.Timedelta(days=STORE_DAYS))
            & (when <= end)
        ]
        window = purchases[(when >= end - pd.Timedelta(days=SPEND_DAYS)) & (when <= end)]
        spend = window.groupby(KEY)["Amount"].sum()
        store_buyers = frozenset(store[KEY])
        out[as_of] = {
            "RecentStoreBuyers": store_buyers,
            "RecentBigSpenders": frozenset(spend[spend >= SPEND_MIN].index),
            "RecentStoreBuyersInBigStates": frozenset(store_buyers & big_states),
        }
    for output in OUTPUTS:  # the two dates must tell a crash's half-states apart
        a, b = out[AS_OF_A][output], out[AS_OF_B][output]
        assert a and b and a != b, output
    return out


# -- subprocess runs -------------------------------------------------------------------


@dataclass
class RunProcess:
    """One ``cohortlake run`` in its own session (process group), stderr in a file."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path
    started: float
    as_of: str
    returncode: int | None = None
    killed_at: float | None = None
    seen: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> bool:
        """Poll stderr until a line matches (True) or the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern.search(self.stderr()):
                return True
            if self.proc.poll() is not None:
                return bool(pattern.search(self.stderr()))
            time.sleep(0.02)
        return False

    def kill(self) -> bool:
        """SIGKILL the whole process group; False when the run had already ended."""
        self.killed_at = time.monotonic()
        finished = self.proc.poll() is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            finished = True
        self.returncode = self.proc.wait(timeout=60)
        return not finished

    def wait(self, timeout: float = PATIENCE) -> int:
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.returncode


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    return env


def _start(cmd: list[str], log: Path, stdin: int) -> subprocess.Popen[bytes]:
    """A subprocess in its own session (so its JVM dies with it), stderr into ``log``."""
    with open(log, "wb") as err:
        return subprocess.Popen(
            cmd,
            cwd=REPO,
            env=_env(),
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def start_run(
    conf: Path, root: Path, as_of: str, log: Path, extra: Sequence[str] = ()
) -> RunProcess:
    """Start ``python -m cohortlake.cli run`` for ``conf``/``root`` at ``as_of``."""
    # -v: the harness times its kills by the run's progress logs
    cmd = [
        sys.executable, "-m", "cohortlake.cli", "run",
        "--conf", str(conf), "--root", str(root), "--as-of", as_of, "-v", *extra,
    ]  # fmt: skip
    proc = _start(cmd, log, subprocess.DEVNULL)
    return RunProcess(proc, log, time.monotonic(), as_of)


@dataclass
class Spare:
    """A started ``_warm_run.py``: its JVM warms up until ``go`` hands it the run's arguments."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path


def start_spare(conf: Path, root: Path, log: Path) -> Spare:
    """Start a warm run's process for ``conf``/``root`` (it waits for ``go``)."""
    script = REPO / "tests" / "_warm_run.py"
    cmd = [sys.executable, str(script), str(conf), str(root), str(log.with_suffix(".warm"))]
    return Spare(_start(cmd, log, subprocess.PIPE), log)


def wait_ready(spare: Spare, timeout: float = PATIENCE) -> None:
    """Block until the spare's JVM is warm (it logged READY)."""
    deadline = time.monotonic() + timeout
    while "READY" not in spare.stderr_path.read_text(errors="replace"):
        if spare.proc.poll() is not None or time.monotonic() > deadline:
            discard(spare)
            raise AssertionError(
                "warm run never got ready:\n"
                + spare.stderr_path.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.02)


def go(spare: Spare, as_of: str, extra: Sequence[str] = ()) -> RunProcess:
    """Start the spare's run at ``as_of`` now; the returned run is timed from this moment."""
    wait_ready(spare)
    assert spare.proc.stdin is not None
    spare.proc.stdin.write((shlex.join(["--as-of", as_of, *extra]) + "\n").encode())
    spare.proc.stdin.close()
    return RunProcess(spare.proc, spare.stderr_path, time.monotonic(), as_of)


def discard(spare: Spare | None) -> None:
    """Kill a spare that was never told to go (its whole process group)."""
    if spare is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(spare.proc.pid, signal.SIGKILL)
        spare.proc.wait(timeout=60)


def kill_group_quietly(run: RunProcess) -> None:
    """Cleanup for a failing test: never leave a JVM behind."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.proc.pid, signal.SIGKILL)  # the JVM too, even when Python has ended
    run.proc.wait(timeout=60)


def is_one_line_message(stderr: str) -> bool:
    """A failure a person can act on: the CLI's one-line message and no Python traceback.

    (Spark's own WARN log lines may carry Java frames; they are not the command's answer.)
    """
    return "Traceback (most recent call last)" not in stderr and bool(
        re.search(r"^(failed|error): \S.*$", stderr, re.M)
    )


# -- lakehouse state (read with delta-rs: an independent reader, and fast between kills) --


@dataclass(frozen=True)
class LakeState:
    """What a reader sees: each segment table's latest version and the segment_runs rows."""

    versions: dict[str, int | None]
    runs: pd.DataFrame


RUN_COLUMNS = ["Segment", "RunId", "AsOf", "EvaluatedAt", "Members", "TableVersion", "Status"]


def _table(path: Path) -> deltalake.DeltaTable | None:
    try:
        return deltalake.DeltaTable(str(path))
    except TableNotFoundError:
        return None


def read_state(root: Path) -> LakeState:
    versions: dict[str, int | None] = {}
    for output in OUTPUTS:
        table = _table(root / "segments" / output)
        versions[output] = table.version() if table is not None else None
    runs_table = _table(root / "segment_runs")
    runs = (
        runs_table.to_pandas(columns=RUN_COLUMNS)
        if runs_table is not None
        else pd.DataFrame(columns=RUN_COLUMNS)
    )
    return LakeState(versions, runs)


# Delta versions never change once committed, so each is read once per test session.
_VERSIONS: dict[tuple[str, str, int], list[str]] = {}


def members_at(root: Path, output: str, version: int) -> list[str]:
    """The keys of one version of a segment table (duplicates kept, so they can be found)."""
    cached = _VERSIONS.get((str(root), output, version))
    if cached is None:
        table = deltalake.DeltaTable(str(root / "segments" / output), version=version)
        keys = table.to_pandas(columns=[KEY])[KEY]
        cached = _VERSIONS[(str(root), output, version)] = [str(k) for k in keys]
    return cached


def spark_keys(spark: SparkSession, root: Path, output: str) -> list[str]:
    """A segment table's latest keys as Spark reads them (duplicates kept)."""
    df = spark.read.format("delta").load(str(root / "segments" / output)).select(KEY)
    return [str(row[0]) for row in df.collect()]


def commit_metadata(root: Path, output: str) -> dict[int, str | None]:
    """{version: userMetadata} of a segment table's history."""
    table = deltalake.DeltaTable(str(root / "segments" / output))
    return {int(c["version"]): c.get("userMetadata") for c in table.history()}


def as_of_key(value: Any) -> str:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return str(ts.date().isoformat())


@dataclass
class Check:
    """The outcome of checking a lakehouse: its state, what is wrong, members missing."""

    root: Path
    state: LakeState
    problems: list[str] = field(default_factory=list)
    rows_lost: int = 0


def check_invariants(
    root: Path,
    expected: dict[str, dict[str, frozenset[str]]],
    strict: Sequence[str] = OUTPUTS,
) -> Check:
    """Every invariant a reader relies on, whatever happened to the writers.

    - a segment table that exists holds exactly one of the two expected memberships at
      its latest version, with no duplicated keys;
    - a segment_runs row with a TableVersion names an existing version whose membership
      equals the expectation for the row's AsOf (for ``strict`` outputs; else one of
      the two expectations) and has ``Members`` rows;
    - no run has two rows for one segment.
    """
    check = Check(root, read_state(root))
    problems, state = check.problems, check.state
    for output in OUTPUTS:
        version = state.versions[output]
        if version is None:
            continue
        keys = members_at(root, output, version)
        if len(keys) != len(set(keys)):
            problems.append(f"{output} v{version}: {len(keys) - len(set(keys))} duplicated keys")
        got = frozenset(keys)
        wanted = [expected[a][output] for a in (AS_OF_A, AS_OF_B)]
        if got not in wanted:
            check.rows_lost += min(len(w - got) for w in wanted)
            problems.append(
                f"{output} v{version}: {len(got)} members equal neither expectation "
                f"({len(wanted[0])} as of {AS_OF_A}, {len(wanted[1])} as of {AS_OF_B})"
            )
    runs = state.runs
    for (run_id, segment), rows in runs.groupby(["RunId", "Segment"]):
        if len(rows) > 1:
            problems.append(f"run {run_id} has {len(rows)} segment_runs rows for {segment}")
    metadata = {o: commit_metadata(root, o) for o in OUTPUTS if state.versions[o] is not None}
    for row in runs.itertuples(index=False):
        where = f"segment_runs row {row.RunId}/{row.Segment} ({row.Status})"
        if row.Segment not in SEGMENTS:
            problems.append(f"{where}: unknown segment")
            continue
        if row.Status not in ("succeeded", "skipped", "kept"):
            continue  # a row that says the run failed names no membership
        latest = state.versions[row.Segment]
        version = int(row.TableVersion)
        if latest is None or version not in metadata[row.Segment]:
            problems.append(f"{where}: TableVersion {version} does not exist (latest {latest})")
            continue
        keys = members_at(root, row.Segment, version)
        want = expected[as_of_key(row.AsOf)][row.Segment]
        if row.Segment not in strict and frozenset(keys) in (
            expected[AS_OF_A][row.Segment],
            expected[AS_OF_B][row.Segment],
        ):
            want = frozenset(keys)
        if frozenset(keys) != want or len(keys) != len(want):
            check.rows_lost += len(want - frozenset(keys))
            problems.append(
                f"{where}: v{version} has {len(keys)} rows, not the {len(want)} members as of {row.AsOf}"
            )
        if int(row.Members) != len(keys):
            problems.append(f"{where}: Members {row.Members} but v{version} has {len(keys)} rows")
    return check


def run_rows(state: LakeState, run_id: str) -> pd.DataFrame:
    return state.runs[state.runs["RunId"] == run_id]


RUN_ID = re.compile(r"segment run (\S+?):")


def run_id_of(run: RunProcess) -> str | None:
    """The run id the run logged when it started, if it got that far."""
    found = RUN_ID.search(run.stderr())
    return found.group(1) if found else None


_SOURCES: dict[str, Path] = {}


def source_lake(spark: SparkSession, base: Path) -> Path:
    """A generated lakehouse (profile, purchases, measures), built once per test session."""
    if "contoso" not in _SOURCES:
        root = base / "contoso"
        make_lake(spark, root)
        _SOURCES["contoso"] = root
    return _SOURCES["contoso"]


def fresh_lake(
    spark: SparkSession, base: Path, where: Path
) -> tuple[Path, Path, dict[str, dict[str, frozenset[str]]]]:
    """A copy of the source lakehouse at ``where/lake``, its conf, and the expected members."""
    source = source_lake(spark, base)
    root = where / "lake"
    shutil.copytree(source, root)
    conf = write_conf(where / "conf", root)
    return root, conf, expected_members(Lake(spark, str(root)))
