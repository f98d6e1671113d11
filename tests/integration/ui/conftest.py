"""A seeded home and a real ``orchestrator serve`` shared by the dashboard tests (one per session).

Seeded with real runs of tiny templates in a real store: three training runs with different
parameters (precision, recall and a loss series), a model with three versions and an alias, a
failed run, a schedule with past slots, a git application with an invalid file, and a run in a
second resource group ``team-b``. Tokens: the server's admin token, a read token, a run token and
an admin token limited to ``team-b``. Serving: a finished sweep of three trials (the bandit
policy stops one), a tiny scikit-learn model ``ui-tiny`` deployed once the server runs (its
deployment manager and predictors are killed at the end), and a stopped sweep and deployment in
team-b. :func:`slow` submits an execution whose middle step runs for
a while (to watch it live, or to stop it).
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.control import registry, resources, tokens
from orchestrator.control.service import Service
from tests.conftest import template
from tests.integration.conftest import ApiServer

TRAIN = template("ui-train", """
- name: main
  inputs:
    parameters:
      - name: lr
      - name: depth
  outputs:
    artifacts:
      - name: model
        globalName: ui-model
        path: /app/model/
        archive: {none: {}}
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: LR
        value: "{{inputs.parameters.lr}}"
      - name: OUT
        value: "{{outputs.artifacts.model.path}}"
    source: |
      import os
      from orchestrator import tracking
      lr = float(os.environ["LR"])
      for i in range(30):
          tracking.log_metric("loss", 1.0 / (1 + i * lr), step=i)
      tracking.log_metric("precision", round(0.6 + lr, 3), step=29)
      tracking.log_metric("recall", round(0.9 - lr / 2, 3), step=29)
      os.makedirs(os.environ["OUT"], exist_ok=True)
      open(os.path.join(os.environ["OUT"], "model.txt"), "w").write(str(lr))
      print("trained with lr", lr)
""", params="""
- name: lr
  value: "0.1"
- name: depth
  value: "3"
""", annotations="""
artifacts.ai.sap.com/ui-model.kind: model
orchestrator/metrics: "precision:max,recall:max,loss:min"
""")

SLOW = template("ui-slow", """
- name: main
  dag:
    tasks:
      - name: prep
        template: quick
      - name: work
        template: work
        dependencies: [prep]
      - name: report
        template: quick
        dependencies: [work]
- name: quick
  container:
    image: python:3.11-slim
    command: [python3, -c, "print('quick step done')"]
- name: work
  inputs:
    parameters:
      - name: seconds
        value: "{{workflow.parameters.seconds}}"
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: SECONDS_
        value: "{{inputs.parameters.seconds}}"
    source: |
      import math, os, time
      from orchestrator import tracking
      n = int(float(os.environ["SECONDS_"]) * 5)
      for i in range(n):
          print(f"working {i + 1}/{n}", flush=True)
          tracking.log_metric("accuracy", round(0.5 + 0.4 * (1 - math.exp(-i / 4)), 4), step=i)
          time.sleep(0.2)
""", params="""
- name: seconds
  value: "3"
""")

FAIL = template("ui-fail", """
- name: main
  script:
    image: python:3.11-slim
    command: [python3]
    source: |
      import sys
      from orchestrator import tracking
      for k in range(12):  # many series: the page draws the first charts at once, the rest when scrolled to
          for i in range(5):
              tracking.log_metric(f"m{k:02d}", k + i / 10, step=i)
      print("about to fail")
      sys.exit(3)
""")

FLAKY = template("ui-flaky", """
- name: main
  steps:
    - - name: once
        template: count
    - - name: gate
        template: gate
- name: count
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: COUNT
        value: "{{workflow.parameters.count}}"
    source: |
      import os
      open(os.environ["COUNT"], "a").write("ran\\n")
- name: gate
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: MARK
        value: "{{workflow.parameters.mark}}"
    source: |
      import os, sys
      print("gate open" if os.path.exists(os.environ["MARK"]) else "gate closed")
      sys.exit(0 if os.path.exists(os.environ["MARK"]) else 4)
""", params="""
- name: count
- name: mark
""")

BAD_FILE = template("broken", """
- name: main
  container:
    image: python:3.11
    command: [python3, -c, pass]
""").replace("entrypoint: main", "entrypoint: nope")


CURVE = template("ui-curve", """
- name: main
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: CURVE
        value: "{{workflow.parameters.curve}}"
    source: |
      import os, time
      from orchestrator import tracking
      for i, v in enumerate(os.environ["CURVE"].split(",")):
          tracking.log_metric("acc", float(v), step=i)
          time.sleep(0.2)
""", params="""
- name: curve
- name: lr
  value: "0.1"
