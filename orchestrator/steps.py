"""One step as a subprocess: argv, env, cwd, log capture with a byte cap, process-tree kill.

Owns: ``Popen(argv_list, start_new_session=True, close_fds=True, env=explicit, cwd=step_dir)``
(never a shell), draining stdout+stderr into the step's log file with a byte cap and a
truncation notice (the pipe is always drained, so a flooding step never blocks), and killing a
step's whole process tree: SIGTERM to the group, a grace period, SIGKILL, plus a sweep of
processes that carry the step's token in their environment (a ``setsid`` grandchild escapes the
group but not the sweep). Running steps are watched from the caller's thread by one
:class:`Supervisor` (epoll over every step's stdout pipe and pidfd): no thread per step, so a
step's end reaches the runner without a thread hand-off. Imports only errors/model-free stdlib.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Hashable

DEFAULT_LOG_CAP = int(os.environ.get("ORCHESTRATOR_LOG_CAP", str(10 * 1024 * 1024)))
TOKEN_VAR = "ORCHESTRATOR_STEP_TOKEN"
READ_CHUNK = 1 << 16
READS_PER_WAKEUP = 16  # chunks drained per readiness event, so a flood costs few loop turns
LINGER = 1.0  # seconds the pipe is still drained after the step exited (a descendant holds it)
POLL_EXIT = 0.25  # without pidfd: how often a running step's exit is polled
_devnull = -1  # one read-only /dev/null for every step's stdin (Popen would open and close one per step)


_devnull_lock = threading.Lock()


def _stdin() -> int:
    global _devnull
    if _devnull < 0:
        with _devnull_lock:  # spawner threads may get here together: open it once
            if _devnull < 0:
                _devnull = os.open(os.devnull, os.O_RDONLY)  # not inheritable; dup2'd onto the step's fd 0
    return _devnull


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
            self.f = None


@dataclass
class StepProcess:
    """A step's process and its capture state. ``start``/``read``/``reap`` run on the supervising
    thread; ``kill`` may come from any thread."""

    spec: StepSpec
    proc: subprocess.Popen[bytes] | None = None
    killed: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fd: int = -1  # stdout+stderr pipe, -1 once closed
    pidfd: int = -1  # -1 = none (closed after the exit, or the kernel has no pidfd_open)
    eof: bool = False
    exited_at: float | None = None
    started: float = 0.0
    written: int = 0
    dropped: int = 0
    log: _LazyLog | None = None

    def run(self) -> StepResult:
        """Start the step, drain its output, wait for it (blocking); never raises for step failures."""
        sup = Supervisor()
        try:
            sup.start(0, self)
            while True:
                for _key, result in sup.poll(POLL_EXIT):
                    return result
        finally:
            sup.close()

    def start(self) -> StepResult | None:
        """Start the process; a result instead when it cannot start (or was killed before)."""
        self.started = time.time()
        self.log = _LazyLog(self.spec.log_path)
        try:
            if self.spec.header:
                self.log.write(self.spec.header.encode())
            try:
                with self._lock:
                    if self.killed:
                        return self._closed(StepResult(-signal.SIGTERM, self.started, time.time(),
                                                       killed=self.killed))
                    # Our own pipe (both ends not inheritable; the child gets the write end as fds 1
                    # and 2): the runner reads the raw fd, no file object is built per step.
                    r, w = os.pipe()
                    try:
                        self.proc = subprocess.Popen(
                            self.spec.argv, stdin=_stdin(), stdout=w, stderr=subprocess.STDOUT,
                            cwd=self.spec.cwd, env=self.spec.env, start_new_session=True, close_fds=True)
                    except BaseException:
                        os.close(r)
                        raise
                    finally:
                        os.close(w)
                    self.fd = r
            except OSError as exc:
                msg = f"cannot start {self.spec.argv[0]!r}: {exc.strerror or exc}"
                self.log.write(f"[orchestrator] {msg}\n".encode())
                code = 127 if isinstance(exc, FileNotFoundError) else 126
                return self._closed(StepResult(code, self.started, time.time(), error=msg))
        except Exception as exc:  # noqa: BLE001 - e.g. a NUL byte in argv/env: the step fails, not the runner
            return self._closed(StepResult(-1, self.started, time.time(),
                                           error=f"runner error: {type(exc).__name__}: {exc}"))
        os.set_blocking(self.fd, False)
        try:
            self.pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.pidfd = -1
        return None

    def _closed(self, result: StepResult) -> StepResult:
        if self.log is not None:
            self.log.close()
        return result

    def read(self) -> None:
        """Drain what the pipe holds now into the log (up to the cap); EOF sets ``eof``."""
        cap = self.spec.log_cap
        assert self.log is not None
        for _ in range(READS_PER_WAKEUP):
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                return
            if not data:
                self.eof = True
                return
            room = cap - self.written
            if room > 0:
                self.log.write(data[:room])
                self.written += min(room, len(data))
            self.dropped += max(0, len(data) - max(room, 0))

    def close_pipe(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def close_pidfd(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def reap(self) -> bool:
        """Whether the process has exited (reaped without blocking)."""
        if self.exited_at is None and self.proc is not None and self.proc.poll() is not None:
            self.exited_at = time.monotonic()
        return self.exited_at is not None

    def finish(self) -> StepResult:
        """The step has exited and its pipe is closed: its result (the log is closed)."""
        assert self.proc is not None and self.log is not None
        try:
            if self.dropped:
                self.log.write(f"\n[orchestrator] log truncated: {self.dropped} bytes dropped after the first "
                               f"{self.spec.log_cap} bytes\n".encode())
        finally:
            self.log.close()
        # Whatever the step left behind in its process group dies with it.
        self._kill_tree(signal.SIGKILL, sweep=bool(self.killed))
        code = self.proc.returncode if self.proc.returncode is not None else -1
        return StepResult(code, self.started, time.time(), self.written, self.dropped, self.killed,
                          pid=self.proc.pid)

    def abandon(self, error: str) -> StepResult:
        """Supervision of this step failed (e.g. its log cannot be written): kill it, close everything."""
        self.force_kill()
        self.close_pipe()
        self.close_pidfd()
        if self.log is not None:
            try:
                self.log.close()
            except OSError:
                pass
        return StepResult(-1, self.started, time.time(), self.written, self.dropped, self.killed,
                          error=error, pid=self.proc.pid if self.proc else 0)

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

    def force_kill(self) -> None:
        """SIGKILL the whole tree now (setsid descendants included) and reap the step's process."""
        self._kill_tree(signal.SIGKILL, sweep=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:  # stuck in the kernel: it dies when it leaves
                pass

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


class Supervisor:
    """Every running step, watched from one thread: an epoll over their pipes and pidfds.

    ``start`` launches a step; ``poll`` waits (at most ``timeout``) for output or exits, drains
    pipes into logs, and returns the steps that ended with their results. With ``spawners`` > 0
    the process itself is started by that many helper threads: ``Popen`` (vfork + exec) releases
    the GIL but blocks its thread until the child has exec'd, which on a busy machine takes
    milliseconds, so several steps starting at once should not wait for each other (or keep
    this thread from collecting finished ones). One step at a time is started inline.
    """

    def __init__(self, spawners: int = 0) -> None:
        self.sel = selectors.DefaultSelector()
        self.procs: dict[Hashable, StepProcess] = {}
        self.done: list[tuple[Hashable, StepResult]] = []
        self.pool: ThreadPoolExecutor | None = None
        self.spawned: deque[tuple[Hashable, StepProcess, StepResult | None]] = deque()
        self.starting = 0
        self.wake_r, self.wake_w = -1, -1
        if spawners > 0:
            self.pool = ThreadPoolExecutor(max_workers=spawners, thread_name_prefix="spawn")
            self.wake_r, self.wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(self.wake_w, False)
            self.sel.register(self.wake_r, selectors.EVENT_READ, None)

    def start(self, key: Hashable, proc: StepProcess) -> None:
        if self.pool is not None:
            self.starting += 1
            self.pool.submit(self._spawn, key, proc)
            return
        self._started(key, proc, proc.start())

    def _spawn(self, key: Hashable, proc: StepProcess) -> None:
        try:
            result = proc.start()
        except BaseException as exc:  # noqa: BLE001 - start() catches step failures; this is a bug guard
            now = time.time()
            result = StepResult(-1, now, now, error=f"runner error: {type(exc).__name__}: {exc}")
        self.spawned.append((key, proc, result))
        try:
            os.write(self.wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed (shutting down)

    def _started(self, key: Hashable, proc: StepProcess, result: StepResult | None) -> None:
        if result is not None:
            self.done.append((key, result))
            return
        self.procs[key] = proc
        self.sel.register(proc.fd, selectors.EVENT_READ, (key, False))
        if proc.pidfd >= 0:
            self.sel.register(proc.pidfd, selectors.EVENT_READ, (key, True))

    def _collect_spawned(self) -> None:
        while self.spawned:
            key, proc, result = self.spawned.popleft()
            self.starting -= 1
            self._started(key, proc, result)

    def _timeout(self, timeout: float, now: float) -> float:
        for p in self.procs.values():
            if p.exited_at is not None:  # exited, a descendant still holds the pipe
                timeout = min(timeout, max(0.0, p.exited_at + LINGER - now))
            elif p.pidfd < 0:  # no exit notification: poll
                timeout = min(timeout, 0.005 if p.fd < 0 else POLL_EXIT)
        return timeout

    def poll(self, timeout: float) -> list[tuple[Hashable, StepResult]]:
        if self.done or self.spawned:
            timeout = 0.0
        if self.procs or self.starting:
            events = self.sel.select(self._timeout(timeout, time.monotonic()))
        else:
            if timeout > 0:
                time.sleep(timeout)
            events = []
        touched: set[Hashable] = set()
        for sk, _mask in events:
            if sk.data is None:  # a spawner thread started a step
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            key, is_exit = sk.data
            proc = self.procs.get(key)
            if proc is None:
                continue
            touched.add(key)
            try:
                if is_exit:
                    proc.reap()
                elif proc.fd >= 0 and not proc.eof:
                    proc.read()
            except Exception as exc:  # noqa: BLE001 - a supervision failure ends that step, not the runner
                self._abandon(key, proc, exc)
        self._collect_spawned()
        now = time.monotonic()
        for key, proc in list(self.procs.items()):
            if key not in touched and proc.pidfd >= 0 and proc.fd >= 0:
                continue  # nothing happened to it
            try:
                if proc.eof and proc.fd >= 0:
                    self._unwatch(proc.fd)
                    proc.close_pipe()
                if proc.exited_at is None and (proc.fd < 0 or proc.pidfd < 0):
                    proc.reap()
                if proc.exited_at is None:
                    continue
                if proc.pidfd >= 0:
                    self._unwatch(proc.pidfd)
                    proc.close_pidfd()
                if proc.fd >= 0:
                    if now - proc.exited_at <= LINGER:
                        continue
                    # The step exited but a descendant still holds the pipe: stop draining it.
                    self._unwatch(proc.fd)
                    proc.close_pipe()
                result = proc.finish()
            except Exception as exc:  # noqa: BLE001
                self._abandon(key, proc, exc)
                continue
            del self.procs[key]
            self.done.append((key, result))
        out, self.done = self.done, []
        return out

    def _unwatch(self, fd: int) -> None:
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _abandon(self, key: Hashable, proc: StepProcess, exc: BaseException) -> None:
        for fd in (proc.fd, proc.pidfd):
            if fd >= 0:
                self._unwatch(fd)
        self.procs.pop(key, None)
        self.done.append((key, proc.abandon(f"runner error: {type(exc).__name__}: {exc}")))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # a step being started right now is not left unwatched
            self._collect_spawned()
        for proc in self.procs.values():
            for fd in (proc.fd, proc.pidfd):
                if fd >= 0:
                    self._unwatch(fd)
            proc.close_pipe()
            proc.close_pidfd()
        self.procs.clear()
        self.sel.close()
        for fd in (self.wake_r, self.wake_w):
            if fd >= 0:
                os.close(fd)
        self.wake_r = self.wake_w = -1


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
