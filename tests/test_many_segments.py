"""Three hundred generated segments on five dependency levels in one run, against the oracle (#32).

A seeded generator writes definitions mixing attribute leaves, related leaves (every
aggregate, with ``where`` and ``within``), ``all``/``any``/``not`` and segment leaves that
name segments of earlier levels; ``run_segments`` evaluates them all in one call. Every
membership, its ``segment_runs`` row and its projected values are compared with the
independent oracle evaluated level by level, once on the differential test's data and
again after some customers moved city and some bought more.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
import yaml
from _memberships import commits, keys, table_rows
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from test_segment_differential import (
    AMOUNTS,
    AS_OF,
    CATALOG,
    CITIES,
    DATES,
    EVENT_FIELDS,
    KINDS,
    OPS,
    PROFILE_FIELDS,
    QTYS,
    STAMP_TEXT,
    STAMPS,
    world,  # noqa: F401 (a fixture: the differential test's lakehouse and oracle)
)

from cohortlake.catalog import Catalog
from cohortlake.context import Context, load_context
from cohortlake.lake import Lake
from segmentation.run import run_segments

from segment_oracle import Oracle

# The differential test's field tables, typed: name -> (type, pool of values).
_Fields = dict[str, tuple[str, list[Any]]]
PROFILE = cast(_Fields, PROFILE_FIELDS)
EVENTS = cast(_Fields, EVENT_FIELDS)
LEVELS = (110, 80, 50, 35, 25)  # definitions per dependency level: 300 in all
DEPTH = 3  # nesting of all/any/not
UNITS = ["days", "weeks", "months", "years"]
# Canonical profile columns, and the spellings a definition may project them by.
PROJECTABLE = {
    "Name": ["Name", "Full Name", "name"],
    "City": ["City", "CITY"],
    "Score": ["Score", "Score (%)"],
    "Visits": ["Visits"],
    "Born": ["Born"],
    "LastSeen": ["LastSeen", "lastseen"],
    "Active": ["Active"],
    "TotalAmount": ["TotalAmount", "totalamount"],
}


# -- the generator ---------------------------------------------------------------------------
def _instant(text: str) -> pd.Timestamp:
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _scalar(rng: random.Random, ftype: str, pool: list[Any]) -> Any:
    if ftype == "date":
        return rng.choice([d.isoformat() for d in pool] + ["2000-06-15"])
    if ftype == "timestamp":
        return rng.choice(STAMP_TEXT)
    if ftype == "boolean":
        return rng.random() < 0.5
    if ftype == "number":
        return rng.choice([*pool, 3.25, -1.0])
    if ftype == "integer":
        return rng.choice([*pool, 4])
    return rng.choice([*pool, "al", "ALP", "x"])


def _test(rng: random.Random, ftype: str, pool: list[Any]) -> dict[str, Any]:
    """An ``op`` and its ``value`` that fit ``ftype``."""
    op = rng.choice(OPS[ftype])
    if op in ("is_null", "is_not_null"):
        return {"op": op}
    if op == "in_last":
        return {"op": op, "value": {"n": rng.randint(0, 14), "unit": rng.choice(UNITS)}}
    if op == "between":
        pair = [_scalar(rng, ftype, pool), _scalar(rng, ftype, pool)]
        return {"op": op, "value": sorted(pair, key=_instant if ftype == "timestamp" else None)}
    if op in ("in", "not_in"):
        return {"op": op, "value": [_scalar(rng, ftype, pool) for _ in range(rng.randint(1, 3))]}
    return {"op": op, "value": _scalar(rng, ftype, pool)}


def _attribute(rng: random.Random, fields: _Fields) -> dict[str, Any]:
    name = rng.choice(sorted(fields))
    ftype, pool = fields[name]
    leaf = {"attribute": rng.choice([name, name.lower(), name.upper()]), **_test(rng, ftype, pool)}
    if ftype == "string" and "value" in leaf and rng.random() < 0.4:
        leaf["ignore_case"] = True
    return leaf


def _rows_where(rng: random.Random) -> dict[str, Any]:
    """A related leaf's ``where``: a leaf, its negation, or two of them joined."""
    shape = rng.choice(["leaf", "not", "all", "any"])
    if shape == "leaf":
        return _attribute(rng, EVENTS)
    if shape == "not":
        return {"not": _attribute(rng, EVENTS)}
    return {shape: [_attribute(rng, EVENTS), _attribute(rng, EVENTS)]}


