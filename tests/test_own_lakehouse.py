"""Cohortlake on tables it did not make: a Hive metastore (Derby, started here), names and
types unlike the demo's, and every catalog mismatch as one line with exit 2.

The tables: ``crm.clients`` (integer key ``client_no``, a signup date stored as ISO text),
``sales.orders`` (its key named ``client``, order times as ISO text) and a Delta table of
web visits at a path outside the lakehouse root. One subprocess runs the whole plan
(``tests/_own_lakehouse_run.py``) because a Derby metastore admits one JVM; every
expectation here is computed with pandas or the segment oracle from the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from _memberships import spark_members

from tests.conftest import PATIENCE, REPO
from tests.segment_oracle import Oracle

AS_OF = "2024-06-15"
REGIONS = ["north", "south", "east", "west"]

SEGMENTS = {
    "rich.yaml": """\
name: Rich North East
where:
  all:
    - {attribute: region, op: in, value: [north, east]}
    - {attribute: Annual Income, op: gt, value: 20000}
""",
    # two definitions in one file, the second naming the first's sibling
    "web.yaml": """\
name: Recent Web Buyers
where:
  all:
    - related: Orders
      where: {attribute: channel, op: eq, value: web}
      within: {n: 30, unit: days}
    - {attribute: signup, op: after, value: "2020-06-01"}
---
name: Rich Not Recent
where:
  all:
    - {segment: RichNorthEast}
    - {not: {segment: RecentWebBuyers}}
""",
    "visitors.yaml": """\
name: Visitors Who Spend
where:
  all:
    - {attribute: WebSpend, op: gt, value: 10}
    - {related: Web}
""",
}
MEASURES = """measures:
  OrderCount: {source: Orders, agg: count}
  WebSpend:
    source: Orders
    agg: sum
    attribute: amount
    where: {attribute: channel, op: eq, value: web}
