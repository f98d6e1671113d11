"""MLflow inside steps, unmodified: a real step script using the real ``mlflow`` client logs into
the execution through the runner's loopback endpoint (issue 14 item 5).

One CLI run per client is shared by the module (the slow part: importing mlflow and sklearn in the
step): the 3.x client of the test environment, and a 2.x client from a cached venv
(:mod:`tests.integration.mlflow2_venv`, built once per machine). Two steps run side by side: one
calling the tracking API by hand, one fitting under ``mlflow.sklearn.autolog()`` with no run of its
own (how Azure ML sweep jobs get their objective). The scripts assert what only the client sees
(its run is MLFLOW_RUN_ID, the error shapes, the metric history); the tests assert what landed in
our store through the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

# one worker runs the whole module (--dist loadgroup): its module-scoped executions are made once
pytestmark = pytest.mark.xdist_group("mlflow_steps")


REPO = Path(__file__).resolve().parents[2]

# only the steps import mlflow (not this process): checking that it is installed is enough, and
# saves each xdist worker importing it (about 1.5 s of CPU) while it collects
if importlib.util.find_spec("mlflow") is None:
    pytest.skip("needs the mlflow client (pip install 'orchestrator[mlflow]')", allow_module_level=True)
pytest.importorskip("sklearn")

from tests.integration.mlflow2_venv import mlflow2_python  # noqa: E402 - after the skips
from tests.integration.test_shipped_workflows import Cli  # noqa: E402

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: mlflow-steps
  labels:
    scenarios.ai.sap.com/id: mlflow-scen
    ai.sap.com/version: "1.0.0"
  annotations:
    scenarios.ai.sap.com/name: "mlflow steps"
    executables.ai.sap.com/name: "mlflow-steps"
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: train
            template: train
          - name: autolog
            template: autolog
        - - name: plain
            template: plain
    - name: plain
      container:
        image: python:3.11-slim
        command: [python3, -c, "import os; print('env', os.environ['MLFLOW_RUN_ID'], os.environ['MLFLOW_TRACKING_URI'])"]
    - name: autolog
      script:
        image: python:3.11-slim
        command: [PYTHON3]
        source: |
          import os
          import mlflow, mlflow.sklearn
          import numpy as np
          from sklearn.tree import DecisionTreeClassifier

          mlflow.sklearn.autolog()  # no start_run: autolog makes (here: attaches to) the run itself
          x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
          y = np.array([0, 0, 1, 1, 0, 1])
          DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y)
          run = mlflow.last_active_run()
          assert run.info.run_id == os.environ["ORCHESTRATOR_STEP_TOKEN"], run.info.run_id
          assert "training_score" in run.data.metrics and run.data.params["max_depth"] == "2", run.data
          print("autolog ok")
    - name: train
      script:
        image: python:3.11-slim
        command: [PYTHON3]
        source: |
          import os, time
          import mlflow, mlflow.sklearn
          import numpy as np
          from mlflow.entities import Metric
          from mlflow.exceptions import MlflowException
          from sklearn.linear_model import LogisticRegression

          v2 = mlflow.__version__.startswith("2.")
          print("mlflow", mlflow.__version__)
          expected = os.environ["MLFLOW_RUN_ID"]
          assert os.environ["MLFLOW_TRACKING_TOKEN"] and os.environ["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
          exp = mlflow.set_experiment("my-experiment")
          with mlflow.start_run() as run:
              rid = run.info.run_id
              assert rid == expected == os.environ["ORCHESTRATOR_STEP_TOKEN"], (rid, expected)
              assert run.info.experiment_id == exp.experiment_id == "mlflow-scen"
              mlflow.log_param("alpha", 0.5)
              mlflow.log_params({"solver": "lbfgs", "max_iter": 50})
              mlflow.log_metric("loss", 1.5, step=1)
              mlflow.log_metrics({"loss": 0.75, "acc": 0.9}, step=2)
              mlflow.set_tag("team", "ml")
              mlflow.set_tags({"stage": "dev"})
              now = int(time.time() * 1000)
              mlflow.MlflowClient().log_batch(rid, metrics=[Metric("curve", float(i), now, i) for i in range(1000)])
              with open("notes.txt", "w") as f:
                  f.write("hello from mlflow")
              mlflow.log_artifact("notes.txt")
              os.makedirs("plots/sub", exist_ok=True)
              with open("plots/sub/p.txt", "w") as f:
                  f.write("p")
              mlflow.log_artifacts("plots", artifact_path="plots")
              hist = mlflow.MlflowClient().get_metric_history(rid, "loss")
              assert [(m.step, m.value) for m in hist] == [(1, 1.5), (2, 0.75)], hist
              assert mlflow.get_experiment_by_name("my-experiment").experiment_id == "mlflow-scen"
              try:
                  mlflow.log_param("alpha", 0.7)
                  raise SystemExit("changing a param must fail")
              except MlflowException as e:
                  assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code
              found = mlflow.search_runs(experiment_ids=["mlflow-scen"], output_format="list")
              assert rid in [r.info.run_id for r in found], found
              # a step run shows what its step logged (the autolog step logs no solver)
              mine = mlflow.MlflowClient().search_runs(["mlflow-scen"], filter_string="params.solver = 'lbfgs'")
              assert [r.info.run_id for r in mine] == [rid], mine
              named = mlflow.MlflowClient().search_runs(["mlflow-scen"], filter_string="attributes.run_name = 'train'")
              assert [r.info.run_id for r in named] == [rid], named
              ordered = mlflow.search_runs(experiment_ids=["mlflow-scen"], order_by=["attributes.run_name DESC"],
                                           output_format="list")
              assert [r.info.run_name for r in ordered] == ["train", "autolog"], ordered
              try:
                  mlflow.search_runs(experiment_ids=["mlflow-scen"], filter_string="attributes.run_name LIKE '%x%'")
                  raise SystemExit("an unsupported filter must fail")
              except MlflowException as e:
                  assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code
              with mlflow.start_run(nested=True, run_name="fold-1") as child:
                  assert child.info.run_id != rid
                  mlflow.log_metric("fold_loss", 0.5)
                  mlflow.log_param("fold", 1)
              assert mlflow.MlflowClient().get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == rid
              x = np.array([[0.0], [1.0], [2.0], [3.0]])
              y = np.array([0, 0, 1, 1])
              where = {"artifact_path": "clf"} if v2 else {"name": "clf"}
              info = mlflow.sklearn.log_model(LogisticRegression().fit(x, y), registered_model_name="mlflow-demo-model",
                                              pip_requirements=["scikit-learn"], **where)
              print("model", info.model_uri)
              assert mlflow.register_model(f"runs:/{rid}/clf", "mlflow-demo-model").version == "pending"
              try:
                  mlflow.register_model(f"runs:/{rid}/clf", "second-name")
                  raise SystemExit("a second name for the same model must fail")
              except MlflowException as e:
                  assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code
              loaded = mlflow.sklearn.load_model(info.model_uri)
              assert list(loaded.predict(x)) == [0, 0, 1, 1]
          assert mlflow.MlflowClient().get_run(rid).info.status == "FINISHED"
          print("all mlflow calls ok")
"""

