"""Sweeps across layers: the CLI process killed with SIGKILL mid-sweep and ``sweeps resume``
continuing without re-running finished trials; the REST resource ``/v2/lm/sweeps`` (create from a
document, get, list, trials, stop, resume, scoping) on a real server; ``executions --sweep``."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ApiServer

TEMPLATE = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: napping
  annotations: {scenarios.ai.sap.com/name: sweeps, executables.ai.sap.com/name: napping}
  labels: {scenarios.ai.sap.com/id: sweeps, ai.sap.com/version: "1"}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: x}, {name: nap, value: "0.1"}]
  templates:
  - name: main
    container:
      image: python
      command: [python, -c, "import sys, time; from orchestrator import tracking as t; time.sleep(float(sys.argv[2])); t.log_metric('score', float(sys.argv[1]))", "{{workflow.parameters.x}}", "{{workflow.parameters.nap}}"]
"""
SWEEP = {"apiVersion": "orchestrator/v1", "kind": "Sweep", "metadata": {"name": "naps"},
         "spec": {"trial": {"executableId": "napping", "parameterBindings": [{"key": "nap", "value": "0.1"}]},
                  "searchSpace": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
                  "samplingAlgorithm": {"type": "random", "seed": 11},
                  "objective": {"primaryMetric": "score", "goal": "maximize"},
                  "limits": {"maxTotalTrials": 4, "maxConcurrentTrials": 2}}}


def _orch(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp / "home")}
    p = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=tmp, env=env, text=True,
                       capture_output=True, timeout=120)
    assert not check or p.returncode == 0, p.stdout + p.stderr
    return p


def _trials(db: Path) -> list[tuple[int, str, str, str]]:
    with sqlite3.connect(db, timeout=10) as c:
        return c.execute("""SELECT t.trial, t.execution_id, e.status, t.parameters FROM sweep_trials t
                            JOIN executions e ON e.id=t.execution_id ORDER BY t.trial, t.rowid""").fetchall()


def _kill_9_mid_sweep(tmp_path: Path, doc: dict[str, object]) -> tuple[Path, list[tuple[int, str, str, str]]]:
    """Run ``orchestrator sweep`` on ``doc`` and SIGKILL it once two trials are COMPLETED and one
    RUNNING; (the store, the trials as they were then)."""
    (tmp_path / "napping.yaml").write_text(TEMPLATE)
    (tmp_path / "sweep.yaml").write_text(json.dumps(doc))
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", "napping.yaml", "sweep.yaml", "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "home" / "orchestrator.db"
    deadline = time.monotonic() + 60
    before: list[tuple[int, str, str, str]] = []
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            before = _trials(db)
        except sqlite3.OperationalError:
            continue  # not created yet
        if sum(s == "COMPLETED" for _, _, s, _ in before) >= 2 and any(s == "RUNNING" for _, _, s, _ in before):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert db.exists(), "the sweep never started"
    return db, _trials(db)


def test_resume_after_kill_9_reruns_only_the_unfinished_trials(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(SWEEP))
    doc["spec"]["trial"]["parameterBindings"][0]["value"] = "0.4"
    doc["spec"]["limits"]["maxTotalTrials"] = 6
    db, before = _kill_9_mid_sweep(tmp_path, doc)
    done = {eid for _, eid, s, _ in before if s == "COMPLETED"}
    assert len(done) >= 2 and len(done) < 6
    with sqlite3.connect(db, timeout=10) as c:
        (sweep_id,) = c.execute("SELECT id FROM sweeps").fetchone()
        # the best is stored as trials end, not only when the sweep does: it survives the kill
        stored = c.execute("SELECT best_execution_id, best_value FROM sweeps").fetchone()
        recorded = c.execute("""SELECT t.execution_id, t.objective FROM sweep_trials t JOIN executions e
                                ON e.id=t.execution_id WHERE t.finished_at IS NOT NULL AND e.status='COMPLETED'
                                ORDER BY t.objective DESC, t.trial LIMIT 1""").fetchone()
    assert tuple(stored) == (tuple(recorded) if recorded else (None, None))
    out = json.loads(_orch(tmp_path, "sweeps", "resume", sweep_id[:6], "-q", "--json").stdout)
    assert out["status"] == "COMPLETED", out["statusMessage"]
    assert out["bestValue"] is not None and out["bestValue"] >= (stored[1] or 0)  # resume keeps it (or betters it)
    after = _trials(db)
    completed = {t: (eid, params) for t, eid, s, params in after if s == "COMPLETED"}
    assert sorted(completed) == list(range(6))  # every trial index completed exactly once
    assert len([1 for t, _, s, _ in after if s == "COMPLETED"]) == 6
    assert done <= {eid for eid, _ in completed.values()}  # finished trials were not run again
    first_params = {t: params for t, _, _, params in before}
    assert all(completed[t][1] == first_params[t] for t in first_params)  # same point on re-run
    interrupted = [t for t in out["trials"] if t["interrupted"]]
    assert interrupted and all(t["status"] == "DEAD" for t in interrupted)
    shown = json.loads(_orch(tmp_path, "executions", "--sweep", sweep_id[:6], "--json").stdout)
    assert sorted(e["id"] for e in shown) == sorted(eid for _, eid, _, _ in after)


