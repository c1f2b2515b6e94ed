"""A command's start (issue 32, goal 3): wall time of whole ``cohortlake`` processes.

On the lab's lake of 5,000 customers (generated once into scratch), in turns, best of
3 each: ``cohortlake validate``, and a one-segment ``cohortlake run --force`` with the
JVM class archive (``make jars`` builds it) against the same run with
``COHORTLAKE_CLASS_ARCHIVE=off``. Goals: validate < 3 s; the run <= 15 s on an idle
2-core machine. ``size`` is ignored: a start-up cost does not depend on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession

from benchmarks._harness import REPO, row, scratch_dir
from cohortlake.class_archive import ARCHIVE_NAME
from cohortlake.jars import default_jars_dir

__all__ = ["run"]

CUSTOMERS = 5_000
REPEAT = 3


def _wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    return seconds


def run(spark: SparkSession, size: int, workdir: str) -> list[dict[str, Any]]:
    del spark, size  # every measurement is a process of its own
    base = Path(scratch_dir(workdir, CUSTOMERS, "startup"))
    conf, root = base / "conf", base / "lake"
    if not (root / "_generated.json").exists() and not (root / "profile").exists():
        shutil.rmtree(base, ignore_errors=True)
    if not conf.exists():
        shutil.copytree(REPO / "conf", conf)
        settings = yaml.safe_load((conf / "lakehouse.yaml").read_text())
        settings["root"] = str(root)
        (conf / "lakehouse.yaml").write_text(yaml.safe_dump(settings))
    cli = str(Path(sys.executable).with_name("cohortlake"))
    common = ["--conf", str(conf), "--as-of", "2026-07-01"]
    env = {**os.environ, "COHORTLAKE_CLASS_ARCHIVE": "on"}
    if not (root / "profile").exists():
        _wall([cli, "generate", "--customers", str(CUSTOMERS), "--seed", "42", *common], env)
        _wall([cli, "measures", *common], env)
    one = [cli, "run", "--only", "CustomersFromCalifornia", "--force", *common]
    off = {**env, "COHORTLAKE_CLASS_ARCHIVE": "off"}
    validate, archived, plain = [], [], []
    for _ in range(REPEAT):
        validate.append(_wall([cli, "validate", "--conf", str(conf)], env))
        archived.append(_wall(one, env))
        plain.append(_wall(one, off))
    has_archive = (default_jars_dir() / ARCHIVE_NAME).is_file()
    note = "" if has_archive else "no class archive: run `make jars`"
    return [
        row("startup", "validate (s)", min(validate), goal="< 3"),
        row("startup", "one-segment run (s)", min(archived), goal="<= 15", note=note),
        row("startup", "one-segment run without the class archive (s)", min(plain)),
        row("startup", "with / without the class archive", min(archived) / min(plain)),
    ]
