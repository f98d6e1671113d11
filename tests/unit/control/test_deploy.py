"""Deployment rules without processes: ttl, the predictor command a ServingTemplate becomes
(the user's own server, ``$(PORT)``, hard-coded ports, the legacy KFServing shape, a parameter that
must stay data), and the store's lifecycle rules (stop, swap, delete, one manager), over a real
SQLite store in a tmp home."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.control import deploy
from orchestrator.control.deploy_launch import _k8s_vars, plan_launch
from orchestrator.control.resources import create_configuration
from orchestrator.control.service import Service
from orchestrator.errors import BindingError, Conflict, NotFound, UsageError
from orchestrator.store.deployment_records import DeploymentRecords


def serving(name: str, predictor: str, params: str = "") -> str:
    body = "\n".join("      " + line for line in predictor.strip("\n").splitlines())
    return f"""\
apiVersion: ai.sap.com/v1alpha1
kind: ServingTemplate
metadata:
  name: {name}
  annotations:
    scenarios.ai.sap.com/name: "s"
    executables.ai.sap.com/name: "{name}"
  labels:
    scenarios.ai.sap.com/id: "scen-1"
    ai.sap.com/version: "1"
spec:
  inputs:
    parameters:
      - name: greeting
        type: string
        default: "hi"
{params}    artifacts:
      - name: model
  template:
    apiVersion: "serving.kserve.io/v1beta1"
    metadata:
      labels: |
        ai.sap.com/resourcePlan: starter
    spec: |
{body}
"""


OWN = serving("own-server", """
predictor:
  containers:
  - name: kserve-container
    image: x/own:1
    command: ["/bin/sh", "-c"]
    args: ["echo {{inputs.parameters.greeting}} && exec python3 -m http.server $(PORT) --directory {{inputs.artifacts.model}}"]
    env:
      - name: GREETING
        value: "{{inputs.parameters.greeting}}"
""")
LEGACY = serving("legacy-server", """
default:
  predictor:
    custom:
      container:
        name: kfserving-container
        image: x/legacy:1
        command: ["python3", "serve.py"]
        ports:
          - containerPort: 9001
            protocol: TCP
        env:
          - name: STORAGE_URI
            value: "{{inputs.artifacts.model}}"
