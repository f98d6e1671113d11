"""The workflows shipped in workflows/ run end to end through the real CLI.

Real subprocesses (``python -m orchestrator``), a real SQLite store in a temporary
``ORCHESTRATOR_HOME``, real step processes (scikit-learn). One training run is shared by the
module (it is the slow part, ~4 s); scoring feeds on its output artifacts.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# one worker runs the whole module (--dist loadgroup): its module-scoped training run is made once
pytestmark = pytest.mark.xdist_group("shipped_workflows")


REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"

pytest.importorskip("sklearn", reason="the shipped workflows need scikit-learn")


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.cwd = tmp
        self.env = dict(os.environ, ORCHESTRATOR_HOME=str(tmp / "home"))
        # The package may be importable only from the checkout; steps inherit PYTHONPATH too.
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def json(self, *args: str) -> Any:
        res = self(*args, "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(tmp_path_factory.mktemp("shipped"))


@pytest.fixture(scope="module")
def trained(cli: Cli) -> dict[str, Any]:
    res = cli("run", str(WORKFLOWS / "sklearn-train.yaml"), "-p", "n-estimators=50", "--json")
    assert res.returncode == 0, f"train run failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def test_validate_shipped_workflows(cli: Cli) -> None:
    res = cli("validate", str(WORKFLOWS), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    # Azure ML job files (workflows/azureml) say what they record but do not build; nothing else warns
    assert out["ok"] and not out["errors"] and all(w["rule"] == "azureml.not-built" for w in out["warnings"])
    assert sorted(out["executables"]) == ["failing-step", "sklearn-score", "sklearn-train", "sklearn-train-mlflow"]


def test_train_completes_with_three_steps_and_outputs(trained: dict[str, Any]) -> None:
    assert trained["status"] == "COMPLETED", trained["statusMessage"]
    assert trained["executableId"] == "sklearn-train"
    assert trained["scenarioId"] == "sklearn-breast-cancer"
    assert {s["name"]: s["state"] for s in trained["steps"]} == {
        "prepare": "SUCCEEDED", "train": "SUCCEEDED", "evaluate": "SUCCEEDED"}
    kinds = {a["name"]: a["kind"] for a in trained["outputArtifacts"]}
    assert kinds == {"breast-cancer-model": "model", "prepared-data": "dataset", "evaluation-report": "other"}


def test_train_logs_evaluation_metrics(cli: Cli, trained: dict[str, Any]) -> None:
    out = cli.json("metrics", trained["id"])
    values = {m["name"]: m["value"] for m in out["metrics"]}
    for name in ("precision", "recall", "f1", "roc_auc"):
        assert 0.8 <= values[name] <= 1.0, (name, values)
    assert 0.8 <= values["train_accuracy"] <= 1.0
    series = [m for m in out["metrics"] if m["name"] == "train_accuracy_by_trees"]
    assert len(series) >= 2 and all(m["step"] is not None for m in series)
    assert {t["name"] for t in out["tags"]} >= {"dataset", "model"}


def test_train_outputs_hold_the_expected_files(cli: Cli, trained: dict[str, Any]) -> None:
    ids = {a["name"]: a["id"] for a in trained["outputArtifacts"]}
    model = Path(cli.json("artifacts", "show", ids["breast-cancer-model"])["localPath"])
    data = Path(cli.json("artifacts", "show", ids["prepared-data"])["localPath"])
    report = Path(cli.json("artifacts", "show", ids["evaluation-report"])["localPath"])
    assert (model / "model.skops").is_file() and not (model / "model.pkl").exists()
    info = json.loads((model / "model.json").read_text())
    assert len(info["feature_names"]) == 30 and info["params"]["n_estimators"] == 50
    assert {p.name for p in data.iterdir()} == {"train.csv", "test.csv"}
    assert json.loads((report / "report.json").read_text())["test_rows"] == _rows(data / "test.csv")


def _rows(path: Path) -> int:
    with open(path, newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def test_score_with_trained_artifacts(cli: Cli, trained: dict[str, Any]) -> None:
    ids = {a["name"]: a["id"] for a in trained["outputArtifacts"]}
    res = cli("run", str(WORKFLOWS / "sklearn-score.yaml"), "--artifact", f"model={ids['breast-cancer-model']}",
              "--artifact", f"dataset={ids['prepared-data']}", "--json")
    assert res.returncode == 0, f"score run failed:\n{res.stdout}\n{res.stderr}"
    ex = json.loads(res.stdout)
    assert ex["status"] == "COMPLETED"
    [pred] = [a for a in ex["outputArtifacts"] if a["name"] == "predictions"]
    assert pred["kind"] == "resultset"

    path = Path(cli.json("artifacts", "show", pred["id"])["localPath"]) / "predictions.csv"
    test_rows = _rows(Path(cli.json("artifacts", "show", ids["prepared-data"])["localPath"]) / "test.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "prediction", "probability"]
    assert len(rows) == test_rows + 1
    assert all(r[1] in ("0", "1") and 0.0 <= float(r[2]) <= 1.0 for r in rows[1:])

    values = {m["name"]: m["value"] for m in cli.json("metrics", ex["id"])["metrics"]}
    assert values["rows_scored"] == test_rows
    assert 0.8 <= values["accuracy"] <= 1.0


def test_failing_step_ends_dead_with_a_clear_message(cli: Cli) -> None:
    res = cli("run", str(WORKFLOWS / "failing-step.yaml"), "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    ex = cli.json("executions", "show", json.loads(res.stdout)["id"])
    assert ex["status"] == "DEAD"
    msg = ex["statusMessage"]
    assert "fit" in msg and "exit code 1" in msg and "NaN" in msg, msg
    assert {s["name"]: s["state"] for s in ex["steps"]} == {"load": "SUCCEEDED", "fit": "FAILED"}
