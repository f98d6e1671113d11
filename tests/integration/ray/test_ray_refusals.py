"""What the Ray executor refuses before anything runs, without a cluster (issue 18): a template
with sidecars, initContainers or a containerSet is a located error before the execution is
written (exit 2, nothing in the store), never an AttributeError from the runner's
``executor.companion``; so is an address where no cluster listens."""

from __future__ import annotations

import pytest

from tests.conftest import Cli, template

MAIN = "  container:\n    image: busybox\n    command: [sh, -c, 'echo main ran']\n"
KINDS = {
    "sidecars": "- name: step\n  sidecars:\n  - name: db\n    image: busybox\n    command: [sleep, '30']\n" + MAIN,
    "initContainers": "- name: step\n  initContainers:\n  - name: prep\n    image: busybox\n"
                      "    command: [sh, -c, 'echo init ran']\n" + MAIN,
    "containerSet": "- name: step\n  containerSet:\n    containers:\n    - name: prep\n      image: busybox\n"
                    "      command: [sh, -c, 'echo prep ran']\n    - name: main\n      image: busybox\n"
                    "      command: [sh, -c, 'echo main ran']\n      dependencies: [prep]\n",
}


def test_templates_with_extra_containers_are_refused_before_anything_runs(cli: Cli) -> None:
    pytest.importorskip("ray")
    calls = "- name: main\n  steps:\n  - - name: s\n      template: step\n"
    for kind, body in KINDS.items():
        wf = cli.write(f"{kind}.yaml", template(f"with-{kind.lower()}", calls + body))
        # no cluster at this address: the refusal comes before connecting
        p = cli("--executor", "ray:127.0.0.1:9", "run", str(wf))
        assert p.returncode == 2, (kind, p.stdout, p.stderr)
        assert f"template 'step' has {kind}" in p.stderr and "--executor local" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and "AttributeError" not in p.stderr
    assert cli.json("executions", "list") == []  # exit 2: nothing is written
    assert not list(cli.home.rglob("attempt-*.log"))  # no step started


def test_a_wrong_address_is_a_clear_error_before_anything_is_written(cli: Cli) -> None:
    """Nothing listens at the address: a located error naming it (not Ray's minutes of retries,
    with the reaper marking a half-created execution DEAD meanwhile), exit 2, nothing in the store."""
    pytest.importorskip("ray")
    wf = cli.write("hello.yaml", template("hello", "- name: main\n" + MAIN))
    p = cli("--executor", "ray:127.0.0.1:1", "run", str(wf), timeout=60)
    assert p.returncode == 2 and "127.0.0.1:1" in p.stderr and "cannot connect" in p.stderr, p.stderr
    assert "ORCHESTRATOR_RAY_CONNECT_TIMEOUT" in p.stderr and "Traceback" not in p.stderr
    assert cli.json("executions", "list") == []
