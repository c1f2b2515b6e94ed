"""Delta Lake's JVM jars: fetched once from Maven Central into a local folder.

Only the jars that the pyspark installation lacks are kept, so Spark's own (newer)
Jackson, Parquet and Hadoop classes are never shadowed by Delta's older transitive pins.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["DELTA_ARTIFACT", "default_jars_dir", "fetch_jars", "jar_files"]

DELTA_ARTIFACT = "io.delta:delta-spark_4.2_2.13:4.4.0"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cohortlake</groupId><artifactId>delta-jars</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
  </dependency></dependencies>
</project>
"""
_VERSIONED = re.compile(r"^(?P<name>.+?)-\d[\w.]*(-\d+)?\.jar$")


def default_jars_dir() -> Path:
    """``$COHORTLAKE_JARS`` or ``.jars/`` at the project root."""
    env = os.environ.get("COHORTLAKE_JARS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".jars"


def jar_files(folder: Path | None = None) -> list[Path]:
    """The jars in the folder (empty when it was never fetched)."""
    folder = folder or default_jars_dir()
    return sorted(folder.glob("*.jar")) if folder.is_dir() else []


def _spark_jar_names() -> set[str]:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    names = set()
    for j in jars.glob("*.jar"):
        m = _VERSIONED.match(j.name)
        names.add(m.group("name") if m else j.stem)
    return names


def fetch_jars(folder: Path | None = None, artifact: str = DELTA_ARTIFACT) -> list[Path]:
    """Resolve ``artifact`` with Maven and copy the jars Spark lacks into ``folder``."""
    folder = folder or default_jars_dir()
    marker = folder / ".artifact"
    if marker.exists() and marker.read_text().strip() == artifact and jar_files(folder):
        return jar_files(folder)
    group, name, version = artifact.split(":")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(_POM.format(group=group, artifact=name, version=version))
        out = Path(tmp) / "out"
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={out}",
            "-DincludeScope=runtime",
        ]
        # Maven 3.8 writes ANSI reset codes even when quiet: its output is shown on failure only.
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, errors="replace")
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"mvn failed (exit {done.returncode}) fetching {artifact}")
        have = _spark_jar_names()
        staging = Path(tmp) / "keep"
        staging.mkdir()
        for j in sorted(out.glob("*.jar")):
            m = _VERSIONED.match(j.name)
            if (m.group("name") if m else j.stem) not in have:
                shutil.copy2(j, staging / j.name)
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, folder)
    marker.write_text(artifact + "\n")
    return jar_files(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fetch Delta Lake's jars once into a local folder."
    )
    parser.add_argument("--dir", type=Path, default=None, help="target folder (default .jars/)")
    parser.add_argument(
        "--class-archive",
        action="store_true",
        help="also build the JVM class archive that halves a command's start-up",
    )
    args = parser.parse_args(argv)
    jars = fetch_jars(args.dir)
    print(f"{len(jars)} jars in {args.dir or default_jars_dir()}")
    if args.class_archive:
        from cohortlake.class_archive import build_archive

        archive = build_archive(args.dir or default_jars_dir())
        print(f"class archive {archive} ({archive.stat().st_size // 2**20} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
