"""Incremental segment runs (#37): only the customers whose membership may have changed are
re-evaluated, and the result is a full run's.

A differential test runs generated definitions (three dependency levels) over a copy of the
differential test's lakehouse with the change data feed on, then changes it batch by batch
with Delta's own operations (MERGE, UPDATE, DELETE, appends) while the as-of moves by days
and across month ends; after every batch the incremental run's memberships and
``segment_runs`` rows are compared with the independent pandas oracle. A six-customer
lakehouse with hand-counted memberships shows each fallback to a full run, its reason in
``Mode`` and the log, and that the full run is still right.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from _incremental_world import (
    BASELINE,
    ORDERS_SCHEMA,
    PROFILE_SCHEMA,
    T0,
    TINY_CATALOG,
    Ran,
    build_tiny,
    cdf_save,
    copy_lakehouse,
    delta_version,
    run,
    tiny_segments,
    write_segments,
)
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from test_many_segments import (
    DEPTH,
    PROJECTABLE,
    Generated,
    Outcome,
    _check_memberships,
    _GroupedOracle,
    _leaf_slots,
    _tree,
)
from test_segment_differential import (
    AMOUNTS,
    AS_OF,
    CATALOG,
    CITIES,
    DATES,
    KINDS,
    QTYS,
    SCORES,
    STAMPS,
    STRINGS,
    VISITS,
    world,  # noqa: F401 (a fixture: the differential test's lakehouse and oracle)
)

from cohortlake.catalog import Catalog
from cohortlake.context import load_context
from cohortlake.lake import Lake
from segmentation.run import RunOptions

from segment_oracle import Oracle

# Runs in make test's second pytest, beside the SIGKILL harness: the suite's pytest is the
# longer of the two (19.6 min against 17.1 in the clean-clone CI of f883f25).
pytestmark = pytest.mark.reliability


LEVELS = (22, 12, 6)  # definitions per dependency level
# Instants after the first as-of, so that rows cross windows as the as-of passes them.
LATER_STAMPS = [
    dt.datetime(2026, 4, 1, 8, 0),
    dt.datetime(2026, 4, 3, 12, 0),
    dt.datetime(2026, 4, 6, 23, 0),
    dt.datetime(2026, 4, 30, 22, 0),
    dt.datetime(2026, 5, 1, 6, 0),
]
LATER_DATES = [dt.date(2026, 4, 1), dt.date(2026, 4, 30)]
_POOLS: dict[str, list[Any]] = {
    "Name": STRINGS,
    "City": CITIES,
    "Score": SCORES,
    "Visits": VISITS,
    "Born": DATES + LATER_DATES,
    "LastSeen": STAMPS + LATER_STAMPS,
    "Active": [True, False],
}
# (as-of, whether the batch changes data): the same as-of; a day on, past March's end; a
# month on, past April's end, the as-of alone moving.
BATCHES = [
    (AS_OF, True),
    (AS_OF + dt.timedelta(days=1), True),
    (dt.datetime(2026, 5, 1, 6, 0, tzinfo=dt.UTC), False),
]


# -- generated definitions -------------------------------------------------------------------
def _steady(node: Any) -> None:
    """Replace an aggregate's ``in_last`` test (a documented fallback when the as-of moves)
    by ``is_not_null``, so that every batch here can be incremental."""
    if isinstance(node, list):
        for child in node:
            _steady(child)
    elif isinstance(node, dict):
        having = node.get("having")
        if "related" in node and having is not None and having["op"] == "in_last":
            node["having"] = {k: having[k] for k in ("agg", "attribute")} | {"op": "is_not_null"}
        for child in node.values():
            _steady(child)


def _relative(node: Any) -> bool:
    """Whether a raw tree depends on the as-of instant (an ``in_last`` or a ``within``)."""
    if isinstance(node, list):
        return any(_relative(c) for c in node)
    if isinstance(node, dict):
        if "within" in node or node.get("op") == "in_last":
            return True
        return any(_relative(c) for c in node.values())
    return False


def _named(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_named(c) for c in node)) if node else set()
    if isinstance(node, dict):
        own = {node["segment"].lower()} if "segment" in node else set()
        return own.union(*(_named(c) for c in node.values()))
    return set()


def _generate(seed: int = 37) -> list[Generated]:
    """``LEVELS`` definitions per level, each past level 0 naming one of the level before
    (the generator of test_many_segments, at a smaller size)."""
    rng = random.Random(seed)
    out: list[Generated] = []
    for level, count in enumerate(LEVELS):
        earlier = [g.output for g in out]
        previous = [g.output for g in out if g.level == level - 1]
        for _ in range(count):
            i = len(out)
            tree = _tree(rng, DEPTH, earlier, compound=rng.random() < 0.85)
            if previous:
                wanted = rng.choice(previous)
                slots = _leaf_slots(tree) if any(k in tree for k in ("all", "any", "not")) else []
                if slots:
                    container, index = rng.choice(slots)
                    container[index] = {"segment": wanted}
                else:
                    tree = {"segment": wanted}
            _steady(tree)
            output = f"Inc{i:02d}"
            doc: dict[str, Any] = {"name": f"Incremental {i}", "output": output, "where": tree}
            if rng.random() < 0.08:
                doc["type"] = "static"
            project = tuple(rng.sample(sorted(PROJECTABLE), rng.randint(1, 3)))
            if rng.random() < 0.4:
                doc["project"] = [rng.choice(PROJECTABLE[c]) for c in project]
            else:
                project = ()
            out.append(Generated(doc, output, level, project))
    return out


# -- the lakehouse and its changes -----------------------------------------------------------
def _cell(value: Any) -> Any:
    """A pandas cell as Spark takes it: null for None/NaN, naive datetimes as UTC."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC)
    return value


