"""The worker side of the Ray executor: one step as a subprocess on a Ray node, streamed back.

Owns: :func:`run_step`, the body of the streaming Ray task that runs one attempt of a leaf on
whatever node Ray picked — a node-local working directory under ``$ORCHESTRATOR_RAY_WORKDIR``
(set on the node's raylet; default ``<tmp>/orchestrator-ray-<uid>``, 0700, owner checked:
:func:`node_root`), the step's inputs unpacked into
it from tar bytes shipped by the driver, the driver's step directory rewritten to it in argv, env
and cwd, the step started in its own session (process group), its output drained and yielded
back in chunks while it runs (``("log", bytes)``, ``("track", bytes)`` for new lines of its
tracking file), and at its end the declared outputs packed as tar bytes (``("end", info,
outputs)``). A stop is :func:`signal_step` in a small task on the same node (SIGTERM, then after
the grace SIGKILL, to the group recorded in ``<node root>/<step directory>.pgid``, outside the
step's own directory, and checked against the step's token), so the stream keeps flowing
until the step exited, as locally. A cancellation (``ray.cancel``: ``KeyboardInterrupt`` in this thread) SIGTERMs the
group, waits the grace, SIGKILLs it; the ``finally`` kills whatever is left and removes the
directory. When the driver dies (kill -9), Ray cancels its tasks the same way (measured: the
step's group is gone within a second). A worker killed outright (a forced cancel, the OOM
killer) cannot clean up: Ray kills its direct children, and the next step on that node sweeps
what is left (:func:`sweep_stale`: directories named ``TOKEN.PID.*`` whose worker PID is gone —
the processes tagged with that token are SIGKILLed, the directory is removed).

Imports only the stdlib: the module is shipped to the nodes by value (cloudpickle), so a node
needs Python and Ray, not orchestrator.
"""

from __future__ import annotations

import io
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

WORKDIR_VAR = "ORCHESTRATOR_RAY_WORKDIR"
CHUNK = 1 << 16
FLUSH_EVERY = 0.05  # seconds a log chunk may wait for more bytes before it is sent
TRACK_EVERY = 0.25
LINGER = 1.0
START_AFTER = 0.05  # s before the "start" item of a step that printed nothing yet is sent anyway
PGID_SUFFIX = ".pgid"  # <node root>/<step directory name>.pgid: its process group id (outside the step's directory)
TOKEN_VAR = "ORCHESTRATOR_STEP_TOKEN"  # as orchestrator.run.steps (not imported: nodes lack orchestrator)


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
    import stat

    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise NodeRootError(f"the node directory {path!r} is not a directory (a symlink?)")
    if st.st_uid != os.getuid():
        raise NodeRootError(f"the node directory {path!r} belongs to uid {st.st_uid}, not to this "
                            f"worker's uid {os.getuid()}: set {WORKDIR_VAR} to a private directory")
    if st.st_mode & 0o022:
        raise NodeRootError(f"the node directory {path!r} is group or world writable "
                            f"(mode {stat.S_IMODE(st.st_mode):o}): chmod 700 it or set {WORKDIR_VAR}")


def _pgid_path(root: str, work: str) -> str:
    """Where the process group of the step directory ``work`` is recorded: beside, not inside it."""
    return os.path.join(root, os.path.basename(work) + PGID_SUFFIX)


def _rewrite(text: str, old: str, new: str) -> str:
    return text.replace(old, new) if old and old in text else text


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


