"""The worker side of the Ray executor: one step as a subprocess on a Ray node, streamed back.

Owns: :func:`run_step`, the body of the streaming Ray task that runs one attempt of a leaf on
whatever node Ray picked — a fresh directory in the node root (:mod:`orchestrator.run.ray_node`),
the step's inputs unpacked into it from tar bytes shipped by the driver (or fetched by the node
from a bucket), the driver's step directory rewritten to it in argv, env and cwd, the step
started in its own session (process group), its output drained and yielded back in chunks while
it runs (``("log", bytes)``, ``("track", bytes)`` for new lines of its tracking file; where it
runs in a ``("start", info)`` item sent with the first of them, or in the end item of a short
step), and at its end the declared outputs packed as tar bytes (``("end", info, outputs)``). The
runner stops reading at the end item: what follows it — killing what is left of the step's group,
removing the directory and the group's record, sweeping what killed workers left — runs while
the runner records the step (and submits the next one).

A stop is :func:`~orchestrator.run.ray_node.signal_step` in a small task on the same node, so
the stream keeps flowing until the step exited, as locally. A cancellation (``ray.cancel``:
``KeyboardInterrupt`` in this thread) SIGTERMs the group, waits the grace, SIGKILLs it; the
``finally`` kills whatever is left and removes the directory. A worker killed outright (Ray kills
a dead driver's job's workers; a forced cancel; the OOM killer) cannot clean up: its watchdog
stops the groups it recorded (:func:`~orchestrator.run.ray_node.ensure_watchdog`), and the end of
the next step on that node sweeps the directories (:func:`~orchestrator.run.ray_node.sweep_stale`).

Imports only the stdlib: the module is shipped to the nodes by value (cloudpickle), so a node
needs Python and Ray, not orchestrator.
"""

from __future__ import annotations

import os
import select
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from orchestrator.run.ray_node import (  # noqa: F401 - RECORDS_SUFFIX, TOKEN_VAR, signal_step: re-exported
    RECORDS_SUFFIX,
    TOKEN_VAR,
    WORKDIR_VAR,
    NodeRootError,
    Records,
    ensure_watchdog,
    identity,
    inside,
    killpg,
    node_root,
    pack,
    signal_step,
    sweep_stale,
    unpack,
)

CHUNK = 1 << 16
FLUSH_EVERY = 0.05  # seconds a log chunk may wait for more bytes before it is sent
TRACK_EVERY = 0.25
LINGER = 1.0
START_AFTER = 0.05  # s before the "start" item of a step that printed nothing yet is sent anyway


def _rewrite(text: str, old: str, new: str) -> str:
    return text.replace(old, new) if old and old in text else text


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
            path = inside(work, rel)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    text = f.read()
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o200)  # the attestation file is read-only
                with open(path, "wb") as f:
                    f.write(text.replace(old.encode(), work.encode()))
                os.chmod(path, mode)
        for fetch, target, key, rel in payload.get("fetch") or ():  # the node reads its object store
            try:
                fetch(target, key, Path(inside(work, rel)))
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
        start = [{**identity(), "workdir": work,
                  "orchestrator_imported": "orchestrator" in sys.modules}]  # shipped by value: False
        ensure_watchdog(root, grace)  # once per worker process: before the step can outlive it
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
        try:  # where signal_step and the watchdog find the step's process group: this worker's
            # records beside the step's directory in the private node root, never in it (its cwd/HOME)
            Records.of(root).add(work, payload["token"], proc.pid)
        except (OSError, NodeRootError):
            pass
        dropped = yield from _drain(proc, r, tracking, int(payload.get("log_cap", 10 << 20)), start)
        code = proc.returncode if proc.returncode is not None else -1
        pushed: dict[str, Any] = {}
        error = ""
        if code == 0:
            for push, target, rel, key in payload.get("push") or ():  # the node writes its object store
                src = Path(inside(work, rel))
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
            killpg(proc.pid, signal.SIGTERM)
            end = time.monotonic() + grace
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(0.05)
        raise
    finally:
        if proc is not None:
            killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            Records.of(root).drop(work)
        except (OSError, NodeRootError):
            pass
        shutil.rmtree(work, ignore_errors=True)
        try:  # after the end item: off the path from this step's end to the next step's start
            sweep_stale(root)
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
    try:  # its exit wakes the loop (Popen.wait(timeout) polls with sleeps of 0.5 ms and more)
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = -1
    pending: list[bytes] = []
    size = sent = dropped = 0
    first = 0.0
    track_pos = 0
    last_track = time.monotonic()
    exited_at: float | None = None
    eof = False

    def tracked() -> bytes:
        nonlocal track_pos
        try:  # the step's own file: never through a link it left there, never blocking on a FIFO
            fd = os.open(tracking, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return b""
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                return b""
            f.seek(track_pos)
            data = f.read()
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
                    if pidfd >= 0:
                        select.select([pidfd], [], [], timeout)
                        proc.poll()
                    else:
                        proc.wait(timeout=TRACK_EVERY)
                    if proc.returncode is not None:
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
        if pidfd >= 0:
            os.close(pidfd)
    return dropped
