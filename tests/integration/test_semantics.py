"""Execution semantics end to end: retries, deadlines, stop, onExit, crash recovery, step cache,
resume and rerun. Real CLI processes, real step processes, a real SQLite file in tmp_path.

Timing-sensitive tests set the env knobs (heartbeat interval/timeout, kill grace) small; the
module prints the measured deadline-to-terminal time (run pytest with ``-s`` to see it).
"""

from __future__ import annotations

import datetime
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, template

TOKEN = "ORCHESTRATOR_STEP_TOKEN"


# ---------------------------------------------------------------------- helpers
def procs_with(env_prefix: str) -> list[int]:
    """PIDs of live processes (not this one) with an environment entry starting with ``env_prefix``."""
    needle = env_prefix.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # a zombie is not a running process
        except OSError:
            continue
        if any(v.startswith(needle) for v in env.split(b"\0")):
            found.append(int(entry))
    return found


def step_procs(eid: str) -> list[int]:
    return procs_with(f"{TOKEN}={eid}-")


def wait_for(what: str, fn: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def gone_by(when: float, pids: Callable[[], list[int]], what: str) -> None:
    """Fail unless ``pids()`` is empty at the latest at epoch ``when`` (polled: no fixed wait)."""
    while True:
        left = pids()
        if not left:
            return
        if time.time() > when:
            raise AssertionError(f"{what}: {left}")
        time.sleep(0.05)


def epoch(iso: str) -> float:
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def show(cli: Cli, eid: str, **kw: Any) -> dict[str, Any]:
    return cli.json("executions", "show", eid, **kw)


def steps_of(ex: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in ex["steps"]}


def states(ex: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["state"] for s in ex["steps"]}


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Bg:
    """The CLI started in the background (stdout/stderr to files under tmp_path)."""

    count = 0

    def __init__(self, cli: Cli, *args: str, env: dict[str, str] | None = None, stderr: Any = None) -> None:
        Bg.count += 1
        self.cli = cli
        self.out_path = cli.tmp / f"bg{Bg.count}.out"
        self.err_path = cli.tmp / f"bg{Bg.count}.err"
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w") if stderr is None else None
        self.p = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=cli.tmp, text=True,
                                  env={**cli.env, **(env or {})}, stdout=self._out,
                                  stderr=self._err if stderr is None else stderr, stdin=subprocess.DEVNULL)

    def execution_id(self, timeout: float = 15) -> str:
        """The id a (non-quiet) run prints first on stderr."""
        def find() -> str | None:
            for line in self.err_path.read_text().splitlines():
                if line.startswith("execution "):
                    return line.split()[1]
            assert self.p.poll() is None, f"run ended early:\n{self.err_path.read_text()}"
            return None
        return wait_for("the execution id on stderr", find, timeout, 0.05)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.p.wait(timeout)
        finally:
            self._out.close()
            if self._err:
                self._err.close()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.wait(10)


@pytest.fixture
def bg(cli: Cli):  # type: ignore[no-untyped-def]
    """Start background runs; whatever is left is killed (with its steps) at teardown."""
    started: list[Bg] = []

    def start(*args: str, **kw: Any) -> Bg:
        b = Bg(cli, *args, **kw)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
    # steps of a run killed here (or of a failed test) would outlive it: every step has its HOME
    # in a step directory under this test's ORCHESTRATOR_HOME
    kill_pids(procs_with(f"HOME={cli.home}/"))


def wait_running(cli: Cli, eid: str, timeout: float = 15, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Until the execution is RUNNING with at least one step process alive."""
    def ok() -> dict[str, Any] | None:
        ex = show(cli, eid, env=env)
        assert ex["status"] in ("UNKNOWN", "PENDING", "RUNNING"), ex["status"]
        return ex if ex["status"] == "RUNNING" and step_procs(eid) else None
    return wait_for(f"{eid} RUNNING", ok, timeout, 0.1)


def run_id(p: subprocess.CompletedProcess[str]) -> str:
    """The execution id of a non-JSON run (first word of stdout)."""
    return p.stdout.split()[0]


# ---------------------------------------------------------------------- 1. retries
FLAKY = """
- name: main
  steps:
    - - name: flaky
        template: flaky
- name: flaky
  retryStrategy:
    limit: {limit}
    retryPolicy: {policy}
    backoff: {{duration: "{duration}", factor: 2}}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: COUNTER_DIR, value: "{counter}"}}
      - {{name: FAIL_TIMES, value: "{fail_times}"}}
    source: |
      import os, sys, time
      d = os.environ["COUNTER_DIR"]
      n = len(os.listdir(d)) + 1
      open(os.path.join(d, f"attempt-{{n}}"), "w").write(repr(time.time()))
      print(f"output of attempt number {{n}}")
      sys.exit(1 if n <= int(os.environ["FAIL_TIMES"]) else 0)