def run_step(payload: dict[str, Any], *inputs: bytes) -> Iterator[tuple[Any, ...]]:
    """The streaming task body (see the module docstring). ``payload``: argv, env, cwd, driver_dir,
    token, grace, log_cap, tracking (driver path), outputs (paths relative to the step directory,
    shipped back as tar bytes), input_dests (where each of ``inputs`` is unpacked, relative to the
    step directory), and the hook for object stores a node reaches itself (S3): ``fetch`` =
    ``[(download, target, key, rel)]`` called as ``download(target, key, Path)`` before the step,
    ``push`` = ``[(upload_tree, target, rel, key)]`` called as ``upload_tree(target, Path, key)``
    after it succeeded (its result comes back in the end item's ``pushed[rel]``); the callables
    and targets travel pickled (by value when their module is registered with cloudpickle)."""
    try:
        root = node_root()
    except (NodeRootError, OSError) as exc:
        yield ("log", f"[orchestrator] {exc}\n".encode())
        yield ("end", {"code": -1, "error": str(exc), "dropped": 0}, b"")
        return
    sweep_stale(root)
    work = tempfile.mkdtemp(prefix=f"{payload['token']}.{os.getpid()}.", dir=root)
    old = payload["driver_dir"]
    proc: subprocess.Popen[bytes] | None = None
    grace = float(payload.get("grace", 3.0))
    try:
        for data, rel in zip(inputs, payload["input_dests"]):
            dest = os.path.join(work, rel)
            os.makedirs(dest, exist_ok=True)
            unpack(data, dest)
        for rel in payload.get("rewrite") or ():  # a script's text names the driver's step directory
            path = _inside(work, rel)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    text = f.read()
                with open(path, "wb") as f:
                    f.write(text.replace(old.encode(), work.encode()))
        for fetch, target, key, rel in payload.get("fetch") or ():  # the node reads its object store
            try:
                fetch(target, key, Path(_inside(work, rel)))
            except Exception as exc:  # noqa: BLE001 - a located ArtifactError (never a credential)
                msg = f"input {rel!r}: {exc}"
                yield ("log", f"[orchestrator] {msg}\n".encode())
                yield ("end", {"code": -1, "error": msg, "dropped": 0}, b"")
                return
        argv = [_rewrite(a, old, work) for a in payload["argv"]]
        env = {k: _rewrite(v, old, work) for k, v in payload["env"].items()}
        cwd = _rewrite(payload["cwd"], old, work)
        tracking = _rewrite(payload["tracking"], old, work)
        os.makedirs(cwd, exist_ok=True)
        # Sent with the first output, after START_AFTER, or in the end item of a shorter step (one
        # streamed item less: each is a round trip to the driver).
        start = [{"node": _node_id(), "host": socket.gethostname(), "workdir": work,
                  "orchestrator_imported": "orchestrator" in sys.modules}]  # shipped by value: False
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=w, stderr=subprocess.STDOUT, cwd=cwd,
                                    env=env, start_new_session=True, close_fds=True)
        except OSError as exc:
            os.close(r)
            msg = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
            yield ("start", start.pop())
            yield ("log", f"[orchestrator] {msg}\n".encode())
            yield ("end", {"code": 127 if isinstance(exc, FileNotFoundError) else 126, "error": msg,
                           "dropped": 0}, b"")
            return
        finally:
            os.close(w)
        _watchdog(proc.pid, grace)
        try:  # where signal_step finds the step's process group (a stop that keeps the stream):
            # beside the step's directory in the private node root, never inside it (the step's cwd/HOME)
            with open(_pgid_path(root, work), "w", encoding="ascii") as f:
                f.write(str(proc.pid))
        except OSError:
            pass
        dropped = yield from _drain(proc, r, tracking, int(payload.get("log_cap", 10 << 20)), start)
        code = proc.returncode if proc.returncode is not None else -1
        pushed: dict[str, Any] = {}
        error = ""
        if code == 0:
            for push, target, rel, key in payload.get("push") or ():  # the node writes its object store
                src = Path(_inside(work, rel))
                if not src.exists() or (src.is_dir() and not any(src.iterdir())):
                    continue  # not written: the runner decides (optional, or the step's failure)
                try:
                    done = push(target, src, key)
                except Exception as exc:  # noqa: BLE001 - a located ArtifactError (never a credential)
                    error = f"its outputs failed: output {rel!r}: {exc}"
                    yield ("log", f"[orchestrator] {error}\n".encode())
                    break
                pushed[rel] = dict(vars(done)) if hasattr(done, "__dict__") else done
        if error:
            yield ("end", {"code": -1, "error": error, "dropped": dropped, "start": start[0] if start else None}, b"")
            return
        outputs = pack(work, payload["outputs"]) if code == 0 and payload["outputs"] else b""
        yield ("end", {"code": code, "error": "", "dropped": dropped, "pushed": pushed,
                       "start": start[0] if start else None}, outputs)
    except KeyboardInterrupt:  # ray.cancel: the stop (or a deadline) of the runner
        if proc is not None:
            _killpg(proc.pid, signal.SIGTERM)
            end = time.monotonic() + grace
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(0.05)
        raise
    finally:
        if proc is not None:
            _killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(work, ignore_errors=True)
        _unlink(_pgid_path(root, work))


