"""The node side of the Ray executor around a step: its private root, its records, its watchdog.

Owns, on whatever node Ray placed a step: the node root (``$ORCHESTRATOR_RAY_WORKDIR``, set on
the node's raylet; default ``<tmp>/orchestrator-ray-<uid>``, 0700, owner checked:
:func:`node_root`), the tar packing of what crosses between driver and node (:func:`pack`,
:func:`unpack`), the records of the process groups of a worker's running steps, beside (never
inside) their directories (``<root>/.records/<worker PID>.steps``, a 0700 directory no step's
cwd or HOME is under; a line ``TOKEN PGID DIRECTORY`` per step: :class:`Records` — one file per
worker, created exclusively (never through a link), rewritten in place through the descriptor it
was created with, so a step creates no file for it: on a busy disk creating a file or a
directory costs 0.2-0.4 ms), the stop of a step by its token (:func:`signal_step`, the body of a
small task pinned to the step's node), the sweep of what a killed worker left
(:func:`sweep_stale`: records ``PID.steps`` and directories ``TOKEN.PID.*`` whose worker PID is
gone — a recorded group is SIGKILLed only when it passes :func:`_carries`, the directories and
records removed), and the per-worker watchdog (:func:`ensure_watchdog`): one detached shell per
worker process and node root, started by the worker's first step, that waits for the end of a
pipe only that worker holds; when the worker dies (Ray kills a dead driver's job's workers and
their direct children, without their ``finally``), it TERMs, after the grace KILLs, the groups
in that worker's records (read through the descriptor it inherited, so unlinking or replacing
the records' path hides nothing) that pass the same check, and removes them.

Before any signal (:func:`_carries`; the same in the watchdog's shell): the recorded directory
is ``TOKEN.<worker PID>.*``, the group id > 1, and a live process of the group carries
``ORCHESTRATOR_STEP_TOKEN=TOKEN``; the sweep also spares every token a live worker records. A
line forged by a step (steps run as the worker's user) cannot name an unrelated process group.

Imports only the stdlib: like :mod:`orchestrator.run.ray_task` it is shipped to the nodes by
value (cloudpickle), so a node needs Python and Ray, not orchestrator.
"""

from __future__ import annotations

import io
import os
import select
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time

WORKDIR_VAR = "ORCHESTRATOR_RAY_WORKDIR"
RECORDS_SUFFIX = ".steps"  # <node root>/.records/<worker PID>.steps: "TOKEN PGID DIRECTORY" per running step
RECORDS_DIR = ".records"  # 0700, in the node root: never under a step's directory (its cwd, HOME)
TOKEN_VAR = "ORCHESTRATOR_STEP_TOKEN"  # as orchestrator.run.steps (not imported: nodes lack orchestrator)

# The watchdog: reads fd 3 (the read end of a pipe whose write end only its worker holds) until
# EOF, then reads the worker's records through fd 4 (the descriptor the worker writes them
# through: unlinking or replacing their path hides nothing) and signals each group that passes
# the check of :func:`_carries` (``kill -- -1`` would mean every process): TERM, the grace ($3),
# KILL; then removes the records' path ($1/$2.steps, $1 the records directory).
WATCHDOG = r"""
while read -r _ <&3; do :; done
groups=
while read -r t g d; do
  case "$t" in ''|*[!A-Za-z0-9_-]*) continue ;; esac
  case "$g" in ''|*[!0-9]*) continue ;; esac
  case "$d" in "$t.$2."*) ;; *) continue ;; esac
  [ "$g" -gt 1 ] || continue
  for p in "$g" /proc/[0-9]*; do  # the leader first; it may be dead (Ray kills a worker's children)
    p=${p#/proc/}
    read -r stat 2>/dev/null < "/proc/$p/stat" || continue
    rest=${stat##*) }; rest=${rest#* }; rest=${rest#* }  # after "(comm) S PPID ": the group id
    [ "${rest%% *}" = "$g" ] || continue
    tr '\0' '\n' 2>/dev/null < "/proc/$p/environ" | grep -qxF "ORCHESTRATOR_STEP_TOKEN=$t" || continue
    groups="$groups $g"
    break
  done
done < /proc/self/fd/4  # its own offset (0), whatever others read
for g in $groups; do kill -TERM -"$g" 2>/dev/null; done
[ -n "$groups" ] && sleep "$3"
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
rm -f "$1/$2.steps"
"""
_watching: dict[str, int] = {}  # node root -> the write end of its watchdog's pipe (this process)
_unstartable: dict[str, float] = {}  # node root -> when (monotonic) to try its failed watchdog again
RETRY_WATCHDOG = 30.0  # seconds before a worker tries again a watchdog its shell could not start
_records: dict[str, Records] = {}  # node root -> this worker's records there
_identity: dict[str, str] = {}  # the Ray node id and host name of this worker (they do not change)