def test_bayesian_resume_after_kill_9_feeds_the_finished_trials_to_tpe(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("optuna")
    from orchestrator.control import sweeps
    from orchestrator.control.service import Service

    doc = json.loads(json.dumps(SWEEP))
    doc["spec"]["trial"]["parameterBindings"][0]["value"] = "0.3"
    doc["spec"]["samplingAlgorithm"] = "bayesian"
    doc["spec"]["limits"]["maxTotalTrials"] = 5
    db, before = _kill_9_mid_sweep(tmp_path, doc)
    finished = {t: (eid, json.loads(p)) for t, eid, s, p in before if s == "COMPLETED"}
    assert 2 <= len(finished) < 5
    with sqlite3.connect(db, timeout=10) as c:
        (sweep_id,) = c.execute("SELECT id FROM sweeps").fetchone()
    made: list[object] = []  # the sampler the resumed engine builds, to look into its Optuna study
    real = sweeps.make_sampler
    monkeypatch.setattr(sweeps, "make_sampler", lambda spec, seed: made.append(real(spec, seed)) or made[-1])
    svc = Service(tmp_path / "home", local_files=True)  # this process resumes it (as `sweeps resume` does)
    try:
        row = sweeps.resume_sweep(svc, sweep_id)
    finally:
        svc.close()
    assert row.status == "COMPLETED", row.status_message
    with sqlite3.connect(db, timeout=10) as c:
        objective = dict(c.execute("SELECT execution_id, objective FROM sweep_trials"))
    after = _trials(db)
    completed = {t: eid for t, eid, s, _ in after if s == "COMPLETED"}
    assert sorted(completed) == [0, 1, 2, 3, 4]
    assert all(completed[t] == eid for t, (eid, _) in finished.items())  # not run again
    assert sum(1 for t, *_ in after if t in finished) == len(finished)  # no second execution either
    study = made[0].study  # type: ignore[attr-defined]
    told = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(told) == 5  # every trial, the re-fed ones included
    # TPE heard of the trials finished before the kill first (before it proposed anything), with
    # the parameters they ran with and their objectives (each trial logs score = x)
    refed = sorted((t.params["x"], t.value) for t in told[:len(finished)])
    expected = sorted((float(p["x"]), objective[eid]) for eid, p in finished.values())
    assert [x for x, _ in refed] == pytest.approx([x for x, _ in expected])
    assert [v for _, v in refed] == pytest.approx([v for _, v in expected])
    assert [v for _, v in refed] == pytest.approx([x for x, _ in expected])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    tmp = tmp_path_factory.mktemp("sweep-api")
    (tmp / "templates").mkdir()
    (tmp / "templates" / "napping.yaml").write_text(TEMPLATE)
    srv = ApiServer(tmp, "--workflows", str(tmp / "templates"))  # registered at start
    yield srv  # type: ignore[misc]
    srv.stop()


def _wait(server: ApiServer, sweep_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, body = server.call("GET", f"/v2/lm/sweeps/{sweep_id}")
        assert status == 200, body
        if body["status"] not in ("PENDING", "RUNNING"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError("sweep did not end")


def test_rest_create_get_list_trials_and_scoping(server: ApiServer) -> None:
    status, _, created = server.call("POST", "/v2/lm/sweeps", SWEEP)
    assert status == 202, created
    body = _wait(server, created["id"])
    assert body["status"] == "COMPLETED" and body["name"] == "naps" and body["trialCount"] == 4
    status, _, trials = server.call("GET", f"/v2/lm/sweeps/{created['id']}/trials")
    assert status == 200 and trials["count"] == 4
    assert [t["trial"] for t in trials["resources"]] == [0, 1, 2, 3]
    best = max(trials["resources"], key=lambda t: t["objective"])
    assert best["best"] and body["bestExecutionId"] == best["executionId"]
    assert abs(best["objective"] - float(best["parameters"]["x"])) < 1e-9
    status, _, listed = server.call("GET", "/v2/lm/sweeps?$top=1")
    assert status == 200 and listed["count"] >= 1 and len(listed["resources"]) == 1
    status, _, ex = server.call("GET", f"/v2/lm/executions/{best['executionId']}")
    assert status == 200 and ex["status"] == "COMPLETED"  # a trial is an ordinary execution
    status, _, err = server.call("PATCH", f"/v2/lm/sweeps/{created['id']}", {"targetStatus": "STOPPED"})
    assert status == 400 and err["error"]["code"] == "INVALID_STATE"
    assert server.call("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "other"}, rg=None)[0] == 202
    assert server.call("GET", f"/v2/lm/sweeps/{created['id']}", rg="other")[0] == 404
    assert server.call("GET", f"/v2/lm/sweeps/{created['id']}/trials", rg="other")[0] == 404
    assert server.call("GET", "/v2/lm/sweeps", rg="other")[2]["count"] == 0
    assert server.call("GET", "/v2/lm/sweeps/nope")[0] == 404


def test_rest_refuses_invalid_documents_with_located_errors(server: ApiServer) -> None:
    stored = server.call("GET", "/v2/lm/sweeps")[2]["count"]
    bad = json.loads(json.dumps(SWEEP))
    bad["spec"]["samplingAlgorithm"] = "grid"
    status, _, err = server.call("POST", "/v2/lm/sweeps", bad)
    assert status == 400 and err["error"]["code"] == "VALIDATION_FAILED"
    assert "/spec/searchSpace/x" in err["error"]["message"]
    unknown = json.loads(json.dumps(SWEEP))
    unknown["spec"]["trial"]["executableId"] = "missing-exe"
    status, _, err = server.call("POST", "/v2/lm/sweeps", unknown)
    assert status == 400 and "missing-exe" in err["error"]["message"]
    outside = json.loads(json.dumps(SWEEP))
    outside["spec"]["trial"]["inputArtifactBindings"] = [{"key": "data", "url": "file:///etc"}]
    status, _, err = server.call("POST", "/v2/lm/sweeps", outside)
    assert status == 400 and err["error"]["code"] == "INVALID_ARTIFACT"  # outside the server's file roots
    assert server.call("GET", "/v2/lm/sweeps")[2]["count"] == stored  # nothing refused was stored
    status, _, err = server.call("POST", "/v2/lm/sweeps", raw=b"{not yaml: [",
                                 headers={"Content-Type": "application/json"})
    assert status == 400 and err["error"]["code"] == "INVALID_REQUEST"  # the gate: not JSON


def test_rest_stop_ends_a_running_sweep_and_running_resumes_it(server: ApiServer) -> None:
    slow = json.loads(json.dumps(SWEEP))
    slow["metadata"]["name"] = "slow"
    slow["spec"]["trial"]["parameterBindings"][0]["value"] = "0.8"
    status, _, created = server.call("POST", "/v2/lm/sweeps", slow)
    assert status == 202
    deadline = time.monotonic() + 30
    while server.call("GET", f"/v2/lm/sweeps/{created['id']}/trials")[2]["count"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, _, _ = server.call("PATCH", f"/v2/lm/sweeps/{created['id']}", {"targetStatus": "STOPPED"})
    assert status == 202
    body = _wait(server, created["id"])
    assert body["status"] == "STOPPED" and body["statusMessage"] == "stopped by request"
    trials = server.call("GET", f"/v2/lm/sweeps/{created['id']}/trials")[2]["resources"]
    assert trials and all(t["status"] == "STOPPED" and t["interrupted"] for t in trials)
    status, _, _ = server.call("PATCH", f"/v2/lm/sweeps/{created['id']}", {"targetStatus": "RUNNING"})
    assert status == 202  # resume: the interrupted trials run again, with the same parameters
    body = _wait(server, created["id"])
    assert body["status"] == "COMPLETED", body["statusMessage"]
    after = server.call("GET", f"/v2/lm/sweeps/{created['id']}/trials")[2]["resources"]
    done = {t["trial"]: t["parameters"] for t in after if t["status"] == "COMPLETED"}
    assert sorted(done) == [0, 1, 2, 3]
    assert all(done[t["trial"]] == t["parameters"] for t in trials)
    assert server.call("PATCH", f"/v2/lm/sweeps/{created['id']}", {"targetStatus": "RUNNING"})[0] == 400
