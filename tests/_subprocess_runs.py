"""Helpers for tests that run ``cohortlake run`` in subprocesses and inspect the lakehouse.

A small Contoso lakehouse, a conf copy with three relative-date segments (two over
Purchases activity, one naming another segment), memberships computed independently
with pandas for any as-of, subprocess runs that can be killed with their whole process
group (the JVM is a child of the Python driver), and the invariants every reader of a
lakehouse may rely on after a crash or a race, read from the shared ``memberships``
table and ``segment_runs`` without Cohortlake (delta-rs and the ``_delta_log`` JSON).
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
from _memberships import rs_members, spark_members, user_metadata
from _memberships import touching as touching_versions
from conftest import PATIENCE
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import SparkSession

from cohortlake.catalog import load_catalog
from cohortlake.lake import Lake
from cohortlake.measures import compute_measures
from lab.contoso import generate_contoso

REPO = Path(__file__).resolve().parent.parent
KEY = "CustomerId"
MEMBERSHIPS = "memberships"  # the one table every membership is in

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
    ended: float | None = None  # wall-clock seconds when the process was first seen ended
    seen: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def poll(self) -> int | None:
        """The exit code, None while it runs (and the moment it ended, once seen)."""
        code = self.proc.poll()
        if code is not None and self.ended is None:
            self.ended = time.time()
        return code

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> bool:
        """Poll stderr until a line matches (True) or the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pattern.search(self.stderr()):
                return True
            if self.poll() is not None:
                return bool(pattern.search(self.stderr()))
            time.sleep(0.02)
        return False

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, noting when the process ends meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.poll() is not None:
                time.sleep(max(0.0, deadline - time.monotonic()))
                return
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def kill(self) -> bool:
        """SIGKILL the whole process group; False when the run had already ended."""
        self.killed_at = time.monotonic()
        finished = self.poll() is not None
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
        self.poll()
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


# -- lakehouse state (read with delta-rs and the _delta_log JSON: independent, fast) ----


@dataclass(frozen=True)
class LakeState:
    """What a reader sees: per segment the versions of ``memberships`` that touched its
    partition (its latest is the segment's version), each commit's userMetadata, and the
    segment_runs rows."""

    touching: dict[str, list[int]]
    metadata: dict[int, str | None]
    runs: pd.DataFrame

    @property
    def versions(self) -> dict[str, int | None]:
        """Each segment's latest version: the newest commit that touched its partition."""
        return {o: max(v) if v else None for o, v in self.touching.items()}


RUN_COLUMNS = [
    "Segment", "RunId", "AsOf", "EvaluatedAt", "Members", "Joined", "Left", "TableVersion",
    "Status", "Table",
]  # fmt: skip
# Statuses whose row names a membership that exists.
CURRENT = ("succeeded", "skipped", "kept")


def read_state(root: Path) -> LakeState:
    metadata = user_metadata(root)
    touching = {output: sorted(touching_versions(root, output)) for output in OUTPUTS}
    try:
        runs = deltalake.DeltaTable(str(root / "segment_runs")).to_pandas(columns=RUN_COLUMNS)
    except TableNotFoundError:
        runs = pd.DataFrame(columns=RUN_COLUMNS)
    return LakeState(touching, metadata, runs)


# Delta versions never change once committed, so each is read once per test session.
_VERSIONS: dict[tuple[str, str, int], list[str]] = {}


def members_at(root: Path, output: str, version: int) -> list[str]:
    """One segment's keys in ``memberships`` at a version (duplicates kept, so they can be found)."""
    cached = _VERSIONS.get((str(root), output, version))
    if cached is None:
        keys = rs_members(root, output, version)[KEY]
        cached = _VERSIONS[(str(root), output, version)] = [str(k) for k in keys]
    return cached


def spark_keys(spark: SparkSession, root: Path, output: str) -> list[str]:
    """A segment's latest keys as Spark reads them (duplicates kept)."""
    return [str(row[0]) for row in spark_members(spark, root, output).select(KEY).collect()]


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


def _check_versions(check: Check, expected: dict[str, dict[str, frozenset[str]]]) -> None:
    """Every version that touched a segment holds one of its two expected memberships,
    without duplicated keys (a commit is never half a membership)."""
    for output, versions in check.state.touching.items():
        wanted = [expected[a][output] for a in (AS_OF_A, AS_OF_B)]
        for version in versions:
            keys = members_at(check.root, output, version)
            got = frozenset(keys)
            if len(keys) != len(got):
                check.problems.append(
                    f"{output} v{version}: {len(keys) - len(got)} duplicated keys"
                )
            if got not in wanted:
                if version == versions[-1]:
                    check.rows_lost += min(len(w - got) for w in wanted)
                check.problems.append(
                    f"{output} v{version}: {len(got)} members equal neither expectation "
                    f"({len(wanted[0])} as of {AS_OF_A}, {len(wanted[1])} as of {AS_OF_B})"
                )


