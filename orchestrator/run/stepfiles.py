"""Opening the files the runner keeps inside a step directory (its log, its tracking file).

Owns: the one way the runner, the CLI, the API and the dashboard read or append to a file a step
could have touched. After ``prepare`` the step directory is the step's HOME, cwd and TMPDIR (a
container mounts it read-write), so the step may replace ``attempt-N.log`` or
``tracking-N.jsonl`` by a symlink (to a host file), a hardlink or a FIFO (an ``open`` that never
returns). Every open here is ``O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC``, then ``fstat``: anything but a
regular file with one link is refused with :class:`NotRegular` and never read or written.
A missing file stays a ``FileNotFoundError`` (callers already tolerate "no log yet").
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from orchestrator.errors import ArtifactError

READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
APPEND = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
REPLACED = "[orchestrator] log replaced by the step (not a regular file): not read"
WHY = "replaced by the step (not a regular file with one link): not read"


class NotRegular(ArtifactError):
    """A step file is a symlink, a hardlink, a FIFO, a device or a directory: not used."""


def _checked(path: str, flags: int, links: int = 1) -> int:
    """``path`` opened with ``flags``: a regular file (with ``links`` links; 0: any number), or
    :class:`NotRegular`."""
    try:
        fd = os.open(path, flags, 0o666)  # the mode of a plain open(path, "a") (umask applies)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a symlink; a FIFO without reader
            raise NotRegular(f"{path}: {WHY}") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (links and st.st_nlink != links):
            raise NotRegular(f"{path}: {WHY}")
    except BaseException:
        os.close(fd)
        raise
    return fd  # O_NONBLOCK has no effect on a regular file's reads and writes


def open_fd(path: str) -> int:
    """A read-only descriptor of ``path`` (a regular file with one link), or :class:`NotRegular`."""
    return _checked(path, READ)


def open_read(path: str) -> BinaryIO:
    """``path`` opened for binary reading, or :class:`NotRegular` / ``OSError``."""
    return os.fdopen(open_fd(path), "rb")


def open_append(path: str, create: bool = False) -> BinaryIO:
    """``path`` opened for unbuffered binary appends (created when ``create``), or :class:`NotRegular`."""
    fd = _checked(path, APPEND | (os.O_CREAT if create else 0))
    return os.fdopen(fd, "ab", buffering=0)


def read_bytes(path: str, limit: int, offset: int = 0) -> tuple[bytes, int]:
    """At most ``limit`` bytes of ``path`` from ``offset`` and the file's size."""
    with open_read(path) as f:
        size = os.fstat(f.fileno()).st_size
        if offset:
            f.seek(offset)
        return f.read(limit), size


def read_text(path: str, limit: int) -> str:
    """The first ``limit`` bytes of ``path`` as text (undecodable bytes replaced)."""
    return read_bytes(path, limit)[0].decode("utf-8", "replace")


def size(path: str) -> int:
    """The size of ``path``; 0 when missing or not a regular file."""
    try:
        fd = open_fd(path)
    except (OSError, NotRegular):
        return 0
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def note(path: str, line: str) -> None:
    """Append ``[orchestrator] line`` to a step's log (created if missing); nothing when replaced."""
    try:
        with open_append(path, create=True) as f:
            f.write(f"[orchestrator] {line}\n".encode())
    except (OSError, NotRegular):
        pass


def read_output(step_dir: str, path: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of an output file a step wrote at ``path`` inside ``step_dir``
    (an output parameter's ``valueFrom.path``); None when it is missing. Links the step made are
    followed only while they stay inside its directory (as inside a container, whose file system
    is all it sees); a path leading out of it, or to a FIFO or device, is refused; a directory
    counts as not written."""
    if not os.path.lexists(path):
        return None
    root, real = os.path.realpath(step_dir), os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise NotRegular(f"{path}: a link the step made leads outside its directory: not read")
    if os.path.isdir(real):  # as before: a directory is no parameter the step wrote
        return None
    try:
        fd = _checked(real, READ, links=0)  # a hardlink of its own file is the step's business
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)