"""
OVERLAP = """\
name: Rich and Web
kind: overlap
segments: [RichNorthEast, RecentWebBuyers]
fields: []
"""


def _clients(ids: range) -> pd.DataFrame:
    start = dt.date(2020, 1, 1)
    return pd.DataFrame(
        {
            "client_no": pd.Series(list(ids), dtype="int32"),
            "first_name": [f"Name{i}" for i in ids],
            "email": [f"c{i}@example.org" for i in ids],
            "region": [REGIONS[i % 4] for i in ids],
            "annual_income": [1000.0 * ((i * 37) % 61) for i in ids],
            "signup": [(start + dt.timedelta(days=(i * 53) % 900)).isoformat() for i in ids],
            "vip": [i % 3 == 0 for i in ids],
            "points": pd.Series([(i * 7) % 50 for i in ids], dtype="int64"),
        }
    )


def _orders() -> pd.DataFrame:
    as_of = dt.datetime(2024, 6, 15)
    rows = []
    for i in [*range(1, 61), 999]:  # 999: orders of a client the profile does not have
        for j in range(i % 4):
            when = as_of - dt.timedelta(days=(i * 5 + j * 11) % 60, hours=j + 1)
            rows.append(
                (i, when.isoformat(), "web" if (i + j) % 2 else "store", 3.5 + (i * j) % 17)
            )
    return pd.DataFrame(rows, columns=["client", "order_ts", "channel", "amount"]).astype(
        {"client": "int32"}
    )


def _visits() -> pd.DataFrame:
    rows = [(i, f"2024-06-0{1 + i % 9}") for i in range(1, 61) if i % 5 == 0 for _ in range(2)]
    return pd.DataFrame(rows, columns=["client_no", "day"]).astype({"client_no": "int32"})


def _lakehouse_yaml(work: Path) -> str:
    return yaml.safe_dump(
        {
            "root": "lake",
            "spark": {
                "master": "local[2]",
                "conf": {
                    "spark.sql.shuffle.partitions": 2,
                    "spark.ui.showConsoleProgress": "false",
                    "spark.ui.enabled": "false",
                    # a short-lived JVM over tiny data: C1 only, no generated code
                    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
                    "spark.sql.codegen.wholeStage": "false",
                    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
                    "spark.databricks.delta.snapshotPartitions": 1,
                    "spark.sql.catalogImplementation": "hive",
                    "spark.sql.warehouse.dir": str(work / "warehouse"),
                    "spark.hadoop.javax.jdo.option.ConnectionURL": (
                        f"jdbc:derby:;databaseName={work / 'metastore_db'};create=true"
                    ),
                },
            },
        }
    )


# A catalog by hand for the mismatch cases (the drafted one is checked on its own).
GOOD_CATALOG = {
    "profile": {
        "key": "client_no",
        "table": "crm.clients",
        "attributes": {
            "region": {"type": "string"},
            "annual_income": {"type": "number"},
            "signup": {"type": "date", "format": "iso"},
            "points": {"type": "integer"},
        },
    },
    "activities": {
        "Orders": {
            "table": "sales.orders",
            "key": "client",
            "event_time": "order_ts",
            "attributes": {
                "order_ts": {"type": "timestamp", "format": "iso"},
                "amount": {"type": "number"},
            },
        }
    },
}
ONE_SEGMENT = "name: Many Points\nwhere: {attribute: points, op: gte, value: 25}\n"


def _bad(change: dict[str, Any], path: list[str]) -> dict[str, Any]:
    catalog = json.loads(json.dumps(GOOD_CATALOG))
    node = catalog
    for part in path[:-1]:
        node = node[part]
    if change.get("drop"):
        node.pop(path[-1])
    else:
        node[path[-1]] = change["value"]
    return catalog


def _rename(catalog: dict[str, Any], old: str, new: str, spec: dict[str, Any]) -> dict[str, Any]:
    attributes = catalog["profile"]["attributes"]
    attributes.pop(old)
    attributes[new] = spec
    return catalog


# (conf folder, command, catalog, expected stderr lines); FILE is the conf's catalog.yaml.
MISMATCHES: list[tuple[str, list[str], dict[str, Any], list[str]]] = [
    (
        "typo",
        ["run"],
        _rename(
            _bad({"value": "crm.clients"}, ["profile", "table"]),
            "region",
            "regoin",
            {"type": "string"},
        ),
        [
            "error: FILE: profile.attributes.regoin: column regoin is not in table crm.clients; did you mean region?"
        ],
    ),
    (
        "numberasstring",
        ["check"],
        _bad({"value": {"type": "string"}}, ["profile", "attributes", "annual_income"]),
        [
            "error: FILE: profile.attributes.annual_income.type: column annual_income is double in "
            "table crm.clients, which does not hold string values; declare it number"
        ],
    ),
    (
        "textdate",
        ["measures"],
        _bad({"value": {"type": "date"}}, ["profile", "attributes", "signup"]),
        [
            "error: FILE: profile.attributes.signup.type: column signup is string in table "
            "crm.clients, which does not hold date values; add a format (like yyyy-MM-dd) to "
            "parse text dates"
        ],
    ),
    (
        "eventtime",
        ["check"],
        _bad({"value": "order_time"}, ["activities", "Orders", "event_time"]),
        [],  # filled below: the attribute must exist for the catalog to load
    ),
    (
        "profilekey",
        ["run"],
        _bad({"value": "client_id"}, ["profile", "key"]),
        [
            "error: FILE: profile.key: key column client_id is not in table crm.clients; did you mean client_no?"
        ],
    ),
    (
        "activitykey",
        ["check"],
        _bad({"drop": True}, ["activities", "Orders", "key"]),
        [
            "error: FILE: activities.Orders.key: key column client_no is not in table "
            "sales.orders; did you mean client?"
        ],
    ),
    (
        "duplicates",
        ["run"],
        _bad({"value": "crm.clients_dupes"}, ["profile", "table"]),
        [
            "error: crm.clients_dupes: client_no: the customer profile has 1 row with a null "
            "client_no and 2 rows repeating another row's client_no: one row per customer is needed"
        ],
    ),
    (
        "baddates",
        ["check"],
        _bad({"value": "crm.clients_baddates"}, ["profile", "table"]),
        [
            "error: FILE: profile.attributes.signup.format: 2 of 60 values of signup in table "
            "crm.clients_baddates do not parse as iso (like '2021-02-30')"
        ],
    ),
    (
        "notable",
        ["run"],
        _bad({"value": "crm.nope"}, ["profile", "table"]),
        ["error: FILE: profile.table: no table crm.nope (the customer profile)"],
    ),
]
_eventtime = MISMATCHES[3][2]["activities"]["Orders"]
_eventtime["attributes"]["order_time"] = {"type": "timestamp", "format": "iso"}
MISMATCHES[3][3].append(
    "error: FILE: activities.Orders.attributes.order_time: column order_time is not in "
    "table sales.orders; did you mean order_ts?"
)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Write the data, the confs and the plan; run it in one subprocess; return results."""
    work = tmp_path_factory.mktemp("own")
    data = work / "data"
    data.mkdir()
    clients, orders, visits = _clients(range(1, 61)), _orders(), _visits()
    clients.to_parquet(data / "clients.parquet")
    orders.to_parquet(data / "orders.parquet")
    visits.to_parquet(data / "visits.parquet")
    dupes = pd.concat([clients, clients.iloc[[0, 1]], clients.iloc[[2]].assign(client_no=None)])
    dupes.astype({"client_no": "Int32"}).to_parquet(data / "dupes.parquet")
    bad = clients.copy()
    bad.loc[4, "signup"], bad.loc[9, "signup"] = "2021-02-30", "soon"
    bad.to_parquet(data / "baddates.parquet")
    newcomers = _clients(range(61, 65)).assign(region="north", annual_income=90000.0)
    newcomers.to_parquet(data / "newcomers.parquet")

    lakehouse = _lakehouse_yaml(work)
    conf = work / "conf"
    for folder in ("segments", "insights"):
        (conf / folder).mkdir(parents=True)
    (conf / "lakehouse.yaml").write_text(lakehouse)
    for name, text in SEGMENTS.items():
        (conf / "segments" / name).write_text(text)
    (conf / "insights" / "overlap.yaml").write_text(OVERLAP)
    bad_steps = []
    for name, argv, catalog, _ in MISMATCHES:
        folder = work / f"conf_{name}"
        (folder / "segments").mkdir(parents=True)
        (folder / "lakehouse.yaml").write_text(lakehouse)
        (folder / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
        (folder / "segments" / "points.yaml").write_text(ONE_SEGMENT)
        bad_steps.append({"id": name, "argv": [*argv, "--conf", str(folder), "--as-of", AS_OF]})
    outside = work / "outside" / "web_events"
    visits.to_csv(data / "visits.csv", index=False)
    (data / "customers.csv").write_text("Customer Id,Joined\n10,2024-01-02\n20,2024-02-03\n")
    imported = [str(data / "customers.csv"), "--key", "Customer Id"]
    init = [
        "catalog", "init", "--profile", "crm.clients", "--key", "client_no",
        "--activity", "Orders=sales.orders:order_ts", "--activity-key", "Orders=client",
        "--activity", f"Web={outside}:day",
    ]  # fmt: skip
    profile_columns = ["client_no", "signup", "region"]
    plan = {
        "conf": "conf",
        "databases": ["crm", "sales"],
        "tables": [
            {"table": "crm.clients", "parquet": str(data / "clients.parquet")},
            {"table": "sales.orders", "parquet": str(data / "orders.parquet")},
            {"table": "crm.clients_dupes", "parquet": str(data / "dupes.parquet")},
            {"table": "crm.clients_baddates", "parquet": str(data / "baddates.parquet")},
        ],
        "watched": ["lake", "warehouse", "outside", "conf"],
        "steps": [
            # files in: by path outside the root, and by name (twice: the second refused)
            {
                "id": "import_path",
                "argv": ["import", str(data / "visits.csv"), "--table", str(outside)],
            },
            {"id": "import_name", "argv": ["import", *imported, "--table", "crm.imported"]},
            {"id": "import_again", "argv": ["import", *imported, "--table", "crm.imported"]},
            {"id": "import_noschema", "argv": ["import", *imported, "--table", "nosuch.imported"]},
            {"id": "imported", "probe": "table", "table": "crm.imported"},
            {"id": "init", "argv": init},
            {"id": "init_again", "argv": [*init, "--out", "conf/catalog.yaml"]},
            {"id": "edit", "edit": "conf/catalog.yaml", "old": "measures: {}\n", "new": MEASURES},
            {"id": "check", "argv": ["check"]},
            {"id": "measures", "argv": ["measures", "--as-of", AS_OF]},
            {"id": "run", "argv": ["run", "--as-of", AS_OF]},
            {
                "id": "export",
                "argv": [
                    "export",
                    "RichNotRecent",
                    "--out",
                    "rich.csv",
                    "--columns",
                    "region,WebSpend",
                ],
            },
            {"id": "insights", "argv": ["insights", "--no-charts"]},
            {"id": "append", "append": str(data / "newcomers.parquet"), "table": "crm.clients"},
            {"id": "rerun", "argv": ["run", "--as-of", AS_OF, "--only", "RichNorthEast"]},
            {
                "id": "profile_v0",
                "probe": "profile",
                "conf": "conf",
                "version": 0,
                "columns": profile_columns,
            },
            {"id": "profile_now", "probe": "profile", "conf": "conf", "columns": ["client_no"]},
            {
                "id": "orders_v0",
                "probe": "Orders",
                "conf": "conf",
                "version": 0,
                "columns": ["client_no", "order_ts"],
            },
            *bad_steps,
        ],
    }
    (work / "plan.json").write_text(json.dumps(plan, indent=1))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_own_lakehouse_run.py"), str(work)],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    return {
        "work": work,
        "results": results,
        "clients": clients,
        "orders": orders,
        "visits": visits,
    }


