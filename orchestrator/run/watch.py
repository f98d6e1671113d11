"""The loop that watches every running step from the runner's thread: one epoll over their stdout
pipes and pidfds, so a step's end reaches the runner without a thread hand-off.

Owns: :class:`Supervisor` (start, poll, close) and the optional spawner threads that start
processes off the loop. What one step is and how it is killed is :mod:`orchestrator.run.steps`.
"""

from __future__ import annotations

import errno
import os
import selectors
import time
from collections import deque
from typing import TYPE_CHECKING, Hashable

from orchestrator.run.steps import (
    LINGER,
    LOG_NO_SPACE,
    POLL_EXIT,
    StepProcess,
    StepResult,
)

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


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
            from concurrent.futures import ThreadPoolExecutor  # (with logging: ~5 ms of imports; -j 1 has none)

            self.pool = ThreadPoolExecutor(max_workers=spawners, thread_name_prefix="spawn")
            self.wake_r, self.wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(self.wake_w, False)
            self.sel.register(self.wake_r, selectors.EVENT_READ, None)

    def start(self, key: Hashable, proc: StepProcess) -> None:
        if self.pool is not None and not getattr(proc, "starts_inline", False):  # (a Ray step with no inputs)
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
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self.done.append((key, proc.abandon(f"runner error: {type(exc).__name__}: {exc}",
                                            LOG_NO_SPACE if full else "")))

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
