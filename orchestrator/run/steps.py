"""One step as a subprocess: argv, env, cwd, log capture with a byte cap, process-tree kill.

Owns: ``Popen(argv_list, start_new_session=True, close_fds=True, env=explicit, cwd=step_dir)``
(never a shell), draining stdout+stderr into the step's log file with a byte cap and a
truncation notice (the pipe is always drained, so a flooding step never blocks), and killing a
step's whole process tree: SIGTERM to the group, a grace period, SIGKILL, plus a sweep of
processes that carry the step's token in their environment (a ``setsid`` grandchild escapes the
group but not the sweep). The loop that watches running steps is :mod:`orchestrator.run.watch`.
Imports only the stdlib.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.run import stepfiles

DEFAULT_LOG_CAP = int(os.environ.get("ORCHESTRATOR_LOG_CAP", str(10 * 1024 * 1024)))
TOKEN_VAR = "ORCHESTRATOR_STEP_TOKEN"
READ_CHUNK = 1 << 16
READS_PER_WAKEUP = 16  # chunks drained per readiness event, so a flood costs few loop turns
LINGER = 1.0  # seconds the pipe is still drained after the step exited (a descendant holds it)
POLL_EXIT = 0.25  # without pidfd: how often a running step's exit is polled
LOG_NO_SPACE = "writing the log of step %s"  # StepResult.no_space when the log hit a full disk
ENVIRON_CHUNK = 32768  # /proc/PID/environ read size (below malloc's mmap threshold; most fit in one)
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
    no_space: str = ""  # the disk was full while the runner was doing this ("writing the log of step %s")


class _LazyLog:
    """The step's log file, created at the first byte: a silent step creates no file (file
    creation is a journalled metadata write that costs up to a millisecond on a busy disk)."""

    __slots__ = ("path", "f")

    def __init__(self, path: str) -> None:
        self.path = path
        self.f: Any = None

    def write(self, data: bytes) -> None:
        if self.f is None:
            try:
                self.f = stepfiles.open_append(self.path, create=True)
            except stepfiles.NotRegular:  # the step put a link or a FIFO there first: its output is dropped
                self.f = open(os.devnull, "ab", buffering=0)  # noqa: SIM115 - closed by close()
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
                                           error=f"runner error: {type(exc).__name__}: {exc}",
                                           no_space=LOG_NO_SPACE if _no_space(exc) else ""))
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

    def abandon(self, error: str, no_space: str = "") -> StepResult:
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
                          error=error, pid=self.proc.pid if self.proc else 0, no_space=no_space)

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

    def kill_now(self, reason: str) -> None:
        """Like :meth:`kill` without the grace: SIGKILL the whole tree now (a second Ctrl-C)."""
        with self._lock:
            self.killed = self.killed or reason
        self.force_kill()

    def exec_spec(self, cmd: list[str]) -> tuple[list[str], dict[str, str], str]:
        """How to run ``cmd`` (a daemon's ``exec`` readiness probe) with this step's privileges only:
        (argv, env, cwd) — inside the step's own sandbox (same binds, workdir and chdir) when it has
        one, with the step's filtered environment and its working directory, never the runner's."""
        from orchestrator.run import sandbox

        return sandbox.prefix(self.spec.argv) + list(cmd), dict(self.spec.env), self.spec.cwd

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


def _no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def log_tail(path: str, lines: int = 5) -> str:
    """The last ``lines`` lines of a log (read from its last 4 KiB only)."""
    try:
        with stepfiles.open_read(path) as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    except stepfiles.NotRegular:
        return stepfiles.REPLACED
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def kill_tagged(token: str, sig: int = signal.SIGKILL, prefix: bool = False, since: PidMark | None = None) -> int:
    """Signal every process tagged with ``token`` (created since ``since``: :func:`find_tagged`);
    returns how many were signalled."""
    n = 0
    for pid in find_tagged(token, prefix, since):
        try:
            os.kill(pid, sig)
            n += 1
        except (ProcessLookupError, PermissionError):
            pass
    return n


@dataclass(frozen=True)
class PidMark:
    """Where the kernel's PID allocation stood (:func:`pid_mark`): the last PID handed out, the
    tasks created since boot (``processes`` in ``/proc/stat``, threads included) and alive."""

    last: int
    forks: int
    tasks: int


def _proc_read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def pid_mark() -> PidMark | None:
    """The PID allocation now (None when ``/proc`` does not tell): taken before a process that can
    carry a token starts, so that :func:`find_tagged` may later read only the processes created since."""
    try:
        load = _proc_read("/proc/loadavg").split()
        stat = _proc_read("/proc/stat")
        at = stat.index(b"\nprocesses ") + 11
        return PidMark(int(load[4]), int(stat[at:stat.index(b"\n", at)]), int(load[3].split(b"/")[1]))
    except (OSError, ValueError, IndexError):
        return None


def _window(mark: PidMark | None) -> tuple[int, int] | None:
    """The PIDs handed out since ``mark``, as ``(after, upto)`` on the cycle of PIDs (``after >=
    upto``: it wrapped past ``pid_max``), when that is certain; None: read every process. The
    allocation moves a cursor forward from the mark's PID, one PID per task created plus one per
    PID it skips because it is in use (at most the tasks alive at the mark plus those created
    since); while that is less than a whole cycle, every PID handed out since lies between the
    mark's and the last one handed out now. A margin covers a few PIDs taken by forks that then
    failed (not counted as created). Tens of thousands of such failures within one execution (a
    step failing ``clone`` on purpose, or a fork bomb against a pids limit) can wrap the cursor
    unseen, and then an escapee created before them is not read: like a step that clears its
    environment (``env -i``), which no token scan finds, this scan is hygiene against leftovers,
    not a boundary against a step that wants to outlive its execution."""
    if mark is None:
        return None
    now = pid_mark()
    try:
        pid_max = int(_proc_read("/proc/sys/kernel/pid_max"))
    except (OSError, ValueError):
        return None
    if now is None or 2 * (now.forks - mark.forks) + mark.tasks + 1024 >= pid_max - 300:
        return None
    return mark.last, now.last


def find_tagged(token: str, prefix: bool = False, since: PidMark | None = None) -> list[int]:
    """PIDs of live processes whose environment carries ``ORCHESTRATOR_STEP_TOKEN=token``.

    With ``prefix`` the token only has to start with ``token`` (every step of an execution). With
    ``since`` (a :func:`pid_mark` taken before any process carrying the token started) only the
    processes created after it are read, when the PID allocation since shows which PIDs they have.
    """
    # One substring search per process (in C) instead of splitting its environment into variables:
    # the variable starts the block or follows a NUL, and (unless ``prefix``) a NUL or the end follows it.
    needle = f"\0{TOKEN_VAR}={token}".encode() + (b"" if prefix else b"\0")
    me = str(os.getpid())
    found = []
    window = _window(since)
    if window is not None and 0 <= window[1] - window[0] <= 256:  # few created since: try each PID
        entries = [str(pid) for pid in range(window[0] + 1, window[1] + 1)]
    else:
        try:
            entries = os.listdir("/proc")
        except OSError:
            return []
        if window is not None:  # many created since, or the PIDs wrapped past pid_max
            after, upto = window
            entries = [e for e in entries if e.isdigit() and (
                after < int(e) <= upto if after < upto else int(e) > after or int(e) <= upto)]
    for entry in entries:  # raw descriptors: a file object per process costs as much as the read
        if not entry.isdigit() or entry == me:
            continue
        try:
            fd = os.open(f"/proc/{entry}/environ", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            env = os.read(fd, ENVIRON_CHUNK)
            if len(env) == ENVIRON_CHUNK:  # a large environment: the rest of it
                parts = [env]
                while more := os.read(fd, ENVIRON_CHUNK):
                    parts.append(more)
                env = b"".join(parts)
        except OSError:
            continue
        finally:
            os.close(fd)
        if needle in b"\0" + env + b"\0":
            found.append(int(entry))
    return found