"""


def flaky(cli: Cli, name: str, *, limit: int, policy: str = "OnFailure", duration: str = "1",
          fail_times: int = 2) -> tuple[Path, Path]:
    counter = cli.tmp / f"{name}-counter"
    counter.mkdir()
    body = FLAKY.format(limit=limit, policy=policy, duration=duration, counter=counter, fail_times=fail_times)
    return cli.write(f"{name}.yaml", template(name, body)), counter


def test_retry_with_backoff_succeeds_on_third_attempt(cli: Cli) -> None:
    f, counter = flaky(cli, "retry-ok", limit=2)
    out = cli.run_json(str(f))
    assert out["status"] == "COMPLETED", out["statusMessage"]
    step = steps_of(out)["flaky"]
    assert step["state"] == "SUCCEEDED" and step["attempts"] == 3
    rows = sorted((a for a in out["attempts"] if a["step"] == "flaky"), key=lambda a: a["attempt"])
    assert [a["attempt"] for a in rows] == [1, 2, 3]
    assert [a["exitCode"] for a in rows] == [1, 1, 0]
    assert len(os.listdir(counter)) == 3
    logs = [a["log"] for a in rows]
    assert len(set(logs)) == 3, f"attempts share a log file: {logs}"
    for i, log in enumerate(logs, 1):
        text = Path(log).read_text()
        assert f"output of attempt number {i}" in text
        assert "output of attempt number" in text and text.count("output of attempt number") == 1, text
    # backoff: 1 s after the first failure, 2 s (factor 2) after the second
    gap1 = rows[1]["startedAt"] - rows[0]["finishedAt"]
    gap2 = rows[2]["startedAt"] - rows[1]["finishedAt"]
    print(f"\n[retry] backoff gaps {gap1:.2f} s, {gap2:.2f} s (expected 1 s, 2 s)")
    assert gap1 >= 1.0 and gap2 >= 2.0, (gap1, gap2)
    assert gap1 < 1.9 and gap2 < 3.5, (gap1, gap2)  # duration 1 s, factor 2: not 2 s / 4 s
    starts = [a["startedAt"] for a in rows]
    assert starts[1] - starts[0] >= 1.0 and starts[2] - starts[1] >= 2.0, starts
    # the step's own log pointer is the last attempt's
    assert step["log"] == logs[-1]


def test_retry_limit_exhausted_is_dead_after_two_attempts(cli: Cli) -> None:
    f, counter = flaky(cli, "retry-dead", limit=1, duration="0", fail_times=99)
    p = cli("run", str(f), check=1)
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD"
    assert "after 2 attempts" in ex["statusMessage"], ex["statusMessage"]
    assert "'flaky'" in ex["statusMessage"] and "exit code 1" in ex["statusMessage"]
    step = steps_of(ex)["flaky"]
    assert step["state"] == "FAILED" and step["attempts"] == 2
    assert [a["exitCode"] for a in ex["attempts"]] == [1, 1]
    assert len(os.listdir(counter)) == 2


def test_retry_policy_on_error_does_not_retry_a_plain_failure(cli: Cli) -> None:
    f, counter = flaky(cli, "retry-onerror", limit=3, policy="OnError", duration="0", fail_times=99)
    p = cli("run", str(f), check=1)
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD"
    assert steps_of(ex)["flaky"]["attempts"] == 1
    assert len(ex["attempts"]) == 1 and len(os.listdir(counter)) == 1
    assert "attempts)" not in ex["statusMessage"], ex["statusMessage"]
    # ... but it does retry an error (here: the command cannot be started)
    body = """
- name: main
  steps:
    - - {name: bad, template: bad}
- name: bad
  retryStrategy: {limit: 2, retryPolicy: OnError}
  container: {image: alpine, command: [no-such-binary-semantics]}
"""
    p = cli("run", str(cli.write("onerror.yaml", template("onerror-demo", body))), check=1)
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD" and "after 3 attempts" in ex["statusMessage"], ex["statusMessage"]
    assert [a["exitCode"] for a in ex["attempts"]] == [127, 127, 127]


# ---------------------------------------------------------------------- 2. deadlines
STUBBORN = """
- name: main
  steps:
    - - name: stubborn
        template: stubborn
