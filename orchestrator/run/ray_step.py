"""The runner's handle of a step running as a Ray task, and the tar packing of what it ships.

Owns: :class:`RayStep` — a local pipe the supervisor (:mod:`orchestrator.run.watch`) watches like
a local step's stdout. The runner's loop reads the task's stream itself: a Ray callback on the
stream's next object only writes a byte to the pipe (:class:`~orchestrator.run.ray_relay.Wake`),
and :meth:`RayStep.read` takes the items (log chunks into the step's log, tracking lines appended
to the step's tracking file, ``start`` = where it runs, ``end`` = exit code, dropped bytes and the
packed outputs, unpacked into the step directory here) — no relay thread, no thread hand-off.
Under Ray Client (or a Ray without those callbacks) a relay thread reads the stream and writes
the log to the pipe instead. A stop or a deadline signals the step's process group on its node
through a small pinned task (SIGTERM, the grace, SIGKILL) while the stream goes on, so what the
step prints after SIGTERM is logged and the attempt ends when the process exited
(``ray.cancel`` only when the node does not answer, a forced cancel past the grace plus
:data:`FORCE_AFTER` as the last resort); a Ray error (a node or worker that died, a lost object)
ends the attempt as an *error*. And :func:`pack_input`/:func:`pack_rest`/:func:`tarinfo`:
deterministic tar bytes (no mtimes, owners, links or devices), so the same input is the same
bytes (content-addressed by the executor). Ray itself is reached only through the executor's
``ray`` module object (:mod:`orchestrator.run.ray_exec` is the one module that imports it).
"""

from __future__ import annotations

import io
import os
import re
import signal
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.run import stepfiles
from orchestrator.run.ray_relay import Relays, Wake
from orchestrator.run.steps import StepProcess, StepResult, _LazyLog

FORCE_AFTER = 5.0  # seconds past the grace before a cancelled task is cancelled by force
SKIP = re.compile(r"^(attempt-\d+\.log|tracking-\d+\.jsonl|ray-\d+\.json|(sidecar|container)-.*\.log)\Z")