class NodeRootError(RuntimeError):
    """The node root is not private to this user (another owner, or group/world writable)."""


def node_root() -> str:
    """``$ORCHESTRATOR_RAY_WORKDIR``, else ``<tmp>/orchestrator-ray-<uid>``: created 0700, and
    refused when it is a symlink, not a directory, owned by another user or group/world writable
    (a shared ``/tmp`` must not let another local user plant or read step directories)."""
    root = os.environ.get(WORKDIR_VAR) or os.path.join(tempfile.gettempdir(), f"orchestrator-ray-{os.getuid()}")
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise NodeRootError(f"cannot create the node directory {root!r}: {exc.strerror or exc}") from None
    check_private(root)
    return root


def check_private(path: str) -> None:
    """Refuse ``path`` unless it is a real directory owned by this user, not group/world writable."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise NodeRootError(f"the node directory {path!r} is not a directory (a symlink?)")
    if st.st_uid != os.getuid():
        raise NodeRootError(f"the node directory {path!r} belongs to uid {st.st_uid}, not to this "
                            f"worker's uid {os.getuid()}: set {WORKDIR_VAR} to a private directory")
    if st.st_mode & 0o022:
        raise NodeRootError(f"the node directory {path!r} is group or world writable "
                            f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 700 it or set {WORKDIR_VAR}")


def records_dir(root: str) -> str:
    """``<root>/.records``: created 0700, refused unless private (see :func:`check_private`)."""
    path = os.path.join(root, RECORDS_DIR)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    check_private(path)
    return path


class RecordsError(OSError):
    """The records' path exists and is not a fresh file of ours (a link planted by a step?)."""


class Records:
    """This worker's ``<root>/.records/<PID>.steps``: its running steps' tokens, process groups
    and directories, created exclusively (a planted link or file is unlinked, never written
    through), rewritten in place through the descriptor it was created with (no file is created
    per step); the watchdog reads that same descriptor."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(records_dir(root), f"{os.getpid()}{RECORDS_SUFFIX}")
        self.fd = _create(self.path)
        self.steps: dict[str, tuple[str, int]] = {}  # step directory -> (token, process group)

    @classmethod
    def of(cls, root: str) -> Records:
        rec = _records.get(root)
        if rec is None:  # the first step here: kept for the worker's life (the watchdog holds its fd)
            rec = _records[root] = cls(root)
        return rec

    def add(self, work: str, token: str, pgid: int) -> None:
        self.steps[work] = (token, pgid)
        self._write()

    def drop(self, work: str) -> None:
        if self.steps.pop(work, None) is not None:
            self._write()

    def _write(self) -> None:
        data = "".join(f"{t} {g} {os.path.basename(w)}\n" for w, (t, g) in self.steps.items()).encode()
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))
        held = os.fstat(self.fd)
        try:
            now = os.lstat(self.path)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return
        except OSError:
            pass
        try:  # the path was unlinked or replaced (by a step): a fresh file there too, for signal_step
            fd = _create(self.path)
        except OSError:
            return
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _create(path: str) -> int:
    """A new regular file at ``path``, 0600, ours: whatever is there (a stale file of a reused
    PID, or a hard link or symlink planted by a step) is unlinked first — only its name: the file
    it links is never opened, truncated or written."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            unlink(path)
            continue
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.getuid():
            return fd
        os.close(fd)
        break
    raise RecordsError(f"cannot create the records file {path!r} exclusively")