""")


class Env:
    def __init__(self, tmp: Path) -> None:
        self.svc = Service(tmp / "home", local_files=True)
        for name, text in (("own.yaml", OWN), ("legacy.yaml", LEGACY)):
            (tmp / name).write_text(text)
        self.svc.register([str(tmp / "own.yaml"), str(tmp / "legacy.yaml")])
        model = tmp / "model"
        model.mkdir()
        (model / "m.bin").write_bytes(b"x")
        self.art = self.svc.store.create_artifact("default", name="model", kind="model", url=model.as_uri(),
                                                  scenario_id="scen-1")
        self.model = model
        self.work = tmp / "work"
        self.work.mkdir()

    def config(self, exe: str, **params: str) -> str:
        return str(create_configuration(self.svc, name="c", scenario_id="scen-1", executable_id=exe,
                                        parameters=sorted(params.items()), artifacts=[("model", self.art.id)]).id)

    def launch(self, exe: str, **params: str) -> Any:
        row = {"configuration_id": self.config(exe, **params), "configuration_name": "c"}
        return plan_launch(self.svc, row, workdir=str(self.work), token="deploy-t-1")


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e
    e.svc.close()


def test_ttl() -> None:
    assert deploy.parse_ttl("30m") == 1800 and deploy.parse_ttl("2H") == 7200 and deploy.parse_ttl("7d") == 7 * 86400
    assert deploy.parse_ttl(None) is None and deploy.parse_ttl("") is None
    for bad in ("5s", "m", "1.5h", "-1m", "1 m", "9" * 20 + "m"):
        with pytest.raises(UsageError):
            deploy.parse_ttl(bad)


def test_kubernetes_variables_expand_once() -> None:
    env = {"PORT": "8080", "X": "$(PORT)", "PLAIN": "a-b_c.d:1"}
    assert _k8s_vars("--port=$(PORT)", env) == "--port=8080"
    assert _k8s_vars("$(X)", env, frozenset({"X"})) == "$(PORT)"  # a value is not expanded again
    assert _k8s_vars("$$(PORT) $(NOPE) $(PLAIN)", env) == "$(PORT) $(NOPE) a-b_c.d:1"
    with pytest.raises(UsageError):  # not ours and not plain: it could be a parameter's value
        _k8s_vars("$(X)", env)


@pytest.mark.regression("a parameter bound to $(VAR) was expanded after splicing: VAR's value became python code")
def test_a_parameter_naming_an_env_variable_stays_data(tmp_path: Path) -> None:
    from orchestrator.control.deploy_launch import _base_env, _command_launch
    from orchestrator.spec import placeholders

    marker = tmp_path / "pwned"
    params = {"greeting": "$(NAME_FROM_ENV)",
              "name": f"x'); __import__('os').system('touch {marker}'); print('"}
    resolve = lambda expr: params[expr.strip().split(".")[2]]  # noqa: E731
    container = {"command": ["python3", "-c", "print('hello {{inputs.parameters.greeting}}')"],
                 "env": [{"name": "NAME_FROM_ENV", "value": "{{inputs.parameters.name}}"}]}
    env = {"NAME_FROM_ENV": placeholders.substitute("{{inputs.parameters.name}}", resolve)}
    launch = _command_launch(container, env, _base_env(str(tmp_path), "tok"), resolve, "", "m", "cfg", "tmpl")
    import subprocess

    out = subprocess.run(launch.argv, env=launch.env, capture_output=True, text=True, timeout=30)
    assert not marker.exists(), launch.argv
    assert out.returncode == 0 and out.stdout.strip() == "hello $(NAME_FROM_ENV)", (launch.argv, out)


def test_own_server_gets_port_and_parameters_stay_data(env: Env) -> None:
    hostile = "x; touch /tmp/pwned-by-deploy $(id)"
    launch = env.launch("own-server", greeting=hostile)
    assert launch.kind == "command" and not launch.fixed_port and launch.port > 0
    assert launch.argv[:2] == ["/bin/sh", "-c"]
    script = launch.argv[2]
    assert hostile not in script and "touch" not in script  # hoisted into an env variable, quoted
    assert f"http.server {launch.port} --directory " in script
    assert hostile in launch.env.values() and launch.env["GREETING"] == hostile
    assert launch.env["PORT"] == str(launch.port) and launch.env["HOST"] == "127.0.0.1"
    assert launch.env["STORAGE_URI"] == launch.env["MODEL_DIR"] == str(env.model)
    assert launch.env["ORCHESTRATOR_STEP_TOKEN"] == "deploy-t-1" and launch.env["K_CONFIGURATION"]


def test_legacy_shape_with_hard_coded_port(env: Env) -> None:
    launch = env.launch("legacy-server")
    assert launch.kind == "command" and launch.argv == ["python3", "serve.py"]
    assert launch.fixed_port and launch.port == 9001 and launch.env["PORT"] == "9001"
    assert "one deployment of it runs at a time" in launch.notes[0]


def test_runtime_refuses_a_model_no_execution_produced(env: Env, tmp_path: Path) -> None:
    template = serving("runtime-server", """
predictor:
  containers:
  - name: kserve-container
    image: x/rt:1
    env:
      - name: STORAGE_URI
        value: "{{inputs.artifacts.model}}"