def tarinfo(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if ti.issym() or ti.islnk() or not (ti.isfile() or ti.isdir()):
        return None
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""  # same content -> same bytes
    return ti


def pack_input(path: Path) -> tuple[bytes, str]:
    """Tar bytes of an input (a file: itself; a directory: its content) and the directory it is
    unpacked into (the file's parent or the directory itself)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                tar.add(str(child), arcname=child.name, filter=tarinfo)
            where = path
        else:
            tar.add(str(path), arcname=path.name, filter=tarinfo)
            where = path.parent
    return buf.getvalue(), str(where)


def pack_rest(step_dir: Path, skip: set[str]) -> bytes:
    """Everything else the step may read from its directory (the runner's own files excepted);
    b"" without building a tar when the directory holds nothing else (most steps: one listing)."""
    try:
        with os.scandir(step_dir) as entries:
            if all(e.path in skip or (SKIP.match(e.name) and e.is_file(follow_symlinks=False)) for e in entries):
                return b""
    except OSError:
        pass
    buf = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for dirpath, dirnames, filenames in os.walk(step_dir):
            dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in skip)
            rel = os.path.relpath(dirpath, step_dir)
            if rel != ".":
                tar.add(dirpath, arcname=rel, recursive=False, filter=tarinfo)
                count += 1
            for f in sorted(filenames):
                full = os.path.join(dirpath, f)
                if full in skip or (rel == "." and SKIP.match(f)):
                    continue
                tar.add(full, arcname=os.path.normpath(os.path.join(rel, f)), filter=tarinfo)
                count += 1
    return buf.getvalue() if count else b""


class RayStep(StepProcess):
    """A step running as a Ray task; its log arrives through a local pipe (see the module docstring)."""

    executor: Any = None
    payload: dict[str, Any] = {}
    options: dict[str, Any] = {}
    inputs: list[Path] = []  # input artifacts shipped as tar bytes
    not_shipped: set[str] = set()  # paths left out of the rest of the step directory
    gen: Any = None
    done: threading.Event | None = None
    relayed: threading.Event | None = None  # the relay's last write (a short step's ray-N.json) is done
    late_place: dict[str, Any] | None = None  # a short step's placement, written after its end is signalled
    outcome: dict[str, Any] = {}
    info_path: str = ""
    submitted: float = 0.0
    placed_at: float = 0.0  # when the task started on a node (its "start" item arrived)
    unschedulable: str = ""
    node_id: str = ""  # the Ray node the task runs on (its "start" item)
    prep: Any = None  # the Prepared attempt, when the node pushes outputs to a bucket
    push_names: dict[str, str] = {}  # path relative to the step directory -> output artifact name
    wake: Wake | None = None  # the runner reads the stream itself (no relay thread): its wake-up pipe
    armed: Any = None  # the ObjectRef whose readiness writes to the wake-up pipe
    log_error: OSError | None = None  # writing the log failed (the supervisor abandons the step)

    @property
    def starts_inline(self) -> bool:
        """Submitted from the runner's own thread (no hand-off to a spawner thread and back, which
        on a busy machine costs a scheduling delay each) when there is no input artifact to pack."""
        return not self.inputs

    def start(self) -> StepResult | None:
        self.started = time.time()
        self.log = _LazyLog(self.spec.log_path)
        self.done = threading.Event()
        self.relayed = threading.Event()
        self.outcome = {"code": -1, "error": "", "dropped": 0}
        try:
            if self.spec.header:
                self.log.write(self.spec.header.encode())
            args = self.executor.ship(self)  # input refs (packing here: off the runner's loop)
            with self._lock:
                if self.killed:
                    self.log.close()
                    return StepResult(-signal.SIGTERM, self.started, time.time(), killed=self.killed)
                self.gen = self.executor.submitter(self.options).remote(self.payload, *args)
                r, w = os.pipe()
                self.submitted = time.monotonic()
                self.fd = r
        except Exception as exc:  # noqa: BLE001 - the step fails (as an error), not the runner
            msg = f"cannot submit the step to Ray: {type(exc).__name__}: {str(exc)[:300]}"
            try:
                self.log.write(f"[orchestrator] {msg}\n".encode())
            finally:
                self.log.close()
            return StepResult(-1, self.started, time.time(), error=msg)
        os.set_blocking(self.fd, False)
        if self.executor.pump:
            os.set_blocking(w, False)
            self.wake = Wake(w)
            try:
                self._arm()
            except Exception:  # noqa: BLE001 - Ray refused the callback: a relay thread reads instead
                self.wake = None
                os.set_blocking(w, True)
                self.executor.relays.run(self._relay, w)
        else:
            self.executor.relays.run(self._relay, w)
        return None

    # ------------------------------------------------- the stream, read on the runner's thread
    def read(self) -> None:
        """The runner's loop saw the wake-up pipe: take every item the stream holds now (no relay
        thread: a Ray callback only writes a byte to the pipe), and arm the next wake-up."""
        if self.wake is None:
            super().read()  # a relay thread writes the log to the pipe
            return
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass
        if self.done is None or self.done.is_set():
            return
        rex = self.executor.ray.exceptions
        try:
            while True:
                ref = self.gen._next_sync(timeout_s=0)
                if ref.is_nil():
                    self._arm()
                    return
                if self._item(self.executor.ray.get(ref), self._log):
                    break
        except StopIteration:
            self.outcome = {"code": -1, "error": "Ray: the step's task ended without its end item", "dropped": 0}
        except Exception as exc:  # noqa: BLE001 - as the relay: the step fails, not the runner
            if self.log_error is not None:  # the log cannot be written: the supervisor abandons the step
                raise
            self._failed(exc, rex, self._log)
        self._over()

    def _arm(self) -> None:
        """A wake-up (a byte on the pipe, from Ray's own thread) when the stream's next item, or
        the task's end when the stream is over, exists."""
        assert self.wake is not None
        cw = self.gen.worker.core_worker
        done = self.gen.completed()
        nxt = done if cw.is_object_ref_stream_finished(done) else cw.peek_object_ref_stream(done)[0]
        self.armed = nxt  # a dropped ObjectRef would never call back
        nxt._on_ready(self.wake)

    def _log(self, data: bytes) -> None:
        """A log chunk of the step, into its log (up to the cap), as :meth:`StepProcess.read`."""
        assert self.log is not None
        room = self.spec.log_cap - self.written
        if room > 0:
            try:
                self.log.write(data[:room])
            except OSError as exc:
                self.log_error = exc
                raise
            self.written += min(room, len(data))
        self.dropped += max(0, len(data) - max(room, 0))

    def _over(self) -> None:
        """The attempt is over: the runner's loop closes the pipe and takes the result; a short
        step's ``ray-N.json`` is written later, off the runner's path (see ``defer_placed``)."""
        assert self.done is not None and self.relayed is not None
        self.done.set()
        self.eof = True
        self.armed = None
        if self.late_place is not None:  # written by the pending check or at the run's end
            self.executor.defer_placed(self, self.late_place)
        self.relayed.set()

    def close_pipe(self) -> None:
        super().close_pipe()
        if self.wake is not None:
            self.wake.close()

    # ------------------------------------------------- the stream, read by a relay thread
    def _relay(self, w: int) -> None:
        """Ray Client (no streaming generator: one list at the end) or a Ray without the callbacks
        :meth:`read` needs: a thread reads the stream and writes the log to the pipe."""
        ray = self.executor.ray
        rex = ray.exceptions

        open_w = True

        def out(data: bytes) -> None:
            nonlocal open_w
            view = memoryview(data)
            while open_w and view:
                try:
                    view = view[os.write(w, view):]
                except OSError:
                    open_w = False

        def items() -> Any:
            if self.executor.client:  # Ray Client: one list at the end
                yield from ray.get(self.gen)
            else:
                for ref in self.gen:
                    yield ray.get(ref)

        try:
            for item in items():
                if self._item(item, out):
                    break  # the node's cleanup after it runs while the runner records the step
        except Exception as exc:  # noqa: BLE001 - a relay bug must still end the step
            self._failed(exc, rex, out)
        finally:
            assert self.done is not None and self.relayed is not None
            self.done.set()
            os.close(w)
            if self.late_place is not None:  # while the runner wakes up to the end, not before it
                self.executor.placed(self, self.late_place)
            self.relayed.set()

    def _item(self, item: Any, out: Callable[[bytes], None]) -> bool:
        """One item of the task's stream; True at the end item."""
        kind = item[0]
        if kind == "end":
            self._ended(item[1], item[2])
            return True
        if kind == "log":
            out(item[1])
        elif kind == "track":
            try:  # never through a link or FIFO left at the tracking file's name
                with stepfiles.open_append(self.payload["tracking"], create=True) as f:
                    f.write(item[1])
            except (OSError, stepfiles.NotRegular):
                pass
        elif kind == "start":
            self.node_id = str(item[1].get("node") or "")
            self.placed_at = time.monotonic()
            self.executor.placed(self, item[1])
        return False

    def _failed(self, exc: BaseException, rex: Any, out: Callable[[bytes], None]) -> None:
        """The stream failed: a cancelled task, a Ray error (a dead node or worker), or a bug here."""
        if isinstance(exc, rex.TaskCancelledError):
            why = "" if self.killed else (self.unschedulable or "the Ray task was cancelled")
            self.outcome = {"code": -signal.SIGTERM, "error": why, "dropped": 0}
            if why:
                out(f"[orchestrator] {why}\n".encode())
        elif isinstance(exc, (rex.RayError, OSError)):
            why = _describe(exc)
            if self.killed:
                self.outcome = {"code": -signal.SIGKILL, "error": "", "dropped": 0}
            else:
                self.outcome = {"code": -1, "error": f"Ray: {why}", "dropped": 0}
                out(f"[orchestrator] the step's Ray task failed: {why}\n".encode())
        else:
            self.outcome = {"code": -1, "error": f"runner error: {type(exc).__name__}: {exc}", "dropped": 0}

    def _ended(self, info: dict[str, Any], outputs: bytes) -> None:
        """The end item: exit code, dropped bytes, what the node pushed, and the packed outputs."""
        if info.get("start"):  # a short step: its start came with its end
            self.node_id = str(info["start"].get("node") or "")
            self.placed_at = time.monotonic()
            self.late_place = info["start"]
            if self.relayed is not None and self.wake is None:
                self.executor.writing(self.relayed)
        if outputs:
            from orchestrator.run.ray_node import unpack

            unpack(outputs, self.payload["driver_dir"])
        self.outcome = {"code": int(info["code"]), "error": str(info.get("error") or ""),
                        "dropped": int(info.get("dropped") or 0), "pushed": info.get("pushed") or {}}
        self.executor.ended(self.gen)

    def reap(self) -> bool:
        if self.exited_at is None and self.done is not None and self.done.is_set():
            self.exited_at = time.monotonic()
        return self.exited_at is not None

    def finish(self) -> StepResult:
        assert self.log is not None
        self.executor.steps.pop(id(self), None)
        o = self.outcome
        if self.prep is not None:  # what the node uploaded: the runner records it (collect_outputs)
            for rel, done in (o.get("pushed") or {}).items():
                if rel in self.push_names and isinstance(done, dict):
                    self.prep.pushed[self.push_names[rel]] = done
        dropped = self.dropped + o["dropped"]
        try:
            if dropped:
                self.log.write(f"\n[orchestrator] log truncated: {dropped} bytes dropped after the first "
                               f"{self.spec.log_cap} bytes\n".encode())
        finally:
            self.log.close()
        return StepResult(o["code"], self.started, time.time(), self.written, dropped, self.killed,
                          error=o["error"])

    def kill(self, reason: str, grace: float = 5.0) -> None:
        with self._lock:
            if self.killed:
                return
            self.killed = reason
            gen = self.gen
        if gen is None:
            return
        threading.Thread(target=self._stop, args=(gen, grace), name="ray-stop", daemon=True).start()

    def _stop(self, gen: Any, grace: float) -> None:
        """As locally: SIGTERM to the step's group on its node while its output keeps streaming,
        SIGKILL after the grace; the attempt ends when the process did. Only when the node does not
        answer (or the step is not placed yet) is the task cancelled (it then TERMs/KILLs itself),
        and cancelled by force :data:`FORCE_AFTER` seconds past the grace as the last resort."""
        assert self.done is not None
        token = str(self.payload.get("token", ""))
        signalled = bool(self.node_id) and self.executor.signal(self.node_id, token, signal.SIGTERM)
        if not signalled:
            self._cancel(gen, force=False)
        if self.done.wait(grace):
            return
        if signalled:
            self.executor.signal(self.node_id, token, signal.SIGKILL)
        if not self.done.wait(FORCE_AFTER):
            self._cancel(gen, force=True)

    def kill_now(self, reason: str) -> None:
        with self._lock:
            self.killed = self.killed or reason
        self.force_kill()

    def force_kill(self) -> None:
        if self.gen is not None:
            self._cancel(self.gen, force=True)

    def _cancel(self, gen: Any, force: bool) -> None:
        try:
            self.executor.ray.cancel(gen, force=force)
        except Exception:  # noqa: BLE001 - already finished, or the cluster is gone: the relay ends it
            pass


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