def _ok(step: dict[str, Any]) -> dict[str, Any]:
    assert step["code"] == 0, step["err"]
    assert "Traceback" not in step["err"] and "WARN" not in step["err"], step["err"]
    return step


def test_catalog_init_drafts_types_keys_and_personal_data(own: dict[str, Any]) -> None:
    _ok(own["results"]["init"])
    drafted = yaml.safe_load((own["work"] / "conf" / "catalog.yaml").read_text())
    profile = drafted["profile"]
    assert (profile["key"], profile["table"]) == ("client_no", "crm.clients")
    types = {
        n: (a["type"], a.get("format"), a.get("personal", False))
        for n, a in profile["attributes"].items()
    }
    assert types == {
        "first_name": ("string", None, True),
        "email": ("string", None, True),
        "region": ("string", None, False),
        "annual_income": ("number", None, False),
        "signup": ("date", "iso", False),
        "vip": ("boolean", None, False),
        "points": ("integer", None, False),
    }
    orders = drafted["activities"]["Orders"]
    assert (orders["table"], orders["key"], orders["event_time"]) == (
        "sales.orders",
        "client",
        "order_ts",
    )
    assert orders["attributes"]["order_ts"] == {
        "type": "timestamp",
        "display": "Order Ts",
        "format": "iso",
    }
    assert orders["attributes"]["amount"]["type"] == "number"
    web = drafted["activities"]["Web"]
    assert web["event_time"] == "day" and "key" not in web  # imported: an ISO text date
    assert web["attributes"] == {"day": {"type": "date", "display": "Day"}}
    text = (own["work"] / "conf" / "catalog.yaml").read_text()
    assert "email: {type: string, display: Email, personal: true}  # review:" in text
    refused = own["results"]["init_again"]
    assert refused["code"] == 2 and refused["changed"] == []
    assert (
        refused["err"].strip()
        == "error: conf/catalog.yaml: the catalog exists; pass --force to replace it"
    )


