"""Deployments end to end: a real server, SAP's real client, real predictor processes.

One server for the module (its home in a tmp dir); a tiny scikit-learn model is trained by a real
run and registered (``tiny``). Deployments are created through ``ai_api_client_sdk`` and reached
through the server's proxy (``deploymentUrl``) and directly on the predictor's port. The
deployment manager and every predictor are killed at the end (by pid / token).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ai_api_client_sdk.ai_api_v2_client import AIAPIV2Client
from ai_api_client_sdk.exception import AIAPIInvalidRequestException, AIAPINotFoundException
from ai_api_client_sdk.models.input_artifact_binding import InputArtifactBinding
from ai_api_client_sdk.models.parameter_binding import ParameterBinding
from ai_api_client_sdk.models.status import Status
from ai_api_client_sdk.models.target_status import TargetStatus

from tests.integration.conftest import ApiServer

# one worker runs the whole module (--dist loadgroup): its module-scoped server is started once
pytestmark = pytest.mark.xdist_group("deployments")


TRAIN = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: tiny-train
  annotations:
    scenarios.ai.sap.com/name: "tiny"
    executables.ai.sap.com/name: "tiny-train"
    artifacts.ai.sap.com/tinymodel.kind: "model"
    orchestrator/register-model.tinymodel: "tiny"
  labels:
    scenarios.ai.sap.com/id: "tiny"
    ai.sap.com/version: "1"
spec:
  entrypoint: main
  templates:
    - name: main
      outputs:
        artifacts:
          - name: model
            globalName: tinymodel
            path: /app/model/
      script:
        image: python:3.11
        command: ["python3"]
        source: |
          import os, numpy as np
          from sklearn.linear_model import LogisticRegression
          import skops.io as sio
          x = np.array([[0.0, 0.0], [0.1, 0.2], [1.0, 1.0], [0.9, 1.1]])
          m = LogisticRegression().fit(x, np.array([0, 0, 1, 1]))
          os.makedirs("/app/model", exist_ok=True)
          sio.dump(m, "/app/model/model.skops")
"""


def serving(name: str, container: str, params: str = "") -> str:
    body = "\n".join("        " + line for line in container.strip("\n").splitlines())
    return f"""\
apiVersion: ai.sap.com/v1alpha1
kind: ServingTemplate
metadata:
  name: {name}
  annotations:
    scenarios.ai.sap.com/name: "tiny"
    executables.ai.sap.com/name: "{name}"
    artifacts.ai.sap.com/tinymodel.kind: "model"
  labels:
    scenarios.ai.sap.com/id: "tiny"
    ai.sap.com/version: "1"
spec:
  inputs:
    parameters:
      - name: note
        type: string
        default: "a"
{params}    artifacts:
      - name: tinymodel
  template:
    apiVersion: "serving.kserve.io/v1beta1"
    metadata:
      labels: |
        ai.sap.com/resourcePlan: starter
    spec: |
      predictor:
        containers:
{body}
"""


RUNTIME = serving("tiny-serve", """\
- name: kserve-container
  image: docker.io/someone/tiny:1
  env:
    - name: STORAGE_URI
      value: "{{inputs.artifacts.tinymodel}}"
    - name: MODEL_NAME
      value: "tiny"
""")
# The user's own server (here: Python's http.server over the model folder), told its port in $PORT.
OWN = serving("tiny-own", f"""\
- name: kserve-container
  image: docker.io/someone/own:1
  command: ["{sys.executable}", "-m", "http.server", "$(PORT)", "--bind", "127.0.0.1"]
  args: ["--directory", "{{{{inputs.artifacts.tinymodel}}}}"]
""")
NEVER = serving("tiny-never", """\
- name: kserve-container
  image: docker.io/someone/never:1
  command: ["sleep", "60"]
""")


def fixed_port_template(port: int) -> str:
    return serving("tiny-fixed", f"""\
- name: kserve-container
  image: docker.io/someone/fixed:1
  command: ["{sys.executable}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
  ports:
    - containerPort: {port}
      protocol: TCP
""")