- name: stubborn
  {limit}
  container:
    image: python:3.11
    command:
      - python3
      - -c
      - |
        import signal, subprocess, time
        subprocess.Popen(["setsid", "python3", "-c",
                          "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        time.sleep(60)
    env:
      - {{name: SEMANTICS_MARKER, value: "{marker}"}}
"""


def test_template_deadline_kills_sigterm_ignoring_step_and_setsid_grandchild(cli: Cli) -> None:
    marker = f"deadline-{os.getpid()}-{time.time_ns()}"
    f = cli.write("deadline.yaml", template("deadline-demo", STUBBORN.format(
        limit="activeDeadlineSeconds: 1", marker=marker)))
    grace = 3.0  # ORCHESTRATOR_KILL_GRACE default
    p = cli("run", str(f), check=1, timeout=60)
    t_end = time.time()
    ex = show(cli, run_id(p))
    try:
        assert ex["status"] == "DEAD"
        assert "activeDeadlineSeconds" in ex["statusMessage"], ex["statusMessage"]
        step = steps_of(ex)["stubborn"]
        assert step["state"] == "FAILED"
        assert "started" in Path(step["log"]).read_text()  # the setsid grandchild had been spawned
        deadline_at = step["startedAt"] + 1.0
        terminal_at = epoch(ex["completionTime"])
        took = terminal_at - deadline_at
        print(f"\n[deadline] activeDeadlineSeconds=1: terminal status {took:.2f} s after the deadline "
              f"(grace {grace:g} s)")
        assert 0 <= took <= grace + 5, took
        assert t_end - terminal_at < 5
        gone_by(terminal_at + 5, lambda: procs_with(f"SEMANTICS_MARKER={marker}"), "processes outlived the execution")
    finally:
        kill_pids(procs_with(f"SEMANTICS_MARKER={marker}"))


def test_template_timeout_names_timeout(cli: Cli) -> None:
    body = """
- name: main
  steps:
    - - {name: slow, template: slow}
- name: slow
  timeout: "1s"
  container: {image: alpine, command: [sleep, "30"]}
"""
    f = cli.write("timeout.yaml", template("timeout-demo", body))
    t0 = time.monotonic()
    p = cli("run", str(f), check=1, timeout=60)
    assert time.monotonic() - t0 < 15
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD"
    assert "timeout" in ex["statusMessage"] and "activeDeadlineSeconds" not in ex["statusMessage"], \
        ex["statusMessage"]
    assert step_procs(ex["id"]) == []


def test_template_deadline_honours_kill_grace(cli: Cli) -> None:
    marker = f"grace-{os.getpid()}-{time.time_ns()}"
    f = cli.write("grace.yaml", template("grace-demo", STUBBORN.format(
        limit="activeDeadlineSeconds: 1", marker=marker)))
    try:
        p = cli("run", str(f), check=1, timeout=60, env={"ORCHESTRATOR_KILL_GRACE": "0.5"})
        ex = show(cli, run_id(p))
        took = epoch(ex["completionTime"]) - (steps_of(ex)["stubborn"]["startedAt"] + 1.0)
        print(f"\n[deadline] with ORCHESTRATOR_KILL_GRACE=0.5: terminal {took:.2f} s after the deadline")
        assert ex["status"] == "DEAD"
        assert took <= 0.5 + 2.0, f"SIGKILL came {took:.2f} s after the deadline, grace is 0.5 s"
    finally:
        kill_pids(procs_with(f"SEMANTICS_MARKER={marker}"))


# ---------------------------------------------------------------------- 3. stop
LONG = """
- name: main
  dag:
    tasks:
      - {{name: nap, template: nap}}
      - {{name: stubborn, template: stubborn}}
      - {{name: after, template: nap, dependencies: [nap, stubborn]}}
- name: nap
  container:
    image: alpine
    command: [sleep, "60"]
    env: [{{name: SEMANTICS_MARKER, value: "{marker}"}}]
- name: stubborn
  container:
    image: python:3.11
    command: [python3, -c, "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    env: [{{name: SEMANTICS_MARKER, value: "{marker}"}}]
"""


def db_status(cli: Cli, eid: str) -> str:
    import sqlite3

    db = sqlite3.connect(cli.home / "orchestrator.db", timeout=10)
    try:
        return str(db.execute("SELECT status FROM executions WHERE id=?", (eid,)).fetchone()[0])
    finally:
        db.close()


def test_stop_running_execution(cli: Cli, bg: Callable[..., Bg]) -> None:
    marker = f"stop-{os.getpid()}-{time.time_ns()}"
    f = cli.write("long.yaml", template("long-demo", LONG.format(marker=marker)))
    env = {"ORCHESTRATOR_KILL_GRACE": "1.5"}
    run = bg("run", str(f), "-j", "2", env=env)
    eid = run.execution_id()
    try:
        wait_running(cli, eid)
        wait_for("both steps started", lambda: len(procs_with(f"SEMANTICS_MARKER={marker}")) >= 2, 10)
        # a running execution can be neither resumed nor re-run
        p = cli("executions", "resume", eid, check=2)
        assert "RUNNING" in p.stderr, p.stderr
        p = cli("executions", "rerun", eid, "--from", "nap", check=2)
        assert "RUNNING" in p.stderr, p.stderr
        stopper = bg("executions", "stop", eid)
        seen: list[str] = []
        while stopper.p.poll() is None and len(seen) < 1000:
            s = db_status(cli, eid)
            if not seen or seen[-1] != s:
                seen.append(s)
            time.sleep(0.02)
        assert stopper.wait(10) == 0, stopper.stderr()
        assert f"{eid} STOPPED" in stopper.out_path.read_text()
        seen.append(db_status(cli, eid))
        assert "STOPPING" in seen, f"statuses seen while stopping: {seen}"
        assert seen[-1] == "STOPPED", seen
        assert run.wait(20) == 1, run.stderr()
        t_end = time.time()
        ex = show(cli, eid)
        assert ex["status"] == "STOPPED" and "stopped" in ex["statusMessage"].lower()
        st = states(ex)
        assert st["nap"] == "STOPPED" and st["stubborn"] == "STOPPED", st
        assert st["after"] == "OMITTED", st
        gone_by(t_end + 5, lambda: step_procs(eid) + procs_with(f"SEMANTICS_MARKER={marker}"), "steps outlived the stop")
    finally:
        kill_pids(procs_with(f"SEMANTICS_MARKER={marker}"))


def test_stop_completed_execution_is_refused(cli: Cli) -> None:
    body = """
- name: main
  container: {image: alpine, command: ["true"]}
"""
    f = cli.write("quick.yaml", template("quick-demo", body))
    eid = cli.run_json(str(f))["id"]
    p = cli("executions", "stop", eid, check=2)
    assert "Current status COMPLETED cannot be changed" in p.stderr, p.stderr
    assert show(cli, eid)["status"] == "COMPLETED"


# ---------------------------------------------------------------------- 4. onExit
ONEXIT = """
- name: main
  steps:
    - - name: work
        template: work
        arguments:
          parameters:
            - {{name: secs, value: "{{{{workflow.parameters.secs}}}}"}}
            - {{name: code, value: "{{{{workflow.parameters.code}}}}"}}
- name: work
  inputs: {{parameters: [{{name: secs}}, {{name: code}}]}}
  container:
    image: python:3.11
    command: [python3, -c, "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))"]
    args: ["{{{{inputs.parameters.secs}}}}", "{{{{inputs.parameters.code}}}}"]
- name: cleanup
  container:
    image: python:3.11
    command: [python3, -c, "import sys; print('exit handler saw', sys.argv[1]); sys.exit({cleanup_exit})"]
    args: ["{{{{workflow.status}}}}"]
"""


def onexit_file(cli: Cli, name: str, *, cleanup_exit: int = 0) -> Path:
    return cli.write(f"{name}.yaml", template(name, ONEXIT.format(cleanup_exit=cleanup_exit),
                                              params="- name: secs\n  value: \"0\"\n- name: code\n  value: \"0\"",
                                              spec_extra="  onExit: cleanup\n"))


def handler_log(cli: Cli, eid: str) -> str:
    return cli("logs", eid, "--step", "onExit", check=0).stdout


def test_onexit_runs_after_success(cli: Cli) -> None:
    ex = cli.run_json(str(onexit_file(cli, "exit-ok")))
    assert ex["status"] == "COMPLETED"
    st = states(ex)
    assert st == {"work": "SUCCEEDED", "onExit": "SUCCEEDED"}, st
    handler = steps_of(ex)["onExit"]
    assert handler["startedAt"] >= steps_of(ex)["work"]["finishedAt"]
    assert "exit handler saw Succeeded" in handler_log(cli, ex["id"])


def test_onexit_runs_after_failure(cli: Cli) -> None:
    p = cli("run", str(onexit_file(cli, "exit-fail")), "-p", "code=4", check=1)
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD" and "exit code 4" in ex["statusMessage"], ex["statusMessage"]
    assert states(ex) == {"work": "FAILED", "onExit": "SUCCEEDED"}
    assert "exit handler saw Failed" in handler_log(cli, ex["id"])


def test_onexit_runs_after_stop(cli: Cli, bg: Callable[..., Bg]) -> None:
    run = bg("run", str(onexit_file(cli, "exit-stop")), "-p", "secs=60")
    eid = run.execution_id()
    wait_running(cli, eid)
    cli("executions", "stop", eid, check=0)
    assert run.wait(20) == 1, run.stderr()
    ex = show(cli, eid)
    assert ex["status"] == "STOPPED", ex
    st = states(ex)
    assert st["work"] == "STOPPED" and st["onExit"] == "SUCCEEDED", st
    assert "exit handler saw Failed" in handler_log(cli, eid)
    assert step_procs(eid) == []


def test_failing_onexit_makes_successful_run_dead(cli: Cli) -> None:
    p = cli("run", str(onexit_file(cli, "exit-broken", cleanup_exit=5)), check=1)
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD"
    assert ex["statusMessage"].startswith("onExit handler failed"), ex["statusMessage"]
    assert "exit code 5" in ex["statusMessage"]
    assert states(ex) == {"work": "SUCCEEDED", "onExit": "FAILED"}
    assert "exit handler saw Succeeded" in handler_log(cli, ex["id"])


def test_onexit_after_failure_is_not_served_from_the_cache_of_a_success(cli: Cli) -> None:
    """The handler's command differs only in {{workflow.status}}; it must still run after a failure."""
    f = onexit_file(cli, "exit-both")
    ok = cli.run_json(str(f))
    assert ok["status"] == "COMPLETED"
    assert "exit handler saw Succeeded" in handler_log(cli, ok["id"])
    p = cli("run", str(f), "-p", "code=4", check=1)
    ex = show(cli, run_id(p))
    assert ex["status"] == "DEAD"
    handler = steps_of(ex)["onExit"]
    assert handler["state"] == "SUCCEEDED", (handler["state"], handler["cache"])
    assert "exit handler saw Failed" in handler_log(cli, ex["id"])


# ---------------------------------------------------------------------- 5. crash recovery
HB = {"ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.5", "ORCHESTRATOR_HEARTBEAT_TIMEOUT": "3"}
HB_TIMEOUT = 3.0


def stubborn_file(cli: Cli, name: str, marker: str) -> Path:
    return cli.write(f"{name}.yaml", template(name, STUBBORN.format(limit="", marker=marker)))


def list_status(cli: Cli, eid: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``executions --json`` (a new CLI process: it runs the reaper first)."""
    rows = {e["id"]: e for e in cli.json("executions", env=env)}
    return rows[eid]


def test_killed_runner_is_reaped_and_its_steps_killed(cli: Cli, bg: Callable[..., Bg]) -> None:
    marker = f"crash-{os.getpid()}-{time.time_ns()}"
    f = stubborn_file(cli, "crash-demo", marker)
    run = bg("run", str(f), env=HB)
    eid = run.execution_id()
    try:
        wait_running(cli, eid, env=HB)
        # the step and its setsid grandchild are up
        wait_for("step and grandchild", lambda: len(procs_with(f"SEMANTICS_MARKER={marker}")) >= 2, 10)
        os.kill(run.p.pid, signal.SIGKILL)
        killed_at = time.time()
        assert run.wait(10) == -signal.SIGKILL
        # nothing has cleaned up yet: the steps run on as orphans
        assert len(step_procs(eid)) >= 2
        ex = wait_for("the reaper to mark it DEAD",
                      lambda: (lambda e: e if e["status"] == "DEAD" else None)(list_status(cli, eid, env=HB)),
                      HB_TIMEOUT + 10, 0.2)
        assert "runner lost" in ex["statusMessage"], ex["statusMessage"]
        assert epoch(ex["completionTime"]) - killed_at <= HB_TIMEOUT + 10
        gone_by(time.time() + 1.0, lambda: step_procs(eid) + procs_with(f"SEMANTICS_MARKER={marker}"),
                "steps outlived the reaping")
        assert show(cli, eid)["status"] == "DEAD"
    finally:
        kill_pids(procs_with(f"SEMANTICS_MARKER={marker}"))


def test_frozen_runner_is_reaped_after_heartbeat_timeout(cli: Cli, bg: Callable[..., Bg]) -> None:
    marker = f"frozen-{os.getpid()}-{time.time_ns()}"
    f = stubborn_file(cli, "frozen-demo", marker)
    run = bg("run", str(f), env=HB)
    eid = run.execution_id()
    try:
        wait_running(cli, eid, env=HB)
        # a live runner keeps beating: longer than the timeout later it is still RUNNING
        time.sleep(HB_TIMEOUT + 0.5)
        assert list_status(cli, eid, env=HB)["status"] == "RUNNING"
        os.kill(run.p.pid, signal.SIGSTOP)  # alive (its pid exists) but silent
        frozen_at = time.time()
        ex = wait_for("the reaper to mark it DEAD",
                      lambda: (lambda e: e if e["status"] == "DEAD" else None)(list_status(cli, eid, env=HB)),
                      HB_TIMEOUT + 10, 0.3)
        assert "runner lost" in ex["statusMessage"] and "heartbeat" in ex["statusMessage"], ex["statusMessage"]
        assert epoch(ex["completionTime"]) - frozen_at >= HB_TIMEOUT - 0.6  # not before the timeout
        time.sleep(0.5)
        assert step_procs(eid) == []
    finally:
        os.kill(run.p.pid, signal.SIGKILL)
        kill_pids(procs_with(f"SEMANTICS_MARKER={marker}"))


def test_runner_killed_before_its_first_heartbeat_is_reaped(cli: Cli, bg: Callable[..., Bg]) -> None:
    body = """
- name: main
  container: {image: alpine, command: [sleep, "60"]}
"""
    f = cli.write("early.yaml", template("early-demo", body))
    cli("init", check=0)  # the store exists (in WAL mode) before two CLIs use it at once
    # A full stderr pipe: the run blocks on its first progress line, printed right after the
    # execution row is created and before the runner starts (and sends its first heartbeat).
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    try:
        run = bg("run", str(f), env=HB, stderr=w)
        rows = wait_for("the execution row", lambda: cli.json("executions", env=HB), 15, 0.1)
        eid = rows[0]["id"]
        time.sleep(0.3)
        assert run.p.poll() is None
        ex = show(cli, eid)
        assert ex["status"] == "UNKNOWN" and ex["steps"] == [], ex
        os.kill(run.p.pid, signal.SIGKILL)
        killed_at = time.time()
        run.wait(10)
    finally:
        os.close(r)
        os.close(w)
    ex = wait_for("the reaper to mark it DEAD",
                  lambda: (lambda e: e if e["status"] == "DEAD" else None)(list_status(cli, eid, env=HB)),
                  HB_TIMEOUT + 10, 0.2)
    assert "runner lost" in ex["statusMessage"], ex["statusMessage"]
    assert epoch(ex["completionTime"]) - killed_at <= HB_TIMEOUT + 10
    assert step_procs(eid) == []


# ---------------------------------------------------------------------- 6. step cache
CHAIN = """
- name: main
  dag:
    tasks:
      - name: first
        template: first
        arguments: {{parameters: [{{name: x, value: "{{{{workflow.parameters.x}}}}"}}]}}
      - name: second
        template: second
        dependencies: [first]
        arguments: {{parameters: [{{name: y, value: "{{{{workflow.parameters.y}}}}"}}]}}
      - name: third
        template: third
        dependencies: [second]
        arguments: {{parameters: [{{name: prev, value: "{{{{tasks.second.outputs.parameters.out}}}}"}}]}}
- name: first
{meta_first}  inputs: {{parameters: [{{name: x}}]}}
  outputs: {{parameters: [{{name: out, valueFrom: {{path: /tmp/out.txt}}}}]}}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: VALUE, value: "x={{{{inputs.parameters.x}}}}"}}
      - {{name: OUT, value: "{{{{outputs.parameters.out.path}}}}"}}
      - {{name: RUNS, value: "{runs}"}}
    source: &src |
      import os, time
      open(os.path.join(os.environ["RUNS"], f"{{os.environ['ORCHESTRATOR_STEP']}}-{{time.time_ns()}}"), "w").close()
      print("value", os.environ["VALUE"])
      open(os.environ["OUT"], "w").write(os.environ["VALUE"])
- name: second
  inputs: {{parameters: [{{name: y}}]}}
  outputs: {{parameters: [{{name: out, valueFrom: {{path: /tmp/out.txt}}}}]}}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: VALUE, value: "y={{{{inputs.parameters.y}}}}"}}
      - {{name: OUT, value: "{{{{outputs.parameters.out.path}}}}"}}
      - {{name: RUNS, value: "{runs}"}}
    source: *src
