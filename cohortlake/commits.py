"""Delta commits that survive other writers: a per-table lock on local disks, and retries
with backoff when a concurrent commit won (the losing commit wrote nothing visible)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urlparse

from delta import exceptions as delta_errors

from cohortlake.errors import RunFailure

__all__ = ["CONFLICTS", "Created", "Raced", "retry_conflicts", "table_lock"]

log = logging.getLogger("cohortlake.lake")

_T = TypeVar("_T")

# Another writer committed first; the losing commit wrote nothing visible and may be retried.
CONFLICTS: tuple[type[Exception], ...] = (
    delta_errors.ConcurrentAppendException,
    delta_errors.ConcurrentDeleteDeleteException,
    delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentTransactionException,
    delta_errors.ConcurrentWriteException,
    delta_errors.DeltaConcurrentModificationException,
    delta_errors.MetadataChangedException,
    delta_errors.ProtocolChangedException,
)

_held = threading.local()


@contextlib.contextmanager
def table_lock(path: str) -> Iterator[None]:
    """Hold an exclusive lock on the Delta table at ``path`` against other processes.

    Delta's commit is a put-if-absent of the next ``_delta_log/<version>.json``. On a
    local file system Hadoop does it as "check that the file is absent, then rename":
    two processes committing the same version at once can both pass the check, and the
    commit file and its ``.crc`` checksum are renamed separately. One concurrent first
    run of two (creating ``segment_runs``) left one process's commit under the other's
    checksum, and the table then failed to read. So on a local path every commit of
    this module holds a POSIX advisory lock (``flock``) on ``.<table>.lock`` beside the
    table; writers of different tables never wait for each other. Re-entrant in a
    thread. Other stores rely on their Delta LogStore's own put-if-absent.
    """
    parsed = urlparse(path)
    if parsed.scheme not in ("", "file"):
        yield
        return
    local = os.path.abspath(parsed.path if parsed.scheme else path).rstrip("/")
    held: dict[str, int] = _held.__dict__.setdefault("paths", {})
    if held.get(local):
        held[local] += 1
        try:
            yield
        finally:
            held[local] -= 1
        return
    parent, name = os.path.split(local)
    os.makedirs(parent, exist_ok=True)
    fd = os.open(os.path.join(parent, f".{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held[local] = 1
        try:
            yield
        finally:
            held.pop(local, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class Created(Exception):
    """The table appeared while this run was creating it (a concurrent first run)."""


class Raced(Exception):
    """Another writer changed what this commit was computed from; it must be made again."""


_RETRYABLE: tuple[type[Exception], ...] = (*CONFLICTS, Created, Raced)


def retry_conflicts(path: str, commit: Callable[[], _T], attempts: int = 6) -> _T:
    """Run a commit, retrying with jittered backoff when a concurrent commit won."""
    for attempt in range(1, attempts + 1):
        try:
            return commit()
        except _RETRYABLE as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if attempt == attempts:
                raise RunFailure(
                    f"{path}: gave up after {attempts} concurrent-commit conflicts ({reason})"
                ) from exc
            log.warning("%s: concurrent commit (%s), retry %d", path, type(exc).__name__, attempt)
            time.sleep(min(4.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")