class World:
    """The module's server, templates and model, and the deployments several tests share (created
    at once, so their predictors start side by side)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {"ORCHESTRATOR_DEPLOY_READY_TIMEOUT": "15", "ORCHESTRATOR_DEPLOY_DRAIN": "0.5",
                    "ORCHESTRATOR_KILL_GRACE": "1", "ORCHESTRATOR_DEPLOY_IDLE": "2"}
        self.srv = ApiServer(tmp, env=self.env)
        from orchestrator.control.deploy_launch import free_port

        self.fixed_port = free_port()
        for name, text in (("train.yaml", TRAIN), ("serve.yaml", RUNTIME), ("own.yaml", OWN),
                           ("never.yaml", NEVER), ("fixed.yaml", fixed_port_template(self.fixed_port))):
            (tmp / name).write_text(text)
        self.srv.cli("register", "serve.yaml", "own.yaml", "never.yaml", "fixed.yaml")
        self.srv.cli("run", "train.yaml", "-q")
        self.api = self.client("default")
        self.never = self.deploy("tiny-never")  # first: its readiness timeout runs while the others test
        self.main = self.deploy()  # the long-lived one: read, proxied, swapped, restarted, killed
        self.timed = self.deploy("tiny-own", ttl="1m")
        self.own = self.deploy("tiny-own")
        self.fixed = self.deploy("tiny-fixed")

    def client(self, rg: str) -> AIAPIV2Client:
        return AIAPIV2Client(base_url=f"{self.srv.base}/v2/lm", token_creator=lambda: "Bearer " + self.srv.token,
                             resource_group=rg)

    def config(self, executable: str = "tiny-serve", name: str = "c") -> str:
        return str(self.api.configuration.create(
            name=name, scenario_id="tiny", executable_id=executable,
            parameter_bindings=[ParameterBinding("note", name)],
            input_artifact_bindings=[InputArtifactBinding("tinymodel", "models:/tiny@latest")]).id)

    def deploy(self, executable: str = "tiny-serve", ttl: str | None = None) -> str:
        return str(self.api.deployment.create(self.config(executable), ttl=ttl).id)

    def wait(self, dep_id: str, *statuses: str, timeout: float = 60.0, rg: str = "default") -> Any:
        client = self.api if rg == "default" else self.client(rg)
        deadline = time.monotonic() + timeout
        while True:
            d = client.deployment.get(dep_id)
            if d.status.value in statuses or time.monotonic() > deadline:
                assert d.status.value in statuses, (d.status, d.status_message, self.srv.output()[-2000:])
                return d
            time.sleep(0.1)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.srv.home / "orchestrator.db", timeout=10)

    def proxy(self, dep_id: str, path: str, body: Any = None, rg: str = "default") -> tuple[int, Any]:
        status, _h, payload = self.srv.call("POST" if body is not None else "GET",
                                            f"/v2/inference/deployments/{dep_id}/{path}", body, rg=rg)
        return status, payload

    def cleanup(self) -> None:
        from orchestrator.control.deploy_manager import token_prefix
        from orchestrator.run.steps import kill_tagged

        self.srv.stop()
        with self.db() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM deployments")]
            row = db.execute("SELECT pid FROM deployment_manager").fetchone()
        if row and row[0]:
            try:
                os.kill(row[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
        for dep_id in ids:
            kill_tagged(token_prefix(dep_id), prefix=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("deployments"))
    try:
        yield w
    finally:
        w.cleanup()


def _predictor_pid(world: World, dep_id: str) -> int:
    with world.db() as db:
        return int(db.execute("SELECT pid FROM deployments WHERE id=?", (dep_id,)).fetchone()[0])


# ---------------------------------------------------------------------- lifecycle with SAP's client
def test_create_read_filter_score_with_sap_client(world: World) -> None:
    api, dep_id = world.api, world.main
    created = api.deployment.get(dep_id)
    assert created.last_operation.value == "CREATE" and created.target_status == TargetStatus.RUNNING
    d = world.wait(dep_id, "RUNNING")
    assert d.deployment_url == f"{world.srv.base}/v2/inference/deployments/{dep_id}"
    assert d.start_time is not None and d.completion_time is None and d.submission_time is not None
    assert api.deployment.get(dep_id, select="status").status == Status.RUNNING

    # scoring through the server (token + resource group) and directly on the predictor's port
    status, out = world.proxy(dep_id, "v1/models/tiny:predict", {"instances": [[0, 0], [1, 1], [0.9, 1.0]]})
    assert (status, out) == (200, {"predictions": [0, 1, 1]})
    status, out = world.proxy(dep_id, "invocations", {"dataframe_split": {"data": [[1, 1]]}})
    assert status == 200 and out["predictions"] == [1]
    _s, _h, full = world.srv.call("GET", f"/v2/lm/deployments/{dep_id}")
    host, port = urllib.parse.urlsplit(full["predictorUrl"]).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/models/tiny:predict", body=json.dumps({"instances": [[0, 0]]}))
    assert json.loads(conn.getresponse().read()) == {"predictions": [0]}
    conn.close()
    assert world.srv.call("POST", f"/v2/inference/deployments/{dep_id}/v1/models/tiny:predict",
                          {"instances": [[0, 0]]}, token="nope")[0] == 401

    # filters, $select on lists, count, logs
    running = api.deployment.query(executable_ids=["tiny-serve"], status=Status.RUNNING).resources
    assert dep_id in [x.id for x in running]
    assert dep_id in [x.id for x in api.deployment.query(scenario_id="tiny").resources]
    assert [x.id for x in api.deployment.query(configuration_id=d.configuration_id).resources] == [dep_id]
    assert dep_id not in [x.id for x in api.deployment.query(executable_ids=["tiny-own"]).resources]
    assert api.deployment.count(configuration_id=d.configuration_id) == 1
    assert api.deployment.count(executable_ids=["tiny-serve", "tiny-own"]) >= 3
    assert any('"port"' in line.msg for line in api.deployment.query_logs(dep_id).data.result)


def test_another_resource_group_sees_nothing(world: World) -> None:
    assert world.srv.call("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "other-rg"})[0] in (200, 202)
    other = world.client("other-rg")
    dep_id = world.main
    with pytest.raises(AIAPINotFoundException):
        other.deployment.get(dep_id)
    assert other.deployment.count() == 0 and other.deployment.query().resources == []
    assert world.proxy(dep_id, "v1/models/tiny", rg="other-rg")[0] == 404
    assert world.srv.call("GET", f"/v2/inference/deployments/{dep_id}/v1/models/tiny", rg=None)[0] == 400
    with pytest.raises(AIAPINotFoundException):
        other.deployment.modify(dep_id, target_status=TargetStatus.STOPPED)
    with pytest.raises(AIAPINotFoundException):
        other.deployment.delete(dep_id)
    assert world.api.deployment.get(dep_id).target_status == TargetStatus.RUNNING


def test_bad_requests_are_refused_before_anything_is_written(world: World) -> None:
    api = world.api
    before = api.deployment.count()
    with pytest.raises(AIAPIInvalidRequestException):
        api.deployment.create(world.config(), ttl="5s")
    train_cfg = api.configuration.create(name="t", scenario_id="tiny", executable_id="tiny-train")
    with pytest.raises(AIAPIInvalidRequestException):  # a WorkflowTemplate is run, not deployed
        api.deployment.create(train_cfg.id)
    with pytest.raises(AIAPIInvalidRequestException):  # a swap keeps the executable
        api.deployment.modify(world.main, configuration_id=world.config("tiny-own"))
    assert api.deployment.count() == before
    # extension: {model: models:/NAME@ALIAS} deploys the built-in model server (refused: unknown model)
    status, _h, body = world.srv.call("POST", "/v2/lm/deployments", {"model": "models:/nope@champion"})
    assert status == 404 and "nope" in body["error"]["message"]
    status, _h, body = world.srv.call("POST", "/v2/lm/deployments", {"model": "models:/tiny@latest", "ttl": "1m"})
    assert status == 202 and body["status"] == "UNKNOWN"
    assert api.deployment.get(body["id"]).configuration_name == "tiny-serving"
    api.deployment.delete(body["id"])
    meta = world.srv.call("GET", "/v2/lm/meta")[2]["aiApi"]["capabilities"]
    assert meta["logs"]["deployments"] and meta["bulkUpdates"]["deployments"] and meta["timeToLiveDeployments"]


# ---------------------------------------------------------------------- the user's own server, ports, ttl
def test_own_server_gets_port_and_hard_coded_port_runs_one_at_a_time(world: World) -> None:
    own, a = world.own, world.fixed
    world.wait(own, "RUNNING")
    status, _h, listing = world.srv.call("GET", f"/v2/inference/deployments/{own}/")
    assert status == 200 and b"model.skops" in listing  # its STORAGE_URI folder, served by its own command
    world.wait(a, "RUNNING")
    b = world.deploy("tiny-fixed")
    deadline = time.monotonic() + 10
    while "hard-codes port" not in (world.api.deployment.get(b).status_message or "") and time.monotonic() < deadline:
        time.sleep(0.1)
    d = world.api.deployment.get(b)
    assert d.status == Status.PENDING and f"hard-codes port {world.fixed_port}" in d.status_message
    world.api.deployment.modify(a, target_status=TargetStatus.STOPPED)
    world.wait(b, "RUNNING")
    results = world.api.deployment.bulk_modify([_bulk(own, TargetStatus.STOPPED), _bulk(b, TargetStatus.DELETED),
                                                _bulk("0000nope", TargetStatus.STOPPED)])
    assert [getattr(r, "error", None) is not None for r in results.deployments] == [False, False, True]
    world.wait(own, "STOPPED")
    deadline = time.monotonic() + 10
    while b in [x.id for x in world.api.deployment.query().resources] and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(AIAPINotFoundException):
        world.api.deployment.get(b)


def test_ttl_expiry_stops_it(world: World) -> None:
    d = world.wait(world.timed, "RUNNING")
    assert d.ttl == "1m"
    with world.db() as db:  # a minute is long for a test: move the recorded expiry into the past
        db.execute("UPDATE deployments SET expires_at=? WHERE id=?", (time.time() - 1, world.timed))
    d = world.wait(world.timed, "STOPPED")
    assert "ttl 1m expired" in d.status_message and d.completion_time is not None


# ---------------------------------------------------------------------- swap with no failed request
def test_configuration_swap_under_load_fails_no_request(world: World) -> None:
    api = world.api
    dep_id = world.main
    first = world.wait(dep_id, "RUNNING")
    old_pid = _predictor_pid(world, dep_id)
    results: list[int | str] = []
    stop = threading.Event()
    host, port = urllib.parse.urlsplit(world.srv.base).netloc.split(":")

    def load() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({"instances": [[1, 1]]})
        headers = {"Authorization": "Bearer " + world.srv.token, "AI-Resource-Group": "default",
                   "Content-Type": "application/json"}
        while not stop.is_set():
            try:
                conn.request("POST", f"/v2/inference/deployments/{dep_id}/v1/models/tiny:predict", body, headers)
                resp = conn.getresponse()
                payload = resp.read()
                results.append(resp.status if json.loads(payload) == {"predictions": [1]} else f"bad {payload!r}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                results.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.close()

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        second = world.config(name="second")
        api.deployment.modify(dep_id, configuration_id=second)
        d = api.deployment.get(dep_id)
        assert d.configuration_id == second and d.latest_running_configuration_id == first.configuration_id
        assert d.last_operation.value == "UPDATE"
        deadline = time.monotonic() + 30
        while _predictor_pid(world, dep_id) == old_pid and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _predictor_pid(world, dep_id) != old_pid
        deadline = time.monotonic() + 10  # the old predictor drains, then leaves
        while _alive(old_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [r for r in results if r != 200]
    assert not failures and len(results) > 20, (failures[:5], len(results))
    assert not _alive(old_pid)
    d = api.deployment.get(dep_id)
    assert d.status == Status.RUNNING and d.configuration_id == second


def _alive(pid: int) -> bool:
    from orchestrator.run.reaper import pid_alive

    return pid_alive(pid)


def _bulk(dep_id: str, target: TargetStatus) -> Any:
    from ai_api_client_sdk.models.base_models import BasicModifyRequest

    return BasicModifyRequest(id=dep_id, target_status=target)


# ---------------------------------------------------------------------- failures and the manager
def test_manager_and_server_restart(world: World) -> None:
    dep_id = world.main
    world.wait(dep_id, "RUNNING")
    old_pid = _predictor_pid(world, dep_id)
    # the server restarts: deployments go on (their manager is not the server's child)
    world.srv.stop()
    world.srv = ApiServer(world.tmp, env=world.env)
    world.api = world.client("default")
    assert world.proxy(dep_id, "v1/models/tiny:predict", {"instances": [[0, 0]]}) == (200, {"predictions": [0]})
    assert _predictor_pid(world, dep_id) == old_pid
    # the manager dies (kill -9; its predictor is left behind) and the server restarts, as after a
    # crash: the server's start finds no live manager and starts one, which replaces the orphan
    with world.db() as db:
        manager = db.execute("SELECT pid FROM deployment_manager").fetchone()[0]
    os.kill(manager, signal.SIGKILL)
    world.srv.stop()
    world.srv = ApiServer(world.tmp, env=world.env)
    world.api = world.client("default")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the store, not the API: no request wakes anything here
        with world.db() as db:
            status, pid, message = db.execute("SELECT status, pid, status_message FROM deployments WHERE id=?",
                                              (dep_id,)).fetchone()
        if status == "RUNNING" and pid != old_pid:
            break
        time.sleep(0.1)
    assert status == "RUNNING" and pid != old_pid and not _alive(old_pid)
    assert (message or "").startswith("restarted: its predictor"), message
    assert world.proxy(dep_id, "v1/models/tiny:predict", {"instances": [[1, 1]]}) == (200, {"predictions": [1]})


def test_killed_predictor_is_dead_with_reason_then_stopped_and_deleted(world: World) -> None:
    api, dep_id = world.api, world.main
    world.wait(dep_id, "RUNNING")
    os.kill(_predictor_pid(world, dep_id), signal.SIGKILL)
    d = world.wait(dep_id, "DEAD")
    assert "SIGKILL" in d.status_message and d.completion_time is not None and d.deployment_url == ""
    assert world.proxy(dep_id, "v1/models/tiny")[0] == 503
    # a DEAD deployment may take a new configuration (AI Core's rollback path): it starts again
    again = world.config(name="again")
    api.deployment.modify(dep_id, configuration_id=again)
    d = api.deployment.get(dep_id)
    assert d.status in (Status.PENDING, Status.RUNNING) and d.configuration_id == again
    assert d.completion_time is None
    api.deployment.modify(dep_id, target_status=TargetStatus.STOPPED)
    d = world.wait(dep_id, "STOPPED")
    assert d.completion_time is not None and d.deployment_url == ""
    with pytest.raises(AIAPIInvalidRequestException):
        api.deployment.modify(dep_id, target_status=TargetStatus.STOPPED)  # already ended
    api.deployment.delete(dep_id)
    with pytest.raises(AIAPINotFoundException):
        api.deployment.get(dep_id)


def test_cli_deploy_locally_and_through_the_server(world: World) -> None:
    out = world.srv.cli("deploy", "tiny-own", "--artifact", "tinymodel=models:/tiny@latest", "--json")
    row = json.loads(out.stdout)
    assert row["status"] == "RUNNING" and row["predictorUrl"].startswith("http://127.0.0.1:")
    assert row["deploymentUrl"] == row["predictorUrl"]  # locally it is scored on the predictor itself
    listed = world.srv.cli("deployments", "list", "--json")
    assert row["id"] in [r["id"] for r in json.loads(listed.stdout)]
    assert "starting command predictor" in world.srv.cli("deployments", "logs", row["id"][:8]).stdout
    server = ["--server", world.srv.base]
    world.srv.env["ORCHESTRATOR_TOKEN"] = world.srv.token
    assert row["id"] in world.srv.cli(*server, "deployments", "list").stdout
    assert "STOPPED" in world.srv.cli(*server, "deployments", "stop", row["id"]).stdout
    remote = json.loads(world.srv.cli(*server, "deploy", "tiny-own", "--artifact", "tinymodel=models:/tiny@latest",
                                      "--json").stdout)
    assert remote["status"] == "RUNNING" and remote["deploymentUrl"].endswith(remote["id"])
    # --model: the built-in model server template (not waited for)
    local = json.loads(world.srv.cli("deploy", "--model", "models:/tiny@latest", "--wait", "0", "--json").stdout)
    assert local["executableId"] == "orchestrator-model-server"
    for d in (local, remote):
        world.srv.cli(*server, "deployments", "delete", d["id"])  # a live one: stopped, then gone
    deadline = time.monotonic() + 30
    while remote["id"] in (listed := world.srv.cli("deployments", "list").stdout) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote["id"] not in listed and local["id"] not in listed


def test_foreign_pickle_is_never_loaded(world: World) -> None:
    marker = world.tmp / "pwned"
    evil = world.tmp / "evil" / "model.pkl"
    evil.parent.mkdir()
    code = f"import pickle, os\nclass E:\n    def __reduce__(self):\n        return (os.system, ('touch {marker}',))\n" \
           f"open({str(evil)!r}, 'wb').write(pickle.dumps(E()))\n"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = world.srv.cli("deploy", "tiny-serve", "--artifact", f"tinymodel={evil.parent}", "--json", check=1)
    row = json.loads(out.stdout)
    assert row["status"] == "DEAD" and "not produced by an execution" in row["statusMessage"]
    assert not marker.exists()


def test_never_ready_is_dead_with_reason(world: World) -> None:
    d = world.wait(world.never, "DEAD", timeout=60)
    assert "did not become ready within 15 s" in d.status_message
    world.api.deployment.delete(world.never)