def test_import_by_path_and_by_name_in_one_commit(own: dict[str, Any]) -> None:
    results = own["results"]
    visits = own["visits"]
    assert _ok(results["import_path"])["out"].strip() == (
        f"import: 1 file, {len(visits)} rows, 2 columns -> {own['work'] / 'outside' / 'web_events'} "
        "(version 0); dates: day"
    )
    assert _ok(results["import_name"])["out"].strip() == (
        "import: 1 file, 2 rows, 2 columns -> crm.imported (version 0); dates: Joined; "
        'renamed: "Customer Id" -> CustomerId'
    )
    assert sorted(results["imported"]["rows"]) == [["10", "2024-01-02"], ["20", "2024-02-03"]]
    for step, line in (
        ("import_again", "error: --table: table crm.imported exists; pass --replace to replace it"),
        (
            "import_noschema",
            "error: --table: schema nosuch does not exist: create it first "
            "(CREATE SCHEMA nosuch) or give a path",
        ),
    ):
        assert results[step]["code"] == 2 and results[step]["changed"] == []
        assert results[step]["err"].strip().splitlines() == [line]


def test_check_passes_and_names_every_table(own: dict[str, Any]) -> None:
    out = _ok(own["results"]["check"])["out"]
    assert "profile: crm.clients (version 0), 60 rows" in out
    assert "activity Orders: sales.orders (version 0)" in out
    assert f"activity Web: {own['work'] / 'outside' / 'web_events'} (version 0)" in out
    assert "check: conf/catalog.yaml matches its 3 tables" in out