def _check_row(
    check: Check,
    row: Any,
    expected: dict[str, dict[str, frozenset[str]]],
    strict: Sequence[str],
    writers: set[tuple[str, str, int]],
) -> None:
    """A current segment_runs row names a version of ``memberships`` that holds its
    members, committed by a run that recorded writing them there, with exact changes."""
    state, problems = check.state, check.problems
    where = f"segment_runs row {row.RunId}/{row.Segment} ({row.Status})"
    if row.Table != MEMBERSHIPS:
        problems.append(f"{where}: Table {row.Table!r}, not {MEMBERSHIPS!r}")
    version = int(row.TableVersion)
    touching = state.touching[row.Segment]
    earlier = [v for v in touching if v < version]
    if version not in state.metadata or (not earlier and version not in touching):
        latest = state.versions[row.Segment]
        problems.append(f"{where}: v{version} does not exist or lacks it (latest {latest})")
        return
    keys = members_at(check.root, row.Segment, version)
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
    writer = state.metadata[version]
    if (str(writer), row.Segment, version) not in writers:
        problems.append(
            f"{where}: v{version} was committed by {writer}, which recorded no {row.Segment} there"
        )
    if writer == row.RunId:  # its own commit: Joined/Left are the change it made
        before = set(members_at(check.root, row.Segment, earlier[-1])) if earlier else set()
        changes = (len(set(keys) - before), len(before - set(keys)))
    else:  # it kept another run's membership
        changes = (0, 0)
    if (int(row.Joined), int(row.Left)) != changes:
        problems.append(
            f"{where}: Joined/Left {row.Joined}/{row.Left} but v{version} changed it by "
            f"+{changes[0]} / -{changes[1]}"
        )


def _check_commits(check: Check) -> None:
    """A commit touches only the partitions of the segments its run published there (as
    far as its run recorded: a killed run's last commit may have no rows)."""
    state = check.state
    runs = state.runs[state.runs["Status"] == "succeeded"]
    published: dict[int, set[str]] = {}
    for run_id, segment, version in zip(
        runs["RunId"], runs["Segment"], runs["TableVersion"], strict=True
    ):
        if state.metadata.get(int(version)) == run_id:
            published.setdefault(int(version), set()).add(str(segment))
    for output, versions in state.touching.items():
        for version in versions:
            if version in published and output not in published[version]:
                check.problems.append(
                    f"v{version} (run {state.metadata[version]}) touched {output}'s partition, "
                    f"but its run published only {sorted(published[version])} there"
                )


def _check_latest_rows(check: Check) -> None:
    """No run in flight: each segment's latest current row names its latest version, the
    newest commit that touched its partition (or a later commit, which left it as it was)."""
    runs, state = check.state.runs, check.state
    current = runs[runs["Status"].isin(CURRENT)]
    for output, latest in state.versions.items():
        rows = current[current["Segment"] == output].sort_values(["EvaluatedAt", "TableVersion"])
        if rows.empty:
            if latest is not None:
                check.problems.append(f"{output}: v{latest} touched it but no row describes it")
            continue
        last = rows.iloc[-1]
        named = int(last["TableVersion"])
        if latest is None or named >= latest:
            continue  # (a row naming no version is _check_row's)
        same = sorted(members_at(check.root, output, latest)) == sorted(
            members_at(check.root, output, named)
        )
        check.problems.append(
            f"{output}: the latest row ({last['RunId']}) names v{named}, but "
            f"v{latest} (run {state.metadata.get(latest)}) touched it since"
            + (" (without changing its members)" if same else "")
        )


def check_invariants(
    root: Path,
    expected: dict[str, dict[str, frozenset[str]]],
    strict: Sequence[str] = OUTPUTS,
    settled: bool = False,
) -> Check:
    """Every invariant a reader relies on, whatever happened to the writers.

    - every version of ``memberships`` that touched a segment holds exactly one of the
      two expected memberships, with no duplicated keys;
    - a current segment_runs row (succeeded, skipped, kept) names ``memberships`` at a
      version that exists and whose membership equals the expectation for the row's
      AsOf (for ``strict`` outputs; else one of the two expectations) and has
      ``Members`` rows; that version's commit carries the RunId of a run with a
      succeeded row for the segment at that version; a row whose own run made that
      commit has the exact Joined/Left of it, any other row (it kept an older version)
      0/0;
    - no run has two rows for one segment;
    - a commit whose run recorded rows at it touches no other segment's partition;
    - ``settled`` (no run in flight): each segment's latest row names its latest version.
    """
    check = Check(root, read_state(root))
    runs = check.state.runs
    _check_versions(check, expected)
    for (run_id, segment), rows in runs.groupby(["RunId", "Segment"]):
        if len(rows) > 1:
            check.problems.append(f"run {run_id} has {len(rows)} segment_runs rows for {segment}")
    written = runs[runs["Status"] == "succeeded"]
    writers = {
        (str(r), str(s), int(v))
        for r, s, v in zip(
            written["RunId"], written["Segment"], written["TableVersion"], strict=True
        )
    }
    for row in runs.itertuples(index=False):
        if row.Segment not in SEGMENTS:
            check.problems.append(f"segment_runs row {row.RunId}/{row.Segment}: unknown segment")
        elif row.Status in CURRENT:  # a row that says the run failed names no membership
            _check_row(check, row, expected, strict, writers)
    _check_commits(check)
    if settled:
        _check_latest_rows(check)
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
