"""Ctrl-C on a foreground ``orchestrator run`` is a stop request, not a crash (issue item 21).

A real ``orchestrator run`` in a subprocess over a home in ``tmp_path``; SIGINT is sent to it as a
terminal would. The execution must end STOPPED exactly as ``orchestrator executions stop`` ends it
(STOPPING first, ``targetStatus`` STOPPED, every step tree killed after the grace, onExit run with
``{{workflow.status}}`` = Failed), with no step process left; a second Ctrl-C kills at once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, template

TOKEN = "ORCHESTRATOR_STEP_TOKEN"

WORK = """
- name: main
  steps:
    - - {{name: nap, template: nap}}
      - {{name: stubborn, template: stubborn}}
    - - {{name: after, template: nap}}
- name: nap
  container:
    image: python:3.11
    command: [python3, -c, "import time; print('napping', flush=True); time.sleep(120)"]
    env: [{{name: INTERRUPT_MARKER, value: "{marker}"}}]
- name: stubborn
  container:
    image: python:3.11
    command:
      - python3
      - -c
      - |
        import signal, subprocess, time
        subprocess.Popen(["setsid", "python3", "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        time.sleep(120)
    env: [{{name: INTERRUPT_MARKER, value: "{marker}"}}]
- name: cleanup
  container:
    image: python:3.11
    command: [python3, -c, "import sys; print('exit handler saw', sys.argv[1])"]
    args: ["{{{{workflow.status}}}}"]
"""


def _procs_with(entry: str) -> list[int]:
    """Live (non-zombie) processes with an environment entry starting with ``entry``."""
    needle = entry.encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        if any(v.startswith(needle) for v in env.split(b"\0")):
            found.append(int(pid))
    return found


def _wait_for(what: str, fn: Callable[[], Any], timeout: float) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _db(cli: Cli, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(cli.home / "orchestrator.db", timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


class _Run:
    """``orchestrator run`` in the foreground of its own process, as a terminal would start it."""

    def __init__(self, cli: Cli, path: Path, env: dict[str, str]) -> None:
        self.err_path = cli.tmp / "run.err"
        self._err = open(self.err_path, "w")  # noqa: SIM115 - closed in close()
        self.p = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(path), "-j", "2"],
                                  cwd=cli.tmp, env={**cli.env, **env}, stdout=subprocess.DEVNULL,
                                  stderr=self._err, stdin=subprocess.DEVNULL, text=True)

    def execution_id(self) -> str:
        def find() -> str | None:
            for line in self.err_path.read_text().splitlines():
                if line.startswith("execution "):
                    return line.split()[1]
            assert self.p.poll() is None, self.err_path.read_text()
            return None
        return str(_wait_for("the execution id", find, 30))

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(10)
        self._err.close()


@pytest.fixture
def marker() -> Iterator[str]:
    value = f"interrupt-{os.getpid()}-{time.time_ns()}"
    yield value
    for pid in _procs_with(f"INTERRUPT_MARKER={value}"):  # whatever a failed test left behind
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _start(cli: Cli, marker: str, grace: str) -> tuple[_Run, str]:
    f = cli.write("work.yaml", template("interrupt-demo", WORK.format(marker=marker),
                                        spec_extra="  onExit: cleanup\n"))
    run = _Run(cli, f, {"ORCHESTRATOR_KILL_GRACE": grace})
    eid = run.execution_id()
    _wait_for("both steps and the setsid grandchild",
              lambda: len(_procs_with(f"INTERRUPT_MARKER={marker}")) >= 3, 30)
    return run, eid


def test_ctrl_c_stops_the_execution_like_executions_stop(cli: Cli, marker: str) -> None:
    run, eid = _start(cli, marker, grace="1.5")
    try:
        t_sigint = time.monotonic()
        os.kill(run.p.pid, signal.SIGINT)
        seen: list[str] = []
        while run.p.poll() is None and time.monotonic() - t_sigint < 30:
            status = _db(cli, "SELECT status FROM executions WHERE id=?", eid)[0][0]
            if not seen or seen[-1] != status:
                seen.append(status)
            time.sleep(0.02)
        code = run.p.wait(5)
        elapsed = time.monotonic() - t_sigint
        status, target, message = _db(cli, "SELECT status, target_status, status_message FROM executions "
                                            "WHERE id=?", eid)[0]
        assert status == "STOPPED", (status, message, run.err_path.read_text())
        assert "STOPPING" in seen, seen
        assert target == "STOPPED"
        assert "SIGINT" in message and "stopped" in message, message
        assert code != 0 and "Traceback" not in run.err_path.read_text(), run.err_path.read_text()
        # the stubborn step ignores SIGTERM: it was killed after the grace, not before
        assert elapsed >= 1.5, elapsed
        steps = dict(_db(cli, "SELECT node_id, state FROM steps WHERE execution_id=? AND kind='leaf'", eid))
        assert steps["nap"] == "STOPPED" and steps["stubborn"] == "STOPPED", steps
        assert steps["after"] == "OMITTED", steps
        assert steps["onExit"] == "SUCCEEDED", steps  # the handler ran, as after `executions stop`
        log = cli("logs", eid, "--step", "onExit").stdout
        assert "exit handler saw Failed" in log, log
        # no step process (nor the setsid grandchild) outlives the runner
        assert _procs_with(f"{TOKEN}={eid}-") == []
        assert _procs_with(f"INTERRUPT_MARKER={marker}") == []
    finally:
        run.close()


def test_a_second_ctrl_c_kills_at_once(cli: Cli, marker: str) -> None:
    run, eid = _start(cli, marker, grace="60")
    try:
        os.kill(run.p.pid, signal.SIGINT)
        _wait_for("STOPPING", lambda: _db(cli, "SELECT status FROM executions WHERE id=?", eid)[0][0]
                  == "STOPPING", 10)
        time.sleep(0.5)
        assert run.p.poll() is None, "the first Ctrl-C must wait for the kill grace (60 s)"
        assert _procs_with(f"INTERRUPT_MARKER={marker}"), "the stubborn step ignores SIGTERM"
        os.kill(run.p.pid, signal.SIGINT)
        run.p.wait(20)  # far less than the 60 s grace
        status, message = _db(cli, "SELECT status, status_message FROM executions WHERE id=?", eid)[0]
        assert status == "STOPPED", (status, message, run.err_path.read_text())
        assert _procs_with(f"{TOKEN}={eid}-") == [] and _procs_with(f"INTERRUPT_MARKER={marker}") == []
        states = {s for (s,) in _db(cli, "SELECT state FROM steps WHERE execution_id=?", eid)}
        assert not states & {"RUNNING", "PENDING"}, states
    finally:
        run.close()


SLOW_HANDLER = """
- name: main
  container: {image: alpine, command: ["true"]}
- name: cleanup
  container:
    image: python:3.11
    command: [python3, -c, "import sys, time; print('handler started', flush=True); time.sleep(2); print('handler done', sys.argv[1])"]
    args: ["{{workflow.status}}"]
    env: [{name: INTERRUPT_MARKER, value: "@marker@"}]
"""


def test_ctrl_c_while_the_exit_handler_runs_lets_it_finish(cli: Cli, marker: str) -> None:
    f = cli.write("handler.yaml", template("handler-demo", SLOW_HANDLER.replace("@marker@", marker),
                                           spec_extra="  onExit: cleanup\n"))
    run = _Run(cli, f, {})
    try:
        eid = run.execution_id()
        _wait_for("the exit handler", lambda: _procs_with(f"INTERRUPT_MARKER={marker}"), 30)
        os.kill(run.p.pid, signal.SIGINT)
        assert run.p.wait(30) != 0
        status, message = _db(cli, "SELECT status, status_message FROM executions WHERE id=?", eid)[0]
        assert status == "STOPPED" and "SIGINT" in message, (status, message)
        steps = dict(_db(cli, "SELECT node_id, state FROM steps WHERE execution_id=? AND kind='leaf'", eid))
        assert steps == {"main": "SUCCEEDED", "onExit": "SUCCEEDED"}, steps
        assert "handler done Succeeded" in cli("logs", eid, "--step", "onExit").stdout
    finally:
        run.close()