def _objects(values: list[Any]) -> pd.Series:
    """A column of Python values as they are (a list would turn ints and None to floats)."""
    return pd.Series(values, dtype=object)


def _pick(rng: random.Random, pool: list[Any]) -> Any:
    return None if rng.random() < 0.15 else rng.choice(pool)


@dataclass
class _World:
    """The lakehouse's data as pandas (what the oracle reads), kept equal to the tables."""

    spark: SparkSession
    lake: Lake
    customers: pd.DataFrame  # the profile and the measure TotalAmount
    events: pd.DataFrame
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    _touched: set[str] = field(default_factory=set)

    def _frame(self, rows: list[dict[str, Any]], schema: T.StructType) -> DataFrame:
        return self.spark.createDataFrame(
            [tuple(_cell(r.get(f.name)) for f in schema.fields) for r in rows], schema
        )

    def change(self, batch: int) -> set[str]:
        """One batch of random changes to the tables and to the pandas frames alike (five
        commits); returns the keys of every customer whose rows changed in any table."""
        customers = self._change_profile(batch)
        events = self._change_events(batch, list(customers["CustomerId"]))
        ids = list(customers["CustomerId"])
        # The measure, computed here: one MERGE updates, inserts and deletes what changed.
        # Three customers' totals are corrected by 0.5 while none of their rows changed
        # (as after a fix at the source): only the measures' change feed names them.
        totals = {c: 0.0 for c in ids}
        for c, a in zip(events["CustomerId"], events["Amount"], strict=True):
            if c in totals and _cell(a) is not None:
                totals[c] += float(a)
        for c in self.rng.sample(sorted(set(ids) - self._touched), 3):
            totals[c] += 0.5
        old = dict(zip(self.customers["CustomerId"], self.customers["TotalAmount"], strict=True))
        moved = [(c, t, False) for c, t in totals.items() if old.get(c) != t]
        moved += [(c, 0.0, True) for c in old if c not in totals]
        _merge(
            DeltaTable.forPath(self.spark, self.lake.measures_path()),
            self.spark.createDataFrame(
                moved, "CustomerId string, TotalAmount double, _gone boolean"
            ),
            ["CustomerId", "TotalAmount"],
        )
        customers["TotalAmount"] = [totals[c] for c in customers["CustomerId"]]
        touched = self._touched | {c for c, _, _ in moved}
        self.customers, self.events = customers, events
        return touched

    def _change_profile(self, batch: int) -> pd.DataFrame:
        """One MERGE: new values for four customers, one new customer, one gone."""
        rng, customers = self.rng, self.customers
        ids = list(customers["CustomerId"])
        profile = DeltaTable.forPath(self.spark, self.lake.profile_path("Customer"))
        schema = profile.toDF().schema
        chosen = rng.sample(ids, 5)
        upserts = []
        for cid in chosen[:4]:
            row = customers.loc[customers["CustomerId"] == cid].iloc[0].to_dict()
            for column in rng.sample(sorted(_POOLS), rng.randint(1, 2)):
                row[column] = _pick(rng, _POOLS[column])
            upserts.append(row)
        upserts.append({"CustomerId": f"n{batch}"} | {c: _pick(rng, p) for c, p in _POOLS.items()})
        gone = chosen[4]
        source = self._frame(upserts, schema).withColumn("_gone", F.lit(False))
        source = source.unionByName(
            self._frame([{"CustomerId": gone}], schema).withColumn("_gone", F.lit(True))
        )
        _merge(profile, source, schema.fieldNames())
        kept = customers[~customers["CustomerId"].isin([*chosen, f"n{batch}"])]
        customers = pd.concat([kept, pd.DataFrame(upserts, dtype=object)], ignore_index=True)
        self._touched = {*chosen, f"n{batch}"}
        return customers

    def _change_events(self, batch: int, ids: list[str]) -> pd.DataFrame:
        """An append (six events: for the new customer, one without any, some dated after
        the as-of, half without an amount), a DELETE (two customers' events of one kind), an
        UPDATE (one's quantities): changes the measure does not always see."""
        rng, events, path = self.rng, self.events, self.lake.activity_path("Events")
        buyers = [f"n{batch}", ids[-2], *rng.sample(ids, 4)]
        appended = [
            {"CustomerId": c, "At": rng.choice(STAMPS + LATER_STAMPS), "Kind": _pick(rng, KINDS),
             "Amount": None if i % 2 else _pick(rng, AMOUNTS), "Qty": _pick(rng, QTYS),
             "Day": _pick(rng, DATES + LATER_DATES)}
            for i, c in enumerate(buyers)
        ]  # fmt: skip
        table = DeltaTable.forPath(self.spark, path)
        self._frame(appended, table.toDF().schema).write.format("delta").mode("append").save(path)
        events = pd.concat([events, pd.DataFrame(appended, dtype=object)], ignore_index=True)
        live = events[events["CustomerId"].isin(ids) & events["Kind"].notna()]
        pairs = rng.sample(sorted(set(zip(live["CustomerId"], live["Kind"], strict=True))), 2)
        table.delete(functools.reduce(
            lambda a, b: a | b, [(F.col("CustomerId") == c) & (F.col("Kind") == k) for c, k in pairs]
        ))  # fmt: skip
        for c, k in pairs:
            events = events[~((events["CustomerId"] == c) & (events["Kind"] == k))]
        cid = rng.choice(sorted(set(events["CustomerId"]) & set(ids)))
        table.update(F.col("CustomerId") == cid, {"Qty": F.col("Qty") + 1})
        events = events.reset_index(drop=True)
        events["Qty"] = _objects([q + 1 if c == cid and _cell(q) is not None else _cell(q)
                                  for c, q in zip(events["CustomerId"], events["Qty"], strict=True)])  # fmt: skip
        self._touched |= {*buyers, *(c for c, _ in pairs), cid}
        return events

    def oracle(self, like: Oracle, as_of: dt.datetime) -> Oracle:
        """The oracle over the current frames at ``as_of``, with ``like``'s field types."""
        _, etypes, event_time = like.entities["events"]
        entities = {"Events": (self.events, etypes, event_time)}
        found = _GroupedOracle(self.customers, {}, entities, {}, pd.Timestamp(as_of))
        found.types = like.types
        return found


