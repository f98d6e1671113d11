"""Unlimited retries (``retryStrategy`` without ``limit``) at run time are bounded as Argo is by pod
creation (real runs: real step processes, a real SQLite store in tmp_path): attempts at least
``ORCHESTRATOR_RETRY_MIN_DELAY`` apart, and a final failure naming ``ORCHESTRATOR_MAX_RETRIES``
once that many retries ran — for a leaf and for a steps/dag call alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control.service import Service
from tests.conftest import template

FAIL = """\
- name: fail
  container: {image: busybox, command: [sh, -c, "exit 1"]}
"""


@pytest.fixture(autouse=True)
def _small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_RETRIES", "3")
    monkeypatch.setenv("ORCHESTRATOR_RETRY_MIN_DELAY", "0.05")


def run(tmp_path: Path, templates: str) -> tuple[str, str, Service, str]:
    path = tmp_path / "wf.yaml"
    path.write_text(template("bounds", templates))
    svc = Service(tmp_path / "home")
    plan = svc.plan(str(path), [], [])
    ex = svc.create(plan)
    status = svc.execute(ex, plan, jobs=1).value
    return status, svc.store.get_execution(svc.rg, ex.id).status_message, svc, ex.id


def test_a_leaf_retried_without_limit_stops_at_the_cap_with_the_floor_between_attempts(tmp_path: Path) -> None:
    status, message, svc, ex_id = run(tmp_path, """\
- name: main
  retryStrategy: {}
  container: {image: busybox, command: [sh, -c, "exit 1"]}
""")
    try:
        attempts = sorted((a for a in svc.store.list_attempts(svc.rg, ex_id) if a.node_id == "main"),
                          key=lambda a: a.attempt)
        step = {s.node_id: s for s in svc.store.list_steps(svc.rg, ex_id)}["main"]
    finally:
        svc.close()
    assert status == "DEAD"
    assert len(attempts) == 4  # the first run and the cap's 3 retries
    assert "ORCHESTRATOR_MAX_RETRIES" in step.message
    starts = [a.started_at for a in attempts]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(g >= floor for g, floor in zip(gaps, [0.05, 0.1, 0.2])), gaps  # started no sooner than the floor
    log = Path(attempts[0].log_path).read_text()
    assert "ORCHESTRATOR_RETRY_MIN_DELAY" in log  # the log line announcing unlimited retries says so


CALL = """\
- name: main
  steps:
  - - {name: group, template: group}
- name: group
  retryStrategy: {}
  steps:
  - - {name: f, template: fail}
"""
ENTRYPOINT = """\
- name: main
  retryStrategy: {}
  steps:
  - - {name: f, template: fail}
"""


@pytest.mark.parametrize(("templates", "leaf"), [(CALL, "group.f"), (ENTRYPOINT, "f")])
def test_a_steps_call_retried_without_limit_stops_at_the_cap(tmp_path: Path, templates: str, leaf: str) -> None:
    status, message, svc, ex_id = run(tmp_path, templates + FAIL)
    try:
        runs = [a for a in svc.store.list_attempts(svc.rg, ex_id) if a.node_id == leaf]
    finally:
        svc.close()
    assert status == "DEAD"
    assert len(runs) == 4 and "ran 4 times" in message
    assert "ORCHESTRATOR_MAX_RETRIES" in message


def test_an_explicit_limit_is_unaffected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_RETRIES", "1")
    status, message, svc, ex_id = run(tmp_path, """\
- name: main
  retryStrategy: {limit: 2}
  container: {image: busybox, command: [sh, -c, "exit 1"]}
""")
    try:
        attempts = [a for a in svc.store.list_attempts(svc.rg, ex_id) if a.node_id == "main"]
    finally:
        svc.close()
    assert status == "DEAD" and len(attempts) == 3  # the limit, not the cap of 1
    assert "ORCHESTRATOR" not in message