- name: third
  inputs: {{parameters: [{{name: prev}}]}}
  outputs: {{parameters: [{{name: out, valueFrom: {{path: /tmp/out.txt}}}}]}}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: VALUE, value: "after {{{{inputs.parameters.prev}}}}"}}
      - {{name: OUT, value: "{{{{outputs.parameters.out.path}}}}"}}
      - {{name: RUNS, value: "{runs}"}}
    source: *src
"""


def chain_file(cli: Cli, name: str, opt_out_first: bool = False) -> tuple[Path, Path]:
    runs = cli.tmp / f"{name}-runs"
    runs.mkdir()
    meta = "  metadata:\n    annotations:\n      orchestrator/cache: \"false\"\n" if opt_out_first else ""
    body = CHAIN.format(runs=runs, meta_first=meta)
    return cli.write(f"{name}.yaml", template(name, body, params="- name: x\n  value: \"1\"\n- name: y\n  value: \"1\"")), runs


def ran(runs: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in os.listdir(runs):
        step = n.rsplit("-", 1)[0]
        out[step] = out.get(step, 0) + 1
    return out


def explain(cli: Cli, eid: str) -> dict[str, dict[str, Any]]:
    return {i["step"]: i for i in cli.json("executions", "explain", eid)}


def test_step_cache_hits_misses_and_explain(cli: Cli) -> None:
    f, runs = chain_file(cli, "cache-demo")
    one = cli.run_json(str(f))
    assert one["status"] == "COMPLETED" and set(states(one).values()) == {"SUCCEEDED"}
    assert ran(runs) == {"first": 1, "second": 1, "third": 1}

    two = cli.run_json(str(f))
    assert two["status"] == "COMPLETED"
    assert states(two) == {"first": "CACHED", "second": "CACHED", "third": "CACHED"}
    assert ran(runs) == {"first": 1, "second": 1, "third": 1}, "a cached step ran"
    why = explain(cli, two["id"])
    for step in ("first", "second", "third"):
        assert why[step]["note"].startswith("hit"), why[step]
        assert one["id"] in why[step]["note"]
    assert cli.json("executions", "show", two["id"])["status"] == "COMPLETED"

    # y changes: second re-runs, and so does third (its input is second's output); first is a hit
    three = cli.run_json(str(f), "-p", "y=2")
    assert states(three) == {"first": "CACHED", "second": "SUCCEEDED", "third": "SUCCEEDED"}
    assert ran(runs) == {"first": 1, "second": 2, "third": 2}
    assert "after y=2" in cli("logs", three["id"], "--step", "third").stdout
    why = explain(cli, three["id"])
    assert why["first"]["note"].startswith("hit")
    assert why["second"]["note"].startswith("miss") and "parameters.y" in why["second"]["note"], why["second"]
    assert "'1' → '2'" in why["second"]["note"], why["second"]
    assert any("parameters.y" in c for c in why["second"]["changes"])
    assert "x" not in " ".join(why["second"]["changes"]).replace("prev", "")
    assert why["third"]["note"].startswith("miss") and "parameters.prev" in why["third"]["note"], why["third"]

    # --no-cache runs everything again
    four = cli.run_json(str(f), "-p", "y=2", "--no-cache")
    assert set(states(four).values()) == {"SUCCEEDED"}
    assert ran(runs) == {"first": 2, "second": 3, "third": 3}
    assert all("--no-cache" in i["note"] for i in explain(cli, four["id"]).values())


def test_cache_annotation_false_disables_it_for_that_template(cli: Cli) -> None:
    f, runs = chain_file(cli, "optout-demo", opt_out_first=True)
    assert cli.run_json(str(f))["status"] == "COMPLETED"
    two = cli.run_json(str(f))
    assert two["status"] == "COMPLETED"
    assert states(two) == {"first": "SUCCEEDED", "second": "CACHED", "third": "CACHED"}
    assert ran(runs) == {"first": 2, "second": 1, "third": 1}
    assert "orchestrator/cache" in explain(cli, two["id"])["first"]["note"]


ARTS = """
- name: main
  dag:
    tasks:
      - name: produce
        template: produce
        arguments: {parameters: [{name: text, value: "{{workflow.parameters.text}}"}]}
      - name: consume
        template: consume
        dependencies: [produce]
        arguments:
          artifacts:
            - {name: data, from: "{{tasks.produce.outputs.artifacts.data}}"}
