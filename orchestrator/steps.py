"""One step as a subprocess: argv, env, cwd, log capture with a byte cap, process-tree kill.

Owns: ``Popen(argv_list, start_new_session=True, close_fds=True, env=explicit, cwd=step_dir)``
(never a shell), draining stdout+stderr into the step's log file with a byte cap and a
truncation notice (the pipe is always drained, so a flooding step never blocks), and killing a
step's whole process tree: SIGTERM to the group, a grace period, SIGKILL, plus a sweep of
processes that carry the step's token in their environment (a ``setsid`` grandchild escapes the
group but not the sweep). Imports only errors/model-free stdlib.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LOG_CAP = int(os.environ.get("ORCHESTRATOR_LOG_CAP", str(10 * 1024 * 1024)))
TOKEN_VAR = "ORCHESTRATOR_STEP_TOKEN"
READ_CHUNK = 1 << 16


@dataclass
class StepSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str
    token: str
    log_cap: int = DEFAULT_LOG_CAP
    header: str = ""


@dataclass
class StepResult:
    exit_code: int
    started: float
    finished: float
    log_bytes: int = 0
    dropped_bytes: int = 0
    killed: str = ""  # why the runner killed it ("" = it ended by itself)
    error: str = ""  # the step could not be started
    pid: int = 0


class _LazyLog:
    """The step's log file, created at the first byte: a silent step creates no file (file
    creation is a journalled metadata write that costs up to a millisecond on a busy disk)."""

    __slots__ = ("path", "f")

    def __init__(self, path: str) -> None:
        self.path = path
        self.f: Any = None

    def write(self, data: bytes) -> None:
        if self.f is None:
            self.f = open(self.path, "ab", buffering=0)
        self.f.write(data)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


@dataclass
class StepProcess:
    """A running step; ``wait`` runs in a worker thread, ``kill`` may come from any thread."""

    spec: StepSpec
    proc: subprocess.Popen[bytes] | None = None
    killed: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> StepResult:
        """Start the step, drain its output, wait for it; never raises for step failures."""
        started = time.time()
        log = _LazyLog(self.spec.log_path)
        try:
            if self.spec.header:
                log.write(self.spec.header.encode())
            try:
                with self._lock:
                    if self.killed:
                        return StepResult(-signal.SIGTERM, started, time.time(), killed=self.killed)
                    self.proc = subprocess.Popen(
                        self.spec.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, cwd=self.spec.cwd, env=self.spec.env,
                        start_new_session=True, close_fds=True)
            except OSError as exc:
                msg = f"cannot start {self.spec.argv[0]!r}: {exc.strerror or exc}"
                log.write(f"[orchestrator] {msg}\n".encode())
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                return StepResult(code, started, time.time(), error=msg)
            written, dropped = self._drain(log)
            code = self.proc.wait()
            if dropped:
                log.write(f"\n[orchestrator] log truncated: {dropped} bytes dropped after the first "
                          f"{self.spec.log_cap} bytes\n".encode())
            # Whatever the step left behind in its process group dies with it.
            self._kill_tree(signal.SIGKILL, sweep=bool(self.killed))
            return StepResult(code, started, time.time(), written, dropped, self.killed, pid=self.proc.pid)
        finally:
            log.close()

    def _drain(self, log: _LazyLog) -> tuple[int, int]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        cap = self.spec.log_cap
        written = dropped = 0
        exited_at: float | None = None
        write = log.write
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.25)
                if ready:
                    data = os.read(fd, READ_CHUNK)
                    if not data:
                        break
                    room = cap - written
                    if room > 0:
                        write(data[:room])
                        written += min(room, len(data))
                    dropped += max(0, len(data) - max(room, 0))
                elif self.proc.poll() is not None:
                    # The step exited but a descendant still holds the pipe open.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > 1.0:
                        break
        finally:
            self.proc.stdout.close()
        return written, dropped

    def kill(self, reason: str, grace: float = 5.0) -> None:
        """SIGTERM the whole tree, then SIGKILL after ``grace`` seconds (in a helper thread)."""
        with self._lock:
            if self.killed:
                return
            self.killed = reason
            proc = self.proc
        if proc is None:
            return
        self._kill_tree(signal.SIGTERM)

        def later() -> None:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            self._kill_tree(signal.SIGKILL)

        threading.Thread(target=later, daemon=True).start()

    def _kill_tree(self, sig: int, sweep: bool = True) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in find_tagged(self.spec.token) if sweep else ():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def log_tail(path: str, lines: int = 5) -> str:
    """The last ``lines`` lines of a log (read from its last 4 KiB only)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def kill_tagged(token: str, sig: int = signal.SIGKILL, prefix: bool = False) -> int:
    """Signal every process tagged with ``token``; returns how many were signalled."""
    n = 0
    for pid in find_tagged(token, prefix):
        try:
            os.kill(pid, sig)
            n += 1
        except (ProcessLookupError, PermissionError):
            pass
    return n


def find_tagged(token: str, prefix: bool = False) -> list[int]:
    """PIDs of live processes whose environment carries ``ORCHESTRATOR_STEP_TOKEN=token``.

    With ``prefix`` the token only has to start with ``token`` (every step of an execution).
    """
    needle = f"{TOKEN_VAR}={token}".encode()
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if any(v == needle or (prefix and v.startswith(needle)) for v in env.split(b"\0")):
            found.append(int(entry))
    return found