CLIENTS = ["3.x", "2.x"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module", params=CLIENTS)
def run(request: pytest.FixtureRequest, cli: Cli) -> dict[str, Any]:
    """One execution of TEMPLATE whose steps use the 3.x client (this environment) or 2.x (cached venv)."""
    py = sys.executable if request.param == "3.x" else str(mlflow2_python())
    name = f"mlflow-steps-{request.param[0]}"
    (cli.cwd / f"{name}.yaml").write_text(TEMPLATE.replace("PYTHON3", py).replace("mlflow-steps", name))
    res = cli("run", f"{name}.yaml", "--no-cache", "--json")
    out = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    if res.returncode != 0:
        logs = cli("logs", out.get("id", "")) if out else res
        pytest.fail(f"run failed:\n{res.stdout}\n{res.stderr}\n{logs.stdout}\n{logs.stderr}")
    out["client"] = request.param
    return out


def test_step_scripts_use_the_unmodified_client(cli: Cli, run: dict[str, Any]) -> None:
    assert run["status"] == "COMPLETED"
    logs = cli("logs", run["id"])
    assert "all mlflow calls ok" in logs.stdout and "autolog ok" in logs.stdout, logs.stdout[-3000:]
    assert f"mlflow {run['client'][0]}." in logs.stdout
    # every leaf step has its own run of this execution
    assert f"env {run['id']}-" in logs.stdout


def test_metrics_params_and_tags_land_in_our_store(cli: Cli, run: dict[str, Any]) -> None:
    out = cli.json("metrics", run["id"])
    by_name: dict[str, list[tuple[int, float]]] = {}
    for m in out["metrics"]:
        by_name.setdefault(m["name"], []).append((m["step"], m["value"]))
    assert by_name["loss"] == [(1, 1.5), (2, 0.75)]
    assert by_name["acc"] == [(2, 0.9)]
    # the batch of 1000, exactly once (3.x log_model re-logs the step's points: no duplicates)
    assert sorted(by_name["curve"]) == [(i, float(i)) for i in range(1000)]
    tags = {t["name"]: t["value"] for t in out["tags"]}
    assert {k: tags[k] for k in ("param.alpha", "param.solver", "param.max_iter", "team", "stage", "experiment")} == {
        "param.alpha": "0.5", "param.solver": "lbfgs", "param.max_iter": "50", "team": "ml", "stage": "dev",
        "experiment": "my-experiment"}
    # the nested run, under its name
    assert by_name["fold-1/fold_loss"] == [(0, 0.5)] and tags["param.fold-1/fold"] == "1"


def test_autolog_lands_as_metrics_and_compared_parameters(cli: Cli, run: dict[str, Any]) -> None:
    """``mlflow.sklearn.autolog()``: its training metrics are our metrics (what a sweep's objective
    reads) and the estimator's params are parameters of the execution in ``compare``."""
    out = cli.json("compare", run["id"])
    (row,) = out["executions"]
    assert row["metrics"]["training_score"]["last"] > 0.5
    assert {"training_accuracy_score", "training_f1_score"} <= set(row["metrics"])
    assert row["parameters"]["max_depth"] == "2" and row["parameters"]["criterion"] == "gini"
    assert row["parameters"]["solver"] == "lbfgs"  # the other step's log_params
    tags = {t["name"]: t["value"] for t in cli.json("metrics", run["id"])["tags"]}
    assert tags["estimator_name"] == "DecisionTreeClassifier"


def test_logged_model_and_files_are_artifacts(cli: Cli, run: dict[str, Any]) -> None:
    from orchestrator.store.artifacts import ObjectStore

    arts = {a["name"]: a for a in cli.json("artifacts", "--execution", run["id"])}
    model, files = arts["clf"], arts["mlflow-train"]
    assert model["kind"] == "model" and len(model["digest"]) == 64
    objects = ObjectStore(cli.cwd / "home")
    mdir = objects.local_path("default", model["url"])
    assert (mdir / "MLmodel").is_file() and "sklearn" in (mdir / "MLmodel").read_text()
    fdir = objects.local_path("default", files["url"])
    assert (fdir / "notes.txt").read_text() == "hello from mlflow"
    assert (fdir / "plots" / "sub" / "p.txt").read_text() == "p"
    tags = {t["name"]: t["value"] for t in cli.json("metrics", run["id"])["tags"]}
    assert tags[f"orchestrator/register-model-request.{model['id']}"] == "mlflow-demo-model"
    # the registry honoured the request when the execution completed
    assert tags[f"orchestrator/registered-model.{model['id']}"] == f"mlflow-demo-model:{CLIENTS.index(run['client']) + 1}"
    versions = cli.json("models", "list", "--execution", run["id"])
    assert "mlflow-demo-model" in json.dumps(versions) and model["id"] in json.dumps(versions)


def test_a_step_with_its_own_tracking_uri_keeps_it(cli: Cli) -> None:
    # A template that points MLflow elsewhere gets none of our MLFLOW_* variables.
    tpl = TEMPLATE.split("  templates:")[0].replace("mlflow-steps", "mlflow-own") + """  templates:
    - name: main
      container:
        image: python:3.11-slim
        command: [python3, -c, "import os; print('own', os.environ['MLFLOW_TRACKING_URI'], 'MLFLOW_RUN_ID' in os.environ)"]
        env:
          - name: MLFLOW_TRACKING_URI
            value: "http://example.invalid:5000"
"""
    (cli.cwd / "own.yaml").write_text(tpl)
    res = cli("run", "own.yaml", "--json")
    assert res.returncode == 0, res.stderr
    logs = cli("logs", json.loads(res.stdout)["id"])
    assert "own http://example.invalid:5000 False" in logs.stdout


SERVER_STEP = """\
import os, mlflow
with mlflow.start_run() as run:
    assert run.info.run_id.startswith(os.environ["ORCHESTRATOR_EXECUTION_ID"] + "-"), run.info.run_id
    mlflow.log_param("where", "server")
    mlflow.log_metrics({"score": 0.25}, step=4)
    with open("r.txt", "w") as f:
        f.write("from a server-run step")
    mlflow.log_artifact("r.txt")
print("server step ok")
"""


def test_executions_the_server_starts_log_through_their_runners_endpoint(tmp_path: Path) -> None:
    """The REST server's runner (``orchestrator _execute``) is the same runner code: its loopback
    endpoint serves server-run executions too; the results are visible over the AI API."""
    import time

    from tests.integration.conftest import ApiServer

    srv = ApiServer(tmp_path, env={"PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)})
    try:
        (tmp_path / "step.py").write_text(SERVER_STEP)
        tpl = TEMPLATE.split("  templates:")[0].replace("mlflow-steps", "mlflow-srv") + f"""  templates:
    - name: main
      container:
        image: python:3.11-slim
        command: [python3, {tmp_path / "step.py"}]
"""
        (tmp_path / "srv.yaml").write_text(tpl)
        srv.cli("register", str(tmp_path / "srv.yaml"))
        code, _, cfg = srv.call("POST", "/v2/lm/configurations", {
            "name": "m", "scenarioId": "mlflow-scen", "executableId": "mlflow-srv"})
        assert code == 201, cfg
        code, _, ex = srv.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})
        assert code == 202, ex
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            body = srv.call("GET", f"/v2/lm/executions/{ex['id']}")[2]
            if body["status"] in ("COMPLETED", "DEAD", "STOPPED"):
                break
            time.sleep(0.2)
        assert body["status"] == "COMPLETED", (body, srv.cli("logs", ex["id"], check=None).stdout)
        code, _, metrics = srv.call("GET", f"/v2/lm/metrics?executionIds={ex['id']}")
        assert code == 200, metrics
        (res,) = metrics["resources"]
        assert [(m["name"], m["value"], m["step"]) for m in res["metrics"]] == [("score", 0.25, 4)]
        assert {"name": "param.where", "value": "server"} in res["tags"]
        names = {a["name"]: a["kind"] for a in body["outputArtifacts"]}
        assert names == {"mlflow-main": "other"}
    finally:
        srv.stop()


def test_shipped_mlflow_variant_of_the_training_workflow(cli: Cli) -> None:
    """workflows/sklearn-train-mlflow.yaml (issue 14 item 8): the same recipe, logged with mlflow."""
    res = cli("run", str(REPO / "workflows" / "sklearn-train-mlflow.yaml"), "--no-cache", "--json",
              "-p", "n-estimators=10", "-p", "registered-model-name=bc-forest")
    out = json.loads(res.stdout)
    assert res.returncode == 0, out.get("statusMessage")
    got = cli.json("metrics", out["id"])
    names = {m["name"] for m in got["metrics"]}
    assert {"train_rows", "train_accuracy_by_trees", "train_accuracy", "precision", "recall", "f1",
            "roc_auc", "test_accuracy"} <= names
    tags = {t["name"]: t["value"] for t in got["tags"]}
    assert tags["param.n_estimators"] == "10" and tags["model"] == "RandomForestClassifier"
    arts = {a["name"]: a for a in cli.json("artifacts", "--execution", out["id"])}
    assert arts["random-forest"]["kind"] == "model" and arts["breast-cancer-model"]["kind"] == "model"
    assert tags[f"orchestrator/registered-model.{arts['random-forest']['id']}"] == "bc-forest:1"


ENDINGS = TEMPLATE.split("  templates:")[0].replace("mlflow-steps", "mlflow-endings") + """\
  templates:
    - name: main
      dag:
        tasks:
          - name: logs
            template: logs
          - name: crash
            template: crash
            depends: logs
          - name: check
            template: check
            depends: crash.Failed
    - name: logs
      container:
        image: python:3.11-slim
        command: [python3, -c, "import mlflow; mlflow.start_run(); mlflow.log_param('seed', 7); mlflow.set_tag('kind', 'cached'); mlflow.end_run()"]
    - name: crash
      metadata:
        annotations:
          orchestrator/cache: "false"
      container:
        image: python:3.11-slim
        command: [python3, -c, "import os, mlflow; mlflow.start_run(); mlflow.log_metric('before_crash', 1); os._exit(3)"]
    - name: check
      metadata:
        annotations:
          orchestrator/cache: "false"
      container:
        image: python:3.11-slim
        command: [python3, -c, "import mlflow; runs = mlflow.search_runs(['mlflow-scen'], filter_string=\\"attributes.run_name = 'crash'\\", output_format='list'); print('crash run', [r.info.status for r in runs])"]
"""


def test_a_crashed_steps_run_is_failed_and_a_cache_hit_brings_its_params(cli: Cli) -> None:
    """The runner ends a step's run the step left RUNNING (FAILED when it crashed: a later step sees
    it); a cache hit of a step copies the params and tags it logged with MLflow, as its metrics."""
    (cli.cwd / "endings.yaml").write_text(ENDINGS)
    first = cli("run", "endings.yaml", "--json")
    second = cli("run", "endings.yaml", "--json")
    ids = []
    for res in (first, second):
        out = json.loads(res.stdout)
        assert out["status"] == "COMPLETED", (out.get("statusMessage"), res.stderr)
        ids.append(out["id"])
        assert "crash run ['FAILED']" in cli("logs", out["id"]).stdout
    steps = {s["name"]: s["state"] for s in cli.json("executions", "show", ids[1])["steps"]}
    assert steps["logs"] == "CACHED", steps
    for eid in ids:
        tags = {t["name"]: t["value"] for t in cli.json("metrics", eid)["tags"]}
        assert tags["param.seed"] == "7" and tags["kind"] == "cached", tags
        assert cli.json("compare", eid)["executions"][0]["parameters"]["seed"] == "7"


STOPPED = TEMPLATE.split("  templates:")[0].replace("mlflow-steps", "mlflow-stopped") + """\
  onExit: report
  templates:
    - name: main
      container:
        image: python:3.11-slim
        command: [python3, -c, "import time, mlflow; mlflow.start_run(); mlflow.log_param('started', 'yes'); time.sleep(120)"]
    - name: report
      container:
        image: python:3.11-slim
        command: [python3, -c, "import mlflow; runs = mlflow.search_runs(['mlflow-scen'], filter_string=\\"attributes.run_name = 'main'\\", output_format='list'); print('stopped run', [r.info.status for r in runs])"]
"""


def test_a_stopped_steps_run_is_killed(cli: Cli) -> None:
    """``executions stop`` kills the step (SIGTERM: the client never ends its run); the runner marks
    the run KILLED, which the onExit handler (run after a stop, as in Argo) reads back."""
    import subprocess
    import time

    (cli.cwd / "stopped.yaml").write_text(STOPPED)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "stopped.yaml", "--no-cache"],
                            cwd=cli.cwd, env={**cli.env, "ORCHESTRATOR_KILL_GRACE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        eid = proc.stderr.readline().split()[1]  # "execution ID  executable ..."
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            res = cli("metrics", eid, "--json")
            if res.returncode == 0 and any(t["name"] == "param.started" for t in json.loads(res.stdout)["tags"]):
                break
            time.sleep(0.3)
        else:
            pytest.fail("the step never logged through MLflow")
        assert cli("executions", "stop", eid).returncode == 0
        assert proc.wait(60) == 1
    finally:
        proc.kill()
        proc.wait()
    assert "stopped run ['KILLED']" in cli("logs", eid).stdout