def _watchdog(pgid: int, grace: float) -> None:
    """A shell that outlives this worker: if the worker dies without running its ``finally`` (Ray
    kills the workers of a dead driver's job, and their direct children with them), it stops the
    step's group as a stop does (TERM, the grace, KILL); it ends by itself when the group is gone.
    Started detached (the inner shell is no child of this worker), so that kill does not reach it."""
    loop = ('while kill -0 "$1" 2>/dev/null && kill -0 -"$2" 2>/dev/null; do sleep 0.2; done; '
            'kill -0 "$1" 2>/dev/null && exit 0; kill -TERM -"$2" 2>/dev/null; sleep "$3"; kill -KILL -"$2" 2>/dev/null')
    script = f"(sh -c '{loop}' watchdog \"$@\" &)"
    try:
        subprocess.run(["/bin/sh", "-c", script, "watchdog", str(os.getpid()), str(pgid), f"{grace:.1f}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True, close_fds=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def run_step_collected(payload: dict[str, Any], *inputs: bytes) -> list[tuple[Any, ...]]:
    """:func:`run_step` as one ordinary task returning every item at the end: Ray Client
    (``ray://``) has no streaming generators, so its steps' logs arrive when they end."""
    return list(run_step(payload, *inputs))


def _drain(proc: subprocess.Popen[bytes], fd: int, tracking: str, cap: int,
           start: list[dict[str, Any]]) -> Generator[tuple[Any, ...], None, int]:
    """Yield the step's output (up to ``cap`` bytes) and new tracking lines while it runs; once it
    exited and its pipe is drained, return how many bytes past the cap were dropped. The ``start``
    item (while ``start`` holds it) goes before the first of them, or once START_AFTER passed."""
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    os.set_blocking(fd, False)
    sel.register(fd, selectors.EVENT_READ)
    pending: list[bytes] = []
    size = sent = dropped = 0
    first = 0.0
    track_pos = 0
    last_track = time.monotonic()
    exited_at: float | None = None
    eof = False

    def tracked() -> bytes:
        nonlocal track_pos
        try:
            with open(tracking, "rb") as f:
                f.seek(track_pos)
                data = f.read()
        except OSError:
            return b""
        cut = data.rfind(b"\n") + 1  # whole lines only: a half-written line waits for its end
        track_pos += cut
        return data[:cut]

    try:
        while True:
            now = time.monotonic()
            timeout = 0.05 if pending else TRACK_EVERY
            if start:
                if now - t0 >= START_AFTER:
                    yield ("start", start.pop())
                else:
                    timeout = min(timeout, START_AFTER - (now - t0))
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None:
                timeout = min(timeout, 0.01)
            if not eof:
                for _key, _mask in sel.select(timeout):
                    for _ in range(16):
                        try:
                            data = os.read(fd, CHUNK)
                        except BlockingIOError:
                            break
                        if not data:
                            eof = True
                            break
                        room = cap - sent - size
                        if room > 0:
                            if not pending:
                                first = time.monotonic()
                            pending.append(data[:room])
                            size += min(room, len(data))
                        dropped += max(0, len(data) - max(room, 0))
            elif exited_at is None:  # the pipe is closed: wait for the exit itself
                try:
                    proc.wait(timeout=TRACK_EVERY)
                    exited_at = time.monotonic()
                except subprocess.TimeoutExpired:
                    pass
            now = time.monotonic()
            done = exited_at is not None and (eof or now - exited_at > LINGER)
            if pending and (done or size >= CHUNK or now - first >= FLUSH_EVERY):
                if start:
                    yield ("start", start.pop())
                yield ("log", b"".join(pending))
                sent += size
                pending, size = [], 0
            if done or now - last_track >= TRACK_EVERY:
                last_track = now
                lines = tracked()
                if lines:
                    if start:
                        yield ("start", start.pop())
                    yield ("track", lines)
            if done:
                break
    finally:
        sel.close()
        os.close(fd)
    return dropped


def signal_step(token: str, sig: int) -> int:
    """The body of the small task a stop sends to the node of a running step: ``sig`` to the
    process group of each step directory of ``token`` on this node whose leader still carries the
    token (a reused PID is left alone); returns how many groups were signalled. The step's
    streaming task is not interrupted: its output after the signal still reaches the runner."""
    root = node_root()
    sent = 0
    try:
        entries = [e for e in os.listdir(root) if e.startswith(token + ".") and e.endswith(PGID_SUFFIX)]
    except OSError:
        return 0
    needle = f"{TOKEN_VAR}={token}".encode()
    for entry in entries:
        try:
            with open(os.path.join(root, entry), encoding="ascii") as f:
                pgid = int(f.read().strip())
            if os.getpgid(pgid) != pgid:  # not (or no longer) the leader of its own group
                continue
            with open(f"/proc/{pgid}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except (OSError, ValueError):
            continue
        _killpg(pgid, sig)
        sent += 1
    return sent


def _inside(work: str, rel: str) -> str:
    """``work/rel``, refused when ``rel`` leaves ``work``."""
    path = os.path.normpath(os.path.join(work, rel))
    if path != work and not path.startswith(work + os.sep):
        raise ValueError(f"path {rel!r} leaves the step's directory")
    return path


def sweep_stale(root: str) -> None:
    """Remove the leftovers of steps whose Ray worker died without cleaning up (see the docstring)."""
    try:
        entries = os.listdir(root)
    except OSError:
        return
    for entry in entries:
        parts = entry.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue  # its worker lives (or the PID was reused: left alone)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
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
        _unlink(os.path.join(root, entry + PGID_SUFFIX))


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _node_id() -> str:
    try:
        ray = sys.modules.get("ray")  # a Ray worker has it; called outside Ray (a test), no node
        if ray is None or not ray.is_initialized():
            return ""
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - informative only
        return ""