""")
    (tmp_path / "rt.yaml").write_text(template)
    env.svc.register([str(tmp_path / "rt.yaml")])
    from orchestrator.run.attest import NotAttested

    with pytest.raises(NotAttested, match="not produced by an execution"):
        env.launch("runtime-server")


def test_store_rules(env: Env) -> None:
    svc = env.svc
    recs = DeploymentRecords(svc.store)
    cfg = env.config("own-server")
    row = recs.create("default", configuration_id=cfg, configuration_name="c", scenario_id="scen-1", executable_id="own-server",
                      ttl="1m", ttl_seconds=60, log_dir=str(env.work))
    assert row["status"] == "UNKNOWN" and row["target_status"] == "RUNNING" and row["last_operation"] == "CREATE"
    assert 55 < row["expires_at"] - time.time() <= 60
    with pytest.raises(NotFound):
        recs.get("other", row["id"])
    with pytest.raises(BindingError):  # a swap keeps the executable
        deploy.change_configuration(svc, row["id"], env.config("legacy-server"))
    recs.update("default", row["id"], status="RUNNING", port=1234)
    running = recs.get("default", row["id"])
    assert running["start_time"] and running["completion_time"] is None
    new_cfg = env.config("own-server", greeting="x")
    swapped = recs.change_configuration("default", row["id"], configuration_id=new_cfg, configuration_name="c2")
    assert swapped["configuration_id"] == new_cfg and swapped["latest_running_configuration_id"] == cfg
    assert swapped["last_operation"] == "UPDATE" and swapped["status"] == "RUNNING"
    recs.update("default", row["id"], status="STOPPED")
    stopped = recs.get("default", row["id"])
    assert stopped["completion_time"] and stopped["port"] is None
    with pytest.raises(Conflict):
        recs.request_stop("default", row["id"])
    with pytest.raises(Conflict):
        recs.change_configuration("default", row["id"], configuration_id=cfg, configuration_name="c")
    with pytest.raises(UsageError):
        deploy.modify(svc, row["id"], target_status="DELETED", configuration_id=None)
    recs.delete("default", row["id"])
    with pytest.raises(NotFound):
        recs.get("default", row["id"])
    assert recs.active_count() == 0


def test_one_manager_at_a_time(env: Env) -> None:
    recs = DeploymentRecords(env.svc.store)
    assert recs.claim_manager(111, "a", stale_after=10)
    assert not recs.claim_manager(222, "b", stale_after=10)  # 111 heartbeats
    assert recs.claim_manager(333, "c", stale_after=10, dead_pid=111)  # ... but was seen dead: 333 wins
    assert not recs.claim_manager(222, "b", stale_after=10, dead_pid=111)  # and only 333
    assert recs.claim_manager(111, "a", stale_after=10, dead_pid=333)
    assert recs.manager_beat(111) and not recs.manager_beat(222)
    recs.create("default", configuration_id=env.config("own-server"), configuration_name="c", scenario_id="scen-1",
                executable_id="own-server", ttl=None, ttl_seconds=None, log_dir=str(env.work))
    assert not recs.release_manager(111, only_if_idle=True)  # a deployment needs it
    assert recs.release_manager(111)
    assert recs.claim_manager(222, "b", stale_after=10)


def test_log_lines_carry_their_predictors_start(env: Env) -> None:
    recs = DeploymentRecords(env.svc.store)
    row = recs.create("default", configuration_id=env.config("own-server"), configuration_name="c",
                      scenario_id="scen-1", executable_id="own-server", ttl=None, ttl_seconds=None,
                      log_dir=str(env.work))
    Path(row["log_path"]).write_text(
        "[orchestrator] 2030-01-01T00:00:00Z starting runtime predictor for configuration a\nfirst\n"
        "[orchestrator] 2030-01-02T00:00:00Z starting runtime predictor for configuration b\nsecond\n")
    lines = deploy.log_lines(env.svc, row["id"])
    assert [(s, t) for s, t in lines if not t.startswith("[")] == [("2030-01-01T00:00:00Z", "first"),
                                                                  ("2030-01-02T00:00:00Z", "second")]
    later = deploy.log_lines(env.svc, row["id"], start="2030-01-01T12:00:00Z")
    assert [t for _s, t in later][-1] == "second" and "first" not in [t for _s, t in later]
    assert [t for _s, t in deploy.log_lines(env.svc, row["id"], limit=1, tail=True)] == ["second"]
