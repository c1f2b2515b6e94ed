"""``python -m benchmarks.report``: the docs' benchmark tables come from the results files."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report


def _result(folder: Path, name: str, date: str, value: float, goal: str = ">= 2x") -> None:
    doc = {
        "size": 1000,
        "date": date,
        "commit": "abcdef1234",
        "topics": ["measures"],
        "cpus": 2,
        "master": "local[*]",
        "driver_memory": "4g",
        "rows": [
            {"benchmark": "measures", "metric": "ratio", "value": value, "goal": goal, "note": ""},
            {"benchmark": "measures", "metric": "seconds", "value": 9.0, "goal": "", "note": ""},
        ],
    }
    (folder / name).write_text(json.dumps(doc))


def test_the_latest_measurement_of_each_goal_wins(tmp_path: Path) -> None:
    _result(tmp_path, "old.json", "2026-01-01T00:00:00", 1.5)
    _result(tmp_path, "new.json", "2026-02-01T00:00:00", 2.5)
    _result(tmp_path, "latest.json", "2026-03-01T00:00:00", 0.1)  # a copy: left out
    (m,) = report.results(tmp_path)
    assert (m.value, m.date, m.met) == (2.5, "2026-02-01", True)
    assert m.command == "python -m benchmarks --size 1000 --only measures"
    page = report.render_page([m])
    assert "| measures | ratio | 1,000 | 2.50x | >= 2x | yes | 2026-02-01 | `abcdef12` |" in page
    assert "| measures: ratio | 2.50x | >= 2x | 1,000 |" in report.render_readme_table([m])


def test_goals_are_read_both_ways(tmp_path: Path) -> None:
    _result(tmp_path, "a.json", "2026-01-01T00:00:00", 1.4, "<= 1.3x")
    (m,) = report.results(tmp_path)
    assert m.met is False


def test_the_docs_are_up_to_date() -> None:
    assert report.main(["--check"]) == 0, "run: python -m benchmarks.report"
