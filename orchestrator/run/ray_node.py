"""The node side of the Ray executor around a step: its private root, its records, its watchdog.

Owns, on whatever node Ray placed a step: the node root (``$ORCHESTRATOR_RAY_WORKDIR``, set on
the node's raylet; default ``<tmp>/orchestrator-ray-<uid>``, 0700, owner checked:
:func:`node_root`), the tar packing of what crosses between driver and node (:func:`pack`,
:func:`unpack`), the records of the process groups of a worker's running steps, beside (never
inside) their directories (``<root>/<worker PID>.steps``, a line ``TOKEN PGID DIRECTORY`` per
step: :class:`Records` — one file per worker, rewritten in place, so a step creates no file for
it: on a busy disk creating a file or a directory costs 0.2-0.4 ms), the stop of a step by its
token (:func:`signal_step`, the body of a small task pinned to the step's node), the sweep of
what a killed worker left (:func:`sweep_stale`: directories ``TOKEN.PID.*`` and records
``PID.steps`` whose worker PID is gone — the processes carrying that token are SIGKILLed, the
directory and the records removed), and the per-worker watchdog (:func:`ensure_watchdog`): one
detached shell per worker process and node root, started by the worker's first step, that waits
for the end of a pipe only that worker holds; when the worker dies (Ray kills a dead driver's
job's workers and their direct children, without their ``finally``), it TERMs, after the grace
KILLs, the groups in that worker's records, and removes them.

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

WORKDIR_VAR = "ORCHESTRATOR_RAY_WORKDIR"
RECORDS_SUFFIX = ".steps"  # <node root>/<worker PID>.steps: "TOKEN PGID DIRECTORY" per running step
TOKEN_VAR = "ORCHESTRATOR_STEP_TOKEN"  # as orchestrator.run.steps (not imported: nodes lack orchestrator)

# The watchdog: reads fd 3 (the read end of a pipe whose write end only its worker holds) until
# EOF, then signals the groups in the records of the worker's PID ($2) in the node root ($1):
# TERM, the grace ($3), KILL, and removes the records. A group id must be a number > 1
# (``kill -- -1`` would mean every process).
WATCHDOG = r"""
while read -r _ <&3; do :; done
f="$1/$2.steps"
[ -f "$f" ] || exit 0
groups=
while read -r _ g _; do
  case "$g" in ''|*[!0-9]*) continue ;; esac
  [ "$g" -gt 1 ] && groups="$groups $g"
done < "$f"
for g in $groups; do kill -TERM -"$g" 2>/dev/null; done
[ -n "$groups" ] && sleep "$3"
for g in $groups; do kill -KILL -"$g" 2>/dev/null; done
rm -f "$f"
"""
_watching: dict[str, int] = {}  # node root -> the write end of its watchdog's pipe (this process)
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


class Records:
    """This worker's ``<root>/<PID>.steps``: its running steps' tokens, process groups and
    directories, opened once and rewritten in place (no file is created per step)."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, f"{os.getpid()}{RECORDS_SUFFIX}")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self.steps: dict[str, tuple[str, int]] = {}  # step directory -> (token, process group)

    @classmethod
    def of(cls, root: str) -> Records:
        rec = _records.get(root)
        if rec is None or not os.path.exists(rec.path):  # the first step here, or a sweep removed it
            if rec is not None:
                os.close(rec.fd)
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


def recorded(root: str) -> list[tuple[str, int]]:
    """``(token, process group)`` of every step in the records in ``root`` (every worker's)."""
    out: list[tuple[str, int]] = []
    try:
        names = [e for e in os.listdir(root) if e.endswith(RECORDS_SUFFIX)]
    except OSError:
        return out
    for name in names:
        try:
            with open(os.path.join(root, name), encoding="ascii", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                out.append((parts[0], int(parts[1])))
    return out


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
    """Start this worker's watchdog for ``root`` unless it runs (see the module docstring): a
    shell started detached (``sh`` in its own session backgrounds it and exits), so the kill of
    the worker's direct children does not reach it; it ends by itself with the worker."""
    w = _watching.get(root)
    if w is not None:
        poller = select.poll()
        poller.register(w, 0)
        if not poller.poll(0):  # no POLLERR: its reader, the watchdog, is alive
            return
        os.close(w)
        del _watching[root]
    r, w = os.pipe()  # both ends close-on-exec: no step inherits the write end
    try:
        subprocess.run(["/bin/sh", "-c", 'exec 3<&0; /bin/sh -c "$1" watchdog "$2" "$3" "$4" &',
                        "orchestrator-watchdog", WATCHDOG, root, str(os.getpid()), f"{grace:.1f}"],
                       stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True, close_fds=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        os.close(w)
        return
    finally:
        os.close(r)
    _watching[root] = w


def signal_step(token: str, sig: int) -> int:
    """The body of the small task a stop sends to the node of a running step: ``sig`` to the
    process group of each step directory of ``token`` on this node whose leader still carries the
    token (a reused PID is left alone); returns how many groups were signalled. The step's
    streaming task is not interrupted: its output after the signal still reaches the runner."""
    root = node_root()
    sent = 0
    needle = f"{TOKEN_VAR}={token}".encode()
    for tok, pgid in recorded(root):
        if tok != token or pgid <= 1:
            continue
        try:
            if os.getpgid(pgid) != pgid:  # not (or no longer) the leader of its own group
                continue
            with open(f"/proc/{pgid}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except (OSError, ValueError):
            continue
        killpg(pgid, sig)
        sent += 1
    return sent


def sweep_stale(root: str) -> None:
    """Remove the leftovers of steps whose Ray worker died without cleaning up (see the docstring)."""
    import shutil

    try:
        entries = os.listdir(root)
    except OSError:
        return
    for entry in entries:
        parts = entry.split(".")
        if len(parts) == 2 and parts[0].isdigit() and "." + parts[1] == RECORDS_SUFFIX:
            if _gone(int(parts[0])):  # a dead worker's records (its watchdog did not run)
                unlink(os.path.join(root, entry))
            continue
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if not _gone(int(parts[1])):
            continue  # its worker lives (or the PID was reused: left alone)
        needle = f"{TOKEN_VAR}={parts[0]}".encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                continue
        shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


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
