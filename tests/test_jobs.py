"""Every job runs under spark-submit as a script: thin, guarded, never shadowing a package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENCE

REPO = Path(__file__).resolve().parent.parent
JOBS = sorted((REPO / "jobs").glob("*.py"))
PACKAGES = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}


def test_jobs_exist_for_every_stage() -> None:
    assert {j.stem for j in JOBS} >= {
        "generate_contoso", "compute_measures", "run_segments", "quick_create", "preview", "export",
        "run_insights", "expand", "suggest", "demo",
    }  # fmt: skip


@pytest.mark.parametrize("job", JOBS, ids=[j.stem for j in JOBS])
def test_job_is_a_guarded_thin_entry_point(job: Path) -> None:
    # spark-submit puts jobs/ first on sys.path: a job named like a package would shadow it.
    assert job.stem not in PACKAGES
    text = job.read_text()
    assert 'if __name__ == "__main__":' in text
    assert "from cohortlake.cli import main" in text


def test_job_script_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_insights.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert done.returncode == 0, done.stderr
    assert "--conf" in done.stdout and "--root" in done.stdout


def test_every_sub_command_has_help_with_common_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from cohortlake.cli import build_parser, main

    commands = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert set(commands) >= {
        "generate", "measures", "run", "validate", "quick-create", "preview", "export", "insights",
        "expand", "suggest", "save-suggestion", "report", "demo",
    }  # fmt: skip
    groups = {"catalog": ["init"]}  # a command of actions: each action takes the flags
    for command in commands:
        for argv in [[command, a] for a in groups[command]] if command in groups else [[command]]:
            with pytest.raises(SystemExit) as info:
                main([*argv, "--help"])
            assert info.value.code == 0
            out = capsys.readouterr().out
            for flag in ("--conf", "--root", "--master", "--as-of"):
                assert flag in out, (argv, flag)