""")

TINY = template("ui-tiny-train", """
- name: main
  outputs:
    artifacts:
      - name: model
        globalName: tinymodel
        path: /app/model/
        archive: {none: {}}
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: OUT
        value: "{{outputs.artifacts.model.path}}"
    source: |
      import os, numpy as np
      import skops.io as sio
      from sklearn.linear_model import LogisticRegression
      x = np.array([[0.0, 0.0], [0.1, 0.2], [1.0, 1.0], [0.9, 1.1]])
      m = LogisticRegression().fit(x, np.array([0, 0, 1, 1]))
      os.makedirs(os.environ["OUT"], exist_ok=True)
      sio.dump(m, os.path.join(os.environ["OUT"], "model.skops"))
""", annotations="""
artifacts.ai.sap.com/tinymodel.kind: model
orchestrator/register-model.tinymodel: ui-tiny
""")
DEPLOY_ENV = {"ORCHESTRATOR_DEPLOY_READY_TIMEOUT": "30", "ORCHESTRATOR_DEPLOY_DRAIN": "1",
              "ORCHESTRATOR_KILL_GRACE": "1", "ORCHESTRATOR_DEPLOY_IDLE": "2"}


def curve_sweep(name: str, curves: list[list[float]], *, policy: bool = True) -> Any:
    """A grid sweep over ``curves`` of ui-curve (one trial at a time), bandit slack 0.2 if ``policy``."""
    from orchestrator.spec.sweep import (Distribution, EarlyTermination, Objective, Sampling, SweepLimits,
                                         SweepSpec, TrialTarget)

    space = Distribution("choice", values=tuple(",".join(str(v) for v in c) for c in curves))
    lrs = Distribution("choice", values=("0.1",))
    return SweepSpec(name, TrialTarget("ui-curve"), (("curve", space), ("lr", lrs)), Objective("acc", "maximize"),
                     Sampling("grid"), EarlyTermination("bandit", slack_factor=0.2) if policy else None,
                     SweepLimits(max_total_trials=len(curves), max_concurrent_trials=1))


@dataclasses.dataclass
class Seeded:
    server: ApiServer
    home: Path
    train_ids: list[str]  # lr 0.1, 0.3, 0.2 in run order
    failed_id: str
    team_b_id: str
    schedule_id: str
    read_token: str
    run_token: str
    team_b_token: str
    slow_config: str
    slow_config_long: str
    flaky_id: str  # DEAD at step gate until the file `flaky_mark` exists; step once appends to `flaky_count`
    flaky_mark: Path
    flaky_count: Path
    sweep_id: str  # 3 trials of ui-curve, the second stopped by the bandit policy, the first the best
    team_b_sweep_id: str
    team_b_deployment_id: str  # STOPPED, in team-b
    deployment_id: str = ""  # of model ui-tiny (a tiny sklearn classifier), created once the server runs

    @property
    def base(self) -> str:
        return self.server.base


def _run(svc: Service, path: Path, params: list[str]) -> str:
    plan = svc.plan(str(path), params, [])
    ex = svc.create(plan)
    svc.execute(ex, plan, jobs=2)
    return ex.id


def _seed(tmp: Path) -> dict[str, Any]:
    from tests.unit.git.test_gitsync import new_repo

    home = tmp / "home"
    svc = Service(home, reap=False, local_files=True)
    try:
        files = {}
        for name, text in (("train.yaml", TRAIN), ("slow.yaml", SLOW), ("fail.yaml", FAIL), ("flaky.yaml", FLAKY)):
            files[name] = tmp / name
            files[name].write_text(text)
        train_ids = [_run(svc, files["train.yaml"], [f"lr={lr}", f"depth={d}"])
                     for lr, d in (("0.1", "3"), ("0.3", "5"), ("0.2", "4"))]
        failed_id = _run(svc, files["fail.yaml"], [])
        flaky_id = _run(svc, files["flaky.yaml"], [f"count={tmp / 'count.txt'}", f"mark={tmp / 'mark'}"])
        for eid in train_ids:
            registry.register(svc.store, svc.rg, "ui-model", execution_id=eid)
        registry.set_alias(svc.store, svc.rg, "ui-model", "champion", 1)
        svc.register([str(files["slow.yaml"])])
        cfg = resources.create_configuration(svc, name="slow-3s", scenario_id="test-scenario", executable_id="ui-slow",
                                             parameters=[("seconds", "3")], artifacts=[])
        cfg_long = resources.create_configuration(svc, name="slow-60s", scenario_id="test-scenario",
                                                  executable_id="ui-slow", parameters=[("seconds", "60")],
                                                  artifacts=[])
        ex0 = svc.store.get_execution(svc.rg, train_ids[0])
        sched = svc.store.create_schedule(svc.rg, name="nightly", cron="0 3 * * *",
                                          configuration_id=ex0.configuration_id)
        svc.store.record_slots(svc.rg, sched["id"], [
            ("2026-01-01T03:00:00Z", "skipped", "catch-up 'latest': only the newest missed slot runs"),
            ("2026-01-02T03:00:00Z", "failed", "executable 'ui-train' no longer validates")])
        repo = new_repo(tmp / "repo", {"workflows/good.yaml": template("synced", """
- name: main
  container:
    image: python:3.11
    command: [python3, -c, pass]
