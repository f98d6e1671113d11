"""The container executor with real podman containers (issue 13).

Covered: an AI Core template whose code lives only in its image (``/app/src/main.py`` reading
``/app/data``, writing ``/app/model``, logging a metric from inside); a script template; a
deadline and a stop killing the container; kill -9 of the runner, then the reaper removing the
labelled container; a missing image failing the step with the engine's reason; a GPU plan
refused before the run. Docker is tested where a daemon is reachable (skipped with the reason
otherwise). Images: :mod:`tests.integration.container_images`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, template
from tests.integration import container_images as images

pytestmark = pytest.mark.slow
PODMAN = {"ORCHESTRATOR_EXECUTOR": "podman", "ORCHESTRATOR_KILL_GRACE": "1"}


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> str:
    return images.busybox_image(tmp_path_factory.mktemp("bb"))


def _one(image: str, body: str, extra: str = "", labels: str = "") -> str:
    meta = f"  metadata:\n    labels:\n{labels}" if labels else ""
    return f"""
- name: main
{meta}{extra}  container:
    image: {image}
{body}"""


def test_aicore_template_runs_code_that_lives_only_in_its_image(cli: Cli, tmp_path: Path) -> None:
    app = images.app_image(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("a\nb\nc\n")
    wf = cli.write("train.yaml", template("train-in-image", f"""
        - name: main
          metadata:
            labels:
              ai.sap.com/resourcePlan: starter
          inputs:
            artifacts:
            - name: data
              path: /app/data
          outputs:
            artifacts:
            - name: model
              path: /app/model
              globalName: model
          container:
            image: {app}
            command: ["python3", "/app/src/main.py"]
    """))
    out = cli.run_json(str(wf), "--artifact", f"data={data}", env=PODMAN)
    assert out["status"] == "COMPLETED", out
    eid = out["id"]
    assert not (Path(__file__).parent / "app").exists()  # the code was never on the host
    art = cli.json("artifacts", "list")
    model = [a for a in art if a["name"] == "model"][0]
    path = Path(cli.json("artifacts", "show", model["id"])["localPath"])
    got = json.loads((path / "model.json").read_text())
    assert got["rows"] == 3 and got["python"].startswith("3.")
    logs = cli("logs", eid, check=0).stdout
    assert "trained on 3 rows in PRETTY_NAME=\"Debian GNU/Linux 12" in logs
    metrics = cli.json("metrics", eid)
    assert any(m["name"] == "rows" and float(str(m["value"])) == 3 for m in _points(metrics)), metrics
    assert images.containers_of(eid) == []  # removed afterwards


def test_mlflow_endpoint_is_reachable_from_inside_the_container(cli: Cli, tmp_path: Path) -> None:
    """The runner's loopback MLflow endpoint, through the engine's host-loopback gateway; the step
    uses nothing but the standard library and the MLFLOW_* variables (no mlflow in the image)."""
    py = images.python_image(tmp_path)
    wf = cli.write("ml.yaml", template("mlflow-inside", f"""
        - name: main
          script:
            image: {py}
            command: [python3]
            source: |
              import json, os, urllib.request
              body = {{"run_id": os.environ["MLFLOW_RUN_ID"], "key": "inside", "value": 7,
                      "timestamp": 0, "step": 0}}
              req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
                                           data=json.dumps(body).encode(), headers={{
                  "Content-Type": "application/json",
                  "Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]}})
              print("mlflow", urllib.request.urlopen(req, timeout=30).status, os.environ["MLFLOW_TRACKING_URI"])
    """))
    out = cli.run_json(str(wf), env=PODMAN)
    assert out["status"] == "COMPLETED", out
    assert "mlflow 200" in cli("logs", out["id"], check=0).stdout
    metrics = cli.json("metrics", out["id"])
    assert any(m["name"] == "inside" and float(str(m["value"])) == 7 for m in _points(metrics)), metrics


def _points(metrics: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if "name" in x and "value" in x:
                found.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(metrics)
    return found


def test_script_outputs_and_security_context(cli: Cli, busybox: str) -> None:
    wf = cli.write("s.yaml", template("script-in-image", f"""
        - name: main
          outputs:
            parameters:
            - name: who
              valueFrom:
                path: /tmp/who.txt
            artifacts:
            - name: conf
              path: /app/etc/team.conf
              globalName: conf
          script:
            image: {busybox}
            command: [sh]
            securityContext:
              runAsUser: 1234
            env:
            - name: GREETING
              value: hello
            source: |
              id -u > /tmp/who.txt
              mkdir -p /app/etc && echo "team=$GREETING" > /app/etc/team.conf || echo "cannot write"
              echo "$GREETING from $(cat /etc/hostname)"
              test ! -e /var/run/docker.sock && test ! -e /run/podman/podman.sock && echo no-socket
    """))
    out = cli.run_json(str(wf), env=PODMAN)
    assert out["status"] == "COMPLETED", out
    steps = cli.json("executions", "show", out["id"])["steps"]
    main = [s for s in steps if s["name"] == "main"][0] if isinstance(steps, list) else steps["main"]
    log = next(v for v in main.values() if isinstance(v, str) and v.endswith("attempt-1.log"))
    assert (Path(log).parent / "fs" / "tmp" / "who.txt").read_text().strip() == "1234"  # runAsUser
    conf = next(a for a in cli.json("artifacts", "list") if a["name"] == "conf")
    local = Path(cli.json("artifacts", "show", conf["id"])["localPath"])
    local = local / "team.conf" if local.is_dir() else local
    assert local.read_text() == "team=hello\n"  # copied out of the container, /app not mounted over
    logs = cli("logs", out["id"], check=0).stdout
    assert "hello from" in logs and "no-socket" in logs
    assert os.uname().nodename not in logs.split("hello from", 1)[1].split("\n", 1)[0]


def test_deadline_kills_the_container(cli: Cli, busybox: str) -> None:
    wf = cli.write("d.yaml", template("deadline", f"""
        - name: main
          activeDeadlineSeconds: 2
          container:
            image: {busybox}
            command: [sleep, "300"]
    """))
    t0 = time.monotonic()
    out = cli.run_json(str(wf), check=None, env=PODMAN)
    assert out["status"] == "DEAD", out
    assert time.monotonic() - t0 < 60  # not the 300 s of the step
    shown = json.dumps(cli.json("executions", "show", out["id"]))
    assert "activeDeadlineSeconds" in shown
    assert images.containers_of(out["id"]) == []


def test_a_memory_limit_kills_the_step_and_says_why(cli: Cli, busybox: str) -> None:
    wf = cli.write("oom.yaml", template("memory-limit", f"""
        - name: main
          container:
            image: {busybox}
            command: [busybox, dd, if=/dev/zero, of=/dev/null, bs=64M, count=1]
            resources:
              limits:
                memory: 16Mi
    """))
    out = cli.run_json(str(wf), check=None, env=PODMAN)
    assert out["status"] == "DEAD", out
    shown = json.dumps(cli.json("executions", "show", out["id"]))
    assert "exit code 137" in shown and "memory limit 16 MiB" in shown


def _start(cli: Cli, wf: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "-q", str(wf)], cwd=cli.tmp, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**cli.env, **PODMAN})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = cli.json("executions", "list") if (cli.home / "store.db").exists() or cli.home.exists() else []
        if rows and images.containers_of(rows[0]["id"]):
            return proc, rows[0]["id"]
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("the container did not start")


def _sleeper(cli: Cli, name: str, busybox: str) -> Path:
    return cli.write(f"{name}.yaml", template(name, f"""
        - name: main
          container:
            image: {busybox}
            command: [sleep, "300"]
    """))


def test_stop_stops_the_container(cli: Cli, busybox: str) -> None:
    proc, eid = _start(cli, _sleeper(cli, "stopme", busybox))
    try:
        cli("executions", "stop", eid, check=0)
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    assert cli.json("executions", "show", eid)["status"] == "STOPPED"
    assert images.containers_of(eid) == []


def test_kill_9_of_the_runner_then_the_reaper_removes_the_container(cli: Cli, busybox: str) -> None:
    proc, eid = _start(cli, _sleeper(cli, "killme", busybox))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert images.containers_of(eid)  # the runner is gone, its container is not
    cli("executions", "list", check=0)  # every CLI start reaps
    assert cli.json("executions", "show", eid)["status"] == "DEAD"
    assert images.containers_of(eid) == []


@pytest.mark.parametrize("policy", ["IfNotPresent", "Never"])
def test_a_missing_image_fails_the_step_with_the_engines_reason(cli: Cli, policy: str) -> None:
    images.require_podman()
    wf = cli.write("m.yaml", template("missing-image", f"""
        - name: main
          container:
            image: localhost/orchestrator-test-does-not-exist:{policy.lower()}
            imagePullPolicy: {policy}
            command: ["true"]
    """))
    out = cli.run_json(str(wf), check=None, env=PODMAN)
    assert out["status"] == "DEAD", out
    msg = json.dumps(cli.json("executions", "show", out["id"]))
    assert "container engine could not run the step" in msg
    assert "does-not-exist" in msg


def test_image_pull_secrets_resolve_to_registry_secrets(cli: Cli, busybox: str, tmp_path: Path) -> None:
    wf = cli.write("ps.yaml", template("pull-secrets", f"""
        - name: main
          container:
            image: {busybox}
            command: ["true"]
    """, spec_extra="  imagePullSecrets:\n  - name: team-registry\n"))
    p = cli("run", str(wf), env=PODMAN)
    assert p.returncode != 0 and "team-registry" in p.stderr  # refused before any step: no such secret
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"registry.example.com": {"auth": "cm9ib3Q6c2VjcmV0"}}}))
    cli("registry-secrets", "create", "team-registry", "--from-file", str(cfg), check=0)
    out = cli.run_json(str(wf), env=PODMAN)
    assert out["status"] == "COMPLETED", out
    workdir = next(p for p in (cli.home / "executions").iterdir() if p.name == out["id"])
    assert not (workdir / "registry-auth").exists()  # the credentials live only while the run does


def test_a_gpu_plan_is_refused_before_the_run(cli: Cli) -> None:
    images.require_podman()
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has a GPU")
    wf = cli.write("g.yaml", template("gpu-plan", """
        - name: main
          metadata:
            labels:
              ai.sap.com/resourcePlan: infer.s
          container:
            image: localhost/anything:1
            command: ["true"]
    """))
    p = cli("run", str(wf), env=PODMAN)
    assert p.returncode != 0
    assert "GPU" in p.stderr and "infer.s" in p.stderr
    rows = cli.json("executions", "list")
    assert rows[0]["status"] == "DEAD" and not images.containers_of(rows[0]["id"])


def _server_with(tmp_path: Path, name: str, text: str, executable: str, scenario: str,
                 env: dict[str, str]) -> tuple[Any, str]:
    """A real server (as `orchestrator --executor podman serve`) and a configuration of ``executable``."""
    from tests.integration.conftest import ApiServer

    wfs = tmp_path / "workflows"
    wfs.mkdir()
    (wfs / name).write_text(text)
    srv = ApiServer(tmp_path, "--workflows", str(wfs), env=env)
    s, _, cfg = srv.call("POST", "/v2/lm/configurations", {"name": "c", "scenarioId": scenario,
                                                           "executableId": executable})
    if s != 201:
        srv.stop()
        raise AssertionError(cfg)
    return srv, cfg["id"]


def test_executions_the_server_starts_run_in_containers(tmp_path: Path, busybox: str) -> None:
    srv, cfg_id = _server_with(tmp_path, "hello.yaml", template("server-ctr", f"""
        - name: main
          container:
            image: {busybox}
            command: [sh, -c, "echo inside $(cat /etc/hostname)"]
    """), "server-ctr", "test-scenario", PODMAN)
    try:
        s, _, ex = srv.call("POST", "/v2/lm/executions", {"configurationId": cfg_id})
        assert s == 202, ex
        deadline, status = time.monotonic() + 60, ""
        while time.monotonic() < deadline and status not in ("COMPLETED", "DEAD"):
            status = srv.call("GET", f"/v2/lm/executions/{ex['id']}?$select=status")[2]["status"]
            time.sleep(0.2)
        assert status == "COMPLETED", srv.call("GET", f"/v2/lm/executions/{ex['id']}")[2]
        logs = srv.call("GET", f"/v2/lm/executions/{ex['id']}/logs")[2]["data"]["result"]
        line = next(x["msg"] for x in logs if "inside" in x["msg"])
        assert os.uname().nodename not in line  # the container's hostname, not this machine's
        assert images.containers_of(ex["id"]) == []
    finally:
        srv.stop()


SERVING = """\
apiVersion: ai.sap.com/v1alpha1
kind: ServingTemplate
metadata:
  name: own-image-server
  annotations:
    scenarios.ai.sap.com/name: "own"
    executables.ai.sap.com/name: "own-image-server"
  labels:
    scenarios.ai.sap.com/id: "own-image"
    ai.sap.com/version: "1"
spec:
  template:
    apiVersion: "serving.kserve.io/v1beta1"
    metadata:
      labels: |
        ai.sap.com/resourcePlan: starter
    spec: |
      predictor:
        containers:
        - name: kserve-container
          image: IMAGE
          command: ["python3", "-c"]
          args:
          - |
            import http.server, os
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = ("served from " + open("/etc/hostname").read().strip() + " on " + os.environ["PORT"]).encode()
                    self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
                    self.wfile.write(body)
            http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
          ports:
          - containerPort: 8080
"""


def test_a_deployments_own_image_serves_from_a_container(tmp_path: Path) -> None:
    py = images.python_image(tmp_path)
    srv, cfg_id = _server_with(tmp_path, "serve.yaml", SERVING.replace("IMAGE", py), "own-image-server", "own-image",
                               {**PODMAN, "ORCHESTRATOR_DEPLOY_READY_TIMEOUT": "30"})
    try:
        s, _, dep = srv.call("POST", "/v2/lm/deployments", {"configurationId": cfg_id})
        assert s == 202, dep
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            d = srv.call("GET", f"/v2/lm/deployments/{dep['id']}")[2]
            assert d["status"] != "DEAD", (d, srv.output()[-2000:])
            if d["status"] == "RUNNING":
                code, _, body = srv.call("GET", f"/v2/inference/deployments/{dep['id']}/anything")
                if code == 200:
                    break
            time.sleep(0.3)
        assert body is not None and b"served from" in body and b"on 8080" in body, body  # KServe's port inside
        assert os.uname().nodename.encode() not in body
        assert srv.call("PATCH", f"/v2/lm/deployments/{dep['id']}", {"targetStatus": "STOPPED"})[0] == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.call("GET", f"/v2/lm/deployments/{dep['id']}")[2]["status"] != \
                "STOPPED":
            time.sleep(0.3)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and images.podman(
                "ps", "-aq", "--filter", f"label=orchestrator.deployment={dep['id']}").stdout.split():
            time.sleep(0.3)
        assert not images.podman("ps", "-aq", "--filter", f"label=orchestrator.deployment={dep['id']}").stdout.split()
    finally:
        srv.stop()


def test_docker_where_a_daemon_is_reachable(cli: Cli) -> None:
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker daemon reachable here (docker CLI without a socket)")
    wf = cli.write("dk.yaml", template("docker", """
        - name: main
          container:
            image: busybox:latest
            imagePullPolicy: Never
            command: [sh, -c, "echo from-docker"]
    """))
    out = cli.run_json(str(wf), check=None, env={"ORCHESTRATOR_EXECUTOR": "docker"})
    if out["status"] != "COMPLETED":
        pytest.skip("no busybox image in the local Docker daemon (nothing is pulled in tests)")
    assert "from-docker" in cli("logs", out["id"], check=0).stdout