def _oracle(own: dict[str, Any], measures: pd.DataFrame) -> Oracle:
    clients = own["clients"].merge(measures, on="client_no", how="left")
    clients["signup"] = clients["signup"].map(dt.date.fromisoformat)
    clients["Annual Income"] = clients["annual_income"]  # the drafted display name
    orders = own["orders"].rename(columns={"client": "client_no"})
    visits = own["visits"].assign(day=lambda f: f["day"].map(dt.date.fromisoformat))
    types = {"region": "string", "annual_income": "number", "signup": "date", "points": "integer"}
    types |= {"Annual Income": "number", "WebSpend": "number", "OrderCount": "integer"}
    return Oracle(
        clients,
        types,
        {
            "Orders": (
                orders,
                {"order_ts": "timestamp", "channel": "string", "amount": "number"},
                "order_ts",
            ),
            "Web": (visits, {"day": "date"}, "day"),
        },
        {},
        pd.Timestamp(AS_OF, tz="UTC"),
        key="client_no",
    )


def _measures(own: dict[str, Any]) -> pd.DataFrame:
    orders = own["orders"]
    ids = own["clients"][["client_no"]]
    count = orders.groupby("client").size().rename("OrderCount")
    web = orders[orders["channel"] == "web"].groupby("client")["amount"].sum().rename("WebSpend")
    found = ids.merge(count, left_on="client_no", right_index=True, how="left")
    found = found.merge(web, left_on="client_no", right_index=True, how="left")
    return found.fillna({"OrderCount": 0, "WebSpend": 0.0})


