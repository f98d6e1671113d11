"""A full disk while an execution runs: recognised wherever it surfaces, and never "runner lost".

Owns: recognising "no space left" (``ENOSPC``/``EDQUOT`` from the OS, ``SQLITE_FULL`` from the store)
anywhere in an exception's cause chain; :class:`DiskFull`, which ends the execution at once (a
full disk is not a step failure: no retry, no onExit, nothing more starts) with the message
``no space left on device while <what the runner was doing>``; and the reserve file
``$ORCHESTRATOR_HOME/.reserve``: :data:`RESERVE_BYTES` allocated ahead by every runner start (off
the critical path, only when it is missing and at least four times that is free), freed when the
disk is full so that the store can still take the execution's DEAD row even when a step filled
the disk the store lives on.
Imports only the stdlib and :mod:`orchestrator.errors`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from orchestrator.errors import StoreError

RESERVE = ".reserve"
RESERVE_BYTES = int(os.environ.get("ORCHESTRATOR_DISK_RESERVE", str(1 << 20)))
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
PREFIX = "no space left on device while "


class DiskFull(StoreError):
    """The disk (of the store, the logs or the object store) is full; the execution ends DEAD."""

    code = "INSUFFICIENT_STORAGE"
    http_status = 507


def no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` or anything in its cause/context chain says the disk is full."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def check(exc: BaseException, what: str) -> None:
    """Raise :class:`DiskFull` (``no space left on device while <what>``) if ``exc`` is a full disk."""
    if no_space(exc):
        raise DiskFull(PREFIX + what) from exc


def reason(exc: BaseException) -> str:
    """The DEAD message for a runner that gave up on a full disk ``exc``: what it was writing."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, DiskFull):
            return exc.message
        if isinstance(exc, sqlite3.Error):
            return PREFIX + "writing to the store"
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return PREFIX + (f"writing {exc.filename}" if exc.filename else "writing to disk")
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return PREFIX + "writing to the store"


def ensure_reserve(home: Path) -> None:
    """Allocate the reserve file if it is missing (never raises: without room there is none)."""
    if RESERVE_BYTES <= 0:
        return
    path = home / RESERVE
    if path.exists():
        return
    tmp = home / f"{RESERVE}.{os.getpid()}"
    try:
        st = os.statvfs(home)
        if st.f_bavail * st.f_frsize < 4 * RESERVE_BYTES:
            return  # a nearly full (or tiny) filesystem: allocating would take the room the store needs now
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks (tmpfs and ext4 alike), not a sparse file
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def release_reserve(home: Path) -> bool:
    """Free the reserve (the disk is full); whether there was one. The next runner start makes a
    new one once there is room again."""
    try:
        os.unlink(home / RESERVE)
    except OSError:
        return False
    return True
