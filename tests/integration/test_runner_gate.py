"""A runner started before its start is committed (``Runner.gate``, what a sweep's slot hand-over
does): it starts no process until the gate opens, and none at all when the start did not commit.
Real SQLite file, real step subprocesses."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from orchestrator.control.service import Service
from orchestrator.errors import OrchestratorError
from orchestrator.model import Status
from orchestrator.plan.binding import RunPlan, bind_parameters
from orchestrator.run.runner import Runner
from tests.conftest import template

TOUCH = """
- name: main
  container:
    image: python
    command: [{python}, -c, "import sys; open(sys.argv[1], 'w').close()", "{{{{workflow.parameters.path}}}}"]
"""


def _runner(svc: Service, marker: Path) -> Runner:
    wspec, doc = svc.load_executable("touch")
    cfg = svc.store.create_configuration(svc.rg, "gate", wspec.scenario_id, wspec.executable_id,
                                         [("path", str(marker))], [])
    ex = svc.store.create_execution(svc.rg, cfg, str(svc.home / "executions"))
    runner = svc.runner(ex, RunPlan(wspec, bind_parameters(wspec, list(cfg.parameter_bindings)), document=doc), {})
    runner.begin(svc.store)
    return runner


def test_no_step_process_starts_before_the_gate_opens_nor_when_it_stays_shut(tmp_path: Path) -> None:
    path = tmp_path / "touch.yaml"
    path.write_text(template("touch", TOUCH.format(python=json.dumps(sys.executable)), params="- {name: path}"))
    svc = Service(tmp_path / "home", reap=False, local_files=True)
    svc.register([str(path)])

    opened, seen = tmp_path / "opened", []
    runner = _runner(svc, opened)

    def late() -> bool:
        time.sleep(0.3)  # the runner has prepared its step meanwhile; its process waits
        seen.append(opened.exists())
        return True

    runner.gate = late
    assert svc.run_runner(runner) == Status.COMPLETED
    assert seen == [False] and opened.exists()

    shut = tmp_path / "shut"
    runner = _runner(svc, shut)
    runner.gate = lambda: False
    with pytest.raises(OrchestratorError, match="start was not recorded"):
        runner.run()
    time.sleep(0.2)
    assert not shut.exists()
    assert svc.store.get_execution(svc.rg, runner.ex.id).status == Status.DEAD
    svc.close()
