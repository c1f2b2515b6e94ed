"""Paths a user names for Cohortlake to write: the one check every such output passes.

An export, a quick-create ``--out`` folder or a saved suggestion must never land in the
lakehouse (its tables are Cohortlake's own), nor over a file or folder that exists unless
the user asked with ``--replace``. Paths are compared after resolving ``..``, relative
parts and symbolic links, so ``./x/../lakehouse/segments/S`` or a link into the
lakehouse is caught like the plain path. A folder is replaced only when it holds nothing
but a previous CSV export's parts, so ``--replace`` never deletes a folder of other files.
"""

from __future__ import annotations

import os
import re
from typing import Protocol
from urllib.parse import urlparse

from cohortlake.errors import InputError, Problem

__all__ = ["FileSystem", "check_user_output", "is_uri"]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What Spark leaves in a CSV folder it wrote: parts, markers and their checksums.
_EXPORT_FILE = re.compile(r"^(part-.*|_SUCCESS|_committed_.*|_started_.*|\..*\.crc)$")


class FileSystem(Protocol):
    """What the check needs to know about a path (a local disk, or a Hadoop file system)."""

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def names(self, path: str) -> list[str]: ...


class _LocalFileSystem:
    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def names(self, path: str) -> list[str]:
        return os.listdir(path)


def is_uri(path: str) -> bool:
    """``s3a://b/x`` and ``file:///x`` are URIs; ``/x`` and ``x`` are local paths."""
    return bool(_URI.match(path))


def _local(path: str) -> str | None:
    """The real local path of ``path`` (``file:`` URIs included), or None for other stores."""
    if path.startswith("file:"):
        path = urlparse(path).path or path.removeprefix("file:")
    elif is_uri(path):
        return None
    return os.path.realpath(path)


def _normal_uri(uri: str) -> str:
    parsed = urlparse(uri)
    return (
        f"{parsed.scheme.lower()}://{parsed.netloc.lower()}{os.path.normpath(parsed.path or '/')}"
    )


def _inside(child: str, parent: str, sep: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(sep) + sep)


def check_user_output(
    path: str | os.PathLike[str],
    lake_root: str,
    replace: bool,
    *,
    flag: str = "--out",
    folder: bool = False,
    fs: FileSystem | None = None,
) -> None:
    """Raise an InputError (exit 2, one line, nothing written) unless ``path`` may be written.

    ``path`` must be outside ``lake_root`` (and must not hold it); an existing file or
    folder there needs ``replace``, and is then replaced only by its own kind: a file by
    a file, a folder (``folder``) by a folder that holds nothing but CSV parts. ``fs``
    answers for paths on a cloud store (local paths use the local disk).
    """
    text = os.fspath(path)
    shown = repr(text) if _CONTROL.search(text) else text  # one line, whatever the path holds

    def fail(reason: str) -> InputError:
        return InputError(Problem(flag, "", f"{shown}: {reason}" if text else reason))

    if not text.strip():
        raise fail("an output path is required")
    if _CONTROL.search(text):
        raise fail("the path holds a control character (a line break or a tab)")
    real, root = _local(text), _local(lake_root)
    unresolved = urlparse(text).path if text.startswith("file:") else text  # a link as itself
    if real is not None and root is not None:
        inside, holds = _inside(real, root, os.sep), _inside(root, real, os.sep)
    elif real is None and root is None:
        out, lake = _normal_uri(text), _normal_uri(lake_root)
        inside, holds = _inside(out, lake, "/"), _inside(lake, out, "/")
    else:
        inside = holds = False
    if inside:
        raise fail(f"is inside the lakehouse root {lake_root}; write it outside the lakehouse")
    if holds:
        raise fail(f"holds the lakehouse root {lake_root}; write it outside the lakehouse")
    if real is not None:
        disk: FileSystem = _LocalFileSystem()
        where = real
        parent = os.path.dirname(real)
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if parent and not os.path.isdir(parent):
            raise fail(f"{parent} is a file, not a folder")
    elif fs is not None:
        disk, where = fs, text
    else:
        return
    if not disk.exists(unresolved if real is not None else where):
        return
    if not replace:
        raise fail("exists; pass --replace to overwrite it")
    if not folder and disk.is_dir(where):
        raise fail("is a folder; give a file path (or --folder to write a folder of parts)")
    if folder and not disk.is_dir(where):
        raise fail("is a file, not a folder")
    if folder and any(not _EXPORT_FILE.match(n) for n in disk.names(where)):
        raise fail("holds files other than CSV parts; Cohortlake replaces only an earlier export")
