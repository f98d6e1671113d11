"""Azure ML job files run as they are: Azure's public examples (tests/fixtures/azureml/README.md),
the seed-004 REST bodies, assets and datastore mappings, through the real CLI entry point
(in-process ``main``; real SQLite, real step processes, the run's MLflow endpoint)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "azureml"


class Home:
    def __init__(self, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.path, self.capsys = path, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--home", str(self.path), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def run(self, *args: str, expect: int = 0) -> Any:
        code, out, err = self("run", "-q", "--json", *args)
        assert code == expect, f"exit {code}\n{out}\n{err}"
        return json.loads(out) if out.strip().startswith("{") else err

    def logs(self, eid: str) -> str:
        return self("logs", eid)[1]


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Home:
    return Home(tmp_path / "home", capsys)


def test_public_examples_run(home: Home) -> None:
    ex = home.run(str(FIX / "basics/hello-world-input.yml"))
    assert ex["status"] == "COMPLETED" and "hello world\n42\n" in home.logs(ex["id"])
    # ./outputs is the code snapshot's folder, collected as the output artifact "outputs"
    ex = home.run(str(FIX / "basics/hello-world-output.yml"))
    outs = {a["name"]: a for a in ex["outputArtifacts"]}
    assert set(outs) == {"outputs"} and outs["outputs"]["kind"] == "model"
    code, out, err = home("models", "register", "hello", "--execution", ex["id"])  # the registry takes it
    assert code == 0, out + err
    ex = home.run(str(FIX / "basics/hello-world-output-data.yml"))
    assert {a["name"] for a in ex["outputArtifacts"]} == {"hello_output"}
    # a wasbs:// folder and an https:// blob file through the fixtures' .azureml/datastores.json
    for job in ("basics/hello-iris-folder.yml", "basics/hello-iris-file.yml", "basics/hello-iris-datastore-file.yml",
                "preview/lightgbm-iris-job.yml"):
        ex = home.run(str(FIX / job))
        assert ex["status"] == "COMPLETED", job
    assert "rows: 150" in home.logs(ex["id"])
    # distribution: one process with the variables a distributed script reads
    ex = home.run(str(FIX / "single-step/tensorflow/mnist-distributed/job.yml"))
    assert '"task": {"type": "worker", "index": 0}' in home.logs(ex["id"])
    # the executable and the scenario are ordinary ones
    assert ex["executableId"] == "azureml-tensorflow-mnist-distributed-example"
    assert ex["scenarioId"] == "tensorflow-mnist-distributed-example"


def test_literal_and_artifact_overrides(home: Home, tmp_path: Path) -> None:
    csv = tmp_path / "mini.csv"
    csv.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n1,2,3,4,setosa\n")
    ex = home.run(str(FIX / "basics/hello-iris-file.yml"), "--artifact", f"iris_csv={csv}")
    assert "iris rows: 1;" in home.logs(ex["id"])
    ex = home.run(str(FIX / "basics/hello-world-input.yml"), "-p", "hello_string=$(id) `id` *")
    assert "$(id) `id` *" in home.logs(ex["id"])
    err = home.run(str(FIX / "basics/hello-world-input.yml"), "-p", "nope=1", expect=2)
    assert "unknown parameter 'nope'" in err


def test_assets_resolve_and_unregistered_ones_say_how(home: Home) -> None:
    err = home.run(str(FIX / "basics/hello-dataset.yml"), expect=2)
    assert "azureml:sampledata@latest" in err and "orchestrator assets register sampledata" in err
    code, out, _ = home("assets", "register", "sampledata", str(FIX / "preview/data"))
    assert code == 0 and "azureml:sampledata:1" in out
    ex = home.run(str(FIX / "basics/hello-dataset.yml"))
    assert "batch-1.txt" in home.logs(ex["id"])
    # @latest is the highest version; an explicit version that is missing names the registered ones
    assert home("assets", "register", "cifar-10-example", str(FIX / "basics/src"), "--version", "1")[0] == 0
    assert home("assets", "register", "cifar-10-example", str(FIX / "preview/data"), "--version", "2")[0] == 0
    ex = home.run(str(FIX / "single-step/pytorch/cifar-distributed/job.yml"))
    log = home.logs(ex["id"])
    assert '"WORLD_SIZE": "1"' in log and '"RANK": "0"' in log
    code, out, _ = home("assets", "show", "cifar-10-example@latest", "--json")
    assert json.loads(out)["version"] == "2"


def test_unmapped_datastore_and_https_are_refused_with_the_way_out(home: Home, tmp_path: Path) -> None:
    job = tmp_path / "job.yml"  # no .azureml/datastores.json above tmp_path
    shutil.copy(FIX / "basics/hello-iris-datastore-file.yml", job)
    shutil.copytree(FIX / "basics/src", tmp_path / "src")
    err = home.run(str(job), expect=2)
    assert "datastore 'workspaceblobstore'" in err and "orchestrator assets datastore set workspaceblobstore" in err
    assert home("assets", "datastore", "set", "workspaceblobstore", str(FIX / "data/workspaceblobstore"))[0] == 0
    assert home.run(str(job))["status"] == "COMPLETED"
    job.write_text(job.read_text().replace("azureml://datastores/workspaceblobstore/paths/example-data/iris.csv",
                                           "https://example.com/iris.csv"))
    err = home.run(str(job), expect=2)
    assert "https:// inputs are not downloaded" in err and "--artifact iris_csv=PATH" in err


def test_seed_004_bodies(home: Home) -> None:
    home("assets", "register", "train-lightgbm", str(FIX / "rest/src"), "--version", "1")
    home("assets", "register", "iris-data", str(FIX / "data/blob/datasets/iris.csv"), "--version", "1",
         "--type", "uri_file")
    ex = home.run(str(FIX / "rest/seed-004-command.json"))
    assert ex["status"] == "COMPLETED" and ex["scenarioId"] == "lightgbm-iris"
    # the 2022 body: a sweep through the sweep engine, its https:// blob input mapped to a local folder
    code, out, err = home("run", "-q", "--json", str(FIX / "rest/sweep-2022.json"))
    assert code == 0, out + err
    sweep = json.loads(out)
    assert sweep["status"] == "COMPLETED" and len(sweep["trials"]) == 3


def test_hello_sweep_yaml_through_the_sweep_engine(home: Home) -> None:
    code, out, err = home("run", "-q", "--json", str(FIX / "basics/hello-sweep.yml"), "-p", "A=0.25")
    assert code == 0, out + err
    sweep = json.loads(out)
    assert sweep["status"] == "COMPLETED" and len(sweep["trials"]) == 4
    trial = sweep["trials"][0]
    log = home.logs(trial.get("executionId") or trial["execution"])
    assert "A=0.25" in log and f"B={trial['parameters']['B']!r}" in log


def test_validate_accepts_the_fixtures(home: Home) -> None:
    code, out, _ = home("validate", str(FIX), "--json")
    res = json.loads(out)
    assert code == 0 and res["ok"], res["errors"]
    assert {w["rule"] for w in res["warnings"]} <= {"azureml.not-built", "azureml.unused-parameter"}


def test_shipped_azureml_workflows(home: Home) -> None:
    shipped = FIX.parents[2] / "workflows" / "azureml"
    code, out, _ = home("validate", str(shipped), *map(str, sorted(shipped.glob("*.json"))), "--json")
    res = json.loads(out)
    assert code == 0 and res["ok"] and len(res["files"]) == 4, res
    # the seed-004 command body, with its code and data assets registered from the shipped folder
    assert home("assets", "register", "train-lightgbm", str(shipped / "src"), "--version", "1")[0] == 0
    assert home("assets", "register", "iris-data", str(shipped / "data/iris.csv"), "--version", "1")[0] == 0
    ex = home.run(str(shipped / "seed-004-command.json"))
    assert ex["status"] == "COMPLETED"
    code, out, _ = home("metrics", ex["id"], "--json")
    assert code == 0 and "test-multi_logloss" in out  # mlflow.log_metric through the run's MLflow endpoint


def test_hostile_references_never_leave_their_folder(home: Home, tmp_path: Path) -> None:
    (tmp_path / ".azureml").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / ".azureml/datastores.json").write_text('{"ws": "store"}')
    for path, words in (("azureml://datastores/ws/paths/../../../etc/passwd", "'..'"),
                        ("azureml:../../etc@latest", "no local equivalent"),
                        ("runs:/abc/model", "no local equivalent"),
                        ("azureml://datastores/other/paths/x", "orchestrator assets datastore set other")):
        job = tmp_path / "job.yml"
        job.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                       f"command: cat ${{{{inputs.x}}}}\ninputs:\n  x: {{type: uri_file, path: '{path}'}}\n")
        err = home.run(str(job), expect=2)
        assert words in err, (path, err)
    code, _, err = home("assets", "register", "../evil", str(tmp_path / "store"))
    assert code == 2 and "bad asset name '../evil'" in err


def test_a_huge_code_folder_is_refused_before_copying(home: Home, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    for i in range(5):
        (tmp_path / "src" / f"f{i}.py").write_text("x = 1\n")
    job = tmp_path / "job.yml"
    job.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                   "code: src\ncommand: ls\n")
    monkeypatch.setenv("ORCHESTRATOR_SNAPSHOT_MAX_FILES", "4")
    err = home.run(str(job), expect=2)
    assert "more than 4 files" in err and "ORCHESTRATOR_SNAPSHOT_MAX_FILES" in err
    monkeypatch.setenv("ORCHESTRATOR_SNAPSHOT_MAX_FILES", "5")
    assert home.run(str(job))["status"] == "COMPLETED"