def test_measures_and_segments_match_pandas(own: dict[str, Any], spark: Any) -> None:
    _ok(own["results"]["measures"])
    run = _ok(own["results"]["run"])["out"]
    lake = own["work"] / "lake"
    expected_measures = _measures(own).set_index("client_no")
    measures = str(lake / "measures" / "CustomerMeasures")
    got = spark.read.format("delta").option("versionAsOf", 0).load(measures).toPandas()
    got = got.set_index("client_no").sort_index()
    assert list(got.index) == list(range(1, 61))  # the profile's customers, not client 999
    assert (got["OrderCount"] == expected_measures["OrderCount"]).all()
    assert (got["WebSpend"] - expected_measures["WebSpend"]).abs().max() < 1e-9
    oracle = _oracle(own, _measures(own))
    docs = [d for text in SEGMENTS.values() for d in yaml.safe_load_all(text)]
    trees = {d["name"].replace(" ", ""): d["where"] for d in docs}
    members: dict[str, set[Any]] = {}
    for output in ("RichNorthEast", "RecentWebBuyers", "VisitorsWhoSpend", "RichNotRecent"):
        oracle.segments = {k.lower(): v for k, v in members.items()}
        members[output] = oracle.members(trees[output])
        # version 0: this run's one commit (a later one adds rows)
        table = spark_members(spark, lake, output, 0).toPandas()
        assert set(table["client_no"]) == members[output], output
        assert f"{output}" in run
    assert all(members.values()), "every segment has members on this data"


def test_export_and_insight_with_integer_keys(own: dict[str, Any]) -> None:
    _ok(own["results"]["export"])
    oracle = _oracle(own, _measures(own))
    exported = pd.read_csv(own["work"] / "rich.csv")
    rich = oracle.members(yaml.safe_load(SEGMENTS["rich.yaml"])["where"])
    oracle.segments = {
        "richnortheast": rich,
        "recentwebbuyers": oracle.members(
            next(iter(yaml.safe_load_all(SEGMENTS["web.yaml"])))["where"]
        ),
    }
    expected = oracle.members(list(yaml.safe_load_all(SEGMENTS["web.yaml"]))[1]["where"])
    assert set(exported["client_no"]) == expected
    assert list(exported.columns) == ["client_no", "region", "WebSpend"]
    insight = _ok(own["results"]["insights"])["out"]
    web = oracle.segments["recentwebbuyers"]
    sizes = (
        f"RichNorthEast {len(rich):,}, RecentWebBuyers {len(web):,}; {len(rich & web):,} in both"
    )
    assert f"overlap RichAndWeb: {sizes}" in insight, insight


def test_named_tables_time_travel_and_new_rows_reach_the_run(
    own: dict[str, Any], spark: Any
) -> None:
    results = own["results"]
    _ok(results["rerun"])
    old = results["profile_v0"]["rows"]
    clients = own["clients"]
    assert sorted(int(r[0]) for r in old) == list(clients["client_no"])
    # the text date is parsed on read, as a date
    assert {r[0]: r[1] for r in old}["5"] == clients.loc[4, "signup"]
    assert sorted(int(r[0]) for r in results["profile_now"]["rows"]) == list(range(1, 65))
    orders = results["orders_v0"]["rows"]  # the activity's own key read under the profile's name
    assert len(orders) == len(own["orders"])
    lake = own["work"] / "lake"
    rich = spark_members(spark, lake, "RichNorthEast").toPandas()
    before = _oracle(own, _measures(own)).members(yaml.safe_load(SEGMENTS["rich.yaml"])["where"])
    assert set(rich["client_no"]) == before | {61, 62, 63, 64}


@pytest.mark.parametrize("index", range(len(MISMATCHES)), ids=[m[0] for m in MISMATCHES])
def test_each_mismatch_is_one_line_exit_2_and_writes_nothing(
    own: dict[str, Any], index: int
) -> None:
    name, _, _, expected = MISMATCHES[index]
    step = own["results"][name]
    catalog = str(own["work"] / f"conf_{name}" / "catalog.yaml")
    assert step["code"] == 2, step["err"]
    assert step["err"].strip().splitlines() == [e.replace("FILE", catalog) for e in expected]
    assert step["changed"] == []
    assert not (own["work"] / "lake" / "memberships" / "Segment=ManyPoints").exists()