- name: produce
  inputs: {parameters: [{name: text}]}
  outputs:
    artifacts:
      - {name: data, path: /app/data/}
      - {name: model, globalName: semantics-model, path: /app/model/}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {name: TEXT, value: "{{inputs.parameters.text}}"}
      - {name: DATA, value: "{{outputs.artifacts.data.path}}"}
      - {name: MODEL, value: "{{outputs.artifacts.model.path}}"}
    source: |
      import os
      open(os.path.join(os.environ["DATA"], "payload.txt"), "w").write("payload:" + os.environ["TEXT"])
      open(os.path.join(os.environ["MODEL"], "weights.txt"), "w").write("weights:" + os.environ["TEXT"])
- name: consume
  metadata:
    annotations: {orchestrator/cache: "false"}
  inputs:
    artifacts: [{name: data, path: /app/in/}]
  script:
    image: python:3.11
    command: [python3]
    env: [{name: IN, value: "{{inputs.artifacts.data.path}}"}]
    source: |
      import os
      print("consumed", open(os.path.join(os.environ["IN"], "payload.txt")).read())
"""


def test_cached_outputs_still_flow_and_global_outputs_are_registered(cli: Cli) -> None:
    f = cli.write("arts.yaml", template("arts-demo", ARTS, params="- name: text\n  value: hello"))
    one = cli.run_json(str(f))
    assert one["status"] == "COMPLETED", one["statusMessage"]
    assert "consumed payload:hello" in cli("logs", one["id"], "--step", "consume").stdout
    two = cli.run_json(str(f))
    assert two["status"] == "COMPLETED", two["statusMessage"]
    assert states(two) == {"produce": "CACHED", "consume": "SUCCEEDED"}
    assert "consumed payload:hello" in cli("logs", two["id"], "--step", "consume").stdout
    arts = {a["name"]: a for a in two["outputArtifacts"]}
    assert "semantics-model" in arts, two["outputArtifacts"]
    listed = cli.json("artifacts", "--execution", two["id"])
    assert [a["name"] for a in listed] == ["semantics-model"]
    shown = cli.json("artifacts", "show", listed[0]["id"])
    assert shown["executionId"] == two["id"]
    assert (Path(shown["localPath"]) / "weights.txt").read_text() == "weights:hello"
    first = {a["name"]: a for a in one["outputArtifacts"]}["semantics-model"]
    assert arts["semantics-model"]["digest"] == first["digest"]


# ---------------------------------------------------------------------- 7. resume and rerun
GATED = """
- name: main
  steps:
    - - name: s1
        template: work
        arguments: {{parameters: [{{name: label, value: one}}]}}
    - - name: s2
        template: gate
    - - name: s3
        template: work
        arguments: {{parameters: [{{name: label, value: "three after {{{{steps.s1.outputs.parameters.out}}}}"}}]}}
