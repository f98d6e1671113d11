"""Attestation across the platform: what a COMPLETED execution of this store produced (and still
hashes to its recorded sha256) is loaded; a model bound by path, a tampered object or another
resource group's artifact is refused, by the shipped batch-scoring workflow and by the predictor,
before a byte is unpickled: the biting pickle's marker never appears.

Real CLI runs in one temporary home: one producer run (a pickled logistic regression, so the
"pickle only when attested" path is exercised), then scoring runs of ``workflows/sklearn-score.yaml``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.run.attest import NotAttested, attest_artifact
from orchestrator.store.artifacts import ObjectStore
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import Cli, template
from tests.unit.serve.serve_helpers import evil_pickle

# one worker runs the whole module (--dist loadgroup): its module-scoped model and store are made once
pytestmark = pytest.mark.xdist_group("predictor_attestation")


REPO = Path(__file__).resolve().parents[2]
SCORE = str(REPO / "workflows" / "sklearn-score.yaml")
pytest.importorskip("sklearn", reason="the scoring workflow needs scikit-learn")

PRODUCER = template("make-model", """
- name: main
  outputs:
    artifacts:
      - name: model
        globalName: made-model
        path: /app/model/
        archive:
          none: {}
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: OUT
        value: "{{outputs.artifacts.model.path}}"
    source: |
      import json, os, pickle
      from sklearn.datasets import load_breast_cancer
      from sklearn.linear_model import LogisticRegression
      d = load_breast_cancer()
      out = os.environ["OUT"]
      os.makedirs(out, exist_ok=True)
      with open(os.path.join(out, "model.pkl"), "wb") as f:
          pickle.dump(LogisticRegression(solver="liblinear").fit(d.data, d.target), f)
      with open(os.path.join(out, "model.json"), "w") as f:
          json.dump({"feature_names": [str(n) for n in d.feature_names]}, f)
""", annotations="artifacts.ai.sap.com/made-model.kind: model")


PIPE = template("pipe", """
- name: main
  dag:
    tasks:
      - name: make
        template: make
      - name: use
        template: use
        dependencies: [make]
        arguments:
          artifacts:
            - name: m
              from: "{{tasks.make.outputs.artifacts.m}}"
- name: make
  outputs:
    artifacts:
      - name: m
        globalName: made
        path: /app/m/
        archive:
          none: {}
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: OUT
        value: "{{outputs.artifacts.m.path}}"
    source: |
      import os
      os.makedirs(os.environ["OUT"], exist_ok=True)
      open(os.path.join(os.environ["OUT"], "w.bin"), "wb").write(b"weights")
- name: use
  inputs:
    artifacts:
      - name: m
        path: /app/m/
      - name: extra
        path: /app/extra/
  outputs:
    artifacts:
      - name: seen
        globalName: seen
        path: /app/seen/
        archive:
          none: {}
  script:
    image: python:3.11-slim
    command: [python3]
    env:
      - name: OUT
        value: "{{outputs.artifacts.seen.path}}"
    source: |
      import os, shutil
      os.makedirs(os.environ["OUT"], exist_ok=True)
      shutil.copy(os.environ["ORCHESTRATOR_ATTESTED_INPUTS"], os.path.join(os.environ["OUT"], "a.json"))
