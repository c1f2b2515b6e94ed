"""Build what ``spark-submit`` needs into one folder (``make dist``).

* ``cohortlake.zip``: the packages ``cohortlake``, ``segmentation``, ``insights``, ``lab``,
  ``expansion`` and ``suggestions`` (pure Python, imported from the zip by ``--py-files``);
* ``jobs/``: the entry points, one per command, to pass as the application file;
* ``cohortlake-<version>-py3-none-any.whl``: the same packages for ``pip install``
  (``uv build``), unless ``--no-wheel``.

The zip is reproducible: files in name order, fixed timestamps and modes, no bytecode.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["PACKAGES", "build_wheel", "build_zip", "copy_jobs", "main"]

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cohortlake", "segmentation", "insights", "expansion", "suggestions", "lab")
ZIP_NAME = "cohortlake.zip"
_PACKAGING = ("pyproject.toml", "setup.cfg", "README.md", "LICENSE")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def _package_files(package: Path) -> list[Path]:
    """Every file of a package but bytecode."""
    return sorted(
        f
        for f in package.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo")
    )


def build_zip(target: Path, repo: Path = REPO) -> Path:
    """Write the packages into ``target`` (replacing it) as ``<package>/...`` entries."""
    missing = [p for p in PACKAGES if not (repo / p / "__init__.py").is_file()]
    if missing:
        raise SystemExit(f"not a Cohortlake checkout: {repo} lacks {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for package in PACKAGES:
            for f in _package_files(repo / package):
                entry = zipfile.ZipInfo(f.relative_to(repo).as_posix(), _EPOCH)
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(entry, f.read_bytes())
    tmp.replace(target)
    return target


def copy_jobs(dist: Path, repo: Path = REPO) -> list[Path]:
    """Copy the ``jobs/*.py`` entry points into ``<dist>/jobs``."""
    folder = dist / "jobs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return [Path(shutil.copy2(f, folder / f.name)) for f in sorted((repo / "jobs").glob("*.py"))]


def build_wheel(dist: Path, repo: Path = REPO) -> Path:
    """Build the wheel into ``dist`` with ``uv build`` (the venv's uv, else one on PATH).

    It builds from a copy of the project's packaging files and packages, so the
    checkout gets no ``build/`` folder and the wheel holds the same files as the zip.
    """
    uv = Path(sys.executable).with_name("uv")
    command = str(uv) if uv.exists() else shutil.which("uv")
    if command is None:
        raise SystemExit("uv not found: run `make install`, or pass --no-wheel")
    with tempfile.TemporaryDirectory(prefix="cohortlake-wheel-") as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        for name in _PACKAGING:
            if (repo / name).is_file():
                shutil.copy2(repo / name, source / name)
        for package in PACKAGES:
            for f in _package_files(repo / package):
                (source / f.relative_to(repo)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, source / f.relative_to(repo))
        out = Path(tmp) / "out"
        subprocess.run(
            [command, "build", "--wheel", "--quiet", "--out-dir", str(out), str(source)],
            check=True,
        )
        (wheel,) = out.glob("*.whl")
        return Path(shutil.copy2(wheel, dist / wheel.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="output folder")
    parser.add_argument("--no-wheel", action="store_true", help="only the zip and the jobs")
    args = parser.parse_args(argv)
    dist: Path = args.dist.resolve()
    print(build_zip(dist / ZIP_NAME))
    print(f"{dist / 'jobs'} ({len(copy_jobs(dist))} entry points)")
    if not args.no_wheel:
        print(build_wheel(dist))
    return 0


if __name__ == "__main__":
    sys.exit(main())
