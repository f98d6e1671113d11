"""Threads kept for the next job: a runner's helpers start without a thread start each.

Owns: a process-wide set of idle daemon threads and :class:`Job`, the handle of one function run
on one of them (``start``, ``join``, ``started``). Every execution's runner starts a few helper
threads (the commit thread, the heartbeat, the step-directory helper); a thread start costs about
0.1 ms of CPU and a round trip with the new thread, per helper and per execution, which a sweep's
hundred short trials pay a hundred times over. A job hands its function to an idle kept thread
instead (a queue put) and a new thread is started only when none is idle; the threads stay for
the process's life (daemons, idle in a queue get: as many as ever ran at once). Imports only the stdlib.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

_jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
_lock = threading.Lock()
_idle = 0


def _loop() -> None:
    global _idle
    while True:
        job = _jobs.get()
        try:
            job.fn(*job.args)
        except BaseException:  # noqa: BLE001 - reported as an uncaught exception ends a thread; the thread stays
            traceback.print_exc()
        finally:
            with _lock:  # counted idle before it tells: the job's waiter may start the next job at once
                _idle += 1
            job.done.set()


class Job:
    """One function to run on a kept thread, like a ``threading.Thread`` that is started once."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.started = False

    def start(self) -> None:
        """Run it on an idle kept thread, or on a new one when none is idle."""
        global _idle
        if self.started:
            raise RuntimeError("a job runs once")
        self.started = True
        with _lock:
            new = not _idle
            _idle = max(0, _idle - 1)
        if new:  # started first: a job is queued only when a thread will take it
            threading.Thread(target=_loop, name="kept", daemon=True).start()
        _jobs.put(self)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until it returned (at most ``timeout`` seconds); whether it did."""
        return self.done.wait(timeout)


def run(fn: Callable[..., Any], *args: Any) -> Job:
    """Start ``fn(*args)`` on a kept thread now."""
    job = Job(fn, *args)
    job.start()
    return job