def _read(path: str) -> list[tuple[str, int, str]]:
    """``(token, process group, directory)`` per well-formed line of the records at ``path``
    (opened without following a link; anything but a regular file reads as empty)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        text = os.read(fd, 1 << 20).decode("ascii", errors="replace")
    except OSError:
        return []
    finally:
        os.close(fd)
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            out.append((parts[0], int(parts[1]), parts[2]))
    return out


def recorded(root: str) -> list[tuple[str, int, str, int]]:
    """``(token, process group, directory, worker PID)`` of each step in every worker's records."""
    out: list[tuple[str, int, str, int]] = []
    rdir = os.path.join(root, RECORDS_DIR)
    try:
        names = os.listdir(rdir)
    except OSError:
        return out
    for name in names:
        pid = name[: -len(RECORDS_SUFFIX)]
        if name.endswith(RECORDS_SUFFIX) and pid.isdigit():
            out.extend((t, g, d, int(pid)) for t, g, d in _read(os.path.join(rdir, name)))
    return out


def _carries(token: str, pgid: int, directory: str, worker: int) -> bool:
    """The check before a recorded group is signalled (see the module docstring): the directory
    is ``TOKEN.<worker>.*``, and a live process of the group (its leader first: it may be dead)
    carries the token in its environment (a line forged by a step names no such group)."""
    if pgid <= 1 or not token or not directory.startswith(f"{token}.{worker}.") or "/" in directory:
        return False
    needle = f"{TOKEN_VAR}={token}".encode()
    for pid in [str(pgid), *os.listdir("/proc")]:
        try:
            with open(f"/proc/{pid}/stat" if pid.isdigit() else os.devnull, "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[2]) != pgid:
                    continue
            if _environ_has(pid, needle):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def _environ_has(pid: str, needle: bytes) -> bool:
    """Whether process ``pid``'s environment holds the variable ``needle`` (``NAME=value``) exactly."""
    with open(f"/proc/{pid}/environ" if pid.isdigit() else os.devnull, "rb") as f:
        return needle in f.read().split(b"\0")


def unpack(data: bytes, dest: str) -> None:
    """Extract tar ``data`` into ``dest`` (regular files and directories only, never outside)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        tar.extractall(dest, members=members, filter="data")


def pack(base: str, rels: list[str]) -> bytes:
    """Tar of the files/directories ``rels`` (relative to ``base``) that exist; symlinks skipped."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for rel in rels:
            path = os.path.join(base, rel)
            if os.path.lexists(path) and not os.path.islink(path):
                tar.add(path, arcname=rel, filter=lambda ti: None if ti.issym() or ti.islnk() else ti)
    return buf.getvalue()


def inside(work: str, rel: str) -> str:
    """``work/rel``, refused when ``rel`` leaves ``work``."""
    path = os.path.normpath(os.path.join(work, rel))
    if path != work and not path.startswith(work + os.sep):
        raise ValueError(f"path {rel!r} leaves the step's directory")
    return path


def ensure_watchdog(root: str, grace: float) -> None:
    """Start this worker's watchdog for ``root`` unless it runs (see the module docstring; none
    when the records cannot be created): a shell started detached (``sh`` in its own session
    backgrounds it and exits), so the kill of the worker's direct children does not reach it; it
    ends by itself with the worker. The descriptors reach it as the shell's stdin (the pipe) and
    stdout (the records), moved to 3 and 4 by the shell: ``dash`` takes single-digit descriptors
    only, and a Ray worker's records descriptor is above 9 (``exec 4<&40`` is a syntax error
    there, and the watchdog never ran: a new shell was spawned, and died, for every step). A shell
    that cannot start it is tried again by this worker after :data:`RETRY_WATCHDOG` seconds, not
    at every step (a fork that failed once under pressure does not leave the worker unwatched)."""
    if _unstartable.get(root, 0.0) > time.monotonic():
        return
    w = _watching.get(root)
    if w is not None:
        poller = select.poll()
        poller.register(w, 0)
        if not poller.poll(0):  # no POLLERR: its reader, the watchdog, is alive
            return
        os.close(w)
        del _watching[root]
    try:
        rec = Records.of(root)  # before the watchdog: it inherits the records' descriptor as fd 4
    except (OSError, NodeRootError):
        return
    r, w = os.pipe()  # both ends close-on-exec: no step inherits the write end
    try:  # stdin = the pipe, stdout = the records: to 3 and 4 before anything could write to them
        done = subprocess.run(["/bin/sh", "-c", 'exec 4<&1 3<&0 >/dev/null; /bin/sh -c "$1" watchdog "$2" "$3" "$4" &',
                               "orchestrator-watchdog", WATCHDOG, os.path.dirname(rec.path), str(os.getpid()),
                               f"{grace:.1f}"],
                              stdin=r, stdout=rec.fd, stderr=subprocess.DEVNULL,
                              start_new_session=True, close_fds=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        os.close(w)
        if isinstance(exc, subprocess.TimeoutExpired):  # a shell that hangs: not again at every step
            _unstartable[root] = time.monotonic() + RETRY_WATCHDOG
        return
    finally:
        os.close(r)
    if done.returncode != 0:
        os.close(w)
        _unstartable[root] = time.monotonic() + RETRY_WATCHDOG
        return
    _watching[root] = w


def signal_step(token: str, sig: int) -> int:
    """The body of the small task a stop sends to the node of a running step: ``sig`` to the
    process group of each step directory of ``token`` on this node whose leader still carries the
    token (a reused PID is left alone); returns how many groups were signalled. The step's
    streaming task is not interrupted: its output after the signal still reaches the runner."""
    sent = 0
    for tok, pgid, directory, worker in recorded(node_root()):
        if tok == token and _carries(tok, pgid, directory, worker):
            killpg(pgid, sig)
            sent += 1
    return sent


def sweep_stale(root: str) -> None:
    """Remove the leftovers of steps whose Ray worker died without cleaning up (see the module
    docstring): a dead worker's recorded group is SIGKILLed (with the other processes carrying
    its token) only when it passes :func:`_carries` and no live worker records its token; then
    the dead workers' records and step directories are removed."""
    import shutil

    entries = recorded(root)
    live = {tok for tok, _, _, worker in entries if not _gone(worker)}
    for tok, pgid, directory, worker in entries:
        if tok in live or not _gone(worker) or not _carries(tok, pgid, directory, worker):
            continue
        killpg(pgid, signal.SIGKILL)
        needle = f"{TOKEN_VAR}={tok}".encode()
        for pid in os.listdir("/proc"):  # what left the group (its own session) still carries the token
            try:
                if _environ_has(pid, needle):
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                continue
    rdir = os.path.join(root, RECORDS_DIR)
    for name in os.listdir(rdir) if os.path.isdir(rdir) else ():
        pid = name[: -len(RECORDS_SUFFIX)]
        if name.endswith(RECORDS_SUFFIX) and pid.isdigit() and _gone(int(pid)):
            unlink(os.path.join(rdir, name))  # a dead worker's records (its watchdog did not run)
    try:
        names = os.listdir(root)
    except OSError:
        return
    for entry in names:
        parts = entry.split(".")
        if len(parts) == 3 and parts[1].isdigit() and _gone(int(parts[1])):  # its worker is dead (a
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)  # reused PID: left alone)


def _gone(pid: int) -> bool:
    """No process ``pid`` exists (one of another user, or a reused PID, counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def identity() -> dict[str, str]:
    """The Ray node this worker runs on and its host name (asked once per worker process)."""
    if not _identity:
        import socket

        node = ""
        try:
            ray = sys.modules.get("ray")  # a Ray worker has it; called outside Ray (a test), no node
            if ray is not None and ray.is_initialized():
                node = str(ray.get_runtime_context().get_node_id())
        except Exception:  # noqa: BLE001 - informative only
            node = ""
        if not node and "ray" in sys.modules:
            return {"node": "", "host": socket.gethostname()}  # not cached: Ray may connect later
        _identity.update(node=node, host=socket.gethostname())
    return _identity