def _merge(table: DeltaTable, source: DataFrame, columns: list[str]) -> None:
    """One MERGE: the rows of ``source`` flagged ``_gone`` are deleted, the others set."""
    values: dict[str, str | Column] = {c: F.col(f"s.`{c}`") for c in columns}
    (
        table.alias("t")
        .merge(source.alias("s"), "t.CustomerId = s.CustomerId")
        .whenMatchedDelete(condition="s._gone")
        .whenMatchedUpdate(set=values)
        .whenNotMatchedInsert(condition="NOT s._gone", values=values)
        .execute()
    )


def _lakehouse(
    spark: SparkSession, world_lake: Lake, base: Path, generated: list[Generated]
) -> Path:
    """A copy of the differential test's tables with the change data feed on, and a
    configuration folder with the generated definitions."""
    lake = Lake(spark, str(base / "lake"))
    for path in (lambda x: x.profile_path("Customer"), lambda x: x.activity_path("Events"),
                 lambda x: x.measures_path()):  # fmt: skip
        cdf_save(world_lake.read(path(world_lake)), path(lake))
    conf = base / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "catalog.yaml").write_text(CATALOG)
    (conf / "lakehouse.yaml").write_text(f"root: {lake.root}\n")
    write_segments(conf, [g.doc for g in generated])
    return conf


