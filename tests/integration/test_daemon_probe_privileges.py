"""A daemon's ``exec`` readinessProbe runs with the step's privileges only (security review finding 1).

Host executor: the probe runs inside the step's own sandbox (it reads an input artifact placed at a
path only the sandbox shows), with the step's environment (a variable of the runner's environment
is absent; the step's own variables are there). Container executor (real podman): the probe runs
inside the step's container (``podman exec``: it sees the image's filesystem, which has no
``/usr``). The Ray executor's refusal: tests/unit/run/test_daemon_probe.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.run import sandbox
from tests.conftest import Cli, template
from tests.integration import container_images as images
from tests.integration.test_argo_runtime import run

MARKER = "ORCH_TEST_RUNNER_ONLY_MARKER"


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_an_exec_probe_runs_in_the_steps_sandbox_with_the_steps_env(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if not sandbox.available()[0]:
        pytest.skip(f"no sandbox here: {sandbox.available()[1]}")
    monkeypatch.setenv(MARKER, "runner-secret")
    wf = """\
- name: main
  steps:
  - - {name: server, template: server}
  - - {name: client, template: client}
- name: server
  daemon: true
  inputs:
    artifacts: [{name: r, path: /tmp/only-in-sandbox.txt, raw: {data: "sandboxed-view"}}]
  container:
    image: busybox
    command: [sh, -c, "env > $HOME/step.env; sleep 20"]
    readinessProbe:
      exec:
        command: [sh, -c, "cat /tmp/only-in-sandbox.txt > $HOME/probe.where && env > $HOME/probe.env"]
      initialDelaySeconds: 0
      timeoutSeconds: 2
- name: client
  container: {image: busybox, command: ["true"]}
"""
    status, states, _ = run(tmp_path, wf)
    assert (status, states["server"], states["client"]) == ("COMPLETED", "SUCCEEDED", "SUCCEEDED")
    (where,) = (tmp_path / "home").rglob("probe.where")
    assert where.read_text() == "sandboxed-view"  # the step's input artifact at its declared path
    assert not Path("/tmp/only-in-sandbox.txt").exists()  # ... which is not on the host
    probe_env, step_env = _env(where.parent / "probe.env"), _env(where.parent / "step.env")
    assert MARKER not in probe_env and MARKER not in step_env
    assert probe_env["ORCHESTRATOR_STEP"] == step_env["ORCHESTRATOR_STEP"] == "server"
    assert probe_env["HOME"] == step_env["HOME"] == str(where.parent)


@pytest.mark.slow
def test_an_exec_probe_runs_inside_the_steps_container(cli: Cli, tmp_path: Path) -> None:
    busybox = images.busybox_image(tmp_path)
    wf = cli.write("probe.yaml", template("probe-in-container", f"""
        - name: main
          steps:
          - - {{name: server, template: server}}
          - - {{name: client, template: client}}
        - name: server
          daemon: true
          container:
            image: {busybox}
            command: [sleep, "20"]
            readinessProbe:
              exec:
                command: [sh, -c, "test ! -e /usr && id > $HOME/probe.id && env > $HOME/probe.env"]
              initialDelaySeconds: 0
              timeoutSeconds: 5
        - name: client
          container: {{image: {busybox}, command: ["true"]}}
    """))
    out = cli.run_json(str(wf), env={"ORCHESTRATOR_EXECUTOR": "podman", "ORCHESTRATOR_KILL_GRACE": "1",
                                     MARKER: "runner-secret"}, timeout=180)
    assert out["status"] == "COMPLETED", out  # ready: the probe saw the image (no /usr), not the host
    (env_file,) = cli.home.rglob("probe.env")
    assert MARKER not in _env(env_file)
    assert images.containers_of(out["id"]) == []

