"""The MLflow protocol core (no HTTP, no client): scoping by credential and run, MLflow's error
shape, params immutable, one transaction per request, artifact paths kept inside their run."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orchestrator.run.mlflow_models import REQUEST_TAG
from orchestrator.run.mlflow_protocol import PARAM_PREFIX, Session
from orchestrator.store.artifacts import ObjectStore
from orchestrator.store.sqlite import SqliteStore

RG = "default"
API = "/api/2.0/mlflow/"


class Rig:
    def __init__(self, tmp: Path, scenario: str = "scen") -> None:
        tmp.mkdir(exist_ok=True)
        self.tmp, self.db = tmp, str(tmp / "o.db")
        self.store = SqliteStore(self.db)
        self.store.ensure_resource_group(RG)
        cfg = self.store.create_configuration(RG, "c", scenario, "exe", [], [])
        self.ex = self.store.create_execution(RG, cfg, str(tmp / "work"))
        self.objects = ObjectStore(tmp / "home")
        self.s = Session(lambda: SqliteStore(self.db), self.objects, self.ex, "tok-" + self.ex.id,
                         tmp / "work" / "mlflow")
        self.run = f"{self.ex.id}-abcdef0123"
        self.s.add_run(self.run, "train")

    def call(self, method: str, route: str, body: Any = None, query: dict[str, str] | None = None,
             auth: str | None = "") -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else None
        return self.s.handle(method, route if route.startswith("/") else API + route, query or {}, raw,
                             f"Bearer {self.s.token}" if auth == "" else auth)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_wrong_or_missing_credential_is_unauthenticated(rig: Rig) -> None:
    for auth in (None, "Bearer nope", f"Basic {rig.s.token}"):
        status, out = rig.call("GET", "runs/get", query={"run_id": rig.run}, auth=auth)
        assert (status, out["error_code"]) == (401, "UNAUTHENTICATED")


def test_another_executions_run_is_not_found(rig: Rig, tmp_path: Path) -> None:
    other = Rig(tmp_path / "b")
    status, out = rig.call("POST", "runs/log-metric", {"run_id": other.run, "key": "x", "value": 1})
    assert status == 404 and out["error_code"] == "RESOURCE_DOES_NOT_EXIST" and other.run in out["message"]
    # ... and its credential does not open this session
    status, _ = rig.call("GET", "runs/get", query={"run_id": rig.run}, auth=f"Bearer {other.s.token}")
    assert status == 401


def test_get_run_shows_what_was_logged(rig: Rig) -> None:
    assert rig.call("POST", "runs/log-parameter", {"run_id": rig.run, "key": "lr", "value": "0.1"})[0] == 200
    assert rig.call("POST", "runs/set-tag", {"run_id": rig.run, "key": "team", "value": "ml"})[0] == 200
    assert rig.call("POST", "runs/log-metric", {"run_id": rig.run, "key": "loss", "value": 0.5,
                                                "timestamp": 1700000000000, "step": 3})[0] == 200
    status, out = rig.call("GET", "runs/get", query={"run_id": rig.run})
    assert status == 200
    info, data = out["run"]["info"], out["run"]["data"]
    assert info["run_id"] == rig.run and info["experiment_id"] == "scen" and info["status"] == "RUNNING"
    assert info["artifact_uri"] == f"mlflow-artifacts:/scen/{rig.run}/artifacts"
    assert data["params"] == [{"key": "lr", "value": "0.1"}]
    assert {"key": "team", "value": "ml"} in data["tags"]
    assert data["metrics"] == [{"key": "loss", "value": 0.5, "timestamp": 1700000000000, "step": 3}]
    tags, _ = rig.store.get_tags(RG, rig.ex.id)
    assert (PARAM_PREFIX + "lr", "0.1") in tags


def test_params_cannot_change_but_may_repeat(rig: Rig) -> None:
    body = {"run_id": rig.run, "key": "lr", "value": "0.1"}
    assert rig.call("POST", "runs/log-parameter", body)[0] == 200
    assert rig.call("POST", "runs/log-parameter", body)[0] == 200
    status, out = rig.call("POST", "runs/log-parameter", {**body, "value": "0.2"})
    assert status == 400 and out["error_code"] == "INVALID_PARAMETER_VALUE" and "0.1" in out["message"]


def test_batch_of_1000_is_one_transaction(rig: Rig) -> None:
    metrics = [{"key": "m", "value": i, "timestamp": 1700000000000 + i, "step": i} for i in range(1000)]
    before = rig.s.store.version()[1]
    assert rig.call("POST", "runs/log-batch", {"run_id": rig.run, "metrics": metrics})[0] == 200
    assert rig.s.store.version()[1] == before + 1  # write transactions of the session's connection
    with sqlite3.connect(rig.db) as db:
        assert db.execute("SELECT COUNT(*), MIN(node_id), MAX(step) FROM metrics").fetchone() == (1000, "train", 999)


def test_a_bad_item_stores_nothing_of_its_batch(rig: Rig) -> None:
    metrics = [{"key": "m", "value": 1, "step": 0}, {"key": "bad\nname", "value": 2}]
    status, out = rig.call("POST", "runs/log-batch", {"run_id": rig.run, "metrics": metrics})
    assert status == 400 and out["error_code"] == "INVALID_PARAMETER_VALUE"
    assert rig.store.get_metrics(RG, rig.ex.id) == []


def test_batch_limits_are_mlflows(rig: Rig) -> None:
    status, out = rig.call("POST", "runs/log-batch", {"run_id": rig.run, "params": [
        {"key": f"p{i}", "value": "1"} for i in range(101)]})
    assert status == 400 and "at most 100 params" in out["message"]


def test_metric_history_and_experiments(rig: Rig) -> None:
    for i, v in enumerate((3.0, 2.0, 1.0)):
        rig.call("POST", "runs/log-metric", {"run_id": rig.run, "key": "loss", "value": v, "step": i})
    status, out = rig.call("GET", "metrics/get-history", query={"run_id": rig.run, "metric_key": "loss"})
    assert status == 200 and [(m["step"], m["value"]) for m in out["metrics"]] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    status, out = rig.call("GET", "experiments/get-by-name", query={"experiment_name": "my exp"})
    assert status == 200 and out["experiment"]["experiment_id"] == "scen"
    assert ("experiment", "my exp") in rig.store.get_tags(RG, rig.ex.id)[0]
    assert rig.call("GET", "experiments/get", query={"experiment_id": "scen"})[0] == 200
    assert rig.call("GET", "experiments/get", query={"experiment_id": "0"})[0] == 404


def test_unsupported_calls_answer_mlflows_error_shape(rig: Rig) -> None:
    status, out = rig.call("POST", "runs/delete", {"run_id": rig.run})
    assert status == 404 and out["error_code"] == "ENDPOINT_NOT_FOUND" and "runs/delete" in out["message"]
    status, out = rig.call("POST", "runs/create", {"experiment_id": "scen"})
    assert status == 400 and "MLFLOW_RUN_ID" in out["message"]
    status, out = rig.call("GET", "/elsewhere")
    assert status == 404 and out["error_code"] == "ENDPOINT_NOT_FOUND"
    status, out = rig.s.handle("POST", API + "runs/log-metric", {}, b"{not json", f"Bearer {rig.s.token}")
    assert status == 400 and set(out) == {"error_code", "message"}


def test_run_status_is_the_steps_view_only(rig: Rig) -> None:
    status, out = rig.call("POST", "runs/update", {"run_id": rig.run, "status": "FINISHED", "end_time": 5})
    assert status == 200 and out["run_info"]["status"] == "FINISHED" and out["run_info"]["end_time"] == 5
    assert rig.store.get_execution(RG, rig.ex.id).status.value == "UNKNOWN"  # the runner's alone


def _put(rig: Rig, rel: str, data: bytes) -> tuple[int, Any]:
    return rig.s.handle("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + rel, {}, io.BytesIO(data),
                        f"Bearer {rig.s.token}", len(data))


def test_artifacts_stay_inside_this_executions_runs(rig: Rig, tmp_path: Path) -> None:
    base = f"scen/{rig.run}/artifacts"
    assert _put(rig, f"{base}/a/b.txt", b"hello")[0] == 200
    status, out = rig.call("GET", "/api/2.0/mlflow-artifacts/artifacts", query={"path": f"{base}/a"})
    assert status == 200 and out["files"] == [{"path": "b.txt", "is_dir": False, "file_size": 5}]
    status, path = rig.call("GET", f"/api/2.0/mlflow-artifacts/artifacts/{base}/a/b.txt")
    assert status == 200 and Path(path).read_bytes() == b"hello"
    for rel in (f"{base}/../../x", f"scen/{rig.run}-other/artifacts/x", f"other/{rig.run}/artifacts/x",
                f"{base}/../../../../../etc/passwd"):
        status, out = _put(rig, rel, b"x")
        assert status in (400, 403) and set(out) == {"error_code", "message"}, rel
    assert not (tmp_path / "x").exists() and not (tmp_path / "work" / "x").exists()


def test_run_end_stores_logged_files_as_one_artifact(rig: Rig) -> None:
    _put(rig, f"scen/{rig.run}/artifacts/notes.txt", b"hi")
    rig.call("POST", "runs/update", {"run_id": rig.run, "status": "FINISHED"})
    arts = rig.store.list_artifacts(RG, execution_id=rig.ex.id)
    assert [(a.name, a.kind, a.size) for a in arts] == [("mlflow-train", "other", 2)]
    assert (rig.objects.local_path(RG, arts[0].url) / "notes.txt").read_bytes() == b"hi"


def test_logged_model_becomes_a_model_artifact_when_ready(rig: Rig) -> None:
    status, out = rig.call("POST", "logged-models", {"experiment_id": "scen", "name": "clf",
                                                      "source_run_id": rig.run})
    assert status == 200
    info = out["model"]["info"]
    mid = info["model_id"]
    assert info["artifact_uri"] == f"mlflow-artifacts:/scen/models/{mid}/artifacts"
    assert rig.call("PATCH", f"logged-models/{mid}", {"model_id": mid, "status": "LOGGED_MODEL_READY"})[0] == 400
    assert _put(rig, f"scen/models/{mid}/artifacts/MLmodel", b"flavors: {}\n")[0] == 200
    status, out = rig.call("PATCH", f"logged-models/{mid}", {"model_id": mid, "status": "LOGGED_MODEL_READY"})
    assert status == 200 and out["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    (art,) = rig.store.list_artifacts(RG, execution_id=rig.ex.id, kind="model")
    assert art.name == "clf" and len(art.digest) == 64
    status, out = rig.call("POST", "model-versions/create", {"name": "demo", "source": f"models:/{mid}",
                                                             "run_id": rig.run, "model_id": mid})
    assert status == 200 and out["model_version"]["status"] == "READY"
    assert out["model_version"]["version"] == "pending" and rig.ex.id in out["model_version"]["status_message"]
    assert (REQUEST_TAG + art.id, "demo") in rig.store.get_tags(RG, rig.ex.id)[0]
    assert rig.call("POST", "model-versions/create", {"name": "demo", "source": f"models:/{mid}"})[0] == 200
    status, out = rig.call("POST", "model-versions/create", {"name": "other", "source": f"models:/{mid}"})
    assert status == 400 and "already to be registered as 'demo'" in out["message"]
    status, out = rig.call("POST", "model-versions/create", {"name": "bad name!", "source": f"models:/{mid}"})
    assert status == 400 and out["error_code"] == "INVALID_PARAMETER_VALUE"
    status, out = rig.call("POST", "model-versions/create", {"name": "demo", "source": "models:/m-other"})
    assert status == 404 and out["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert rig.call("GET", "logged-models/m-unknown")[0] == 404


def test_a_bug_or_a_busy_store_answers_at_once_in_mlflows_shape(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.errors import StoreError

    def boom(self: Session, req: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("x")

    from orchestrator.run import mlflow_protocol

    monkeypatch.setitem(mlflow_protocol._ROUTES, ("GET", "runs/get"), boom)
    status, out = rig.call("GET", "runs/get", query={"run_id": rig.run})
    assert status == 400 and out["error_code"] == "INTERNAL_ERROR" and "KeyError" in out["message"]

    def busy(self: Session, *a: Any) -> None:
        raise StoreError("database is locked")

    monkeypatch.setattr(Session, "log", busy)
    status, out = rig.call("POST", "runs/log-metric", {"run_id": rig.run, "key": "x", "value": 1})
    assert status == 503 and out["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_loopback_endpoint_over_http(tmp_path: Path) -> None:
    import http.client
    from types import SimpleNamespace

    from orchestrator.run import mlflow_endpoint

    rig = Rig(tmp_path)
    r = SimpleNamespace(store=rig.store, objects=rig.objects, ex=rig.ex, workdir=str(tmp_path / "work"))
    env = mlflow_endpoint.step_env(r, rig.run, "train")
    assert env["MLFLOW_RUN_ID"] == rig.run and env["MLFLOW_EXPERIMENT_ID"] == "scen"
    port = int(env["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    auth = {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}", "Content-Type": "application/json"}
    c.request("POST", API + "runs/log-metric", json.dumps({"run_id": rig.run, "key": "k", "value": 2}), auth)
    resp = c.getresponse()
    assert (resp.status, json.loads(resp.read())) == (200, {})
    c.request("GET", API + f"runs/get?run_id={rig.run}", headers={})  # same connection (keep-alive)
    resp = c.getresponse()
    assert resp.status == 401 and json.loads(resp.read())["error_code"] == "UNAUTHENTICATED"
    c.putrequest("POST", API + "runs/log-batch")
    c.putheader("Authorization", auth["Authorization"])
    c.putheader("Content-Length", str(9 * 1024 * 1024))
    c.endheaders()
    resp = c.getresponse()  # refused from its Content-Length, before any byte of the body is read
    assert resp.status == 400 and "over" in json.loads(resp.read())["message"]
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/scen/{rig.run}/artifacts/f.txt", b"data", auth)
    assert c.getresponse().status == 200
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/scen/{rig.run}/artifacts/g.txt", iter([b"data"]),
              {"Authorization": auth["Authorization"]}, encode_chunked=True)
    resp = c.getresponse()
    assert resp.status == 400 and "chunked" in json.loads(resp.read())["message"]
    c.close()
    mlflow_endpoint.stop(r)
    assert r.mlflow_endpoint is None
    # the run's files were stored at stop (the step never ended its run); the staging copy is gone
    (art,) = rig.store.list_artifacts(RG, execution_id=rig.ex.id)
    assert (rig.objects.local_path(RG, art.url) / "f.txt").read_bytes() == b"data"
    assert not (tmp_path / "work" / "mlflow").exists()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/")
    assert [p.name for p in rig.store.get_metrics(RG, rig.ex.id)] == ["k"]


def test_an_endpoint_nobody_called_stops_without_loading_the_server(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from orchestrator.run import mlflow_endpoint

    rig = Rig(tmp_path)
    r = SimpleNamespace(store=rig.store, objects=rig.objects, ex=rig.ex, workdir=str(tmp_path / "work"))
    mlflow_endpoint.step_env(r, rig.run, "train")
    ep = r.mlflow_endpoint
    mlflow_endpoint.stop(r)
    assert ep.server is None and ep.session is None and not ep.thread.is_alive()


def test_concurrent_requests_of_parallel_steps_all_land(rig: Rig) -> None:
    import threading

    other = f"{rig.ex.id}-0123456789"
    rig.s.add_run(other, "evaluate")

    def log(run_id: str, key: str) -> None:
        for i in range(100):
            assert rig.call("POST", "runs/log-metric", {"run_id": run_id, "key": key, "value": i, "step": i})[0] == 200

    threads = [threading.Thread(target=log, args=(run, f"k{n}")) for n, run in enumerate([rig.run, other] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sqlite3.connect(rig.db) as db:
        rows = db.execute("SELECT node_id, name, COUNT(*) FROM metrics GROUP BY node_id, name ORDER BY name").fetchall()
    assert rows == [("train", "k0", 100), ("evaluate", "k1", 100), ("train", "k2", 100), ("evaluate", "k3", 100)]


def test_stop_never_raises_over_a_failing_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from orchestrator.errors import StoreError
    from orchestrator.run import mlflow_endpoint, mlflow_models

    rig = Rig(tmp_path)
    r = SimpleNamespace(store=rig.store, objects=rig.objects, ex=rig.ex, workdir=str(tmp_path / "work"))
    env = mlflow_endpoint.step_env(r, rig.run, "train")
    import urllib.request

    req = urllib.request.Request(env["MLFLOW_TRACKING_URI"] + f"/api/2.0/mlflow-artifacts/artifacts/scen/{rig.run}"
                                 "/artifacts/f.txt", data=b"x", method="PUT",
                                 headers={"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"})
    assert urllib.request.urlopen(req, timeout=10).status == 200

    def broken(*a: Any, **k: Any) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(mlflow_models.Models, "_store", broken)
    mlflow_endpoint.stop(r)  # must not raise: it runs in the runner's finally
    assert r.mlflow_endpoint is None


def _search(rig: Rig, filter: str = "", **extra: Any) -> tuple[int, Any]:
    return rig.call("POST", "runs/search", {"experiment_ids": ["scen"], "filter": filter,
                                            "run_view_type": "ACTIVE_ONLY", "max_results": 1000, **extra})


def test_search_runs_filters_this_executions_runs(rig: Rig) -> None:
    other = f"{rig.ex.id}-0123456789"
    rig.s.add_run(other, "eval")
    rig.call("POST", "runs/log-batch", {"run_id": rig.run, "params": [{"key": "lr", "value": "0.1"}],
                                        "metrics": [{"key": "acc", "value": 0.9, "timestamp": 1, "step": 0}]})
    ids = lambda out: [r["info"]["run_id"] for r in out["runs"]]  # noqa: E731
    status, out = _search(rig)
    assert status == 200 and ids(out) == [rig.run, other] and "next_page_token" not in out
    assert ids(_search(rig, "params.lr = '0.1'")[1]) == [rig.run]  # each run shows what its step logged
    assert rig.call("GET", "runs/get", query={"run_id": other})[1]["run"]["data"]["params"] == []
    assert ids(_search(rig, "attributes.run_name = 'eval'")[1]) == [other]
    assert ids(_search(rig, "metrics.acc > 0.5 and params.lr != '0.2'")[1]) == [rig.run]
    assert ids(_search(rig, "metrics.acc < 0.5")[1]) == []
    assert ids(_search(rig, "tags.missing = 'x'")[1]) == []
    assert _search(rig, experiment_ids=["other"])[1] == {"runs": []}
    assert len(_search(rig, max_results=1)[1]["runs"]) == 1
    for bad in ("params.lr LIKE '%1'", "attributes.start_time > 5", "metrics.acc > 'x'", "lr = '0.1'",
                "params.lr = '0.1' OR params.lr = '0.2'"):
        status, out = _search(rig, bad)
        assert (status, out["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), bad
    by = lambda *o: ids(_search(rig, order_by=list(o))[1])  # noqa: E731
    assert by("attributes.run_name DESC") == [rig.run, other]  # train > eval
    assert by("attributes.run_name") == by("attributes.run_name ASC") == [other, rig.run]
    assert by("attributes.end_time", "attributes.run_name") == [other, rig.run]  # none ended: by name
    for bad in ("attributes.experiment_id", "metrics.acc DOWN", "acc"):
        status, out = _search(rig, order_by=[bad])
        assert (status, out["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), bad


def test_a_nested_run_is_recorded_under_its_step_run(rig: Rig) -> None:
    status, out = rig.call("POST", "runs/create", {
        "experiment_id": "scen", "run_name": "fold 1", "start_time": 7,
        "tags": [{"key": "mlflow.parentRunId", "value": rig.run}, {"key": "fold", "value": "1"}]})
    assert status == 200, out
    child = out["run"]["info"]["run_id"]
    assert child != rig.run and out["run"]["info"]["run_name"] == "fold 1"
    rig.call("POST", "runs/log-batch", {"run_id": child, "params": [{"key": "k", "value": "3"}],
                                        "metrics": [{"key": "loss", "value": 0.25, "timestamp": 1, "step": 2}]})
    rig.call("POST", "runs/log-metric", {"run_id": rig.run, "key": "loss", "value": 0.5, "timestamp": 1})
    tags = dict(rig.store.get_tags(RG, rig.ex.id)[0])
    assert tags[PARAM_PREFIX + "fold 1/k"] == "3" and tags["fold 1/fold"] == "1"
    assert [(m.name, m.value) for m in rig.store.get_metrics(RG, rig.ex.id)] == [("fold 1/loss", 0.25), ("loss", 0.5)]
    got = rig.call("GET", "runs/get", query={"run_id": child})[1]["run"]
    assert got["data"]["params"] == [{"key": "k", "value": "3"}]
    assert [(m["key"], m["value"]) for m in got["data"]["metrics"]] == [("loss", 0.25)]
    assert {"key": "mlflow.parentRunId", "value": rig.run} in got["data"]["tags"]
    parent = rig.call("GET", "runs/get", query={"run_id": rig.run})[1]["run"]["data"]
    assert [(m["key"], m["value"]) for m in parent["metrics"]] == [("loss", 0.5)] and parent["params"] == []
    hist = rig.call("GET", "metrics/get-history", query={"run_id": child, "metric_key": "loss"})[1]
    assert [(m["key"], m["value"]) for m in hist["metrics"]] == [("loss", 0.25)]
    # a second child of the same name gets a name of its own; a child of a child is refused
    out = rig.call("POST", "runs/create", {"run_name": "fold 1", "tags": [
        {"key": "mlflow.parentRunId", "value": rig.run}]})[1]
    assert out["run"]["info"]["run_name"] == "fold 1-2"
    status, out = rig.call("POST", "runs/create", {"tags": [{"key": "mlflow.parentRunId", "value": child}]})
    assert (status, out["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_the_runner_ends_a_step_run_left_running(rig: Rig) -> None:
    from orchestrator.run.mlflow_endpoint import add_run
    from orchestrator.run.mlflow_runs import end_step

    child = rig.call("POST", "runs/create", {"tags": [{"key": "mlflow.parentRunId", "value": rig.run}]})[1]
    child_id = child["run"]["info"]["run_id"]
    end_step(rig.s.runs, rig.run, "FAILED")
    for rid in (rig.run, child_id):
        info = rig.call("GET", "runs/get", query={"run_id": rid})[1]["run"]["info"]
        assert info["status"] == "FAILED" and info["end_time"] > 0
    end_step(rig.s.runs, rig.run, "KILLED")  # an ended run keeps the status it has
    assert rig.s.runs[rig.run]["status"] == "FAILED"
    add_run(rig.s.runs, rig.run, "train")  # the step is retried: its run is RUNNING again
    assert rig.s.runs[rig.run]["status"] == "RUNNING" and rig.s.runs[rig.run]["end"] is None
    end_step(rig.s.runs, rig.run, "KILLED")
    assert rig.s.runs[rig.run]["status"] == "KILLED"


def test_a_key_with_a_trailing_newline_is_refused(rig: Rig) -> None:
    """``$`` also matches before a final newline: ``loss\\n`` passed the key pattern."""
    for route, body in (("runs/log-metric", {"key": "loss\n", "value": 1.0, "timestamp": 1, "step": 0}),
                        ("runs/log-parameter", {"key": "lr\n", "value": "0.1"})):
        status, out = rig.call("POST", route, {"run_id": rig.run, **body})
        assert (status, out["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), route
    assert rig.store.get_metrics(RG, rig.ex.id) == []
