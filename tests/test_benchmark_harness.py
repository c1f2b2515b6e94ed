"""The benchmark harness stamps results with the commit they measured, marked when it was edited."""

from __future__ import annotations

from pathlib import Path

from benchmarks._harness import _git, _git_commit


def test_commit_is_marked_dirty_only_for_edited_tracked_sources(tmp_path: Path) -> None:
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "job.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "latest.md").write_text("old\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert len(head) == 40

    assert _git_commit(tmp_path) == head
    (tmp_path / "benchmarks" / "results" / "latest.md").write_text("new results\n")
    (tmp_path / "scratch.txt").write_text("untracked\n")
    assert _git_commit(tmp_path) == head  # results and untracked files do not count
    (tmp_path / "job.py").write_text("x = 2\n")
    assert _git_commit(tmp_path) == f"{head}+dirty"


def test_commit_is_unknown_outside_a_repository(tmp_path: Path) -> None:
    assert _git_commit(tmp_path / "nowhere") == "unknown"