"""), "workflows/bad.yaml": BAD_FILE})
        svc.add_repository("repo", str(repo))
        svc.add_application("app", repository="repo", path="workflows", revision="main")
        svc.sync("app")
        svc.store.create_resource_group("team-b", [])
        team_b_id = _run(svc.scoped("team-b"), files["train.yaml"], ["lr=0.5"])
        sweep_id, team_b_sweep_id, team_b_dep = _seed_serving(
            svc, tmp, svc.store.get_execution("team-b", team_b_id).configuration_id)
        tokens.ensure_admin_file(svc.store, home)  # the server's admin token, as its first start writes it
        read_token, _ = tokens.create(svc.store, "ui-read", "read")
        run_token, _ = tokens.create(svc.store, "ui-run", "run")
        team_b_token, _ = tokens.create(svc.store, "ui-team-b", "admin", "team-b")
        return {"train_ids": train_ids, "failed_id": failed_id, "team_b_id": team_b_id, "schedule_id": sched["id"],
                "read_token": read_token, "run_token": run_token, "team_b_token": team_b_token,
                "sweep_id": sweep_id, "team_b_sweep_id": team_b_sweep_id, "team_b_deployment_id": team_b_dep,
                "flaky_id": flaky_id, "flaky_mark": tmp / "mark", "flaky_count": tmp / "count.txt",
                "slow_config": cfg["id"] if isinstance(cfg, dict) else cfg.id,
                "slow_config_long": cfg_long["id"] if isinstance(cfg_long, dict) else cfg_long.id}
    finally:
        svc.close()


def _seed_serving(svc: Service, tmp: Path, team_b_config: str) -> tuple[str, str, str]:
    """A finished sweep (bandit stops trial 1), a tiny sklearn model ``ui-tiny``, and in team-b a
    stopped sweep and a stopped deployment (rows only: for scoping)."""
    from orchestrator.control import sweeps
    from orchestrator.spec.sweep_kind import to_document
    from orchestrator.store.deployment_records import DeploymentRecords
    from orchestrator.store.sweep_records import SweepRecords

    for name, text in (("curve.yaml", CURVE), ("tiny.yaml", TINY)):
        (tmp / name).write_text(text)
    svc.register([str(tmp / "curve.yaml")])
    spec = curve_sweep("ui-sweep", [[0.5, 0.6, 0.7], [0.2, 0.2, 0.2], [0.45, 0.55, 0.65]])

    def train() -> None:  # registers model ui-tiny v1; alongside the sweep, which mostly sleeps
        own = Service(svc.home, reap=False, local_files=True)
        try:
            _run(own, tmp / "tiny.yaml", [])
        finally:
            own.close()

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        sweep_id = sweeps.run_sweep(svc, spec).id
    finally:
        trainer.join()
    svc.store.get_model(svc.rg, "ui-tiny")
    records = SweepRecords(svc.store)
    foreign = records.create("team-b", "team-b-sweep", to_document(spec), 1, team_b_config)
    records.finish("team-b", foreign.id, "STOPPED", "seeded for scoping")
    deps = DeploymentRecords(svc.store)
    dep = deps.create("team-b", configuration_id=team_b_config, configuration_name="ui-train",
                      scenario_id="test-scenario", executable_id="ui-train", ttl=None, ttl_seconds=None, log_dir=str(tmp))
    deps.update("team-b", dep["id"], status="STOPPED", target_status="STOPPED")
    return sweep_id, foreign.id, dep["id"]


def deploy_tiny(server: ApiServer) -> str:
    """A deployment of model ui-tiny (the built-in predictor) through the REST API; its id."""
    status, _, body = server.call("POST", "/v2/lm/deployments", {"model": "models:/ui-tiny@latest"})
    assert status == 202, body
    return str(body["id"])


def _end_deployments(server: ApiServer) -> None:
    """Kill the deployment manager and every predictor of the seeded home (by pid and token)."""
    import os
    import signal
    import sqlite3

    from orchestrator.control.deploy_manager import token_prefix
    from orchestrator.run.steps import kill_tagged

    with sqlite3.connect(server.home / "orchestrator.db", timeout=10) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM deployments")]
        row = db.execute("SELECT pid FROM deployment_manager").fetchone()
    if row and row[0]:
        try:
            os.kill(row[0], signal.SIGKILL)
        except ProcessLookupError:
            pass
    for dep_id in ids:
        kill_tagged(token_prefix(dep_id), prefix=True)


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("ui")
    data = _seed(tmp)
    server = ApiServer(tmp, "--schedule-interval", "0", "--sync-interval", "0", env=DEPLOY_ENV)
    try:
        yield Seeded(server=server, home=tmp / "home", deployment_id=deploy_tiny(server), **data)
    finally:
        server.stop()
        _end_deployments(server)


def submit(seeded: Seeded, config_id: str) -> str:
    """Start an execution of a stored configuration through the REST API; its id."""
    status, _, body = seeded.server.call("POST", "/v2/lm/executions", {"configurationId": config_id})
    assert status == 202, body
    return str(body["id"])


def form(data: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(data).encode()