- name: work
  inputs: {{parameters: [{{name: label}}]}}
  outputs: {{parameters: [{{name: out, valueFrom: {{path: /tmp/out.txt}}}}]}}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: LABEL, value: "{{{{inputs.parameters.label}}}}"}}
      - {{name: OUT, value: "{{{{outputs.parameters.out.path}}}}"}}
      - {{name: RUNS, value: "{runs}"}}
    source: |
      import os, time
      open(os.path.join(os.environ["RUNS"], f"{{os.environ['ORCHESTRATOR_STEP']}}-{{time.time_ns()}}"), "w").close()
      print("label", os.environ["LABEL"])
      open(os.environ["OUT"], "w").write(os.environ["LABEL"] + "!")
- name: gate
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: FLAG, value: "{flag}"}}
      - {{name: RUNS, value: "{runs}"}}
    source: |
      import os, sys, time
      open(os.path.join(os.environ["RUNS"], f"{{os.environ['ORCHESTRATOR_STEP']}}-{{time.time_ns()}}"), "w").close()
      if os.path.exists(os.environ["FLAG"]):
          print("gate closed")
          sys.exit(7)
      print("gate open")
"""


def test_resume_reuses_completed_steps_and_rerun_from_a_step(cli: Cli) -> None:
    runs, flag = cli.tmp / "gated-runs", cli.tmp / "gate.flag"
    runs.mkdir()
    flag.write_text("closed")
    f = cli.write("gated.yaml", template("gated-demo", GATED.format(runs=runs, flag=flag)))
    p = cli("run", str(f), check=1)
    dead = run_id(p)
    assert f"orchestrator executions resume {dead}" in p.stderr, p.stderr
    before = show(cli, dead)
    assert before["status"] == "DEAD" and "'s2'" in before["statusMessage"] and "exit code 7" in before["statusMessage"]
    assert states(before) == {"s1": "SUCCEEDED", "s2": "FAILED", "s3": "OMITTED"}
    assert ran(runs) == {"s1": 1, "s2": 1}

    flag.unlink()
    resumed = cli.json("executions", "resume", dead, "--no-cache", "-q")
    assert resumed["id"] != dead and resumed["parentExecutionId"] == dead
    assert resumed["status"] == "COMPLETED", resumed["statusMessage"]
    assert states(resumed) == {"s1": "CACHED", "s2": "SUCCEEDED", "s3": "SUCCEEDED"}
    assert steps_of(resumed)["s1"]["cache"] == f"reused from execution {dead}"
    assert ran(runs) == {"s1": 1, "s2": 2, "s3": 1}, "resume re-ran a completed step"
    assert "label three after one!" in cli("logs", resumed["id"], "--step", "s3").stdout
    after = show(cli, dead)
    assert after["status"] == "DEAD" and after["statusMessage"] == before["statusMessage"]
    assert after["steps"] == before["steps"] and after["attempts"] == before["attempts"]

    rerun = cli.json("executions", "rerun", resumed["id"], "--from", "s2", "--no-cache", "-q")
    assert rerun["parentExecutionId"] == resumed["id"] and rerun["status"] == "COMPLETED"
    assert states(rerun) == {"s1": "CACHED", "s2": "SUCCEEDED", "s3": "SUCCEEDED"}
    assert steps_of(rerun)["s1"]["cache"] == f"reused from execution {resumed['id']}"
    assert ran(runs) == {"s1": 1, "s2": 3, "s3": 2}
    assert "label three after one!" in cli("logs", rerun["id"], "--step", "s3").stdout

    p = cli("executions", "rerun", rerun["id"], "--from", "s9", check=2)
    assert "s9" in p.stderr and "s1, s2, s3" in p.stderr, p.stderr
    assert ran(runs) == {"s1": 1, "s2": 3, "s3": 2}


def test_reaped_execution_has_no_running_steps(cli: Cli, bg: Callable[..., Bg]) -> None:
    body = """
