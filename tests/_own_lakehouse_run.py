"""Runs tests/test_own_lakehouse.py's plan in one Spark process with a Hive metastore.

Usage: ``python tests/_own_lakehouse_run.py WORK``. ``WORK/plan.json`` names the tables
to create (from Parquet files the test wrote), then the steps: a CLI command (run
in-process with ``cohortlake.cli.main``, its exit code, stdout and stderr captured, and
whether any file under the watched folders changed) or a probe (a read the test checks).
Results go to ``WORK/results.json``, by each step's ``id``. A Derby metastore admits one JVM, so all of it runs
in this one process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any


def _snapshot(folders: list[Path]) -> dict[str, int]:
    """Every file under the folders with its size (Derby's own files left out)."""
    found: dict[str, int] = {}
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file() and "metastore_db" not in path.parts:
                found[str(path)] = path.stat().st_size
    return found


def _command(argv: list[str], watched: list[Path]) -> dict[str, Any]:
    from cohortlake.cli import main

    before = _snapshot(watched)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    after = _snapshot(watched)
    changed = sorted(set(after) ^ set(before) | {p for p in after if before.get(p) != after[p]})
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "changed": changed}


def _probe(step: dict[str, Any]) -> Any:
    """The profile or an activity as Cohortlake reads it (at a version), as text rows."""
    from cohortlake.context import load_context
    from cohortlake.sources import read_activity, read_profile

    if step["probe"] == "table":  # a table by name as Spark reads it, every column
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        assert spark is not None
        rows = spark.read.table(step["table"]).collect()
        return [[None if v is None else str(v) for v in r] for r in rows]
    ctx = load_context(step["conf"])
    version = step.get("version")
    if step["probe"] == "profile":
        frame = read_profile(ctx.lake, ctx.catalog, version)
    else:
        frame = read_activity(ctx.lake, ctx.catalog, step["probe"], version)
    rows = frame.select(*step["columns"]).collect()
    return [[None if v is None else str(v) for v in r] for r in rows]


def main() -> int:
    work = Path(sys.argv[1])
    plan = json.loads((work / "plan.json").read_text())
    os.chdir(work)
    from cohortlake.context import load_context

    spark = load_context(plan["conf"], catalog=False).spark
    for database in plan["databases"]:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")  # test names, not user input
    for table in plan["tables"]:
        frame = spark.read.parquet(table["parquet"])
        if table.get("select"):
            frame = frame.selectExpr(*table["select"])
        writer = frame.write.format("delta")
        if "/" in table["table"]:
            writer.save(table["table"])
        else:
            writer.saveAsTable(table["table"])
    watched = [work / folder for folder in plan["watched"]]
    results: dict[str, Any] = {}
    for step in plan["steps"]:
        done: Any
        if "argv" in step:
            done = _command(step["argv"], watched)
        elif "edit" in step:  # the user's own edit of a file between two commands
            path = work / step["edit"]
            text = path.read_text()
            assert step["old"] in text, f"{step['old']!r} not in {path}"
            path.write_text(text.replace(step["old"], step["new"]))
            done = {"edited": step["edit"]}
        elif "append" in step:  # a new version of a table: rows from a Parquet file
            frame = spark.read.parquet(step["append"])
            writer = frame.write.format("delta").mode("append")
            name = step["table"]
            writer.save(name) if "/" in name else writer.saveAsTable(name)
            done = {"appended": step["append"]}
        else:
            done = {"rows": _probe(step)}
        results[step["id"]] = done
    (work / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
