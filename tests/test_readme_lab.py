"""The README's lab, typed as a user types it: every line of its command block in order,
each in a new process, in a fresh folder holding a copy of ``conf/``.

Each command must exit 0 with no traceback and no JVM noise, and every size it prints
must equal what an independent evaluation gives: the measures recomputed with pandas from
the generated tables, the segments evaluated by ``tests/segment_oracle.py`` from the raw
YAML trees. Every sub-command's ``--help`` is checked the same way, in its own process.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from _memberships import rs_members
from conftest import PATIENCE

from segment_oracle import Oracle

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HEADING = "## The lab as commands"
# Short-lived JVMs on tiny data: the client compiler and no generated code (same results).
QUICK_SPARK = {
    "spark.sql.shuffle.partitions": 2,
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.ui.enabled": "false",
}

# A dozen JVMs one after the other: make test runs this in its second pytest, beside the
# SIGKILL harness, where the cores have room (the suite keeps both busy).
pytestmark = [pytest.mark.slow, pytest.mark.reliability]


def readme_lab() -> list[str]:
    """The command lines of the first fenced block after the lab's heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    block = re.search(r"^```[a-z]*\n(.*?)^```", section, re.M | re.S)
    assert block, "the README's lab has no command block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@dataclass
class Done:
    line: str
    code: int
    out: str
    err: str
    seconds: float


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Done]]]:
    """A fresh folder with the shipped conf/ (its Spark set for short JVMs), the lab run in it."""
    work = tmp_path_factory.mktemp("readme-lab")
    shutil.copytree(REPO / "conf", work / "conf")
    settings = yaml.safe_load((work / "conf" / "lakehouse.yaml").read_text())
    settings["spark"] = {"master": "local[2]", "conf": QUICK_SPARK}
    (work / "conf" / "lakehouse.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    results: list[Done] = []
    for line in readme_lab():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "cohortlake", line
        started = time.monotonic()
        done = subprocess.run(
            argv,
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            stdin=subprocess.DEVNULL,
        )
        results.append(
            Done(line, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        )
        if done.returncode != 0:
            break
    yield work, results


def _done(results: list[Done], start: str, nth: int = 0) -> Done:
    found = [r for r in results if r.line.startswith(start)]
    assert len(found) > nth, f"the README's lab has no line {start!r} (or it did not run)"
    return found[nth]


def _number(text: str, pattern: str) -> int:
    found = re.search(pattern, text, re.M)
    assert found, f"{pattern!r} not in:\n{text}"
    return int(found.group(1).replace(",", ""))


def _read(path: Path) -> pd.DataFrame:
    import deltalake

    return deltalake.DeltaTable(str(path)).to_pandas()


@pytest.fixture(scope="module")
def expected(lab: tuple[Path, list[Done]]) -> dict[str, set[str]]:
    """Every segment's members, from the raw data and definitions, by the oracle."""
    work, _ = lab
    catalog = yaml.safe_load((work / "conf" / "catalog.yaml").read_text())
    root = work / "lakehouse"
    profile = _read(root / "profile" / "Customer")
    purchases = _read(root / "activity" / "Purchases")
    ptypes = {k: a["type"] for k, a in catalog["profile"]["attributes"].items()}
    purchase_types = {
        k: a["type"] for k, a in catalog["activities"]["Purchases"]["attributes"].items()
    }
    as_of = pd.Timestamp("2026-07-01", tz="UTC")
    rows = Oracle(
        profile, ptypes, {"Purchases": (purchases, purchase_types, "PurchaseDate")}, {}, as_of
    )
    events = purchases.to_dict("records")
    customers = profile.copy()
    types = dict(ptypes)
    for name, m in catalog["measures"].items():
        assert m["source"] == "Purchases" and m["agg"] in ("avg", "sum"), name
        kept = [e for e in events if "where" not in m or rows.holds(m["where"], e, "purchases")]
        amounts = pd.DataFrame(kept).groupby("CustomerId")[m["attribute"]]
        customers[name] = customers["CustomerId"].map(
            amounts.mean() if m["agg"] == "avg" else amounts.sum()
        )
        types[name] = "number"
    oracle = Oracle(customers, types, {}, {}, as_of)
    for name, a in [*catalog["profile"]["attributes"].items(), *catalog["measures"].items()]:
        if "display" in a:
            oracle.types[a["display"].lower()] = (name, types[name])
    members: dict[str, set[str]] = {}
    # The shipped definitions (the first run), then the saved suggestion's ("saved:").
    for prefix, folder in (("", REPO / "conf"), ("saved:", work / "conf")):
        for file in sorted((folder / "segments").glob("*.yaml")):
            definition: dict[str, Any] = yaml.safe_load(file.read_text())
            output = definition.get("output") or re.sub(
                r"[^A-Za-z0-9]", "", definition["name"].title()
            )
            members[prefix + output] = oracle.members(definition["where"])
    return members


def test_every_line_exits_0_quietly(lab: tuple[Path, list[Done]]) -> None:
    _, results = lab
    lines = readme_lab()
    for r in results:
        assert r.code == 0, f"{r.line}\nexit {r.code}\n{r.err[-3000:]}"
        assert "Traceback" not in r.err, r.line
        noise = [
            x for x in r.err.splitlines() if re.search(r"WARN|\x1b\[|Truncated the string|log4j", x)
        ]
        assert noise == [], (r.line, noise)
        assert r.out.strip().splitlines(), f"{r.line} printed nothing"
    assert [r.line for r in results] == lines
    print("\n".join(f"{r.seconds:6.1f} s  {r.line}" for r in results))


def test_quick_create_prints_the_sizes_the_oracle_gives(lab, expected) -> None:
    _, results = lab
    california = _done(results, "cohortlake quick-create --field State")
    online = _done(results, "cohortlake quick-create --measure")
    for done, output in (
        (california, "CustomersFromCalifornia"),
        (online, "HighValueOnlineCustomers"),
    ):
        assert _number(done.out, r"estimated size: ([\d,]+) of") == len(expected[output])
        assert _number(done.out, r"estimated size: [\d,]+ of ([\d,]+) customers") == 5000


def test_runs_print_every_segments_size(lab, expected) -> None:
    _, results = lab
    first = _done(results, "cohortlake run --as-of")
    printed = {
        m.group(1): int(m.group(2).replace(",", ""))
        for m in re.finditer(r"^(\w+)\s+\w+\s+\w+\s+([\d,]+) members", first.out, re.M)
    }
    shipped = {
        "CustomersFromCalifornia",
        "HighValueOnlineCustomers",
        "SummerPromotion",
        "LowSpendingTeachers",
    }
    assert printed == {o: len(expected[o]) for o in shipped}
    assert re.search(r"^run: 4 segments", first.out, re.M)
    saved = _done(results, "cohortlake run --only LowSpendingTeachers")
    assert _number(saved.out, r"^LowSpendingTeachers\s+\w+\s+\w+\s+([\d,]+) members") == len(
        expected["saved:LowSpendingTeachers"]
    )


def test_validate_names_every_definition_kind(lab) -> None:
    _, results = lab
    out = _done(results, "cohortlake validate").out
    for kind in ("catalog", "segments", "insights", "expansions", "suggestions"):
        assert re.search(rf"^{kind}: ", out, re.M), (kind, out)


def test_preview_and_export_print_the_segments_size(lab, expected) -> None:
    work, results = lab
    members = len(expected["SummerPromotion"])
    assert (
        _number(_done(results, "cohortlake preview").out, r"^SummerPromotion: ([\d,]+) members")
        == members
    )
    export = _done(results, "cohortlake export")
    assert _number(export.out, r"exported ([\d,]+) rows") == members
    csv = pd.read_csv(work / "summer.csv", dtype=str)
    assert list(csv.columns) == ["CustomerId", "PostCode", "LifetimeSpend"]
    assert set(csv["CustomerId"]) == expected["SummerPromotion"]


def test_insights_print_the_overlap_the_oracle_gives(lab, expected) -> None:
    _, results = lab
    out = _done(results, "cohortlake insights").out
    online, california = expected["HighValueOnlineCustomers"], expected["CustomersFromCalifornia"]
    line = next(x for x in out.splitlines() if x.startswith("overlap "))
    assert f"HighValueOnlineCustomers {len(online):,}" in line
    assert f"CustomersFromCalifornia {len(california):,}" in line
    assert _number(line, r"; ([\d,]+) in both") == len(online & california)
    assert re.search(r"^differentiators \w+: top fields \S", out, re.M), out


def test_expand_and_suggest_print_what_their_tables_hold(lab, expected) -> None:
    work, results = lab
    root = work / "lakehouse"
    expansion = rs_members(root, "SummerPromoExpansion")
    out = _done(results, "cohortlake expand").out
    assert _number(out, r"^SummerPromoExpansion: ([\d,]+) members") == len(expansion) > 0
    assert not set(expansion["CustomerId"]) & expected["SummerPromotion"]  # include_source: false
    out = _done(results, "cohortlake suggest").out
    for output in ("LifetimeSpendSuggestions", "CustomerSatisfactionSuggestions"):
        rows = _read(root / "suggestions" / output)
        assert _number(out, rf"^{output}: ([\d,]+) suggestions") == len(rows) > 0


def _commands() -> list[str]:
    from cohortlake.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return sorted(sub.choices)  # type: ignore[attr-defined]


def test_every_sub_command_help_has_a_description_and_an_example() -> None:
    # a command of actions (catalog init) takes its flags, and shows its examples, per action
    commands = [{"catalog": "catalog init"}.get(c, c) for c in _commands()]
    procs = {
        c: subprocess.Popen(
            [str(BIN / "cohortlake"), *c.split(), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for c in commands
    }
    for command, proc in procs.items():
        out, err = proc.communicate(timeout=PATIENCE)
        assert proc.returncode == 0, (command, err)
        description = out.split("\n\n")[1]
        assert description.strip() and not description.startswith("options:"), (command, out)
        examples = out[out.index("examples:") :].splitlines()[1:]
        assert examples and all(
            e.strip().startswith(f"cohortlake {command}") for e in examples if e.strip()
        ), (
            command,
            out,
        )
        for flag in ("--conf", "--root", "--as-of", "-v"):
            assert flag in out, (command, flag)
