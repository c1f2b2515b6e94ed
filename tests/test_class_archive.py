"""The JVM class archive: when a session uses it, builds it, or leaves it alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cohortlake.class_archive import ARCHIVE_NAME, archive_options
from cohortlake.jars import default_jars_dir


def test_options_follow_the_archive_the_environment_and_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COHORTLAKE_CLASS_ARCHIVE_DUMP", raising=False)
    monkeypatch.delenv("COHORTLAKE_CLASS_ARCHIVE", raising=False)
    assert archive_options(tmp_path, None) is None  # not built yet: nothing to use
    archive = tmp_path / ARCHIVE_NAME
    archive.write_bytes(b"")
    used = archive_options(tmp_path, "-XX:+UseSerialGC")
    assert used is not None and f"-XX:SharedArchiveFile={archive}" in used.split()
    assert "-Xshare:auto" in used.split()  # a mismatched archive is skipped, not fatal
    assert archive_options(tmp_path, "-XX:SharedArchiveFile=/mine.jsa") is None
    monkeypatch.setenv("COHORTLAKE_CLASS_ARCHIVE", "off")
    assert archive_options(tmp_path, None) is None
    monkeypatch.delenv("COHORTLAKE_CLASS_ARCHIVE")
    monkeypatch.setenv("COHORTLAKE_CLASS_ARCHIVE_DUMP", str(tmp_path / "new.jsa"))
    dump = archive_options(tmp_path, None)
    assert dump is not None and f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}" in dump.split()


def test_the_suite_session_starts_with_the_archive_when_make_jars_built_it(
    spark: SparkSession,
) -> None:
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions") or ""
    built = (default_jars_dir() / ARCHIVE_NAME).is_file()
    assert ("-XX:SharedArchiveFile=" in options) == built, options
    jvm = spark._jvm
    assert jvm is not None
    arguments = list(
        jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert any(a.startswith("-XX:SharedArchiveFile=") for a in arguments) == built
