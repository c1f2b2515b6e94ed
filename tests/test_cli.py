"""One CLI: the same --only everywhere, no abbreviated flags, usage, --version, did-you-mean,
validate over every definition kind before heavy imports, one-line failures."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PATIENCE

from cohortlake.cli import build_parser, main, run_command

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["run", "insights", "expand", "suggest"])
def test_only_is_repeatable_comma_and_space_separated(command: str) -> None:
    args = build_parser().parse_args(
        [command, "--only", "A,B", "--only", "C", "D", "--only", " E ,"]
    )
    assert args.only == ["A", "B", "C", "D", "E"]
    assert build_parser().parse_args([command]).only is None


def test_expand_keeps_its_old_flag_name() -> None:
    assert build_parser().parse_args(["expand", "--output", "X", "--only", "Y"]).only == ["X", "Y"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--forc"], "error: cohortlake: unrecognized arguments: --forc"),
        (["suggest", "--sav"], "error: cohortlake: unrecognized arguments: --sav"),
        (["rn"], "error: cohortlake: argument COMMAND: unknown command 'rn'; did you mean run?"),
        (
            ["insight"],
            "error: cohortlake: argument COMMAND: unknown command 'insight'; did you mean insights?",
        ),
    ],
)
def test_no_abbreviations_and_did_you_mean(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == message


def test_bare_command_prints_usage_and_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cohortlake")
    for command in ("generate", "run", "validate", "insights", "expand", "suggest", "demo"):
        assert f"\n    {command} " in err, command


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert (
        capsys.readouterr().out.strip() == f"cohortlake {importlib.metadata.version('cohortlake')}"
    )


def _conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    return conf


def test_validate_checks_every_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conf(tmp_path)
    assert main(["validate", "--conf", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "segments: 4 valid" in out and "insights: 2 valid" in out
    assert "expansions: 1 valid" in out and "suggestions: 2 valid" in out
    (conf / "insights" / "bad.yaml").write_text(
        "name: Bad\nkind: overlap\nsegments: [SummerPromotion]\n"
    )
    (conf / "suggestions" / "bad.yaml").write_text("name: Worse\ntarget: Nope\n")
    (conf / "expansions" / "bad.yaml").write_text(
        "name: Worst\nsource: SummerPromotion\nfields: []\n"
    )
    assert main(["validate", "--conf", str(conf)]) == 2
    err = capsys.readouterr().err.strip().replace(str(conf), "CONF").splitlines()
    assert err == [
        "error: CONF/insights/bad.yaml: segments: overlap needs 2 to 50 segments, got 1",
        "error: CONF/expansions/bad.yaml: fields: List should have at least 1 item after validation, not 0",
        "error: CONF/suggestions/bad.yaml: target: unknown attribute 'Nope'",
    ]


HEAVY = ("matplotlib", "scipy", "mlflow", "sklearn", "insights.run", "suggestions.run")


@pytest.mark.parametrize(
    ("command", "folder", "text"),
    [
        ("insights", "insights", "name: Bad\nkind: overlap\nsegments: [SummerPromotion]\n"),
        ("suggest", "suggestions", "name: Bad\ntarget: Nope\n"),
        ("validate", "suggestions", "name: Bad\ntarget: Nope\n"),
        ("expand", "expansions", "name: Bad\nsource: Nope\nfields: [State]\n"),
    ],
)
def test_bad_definitions_answer_before_heavy_imports(
    command: str, folder: str, text: str, tmp_path: Path
) -> None:
    conf = _conf(tmp_path)
    (conf / folder / "bad.yaml").write_text(text)
    probe = (
        "import json, sys\n"
        "from cohortlake.cli import main\n"
        f"code = main([{command!r}, '--conf', {str(conf)!r}, '--root', {str(tmp_path / 'lake')!r}])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r})\n"
        "print(json.dumps([code, heavy, 'pyspark.sql.session' in sys.modules and "
        "__import__('pyspark').sql.SparkSession.getActiveSession() is not None]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd=tmp_path,
    )
    code, heavy, spark = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 2, done.stderr
    assert heavy == [] and spark is False
    assert f"error: {conf / folder / 'bad.yaml'}" in done.stderr
    assert not (tmp_path / "lake").exists()


def _boom(args: argparse.Namespace) -> int:
    raise RuntimeError("disk on fire\nsecond line")


@pytest.mark.parametrize("verbose", [0, 1])
def test_an_unexpected_failure_is_one_line(
    verbose: int, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(command="run", verbose=verbose)
    assert run_command(_boom, args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    if verbose:
        assert err[0] == "Traceback (most recent call last):"
        assert err[-1] == "failed: run: disk on fire (RuntimeError)"
    else:
        assert err == ["failed: run: disk on fire (RuntimeError) (-v shows the traceback)"]


def test_a_java_failure_names_the_java_cause(capsys: pytest.CaptureFixture[str]) -> None:
    def java(args: argparse.Namespace) -> int:
        raise RuntimeError(
            "An error occurred while calling o42.save.\n"
            ": java.io.FileNotFoundException: /lake/x (Permission denied)\n\tat java.io.Foo"
        )

    assert run_command(java, argparse.Namespace(command="export", verbose=0)) == 1
    assert capsys.readouterr().err.strip() == (
        "failed: export: java.io.FileNotFoundException: /lake/x (Permission denied)"
        " (-v shows the traceback)"
    )


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["-q"], logging.ERROR),
    ],
)
def test_logs_are_quiet_unless_asked(flags: list[str], level: int, tmp_path: Path) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        main(["validate", "--conf", str(_conf(tmp_path)), *flags])
        assert root.level == level
    finally:
        root.setLevel(before)


def test_generate_end_out_of_range_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--end", "0001-01-05"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: cohortlake generate: argument --end: '0001-01-05' is out of range:"
        " from 1900-01-01 to 9999-12-31"
    )