def _expect(
    oracle: Oracle, generated: list[Generated], kept: dict[str, set[str]] | None
) -> dict[str, set[str]]:
    """Members per output, level by level; a static segment keeps ``kept``'s members."""
    expected: dict[str, set[str]] = {}
    for g in generated:
        expected[g.output] = (
            kept[g.output] if kept is not None and g.static else oracle.members(g.doc["where"])
        )
        oracle.segments[g.output.lower()] = expected[g.output]
    return expected


def _check_rows(
    ran: Ran, generated: list[Generated], before: dict[str, set[str]], after: dict[str, set[str]]
) -> None:
    for g in generated:
        row = ran.rows[g.output]
        old, new = before[g.output], after[g.output]
        assert (row["Members"], row["Joined"], row["Left"]) == (
            len(new), len(new - old), len(old - new)
        ), g.output  # fmt: skip


@pytest.fixture(scope="module")
def generated() -> list[Generated]:
    return _generate()


def test_the_generated_definitions_cover_what_the_runs_rely_on(
    generated: list[Generated],
) -> None:
    """Relative profile leaves and windows (crossers), measures (their change feed),
    projections (updated values), segment leaves, static segments, and no aggregate
    ``in_last`` (which would make every moved as-of a full run)."""
    live = [g for g in generated if not g.static]
    text = yaml.safe_dump([g.doc["where"] for g in live]).lower()
    for construct in ("related:", "within:", "op: in_last", "segment:", "totalamount",
                      "agg: max", "agg: count_distinct", "not:"):  # fmt: skip
        assert construct in text, construct
    assert any(g.static for g in generated) and any(g.project for g in live)
    assert any("TotalAmount" in g.project for g in live)
    assert [sum(g.level == k for g in generated) for k in range(len(LEVELS))] == list(LEVELS)
    for g in generated:
        for node in _nodes(g.doc["where"]):
            assert node.get("having", {}).get("op") != "in_last", g.output


