"""Argo's retry semantics for steps that die by a signal (issue item 23), through the real CLI.

To Argo a container that crashes with SIGSEGV exits 139 and is a *failed* main container, so the
default ``retryPolicy: OnFailure`` retries it (and ``OnError`` does not). Messages name the signal
(``killed by SIGSEGV (signal 11)``), never ``exit code -11``. A step the runner killed itself (a
template deadline) is not a failure to retry (Argo #3244).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Cli, template

CRASHY = """
- name: main
  steps:
    - - {{name: crashy, template: crashy}}
- name: crashy
  retryStrategy: {{limit: {limit}{policy}}}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {{name: COUNTER_DIR, value: "{counter}"}}
      - {{name: CRASHES, value: "{crashes}"}}
    source: |
      import ctypes, os, resource, sys
      resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
      d = os.environ["COUNTER_DIR"]
      n = len(os.listdir(d)) + 1
      open(os.path.join(d, f"attempt-{{n}}"), "w").close()
      print(f"attempt {{n}}", flush=True)
      if n <= int(os.environ["CRASHES"]):
          {crash}
"""
SEGV = "ctypes.string_at(0)  # a real segmentation fault"
ABORT = "os.abort()"


def _crashy(cli: Cli, name: str, *, limit: int, crashes: int, crash: str = SEGV, policy: str = "") -> tuple[Path, Path]:
    counter = cli.tmp / f"{name}-counter"
    counter.mkdir()
    body = CRASHY.format(limit=limit, policy=f", retryPolicy: {policy}" if policy else "", counter=counter,
                         crashes=crashes, crash=crash)
    return cli.write(f"{name}.yaml", template(name, body)), counter


def _run(cli: Cli, path: Path) -> dict[str, Any]:
    p = cli("run", "-q", "--json", str(path))
    assert p.returncode in (0, 1), p.stderr
    return dict(json.loads(p.stdout))


def test_on_failure_retries_a_step_that_crashed_with_sigsegv(cli: Cli) -> None:
    f, counter = _crashy(cli, "segv-once", limit=2, crashes=1)  # retryPolicy: the default, OnFailure
    ex = _run(cli, f)
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    assert len(list(counter.iterdir())) == 2
    first, second = ex["attempts"]
    assert first["exitCode"] == -11 and second["exitCode"] == 0
    assert "killed by SIGSEGV (signal 11)" in first["message"], first["message"]
    assert "exit code -11" not in first["message"]


def test_a_signal_death_is_named_in_the_dead_message(cli: Cli) -> None:
    f, counter = _crashy(cli, "abort-always", limit=1, crashes=99, crash=ABORT)
    ex = _run(cli, f)
    assert ex["status"] == "DEAD"
    assert len(list(counter.iterdir())) == 2
    msg = ex["statusMessage"]
    assert "step 'crashy' was killed by SIGABRT (signal 6) (after 2 attempts)" in msg, msg
    assert "exit code" not in msg, msg


def test_on_error_does_not_retry_a_signal_death(cli: Cli) -> None:
    f, counter = _crashy(cli, "segv-onerror", limit=2, crashes=99, policy="OnError")
    ex = _run(cli, f)
    assert ex["status"] == "DEAD" and len(list(counter.iterdir())) == 1, ex["statusMessage"]
    assert "killed by SIGSEGV (signal 11)" in ex["statusMessage"]


def test_a_step_killed_by_its_deadline_is_not_retried(cli: Cli) -> None:
    body = """
- name: main
  steps:
    - - {name: slow, template: slow}
- name: slow
  activeDeadlineSeconds: 1
  retryStrategy: {limit: 3, retryPolicy: Always}
  container:
    image: python:3.11
    command: [python3, -c, "import time; time.sleep(60)"]
"""
    ex = _run(cli, cli.write("deadline-retry.yaml", template("deadline-retry", body)))
    assert ex["status"] == "DEAD"
    assert "activeDeadlineSeconds (1 s) exceeded" in ex["statusMessage"], ex["statusMessage"]
    assert len(ex["attempts"]) == 1, ex["attempts"]
