"""The threads and the pipe that bring a Ray step's stream to the runner's loop.

Owns: :class:`Wake` — the write end of a step's wake-up pipe, which Ray's own thread calls when
the object the runner waits for exists (the runner's loop then reads the stream itself, see
:meth:`orchestrator.run.ray_step.RayStep.read`), and :class:`Relays` — the reused threads that
read a stream where that is not possible (Ray Client, or a Ray without the callbacks) and write
its log to the pipe. No ``ray`` import here.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any


class Wake:
    """The write end of a step's wake-up pipe, called back by Ray's own thread when an object the
    runner waits for exists; a call after :meth:`close` does nothing (the descriptor may be reused)."""

    def __init__(self, w: int) -> None:
        self.w = w
        self.lock = threading.Lock()

    def __call__(self, *_exc: Any) -> None:
        with self.lock:
            if self.w >= 0:
                try:
                    os.write(self.w, b"x")
                except OSError:
                    pass  # full: a wake-up is pending anyway

    def close(self) -> None:
        with self.lock:
            w, self.w = self.w, -1
        if w >= 0:
            os.close(w)


class Relays:
    """The threads that relay the streams of running steps, reused: a step takes an idle one (a
    new thread costs ~0.15 ms of the step's round trip), or starts one when none is idle; a thread
    idle for IDLE seconds ends."""

    IDLE = 30.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle = 0
        self.jobs: queue.SimpleQueue[tuple[Callable[[int], None], int]] = queue.SimpleQueue()

    def run(self, fn: Callable[[int], None], arg: int) -> None:
        with self.lock:
            if self.idle:
                self.idle -= 1
                self.jobs.put((fn, arg))
                return
        threading.Thread(target=self._loop, args=(fn, arg), name="ray-relay", daemon=True).start()

    def _loop(self, fn: Callable[[int], None], arg: int) -> None:
        while True:
            fn(arg)
            with self.lock:
                self.idle += 1
            try:
                fn, arg = self.jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self.lock:  # a job handed over while the wait timed out is still ours
                    try:
                        fn, arg = self.jobs.get_nowait()
                    except queue.Empty:
                        self.idle -= 1
                        return