def _related(rng: random.Random) -> dict[str, Any]:
    node: dict[str, Any] = {"related": rng.choice(["Events", "events", "EVENTS"])}
    if rng.random() < 0.5:
        node["where"] = _rows_where(rng)
    if rng.random() < 0.4:
        node["within"] = {"n": rng.randint(0, 14), "unit": rng.choice(UNITS)}
    agg = rng.choice(["count", "count_distinct", "sum", "avg", "min", "max", None])
    if agg is None:
        return node
    if agg in ("count", "count_distinct"):
        node["having"] = {"agg": agg, **_test(rng, "integer", [0, 1, 2, 3])}
        if agg == "count_distinct":
            node["having"]["attribute"] = rng.choice(sorted(EVENTS))
    elif agg in ("sum", "avg"):
        node["having"] = {"agg": agg, "attribute": rng.choice(["Amount", "Qty", "qty"])}
        node["having"].update(_test(rng, "number", [0.0, 2.5, 10.0, 30.0]))
    else:
        attribute = rng.choice(sorted(EVENTS))
        ftype, pool = EVENTS[attribute]
        node["having"] = {"agg": agg, "attribute": attribute, **_test(rng, ftype, pool)}
    return node


def _tree(
    rng: random.Random, depth: int, refs: list[str], compound: bool = False
) -> dict[str, Any]:
    if depth == 0 or (not compound and rng.random() < 0.35):
        draw = rng.random()
        if draw < 0.2 and refs:
            output = rng.choice(refs)
            return {"segment": rng.choice([output, output.lower(), output.upper()])}
        return _related(rng) if draw < 0.5 else _attribute(rng, PROFILE)
    kind = rng.choice(["all", "any", "not"])
    if kind == "not":
        return {"not": _tree(rng, depth - 1, refs)}
    return {kind: [_tree(rng, depth - 1, refs) for _ in range(rng.randint(1, 3))]}


def _leaf_slots(node: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, index) of every leaf under a compound node, to put a segment leaf in."""
    children: list[tuple[Any, Any]] = [(node, "not")] if "not" in node else []
    for kind in ("all", "any"):
        children += [(node[kind], i) for i in range(len(node.get(kind, [])))]
    slots: list[tuple[Any, Any]] = []
    for container, index in children:
        child = container[index]
        compound = any(k in child for k in ("all", "any", "not"))
        slots += _leaf_slots(child) if compound else [(container, index)]
    return slots


@dataclass(frozen=True)
class Generated:
    """One generated definition: what goes in the YAML file, and what the test expects of it."""

    doc: dict[str, Any]
    output: str
    level: int
    project: tuple[str, ...]  # canonical column names

    @property
    def static(self) -> bool:
        return self.doc.get("type") == "static"


def _generate(seed: int = 32) -> list[Generated]:
    """``LEVELS`` definitions per level; each one past level 0 names one of the level before."""
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
                    container[index] = {"segment": wanted.lower() if i % 2 else wanted}
                else:
                    tree = {"segment": wanted}
            if i % 3:
                doc: dict[str, Any] = {"name": f"Generated {i:03d}", "where": tree}
                output = f"Generated{i:03d}"  # derived from the name, by the documented rule
            else:
                output = f"Seg{i:03d}"
                doc = {"name": f"Segment number {i}", "output": output, "where": tree}
            if rng.random() < 0.06:
                doc["type"] = "static"
            elif rng.random() < 0.2:
                doc["type"] = "dynamic"
            project = tuple(rng.sample(sorted(PROJECTABLE), rng.randint(1, 3)))
            if rng.random() < 0.3:
                doc["project"] = [rng.choice(PROJECTABLE[c]) for c in project]
            else:
                project = ()
            out.append(Generated(doc, output, level, project))
    return out


def _write_conf(root: Path, lake_root: str, generated: list[Generated]) -> Path:
    """One file per level, deepest level first in name order, definitions shuffled."""
    conf = root / "conf"
    (conf / "segments").mkdir(parents=True)
    (conf / "catalog.yaml").write_text(CATALOG)
    (conf / "lakehouse.yaml").write_text(f"root: {lake_root}\n")
    rng = random.Random(1)
    for level in range(len(LEVELS)):
        docs = [g.doc for g in generated if g.level == level]
        rng.shuffle(docs)
        file = conf / "segments" / f"{len(LEVELS) - level}_level{level}.yaml"
        if level % 2:  # a list under segments:
            file.write_text(yaml.safe_dump({"segments": docs}, sort_keys=False))
        else:  # one --- document each
            file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return conf


# -- expectations ----------------------------------------------------------------------------
class _Records:
    """Rows already as dicts, which is all ``Oracle._related`` asks of its frame."""

    def __init__(self, rows: list[dict[str, Any]]):
        self._rows = rows

    def to_dict(self, orient: str) -> list[dict[str, Any]]:
        assert orient == "records"
        return self._rows


class _GroupedOracle(Oracle):
    """The oracle, answering each related leaf from the customer's own activity rows,
    grouped once: the plain one lists every row for every customer and leaf (30 s here)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._own: dict[str, dict[str, _Records]] = {}
        for name, (frame, _, _) in self.entities.items():
            rows: dict[str, list[dict[str, Any]]] = {}
            for r in frame.to_dict("records"):
                rows.setdefault(r[self.key], []).append(r)
            self._own[name] = {k: _Records(v) for k, v in rows.items()}

    def _related(self, node: dict[str, Any], row: dict[str, Any]) -> bool:
        name = node["related"].lower()
        whole = self.entities[name]
        own = self._own[name].get(row[self.key], _Records([]))
        self.entities[name] = (cast(pd.DataFrame, own), *whole[1:])
        try:
            return super()._related(node, row)
        finally:
            self.entities[name] = whole