""")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    c = Cli(tmp_path_factory.mktemp("attest"))
    c.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    from sklearn.datasets import load_breast_cancer

    (c.tmp / "extra").mkdir()
    (c.tmp / "extra" / "x.txt").write_text("x")
    d = load_breast_cancer()
    rows = [",".join(str(n) for n in d.feature_names)] + [",".join(repr(float(v)) for v in r) for r in d.data[:5]]
    (c.tmp / "patients.csv").write_text("\n".join(rows) + "\n")
    return c


@pytest.fixture(scope="module")
def produced(cli: Cli) -> dict[str, Any]:
    ex = cli.run_json(str(cli.write("producer.yaml", PRODUCER)))
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    [art] = [a for a in ex["outputArtifacts"] if a["name"] == "made-model"]
    return {"id": art["id"], "execution": ex["id"]}


def _score(cli: Cli, model: str) -> dict[str, Any]:
    return dict(cli.run_json(SCORE, "--no-cache", "--artifact", f"model={model}",
                             "--artifact", "dataset=patients.csv", check=None))


def _stores(cli: Cli) -> tuple[SqliteStore, ObjectStore]:
    return SqliteStore(str(cli.home / "orchestrator.db")), ObjectStore(cli.home)


def test_an_attested_model_scores_and_the_rule_is_enforced(cli: Cli, produced: dict[str, Any]) -> None:
    ex = _score(cli, produced["id"])
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    cli("models", "register", "made", "--execution", produced["execution"], "--alias", "champion", check=0)
    ex = _score(cli, "models:/made@champion")  # a registered version is attested through its execution
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    store, objects = _stores(cli)
    got = attest_artifact(store, objects, "default", produced["id"])
    assert got.execution_id == produced["execution"] and (got.path / "model.pkl").is_file()
    with pytest.raises(NotAttested, match="not an artifact of resource group 'other'"):
        attest_artifact(store, objects, "other", produced["id"])
    by_url = store.create_artifact("default", name="dropped", kind="model", url=f"file://{cli.tmp}",
                                   scenario_id="test-scenario")
    with pytest.raises(NotAttested, match="registered by URL"):
        attest_artifact(store, objects, "default", by_url.id)


def test_steps_are_told_which_inputs_are_attested(cli: Cli) -> None:
    """An output of an earlier step of the same run is listed (sameExecution); a path is not."""
    ex = cli.run_json(str(cli.write("pipe.yaml", PIPE)), "--artifact", "extra=extra")
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    arts = {a["name"]: a for a in ex["outputArtifacts"]}
    seen = Path(cli.json("artifacts", "show", arts["seen"]["id"])["localPath"]) / "a.json"
    doc = json.loads(seen.read_text())
    store, _ = _stores(cli)
    assert doc["version"] == 1 and doc["executionId"] == ex["id"] and set(doc["inputs"]) == {"m"}
    m = doc["inputs"]["m"]
    assert m["sameExecution"] is True and m["step"] == "make"
    assert m["sha256"] == store.get_artifact("default", arts["made"]["id"]).digest


def test_the_output_of_an_execution_that_did_not_complete_is_not_attested(cli: Cli) -> None:
    broken = PIPE.replace("name: pipe", "name: pipe-broken").replace(
        "import os, shutil", "raise SystemExit('the second step fails')")
    ex = cli.run_json(str(cli.write("broken.yaml", broken)), "--artifact", "extra=extra", check=None)
    assert ex["status"] == "DEAD"
    [made] = [a for a in ex["outputArtifacts"] if a["name"] == "made"]  # stored: its step succeeded
    store, objects = _stores(cli)
    with pytest.raises(NotAttested, match="which is DEAD"):
        attest_artifact(store, objects, "default", made["id"])


def test_a_model_bound_by_path_is_refused_unread(cli: Cli) -> None:
    marker = cli.tmp / "marker-path"
    foreign = cli.tmp / "foreign"
    foreign.mkdir()
    (foreign / "model.pkl").write_bytes(evil_pickle(marker))
    ex = _score(cli, str(foreign))
    assert ex["status"] == "DEAD" and "error: the model artifact is not attested" in ex["statusMessage"], ex
    assert not marker.exists()


def test_a_tampered_model_is_refused_by_scoring_and_by_the_predictor(cli: Cli, produced: dict[str, Any]) -> None:
    store, objects = _stores(cli)
    good = attest_artifact(store, objects, "default", produced["id"])
    marker = cli.tmp / "marker-tampered"
    target = good.path / "model.pkl"
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)  # stored objects are read-only links to the blobs
    target.write_bytes(evil_pickle(marker))
    with pytest.raises(NotAttested, match="no longer match"):
        attest_artifact(store, objects, "default", produced["id"])
    ex = _score(cli, produced["id"])
    assert ex["status"] == "DEAD" and "error: the model artifact was refused: sha256 mismatch" in ex["statusMessage"]
    p = subprocess.run([sys.executable, "-m", "orchestrator.serve", "--model", str(good.path), "--sha256", good.sha256,
                        "--name", "m", "--port", "0"], env=cli.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "sha256 mismatch" in p.stderr
    assert not marker.exists()
