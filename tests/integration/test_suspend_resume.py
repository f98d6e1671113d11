"""Argo ``suspend`` without a duration: the step waits until ``executions resume`` (Argo's ``argo resume``
and ``argo node set``), and its ``valueFrom.supplied`` outputs take the resume's values or Argo's defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.control.service import Service
from orchestrator.control.suspended import suspended_steps
from tests.conftest import Cli, template

APPROVAL = template("approval-flow", """
- name: main
  steps:
  - - {name: approve, template: approve}
  - - name: show
      template: show
      arguments: {parameters: [{name: v, value: "{{steps.approve.outputs.parameters.answer}}"}]}
- name: approve
  suspend: {}
  inputs: {parameters: [{name: level, default: low}]}
  outputs:
    parameters:
    - {name: answer, valueFrom: {supplied: {}}}
    - {name: level, valueFrom: {supplied: {}}}
- name: show
  inputs: {parameters: [{name: v}]}
  container: {image: alpine, command: [echo, "{{inputs.parameters.v}}"]}
""")


def _start(cli: Cli, path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``orchestrator run`` in the background; returns it and its execution id once a step is suspended."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "-q", "--json", *extra, str(path)],
                            cwd=cli.tmp, env=cli.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    known: set[str] = set()
    while time.monotonic() < deadline:
        if (cli.home / "orchestrator.db").exists():
            svc = Service(cli.home, reap=False)
            try:
                rows = [e.id for e in svc.store.list_executions(svc.rg)]
                new = [e for e in rows if e not in known and suspended_steps(svc, e)]
                if new:
                    known.update(new)
                    return proc, new[0]
            finally:
                svc.close()
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no step was suspended")


def test_a_resume_with_supplied_outputs_ends_the_suspended_step(cli: Cli) -> None:
    path = cli.write("approval.yaml", APPROVAL)
    proc, eid = _start(cli, path)
    try:
        bad = cli("executions", "resume", eid, "-o", "nope=1")  # Argo: "node is not expecting output parameter"
        assert bad.returncode != 0 and "nope" in bad.stderr and "answer" in bad.stderr
        assert cli("executions", "resume", eid, "--step", "show").returncode != 0  # not suspended
        cli("executions", "resume", eid, "--step", "approve", "-o", "answer=yes please", check=0)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out)
    assert result["status"] == "COMPLETED", err
    svc = Service(cli.home)
    try:
        rows = {s.node_id: json.loads(s.outputs or "{}") for s in svc.store.list_steps(svc.rg, eid)}
    finally:
        svc.close()
    # the value given, and for the other the default of the input parameter of the same name (Argo)
    assert rows["approve"]["parameters"] == {"answer": "yes please", "level": "low"}


def test_without_a_value_or_default_the_resumed_step_fails_and_a_stop_ends_a_wait(cli: Cli) -> None:
    path = cli.write("approval.yaml", APPROVAL)
    proc, eid = _start(cli, path)
    try:
        cli("executions", "resume", eid, check=0)  # every suspended step; 'answer' has no default
        out, _err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out)
    assert result["status"] == "DEAD" and "answer" in result["statusMessage"]
    assert {s["name"]: s["state"] for s in result["steps"]}["approve"] == "FAILED"
    proc, eid = _start(cli, path)
    try:
        cli("executions", "stop", eid, check=0)
        out, _err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out)
    assert result["status"] == "STOPPED"
    assert {s["name"]: s["state"] for s in result["steps"]}["approve"] == "STOPPED"


def test_a_deadline_cancels_a_suspended_step(cli: Cli) -> None:
    path = cli.write("late.yaml", APPROVAL.replace("spec:\n", "spec:\n  activeDeadlineSeconds: 1\n", 1))
    result = cli.run_json(str(path), check=None, env={**os.environ, "ORCHESTRATOR_HOME": str(cli.home)})
    assert result["status"] == "DEAD"
    assert {s["name"]: s["state"] for s in result["steps"]}["approve"] == "FAILED"


def test_a_failed_sibling_does_not_end_a_suspension(tmp_path: Path) -> None:
    from tests.integration.test_argo_runtime import run

    wf = """\
- name: main
  dag:
    tasks:
    - {name: boom, template: boom}
    - {name: wait, template: wait}
- name: boom
  container: {image: busybox, command: ["false"]}
- name: wait
  suspend: {duration: "1"}
"""
    status, states, _ = run(tmp_path, wf, jobs=2)
    assert (status, states) == ("DEAD", {"boom": "FAILED", "wait": "SUCCEEDED"})  # the DAG waited for it