def _oracle(like: Oracle, customers: pd.DataFrame, events: pd.DataFrame) -> Oracle:
    """An oracle over other data, with ``like``'s field types (display names included)."""
    _, etypes, event_time = like.entities["events"]
    entities = {"Events": (events, etypes, event_time)}
    oracle = _GroupedOracle(customers, {}, entities, {}, like.as_of)
    oracle.types = like.types
    return oracle


def _expect(
    oracle: Oracle, generated: list[Generated], kept: dict[str, set[str]] | None = None
) -> dict[str, set[str]]:
    """Members per output, level by level; a static segment keeps ``kept``'s members."""
    expected: dict[str, set[str]] = {}
    for g in generated:  # in level order
        if kept is not None and g.static:
            expected[g.output] = kept[g.output]
        else:
            expected[g.output] = oracle.members(g.doc["where"])
        oracle.segments[g.output.lower()] = expected[g.output]
    return expected


def _plain(value: Any) -> Any:
    """A cell as a comparable Python value: nulls are None, timestamps naive UTC datetimes."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.item() if hasattr(value, "item") else value


def _values(customers: pd.DataFrame, column: str) -> dict[str, Any]:
    return {c: _plain(v) for c, v in zip(customers["CustomerId"], customers[column], strict=True)}


@dataclass
class Outcome:
    """What one run left: every row of ``memberships``, the run's ``segment_runs`` rows,
    the commits it made to ``memberships``, and the expected members."""

    rows: pd.DataFrame
    runs: dict[str, dict[str, Any]]
    commits: list[int]
    expected: dict[str, set[str]]


def _run(ctx: Context, spark: SparkSession, expected: dict[str, set[str]]) -> Outcome:
    root = ctx.lake.root
    before = set(commits(root))
    results = run_segments(ctx, as_of=AS_OF)
    (run_id,) = {r.run_id for r in results}
    runs = cast(
        pd.DataFrame,
        spark.read.format("delta")
        .load(f"{root}/segment_runs")
        .where(F.col("RunId") == run_id)
        .toPandas(),
    )
    return Outcome(
        table_rows(spark, root),
        {r["Segment"]: r for r in runs.to_dict("records")},
        sorted(set(commits(root)) - before),
        expected,
    )


def _check_memberships(
    out: Outcome,
    generated: list[Generated],
    customers: pd.DataFrame,
    kept: pd.DataFrame | None = None,
) -> None:
    """Members, projected columns (the profile's values; null where not projected). A
    static segment kept from an earlier run keeps the values of that run's profile, ``kept``."""
    by_segment = dict(iter(out.rows.groupby("Segment")))
    assert set(by_segment) <= {g.output for g in generated}
    columns = [c for c in out.rows.columns if c not in ("Segment", "CustomerId")]
    current = {c: _values(customers, c) for c in PROJECTABLE}
    earlier = {c: _values(kept, c) for c in PROJECTABLE} if kept is not None else current
    for g in generated:
        profile = earlier if g.static else current
        rows = by_segment.get(g.output, out.rows.iloc[:0])
        assert rows["CustomerId"].is_unique, g.output
        assert set(rows["CustomerId"]) == out.expected[g.output], (g.output, g.doc)
        for column in columns:
            got = {k: _plain(v) for k, v in zip(rows["CustomerId"], rows[column], strict=True)}
            if column in g.project:
                assert got == {k: profile[column][k] for k in got}, (g.output, column)
            else:
                assert set(got.values()) <= {None}, (g.output, column)


First = tuple[Context, Oracle, Outcome]  # the first run's context, oracle and outcome


# -- the runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated() -> list[Generated]:
    return _generate()


@pytest.fixture(scope="module")
def first(
    spark: SparkSession,
    world: tuple[Catalog, Lake, Oracle],  # noqa: F811
    generated: list[Generated],
    tmp_path_factory: pytest.TempPathFactory,
) -> First:
    _, lake, base = world
    conf = _write_conf(tmp_path_factory.mktemp("many"), lake.root, generated)
    ctx = load_context(conf, spark=spark)
    oracle = _oracle(base, base.customers.copy(), base.entities["events"][0].copy())
    return ctx, oracle, _run(ctx, spark, _expect(oracle, generated))


def _change(spark: SparkSession, lake: Lake, oracle: Oracle) -> Oracle:
    """Move eight customers to another city, give six (three without events) new events,
    rewrite the measure from pandas; return the oracle over the new data."""
    rng = random.Random(5)
    customers = oracle.customers.copy()
    ids = list(customers["CustomerId"])
    chosen = set(rng.sample(ids, 8))
    moved = {c: rng.choice([x for x in [*CITIES, None] if x != city]) for c, city in
             zip(ids, customers["City"], strict=True) if c in chosen}  # fmt: skip
    customers["City"] = [moved.get(c, city) for c, city in zip(ids, customers["City"], strict=True)]
    city = F.col("City")
    for cid, new in moved.items():
        city = F.when(F.col("CustomerId") == cid, F.lit(new).cast("string")).otherwise(city)
    profile = lake.read(lake.profile_path("Customer")).withColumn("City", city).localCheckpoint()
    lake.overwrite(profile, lake.profile_path("Customer"))

    buyers = [*rng.sample(ids[:-12], 3), *rng.sample(ids[-12:], 3)]  # the last 12 had no events
    new_events = [
        (cid, rng.choice(STAMPS), rng.choice(KINDS), rng.choice(AMOUNTS), rng.choice(QTYS),
         rng.choice(DATES))
        for cid in buyers for _ in range(2)
    ]  # fmt: skip
    lake.append(
        spark.createDataFrame(
            [(c, t.replace(tzinfo=dt.UTC), *rest) for c, t, *rest in new_events],
            "CustomerId string, At timestamp, Kind string, Amount double, Qty int, Day date",
        ),
        lake.activity_path("Events"),
    )
    events = pd.concat(
        [oracle.entities["events"][0], pd.DataFrame(new_events, columns=["CustomerId", "At",
         "Kind", "Amount", "Qty", "Day"], dtype=object)], ignore_index=True
    )  # fmt: skip
    total = events.dropna(subset=["Amount"]).groupby("CustomerId")["Amount"].sum()
    customers["TotalAmount"] = [float(total.get(c, 0.0)) for c in ids]
    lake.overwrite(
        spark.createDataFrame(
            list(zip(ids, customers["TotalAmount"], strict=True)),
            "CustomerId string, TotalAmount double",
        ),
        lake.measures_path(),
    )
    return _oracle(oracle, customers, events)


@pytest.fixture(scope="module")
def second(spark: SparkSession, first: First, generated: list[Generated]) -> tuple[Oracle, Outcome]:
    ctx, oracle, _ = first
    changed = _change(spark, ctx.lake, oracle)
    before = first[2].expected
    return changed, _run(ctx, spark, _expect(changed, generated, kept=before))


def test_generated_definitions_span_levels_and_constructs(generated: list[Generated]) -> None:
    """The generator makes what the test claims: five levels, every aggregate, projections."""
    text = yaml.safe_dump([g.doc for g in generated])
    for construct in ("all:", "any:", "not:", "segment:", "related:", "within:", "where:",
                      "ignore_case:", "in_last", "static", "project:", "output:"):  # fmt: skip
        assert construct in text, construct
    for agg in ("count", "count_distinct", "sum", "avg", "min", "max"):
        assert f"agg: {agg}\n" in text, agg
    assert [sum(g.level == k for g in generated) for k in range(5)] == list(LEVELS)


def test_the_grouped_oracle_answers_as_the_oracle(
    world: tuple[Catalog, Lake, Oracle],  # noqa: F811
    generated: list[Generated],
) -> None:
    """The faster oracle the runs are checked against changes nothing but speed."""
    base = world[2]
    grouped = _oracle(base, base.customers, base.entities["events"][0])
    trees = [g.doc["where"] for g in generated if g.level == 0 and "related:" in yaml.dump(g.doc)]
    assert len(trees) > 40
    for tree in trees[:20]:
        assert grouped.members(tree) == base.members(tree), tree


def test_one_run_matches_the_oracle(
    spark: SparkSession, first: First, generated: list[Generated]
) -> None:
    ctx, oracle, out = first
    _check_memberships(out, generated, oracle.customers)
    for g in generated:
        row = out.runs[g.output]
        members = len(out.expected[g.output])
        assert (row["Members"], row["Joined"], row["Left"]) == (members, members, 0), g.output
        assert (row["Status"], row["Table"]) == ("succeeded", "memberships")
        assert list(row["Columns"]) == list(g.project), g.output
    # One commit for the whole run: every segment of every level shares its version.
    assert len(out.commits) == 1
    assert {r["TableVersion"] for r in out.runs.values()} == set(out.commits)
    sizes = sorted(len(m) for m in out.expected.values())
    assert sizes[0] == 0 and sizes[-1] == len(oracle.customers) and len(set(sizes)) > 30
    # The documented per-segment read agrees with the whole-table read.
    for g in generated[::60]:
        assert keys(spark, ctx.lake.root, g.output) == out.expected[g.output]


def test_a_second_run_after_changes(
    first: First, second: tuple[Oracle, Outcome], generated: list[Generated]
) -> None:
    _, old, out1 = first
    oracle, out = second
    _check_memberships(out, generated, oracle.customers, kept=old.customers)
    previous = {c: _values(old.customers, c) for c in PROJECTABLE}
    now = {c: _values(oracle.customers, c) for c in PROJECTABLE}
    changed_levels: set[int] = set()
    versions: set[int] = set()
    for g in generated:
        row, last = out.runs[g.output], out1.runs[g.output]
        before, after = out1.expected[g.output], out.expected[g.output]
        assert (row["Members"], row["Joined"], row["Left"]) == (
            len(after), len(after - before), len(before - after)
        ), g.output  # fmt: skip
        assert row["Status"] == ("kept" if g.static else "succeeded"), g.output
        moved = before != after or any(
            previous[c][m] != now[c][m] for c in g.project for m in after
        )
        if moved and not g.static:
            assert row["TableVersion"] in out.commits, g.output
            changed_levels.add(g.level)
            versions.add(row["TableVersion"])
        else:
            assert row["TableVersion"] == last["TableVersion"], g.output
    assert sum(out1.expected[g.output] != out.expected[g.output] for g in generated) >= 20
    assert versions == set(out.commits) and len(out.commits) == 1 and changed_levels
