"""The shipped scoring workflow scores one CSV or a folder of CSVs, and says clearly what is wrong.

Real CLI subprocesses, a real store in a temporary home and real scikit-learn steps: one small
training run feeds every scoring run of the module. Each wrong input must end the execution DEAD
with one ``error: ...`` line (not a traceback) in its status message.
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

# one worker runs the whole module (--dist loadgroup): its module-scoped trained model is made once
pytestmark = pytest.mark.xdist_group("cli_score")


REPO = Path(__file__).resolve().parents[2]
SCORE = str(REPO / "workflows" / "sklearn-score.yaml")

pytest.importorskip("sklearn", reason="the shipped workflows need scikit-learn")


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.cwd = tmp
        self.env = dict(os.environ, ORCHESTRATOR_HOME=str(tmp / "home"))
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)

    def json(self, *args: str) -> Any:
        res = self(*args, "--json")
        assert res.returncode in (0, 1), res.stderr
        return json.loads(res.stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(tmp_path_factory.mktemp("score"))


@pytest.fixture(scope="module")
def trained(cli: Cli) -> dict[str, str]:
    ex = cli.json("run", "-q", str(REPO / "workflows" / "sklearn-train.yaml"), "-p", "n-estimators=10")
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    ids = {a["name"]: a["id"] for a in ex["outputArtifacts"]}
    data = Path(cli.json("artifacts", "show", ids["prepared-data"])["localPath"])
    return {"model": ids["breast-cancer-model"], "data": ids["prepared-data"], "test": str(data / "test.csv"),
            "train": str(data / "train.csv")}


def _score(cli: Cli, model: str, dataset: str) -> dict[str, Any]:
    return dict(cli.json("run", "-q", SCORE, "--artifact", f"model={model}", "--artifact", f"dataset={dataset}"))


def _predictions(cli: Cli, ex: dict[str, Any]) -> list[list[str]]:
    [pred] = [a for a in ex["outputArtifacts"] if a["name"] == "predictions"]
    with open(Path(cli.json("artifacts", "show", pred["id"])["localPath"]) / "predictions.csv", newline="") as f:
        return list(csv.reader(f))


def _rows(path: str) -> int:
    with open(path, newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def test_scores_a_single_csv_file(cli: Cli, trained: dict[str, str]) -> None:
    single = cli.cwd / "patients.csv"
    single.write_text(Path(trained["test"]).read_text())
    ex = _score(cli, trained["model"], "patients.csv")
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    rows = _predictions(cli, ex)
    assert rows[0] == ["id", "prediction", "probability"] and len(rows) == _rows(trained["test"]) + 1
    metrics = {m["name"]: m for m in cli.json("metrics", ex["id"])["summary"]}
    assert metrics["accuracy"]["goal"] == "max" and 0.8 <= metrics["accuracy"]["best"] <= 1.0


def test_scores_every_csv_of_a_folder(cli: Cli, trained: dict[str, str]) -> None:
    folder = cli.cwd / "batch"
    folder.mkdir()
    lines = Path(trained["test"]).read_text().splitlines(keepends=True)
    (folder / "a.csv").write_text("".join(lines[:11]))
    # the same columns in another order, without the target: still scored by name
    with open(trained["train"], newline="") as f:
        rows = list(csv.reader(f))[:6]
    header = rows[0][:-1][::-1]
    with open(folder / "b.csv", "w", newline="") as f:
        csv.writer(f).writerows([header] + [r[:-1][::-1] for r in rows[1:]])
    (folder / "notes.txt").write_text("not scored\n")
    ex = _score(cli, trained["model"], str(folder))
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    out = _predictions(cli, ex)
    assert out[0] == ["file", "id", "prediction", "probability"]
    assert [r[0] for r in out[1:]] == ["a.csv"] * 10 + ["b.csv"] * 5


@pytest.mark.parametrize("case", ["missing model", "wrong columns", "empty folder", "non-CSV", "no CSV in folder",
                                  "not a number"])
def test_wrong_inputs_end_with_the_intended_message(cli: Cli, trained: dict[str, str], case: str) -> None:
    work = cli.cwd / case.replace(" ", "-")
    work.mkdir()
    model, dataset = trained["model"], trained["test"]
    if case == "missing model":
        model, expected = trained["data"], "the model artifact has no model.skops or model.pkl (it holds: test.csv, train.csv)"
    elif case == "wrong columns":
        with open(trained["test"], newline="") as f:
            rows = list(csv.reader(f))
        with open(work / "x.csv", "w", newline="") as f:
            csv.writer(f).writerows([["radius"] + r[1:] for r in rows[:1]] + rows[1:])
        dataset = str(work / "x.csv")
        expected = "the dataset file does not have the model's columns: missing 'mean radius'; unexpected 'radius'"
    elif case == "empty folder":
        dataset, expected = str(work), "the dataset folder is empty"
    elif case == "non-CSV":
        (work / "model.bin").write_bytes(b"\x80\x04\x95binary")
        dataset, expected = str(work / "model.bin"), "the dataset file is not a CSV text file"
    elif case == "no CSV in folder":
        (work / "readme.txt").write_text("hi\n")
        dataset, expected = str(work), "the dataset folder has no .csv files (it holds: readme.txt)"
    else:
        text = Path(trained["test"]).read_text().splitlines()
        first = text[1].split(",")
        text[1] = ",".join(["abc"] + first[1:])
        (work / "bad.csv").write_text("\n".join(text) + "\n")
        dataset, expected = str(work / "bad.csv"), "the dataset file line 2, column 'mean radius': 'abc' is not a number"
    ex = _score(cli, model, dataset)
    assert ex["status"] == "DEAD"
    assert f"error: {expected}" in ex["statusMessage"], ex["statusMessage"]
    assert "Traceback" not in ex["statusMessage"], ex["statusMessage"]