- name: main
  container: {image: alpine, command: [sleep, "60"]}
"""
    f = cli.write("orphan.yaml", template("orphan-demo", body))
    run = bg("run", str(f), env=HB)
    eid = run.execution_id()
    wait_running(cli, eid, env=HB)
    os.kill(run.p.pid, signal.SIGKILL)
    run.wait(10)
    assert list_status(cli, eid, env=HB)["status"] == "DEAD"
    assert step_procs(eid) == []
    ex = show(cli, eid)
    assert ex["status"] == "DEAD"
    assert all(s["state"] not in ("RUNNING", "PENDING") for s in ex["steps"]), states(ex)


# ---------------------------------------------------------------------- concurrent CLIs
def test_cli_waits_for_a_busy_fresh_store_instead_of_failing(cli: Cli) -> None:
    import sqlite3
    import threading

    cli.home.mkdir()
    db = sqlite3.connect(cli.home / "orchestrator.db", isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")  # another process is writing the brand-new store
    db.execute("CREATE TABLE IF NOT EXISTS other_writer(x)")
    release = threading.Timer(1.0, lambda: (db.execute("COMMIT"), db.close()))
    release.start()
    try:
        p = cli("executions", "--json")
    finally:
        release.join()
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


@pytest.mark.regression("an ending runner left SIGTERM-ignoring steps alive (SIGKILL was due in a daemon thread)")
@pytest.mark.parametrize("how", ["ended-elsewhere", "sigint"])
def test_a_runner_that_gives_up_kills_every_step_before_it_exits(cli: Cli, bg: Callable[..., Bg], how: str) -> None:
    marker = f"giveup-{how}-{os.getpid()}-{time.time_ns()}"
    f = stubborn_file(cli, f"giveup-{how}", marker)
    run = bg("run", str(f), env=HB)
    eid = run.execution_id()
    try:
        wait_running(cli, eid, env=HB)
        wait_for("step and grandchild", lambda: len(procs_with(f"SEMANTICS_MARKER={marker}")) >= 2, 10)
        if how == "ended-elsewhere":  # e.g. reaped while it was frozen: it must not let its steps run on
            db = sqlite3.connect(cli.home / "orchestrator.db", timeout=30)
            with db:
                db.execute("UPDATE executions SET status='DEAD', status_message='ended elsewhere' WHERE id=?", (eid,))
            db.close()
        else:  # Ctrl-C on `orchestrator run`
            os.kill(run.p.pid, signal.SIGINT)
        code = run.wait(15)
        assert code != 0
        # nothing is left to a delayed kill: gone within 0.5 s of the runner's exit
        gone_by(time.time() + 0.5, lambda: procs_with(f"SEMANTICS_MARKER={marker}") + step_procs(eid),
                "steps outlived the runner")
        ex = show(cli, eid)
        assert ex["status"] == ("STOPPED" if how == "sigint" else "DEAD"), ex
        if how == "sigint":
            assert code == 130 and "interrupted" in ex["statusMessage"], ex["statusMessage"]
            assert all(s["state"] not in ("RUNNING", "PENDING") for s in ex["steps"]), ex["steps"]
    finally:
        kill_pids(procs_with(f"SEMANTICS_MARKER={marker}"))