def _nodes(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [n for c in node for n in _nodes(c)]
    if isinstance(node, dict):
        return [node, *(n for c in node.values() for n in _nodes(c))]
    return []


def test_incremental_runs_equal_the_oracle_after_every_batch(
    spark: SparkSession,
    world: tuple[Catalog, Lake, Oracle],  # noqa: F811
    generated: list[Generated],
    tmp_path: Path,
) -> None:
    """After every batch: each membership (keys, projected values) and each row's
    Members/Joined/Left equal the oracle's; the evaluated rows say ``incremental`` and
    record what they read; the log's customer count is every changed customer (exactly,
    while the as-of stays) and fewer than the profile holds."""
    _, world_lake, base = world
    conf = _lakehouse(spark, world_lake, tmp_path, generated)
    ctx = load_context(conf, spark=spark)
    data = _World(spark, ctx.lake, base.customers.copy(), base.entities["events"][0].copy())

    first = run(ctx, AS_OF)
    expected = _expect(data.oracle(base, AS_OF), generated, None)
    first_customers = data.customers.copy()
    _check_memberships(Outcome(first.memberships, first.rows, [], expected), generated,
                       data.customers)  # fmt: skip
    _check_rows(first, generated, {g.output: set() for g in generated}, expected)
    assert re.fullmatch(r"segment \w+ has no membership to start from", first.fallback() or "")
    sizes = {len(m) for m in expected.values()}
    assert len(sizes) > 15 and max(sizes) - min(sizes) > 0, "memberships worth comparing"

    scopes = []
    for i, (as_of, changes) in enumerate(BATCHES):
        touched = data.change(i) if changes else set()
        ran = run(ctx, as_of)
        before, expected = expected, _expect(data.oracle(base, as_of), generated, kept=expected)
        where = f"batch {i} at {as_of:%Y-%m-%d %H:%M}"
        _check_memberships(Outcome(ran.memberships, ran.rows, [], expected), generated,
                           data.customers, kept=first_customers)  # fmt: skip
        _check_rows(ran, generated, before, expected)
        # Evaluated: every dynamic segment after a change of the profile (every segment
        # reads it); after a moved as-of alone, the relative ones and those naming them.
        evaluated: set[str] = set()
        for g in generated:
            if not g.static and (changes or _relative(g.doc["where"])
                                 or _named(g.doc["where"]) & evaluated):  # fmt: skip
                evaluated.add(g.output.lower())
        statuses = {s.lower() for s, r in ran.rows.items() if r["Status"] == "succeeded"}
        assert statuses == evaluated, where
        for g in generated:
            row = ran.rows[g.output]
            if g.output.lower() in evaluated:
                assert row["Mode"] == "incremental", (where, g.output, row["Mode"])
                inputs = json.loads(row["Inputs"])
                assert inputs["as_of"] == as_of.isoformat(), where
                assert inputs["tables"]["profile"] == delta_version(
                    ctx.lake.profile_path("Customer")
                ), where
            else:
                assert row["Mode"] is None and row["Status"] == (
                    "kept" if g.static else "skipped"
                ), (where, g.output)
        assert ran.fallback() is None, (where, ran.fallback())
        scope = ran.scope()
        assert scope is not None, where
        scopes.append(scope)
        # Every customer whose rows changed, and (the as-of not moving) no one else.
        if as_of == AS_OF:
            assert scope == len(touched), where
        else:
            assert scope >= len(touched), where
        assert scope < len(data.customers), where
    assert scopes[-1] > 0, "the as-of moving alone re-evaluates the customers crossing a window"


# -- each fallback, on six customers ---------------------------------------------------------
_K4_IN_OSLO = BASELINE | {"Oslo": {"k1", "k2", "k4", "k5"}, "OsloCasual": {"k2", "k4", "k5"}}
_ALL = set(BASELINE)


def _lake(conf: Path) -> str:
    return str(yaml.safe_load((conf / "lakehouse.yaml").read_text())["root"])


def _profile(conf: Path) -> str:
    return f"{_lake(conf)}/profile/Customer"


def _k4_moves_to_oslo(spark: SparkSession, conf: Path) -> None:
    table = DeltaTable.forPath(spark, _profile(conf))
    table.update(F.col("CustomerId") == "k4", {"City": F.lit("Oslo")})


def _catalog(spark: SparkSession, conf: Path) -> None:
    text = TINY_CATALOG.replace("City: {type: string}", "City: {type: string, display: Town}")
    (conf / "catalog.yaml").write_text(text)
    _k4_moves_to_oslo(spark, conf)


def _overwrite(spark: SparkSession, conf: Path) -> None:
    rows = [("k1", "Oslo", 5.0), ("k2", "Oslo", 1.0), ("k3", "Lima", 7.0),
            ("k4", "Oslo", None), ("k5", "Oslo", 3.0), ("k6", "Lima", 2.0)]  # fmt: skip
    frame = spark.createDataFrame(rows, PROFILE_SCHEMA)
    frame.write.format("delta").mode("overwrite").save(_profile(conf))


def _schema(spark: SparkSession, conf: Path) -> None:
    row = [("k5", dt.datetime(2026, 3, 30, 9, 0, tzinfo=dt.UTC), 6.0, "web")]
    frame = spark.createDataFrame(row, f"{ORDERS_SCHEMA}, Channel string")
    path = f"{_lake(conf)}/activity/Orders"
    frame.write.format("delta").mode("append").option("mergeSchema", "true").save(path)


def _feed_off(spark: SparkSession, conf: Path) -> None:
    spark.sql(
        f"ALTER TABLE delta.`{_profile(conf)}` SET TBLPROPERTIES (delta.enableChangeDataFeed = false)"
    )
    _k4_moves_to_oslo(spark, conf)


def _vacuumed(spark: SparkSession, conf: Path) -> None:
    """VACUUM with no retention deletes the UPDATE's change-feed files."""
    _k4_moves_to_oslo(spark, conf)
    changes = Path(_profile(conf)) / "_change_data"
    assert any(changes.iterdir()), "the UPDATE wrote its change feed"
    lake = Lake(spark, _lake(conf))
    with (
        lake.session_conf("spark.databricks.delta.retentionDurationCheck.enabled", "false"),
        # VACUUM lists files in as many tasks (10,000 by default: 30 s here)
        lake.session_conf("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2"),
    ):
        DeltaTable.forPath(spark, _profile(conf)).vacuum(0)
    assert not any(changes.iterdir()), "VACUUM deleted the change feed"


def _nothing(spark: SparkSession, conf: Path) -> None:
    pass


@dataclass(frozen=True)
class _Case:
    change: Callable[[SparkSession, Path], None]
    reason: str  # a regular expression the whole reason matches
    expected: dict[str, set[str]]
    evaluated: set[str]
    as_of: dt.datetime = T0


CASES = {
    "catalog": _Case(_catalog, "the catalog changed", _K4_IN_OSLO, _ALL),
    "schema": _Case(
        _schema,
        re.escape("the schema of activity/Orders changed after version 0"),
        BASELINE | {"Fresh": {"k1", "k3", "k5", "k6"}},
        {"Frequent", "OsloCasual", "Fresh"},
    ),
    "feed off": _Case(
        _feed_off,
        r"(profile's change feed cannot be read|a change feed could not be read): "
        r"\[DELTA_MISSING_CHANGE_DATA\].*",
        _K4_IN_OSLO,
        _ALL,
    ),
    "feed vacuumed": _Case(_vacuumed, r"a change feed could not be read: .+", _K4_IN_OSLO, _ALL),
    "aggregate in_last": _Case(
        _nothing,
        re.escape("Fresh tests an aggregate with in_last and the as-of moved"),
        BASELINE | {"Fresh": {"k1", "k6"}},  # k3's last order, 03-29 00:00, left the window
        {"Frequent", "OsloCasual", "Fresh"},
        as_of=T0 + dt.timedelta(days=1),
    ),
}


@pytest.fixture(scope="module")
def tiny(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ran]:
    """The six-customer lakehouse after its first run (asked to be incremental)."""
    conf = build_tiny(spark, tmp_path_factory.mktemp("tiny"))
    return conf, run(conf, T0, spark=spark)


def _check(ran: Ran, expected: dict[str, set[str]], before: dict[str, set[str]]) -> None:
    for output, members in expected.items():
        assert ran.members(output) == members, output
        row = ran.rows[output]
        old = before[output]
        assert (row["Members"], row["Joined"], row["Left"]) == (
            len(members), len(members - old), len(old - members)
        ), output  # fmt: skip


def _scores(ran: Ran) -> dict[str, float | None]:
    """Oslo's projected Score per member, as stored in ``memberships``."""
    rows = ran.memberships[ran.memberships["Segment"] == "Oslo"]
    return {
        str(k): None if pd.isna(v) else float(v)
        for k, v in zip(rows["CustomerId"], rows["Score"], strict=True)
    }


def test_the_first_run_is_a_full_one(tiny: tuple[Path, Ran]) -> None:
    """Asked to be incremental, a run with no membership to start from is a full one."""
    _, first = tiny
    empty = {o: set[str]() for o in BASELINE}
    _check(first, BASELINE, empty)
    reason = first.fallback()
    assert reason is not None
    found = re.fullmatch(r"segment (\w+) has no membership to start from", reason)
    assert found is not None and found[1] in BASELINE, reason
    assert first.modes() == {o: f"full: {reason}" for o in BASELINE}
    assert first.scope() is None
    assert _scores(first) == {"k1": 5.0, "k2": 1.0, "k5": 3.0}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fallback_is_a_full_run_that_says_why(
    spark: SparkSession, tiny: tuple[Path, Ran], tmp_path: Path, case: str
) -> None:
    """On a copy of the tiny lakehouse after its first run: the cause, then a run asked to
    be incremental is a full one, says why (Mode of each evaluated row, the log line), and
    gives the hand-counted memberships."""
    c = CASES[case]
    conf = copy_lakehouse(tiny[0], tmp_path)
    c.change(spark, conf)
    ran = run(conf, c.as_of, spark=spark)
    _check(ran, c.expected, BASELINE)
    modes = ran.modes()
    assert {o for o, m in modes.items() if m is not None} == c.evaluated, modes
    for output in c.evaluated:
        mode = modes[output]
        assert mode is not None and re.fullmatch(f"full: {c.reason}", mode), (output, mode)
        assert ran.rows[output]["Status"] == "succeeded"
    assert ran.scope() is None
    assert re.fullmatch(c.reason, ran.fallback() or ""), ran.log


def test_after_a_fallback_the_next_run_is_incremental_and_a_forced_run_agrees(
    spark: SparkSession, tiny: tuple[Path, Ran], tmp_path: Path
) -> None:
    """The full run after an overwrite records the new version, so the next change is read
    from there: only the two customers it names are re-evaluated (k2 leaves Oslo, k1's
    projected Score changes). A forced full run (``--incremental --force``) then finds
    the same memberships and fingerprints: the incremental run's, folded in, are exact."""
    conf = copy_lakehouse(tiny[0], tmp_path)
    _overwrite(spark, conf)
    ctx = load_context(conf, spark=spark)
    full = run(ctx, T0)
    reason = "profile was rewritten (WRITE) at version 1"
    _check(full, _K4_IN_OSLO, BASELINE)
    assert full.modes() == {o: f"full: {reason}" for o in BASELINE}
    assert full.fallback() == reason and full.scope() is None
    customer = F.col("CustomerId")
    DeltaTable.forPath(spark, _profile(conf)).update(
        customer.isin("k1", "k2"),
        {
            "City": F.when(customer == "k2", F.lit("Lima")).otherwise(F.col("City")),
            "Score": F.when(customer == "k1", F.lit(6.0)).otherwise(F.col("Score")),
        },
    )
    ran = run(ctx, T0)
    after = _K4_IN_OSLO | {"Oslo": {"k1", "k4", "k5"}, "OsloCasual": {"k4", "k5"}}
    _check(ran, after, _K4_IN_OSLO)
    assert _scores(ran) == {"k1": 6.0, "k4": None, "k5": 3.0}
    assert ran.modes() == {o: "incremental" for o in BASELINE}
    assert ran.scope() == 2 and ran.fallback() is None

    forced = run(ctx, T0, RunOptions(incremental=True, force=True))
    _check(forced, after, after)
    assert _scores(forced) == _scores(ran)
    assert forced.modes() == {o: "full: --force" for o in BASELINE}
    assert {o: r["Fingerprint"] for o, r in forced.rows.items()} == {
        o: r["Fingerprint"] for o, r in ran.rows.items()
    }


def test_a_named_segment_another_run_changed_is_read_from_its_change_feed(
    spark: SparkSession, tiny: tuple[Path, Ran], tmp_path: Path
) -> None:
    """Oslo, redefined and run alone, is a full run (its definition changed) and becomes
    Lima's k3 k6; then a run of all skips the others and re-evaluates OsloCasual, whose
    definition and inputs did not change, on the five customers whose Oslo membership
    changed (read from the memberships' change feed: no input table changed)."""
    conf = copy_lakehouse(tiny[0], tmp_path)
    docs = tiny_segments()
    docs[0]["where"]["value"] = "Lima"
    write_segments(conf, docs)
    ctx = load_context(conf, spark=spark)
    alone = run(ctx, T0, only=["Oslo"])
    _check(alone, {"Oslo": {"k3", "k6"}}, BASELINE)
    assert alone.modes() == {"Oslo": "full: the definition of Oslo changed"}
    assert alone.fallback() == "the definition of Oslo changed"
    assert _scores(alone) == {"k3": 7.0, "k6": 2.0}
    ran = run(ctx, T0)
    _check(ran, BASELINE | {"Oslo": {"k3", "k6"}, "OsloCasual": {"k6"}},
           BASELINE | {"Oslo": {"k3", "k6"}})  # fmt: skip
    assert ran.modes() == {
        "Oslo": None,
        "Frequent": None,
        "OsloCasual": "incremental",
        "Fresh": None,
    }
    assert ran.scope() == 5
