"""Benchmarks (not run in CI): ``python -m benchmarks --size N [--only topic ...]``.

Each ``bench_<topic>.py`` module defines ``run(spark, size, workdir) -> list[dict]``
returning rows with ``benchmark``, ``metric``, ``value``, ``goal`` and ``note``.
"""

from __future__ import annotations

from benchmarks._harness import ensure_lake, lake_root, main, row, scratch_dir, time_call

__all__ = ["ensure_lake", "lake_root", "main", "row", "scratch_dir", "time_call"]
