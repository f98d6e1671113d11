"""An Azure ML job as an AI Core template: the generated document validates, placeholders become
template placeholders, hostile values stay single argv words, Azure's variables are set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.plan import splice
from orchestrator.plan.azureml import convert, executable_id, scenario_id
from orchestrator.spec import validate_text
from orchestrator.spec.azureml import read
from orchestrator.spec.azureml_job import AzureJob
from orchestrator.spec.yamlsafe import load_bytes, load_file

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "azureml"
HOSTILE = ["a b", "$(touch /tmp/pwned-azureml)", "`id`", "*", "x; rm -rf /", "'\"", "--flag", "\n", "${HOME}", ""]


def job_from(text: str, name: str = "job.yml") -> AzureJob:
    docs, errs = load_bytes(text.encode(), name)
    assert not errs
    job, found = read(docs[0])
    assert job is not None, [e.format() for e in found]
    return job


def spec_of(job: AzureJob, trial: bool = False):  # type: ignore[no-untyped-def]
    conv = convert(job, trial=trial)
    res = validate_text(conv.text().encode(), "generated.json")
    assert res.ok, [e.format() for e in res.errors]
    return conv, res.workflows[0]


@pytest.mark.parametrize("path", sorted(FIX.rglob("*.yml")) + sorted((FIX / "rest").glob("*.json")),
                         ids=lambda p: str(p.relative_to(FIX)))
def test_every_public_example_converts_to_a_valid_template(path: Path) -> None:
    docs, _ = load_file(str(path))
    job, _ = read(docs[0])
    assert job is not None
    conv, spec = spec_of(job, trial=job.job_type == "sweep")
    assert spec.executable_id == conv.executable_id and spec.scenario_id == conv.scenario_id
    assert "${{" not in json.dumps(conv.document)


def test_iris_job_shape() -> None:
    docs, _ = load_file(str(FIX / "single-step/scikit-learn/iris/job.yml"))
    job, _ = read(docs[0])
    assert job is not None
    conv, spec = spec_of(job)
    assert (conv.executable_id, conv.scenario_id) == ("azureml-sklearn-iris-example", "sklearn-iris-example")
    assert {p.name: p.default for p in spec.parameters} == {"C": "0.8", "kernel": "rbf", "coef0": "0.1"}
    step = conv.document["spec"]["templates"][0]
    arts = {a["name"]: a["path"] for a in step["inputs"]["artifacts"]}
    assert arts == {"code": "/azureml/code/", "iris_csv": "/azureml/inputs/iris_csv/iris.csv"}
    assert step["container"]["workingDir"] == "/azureml/code"
    assert step["outputs"]["artifacts"][0]["path"] == "/azureml/code/outputs/"
    code = step["container"]["args"][0]
    assert '--C "{{inputs.parameters.C}}"' in code and '"{{inputs.artifacts.iris_csv.path}}"' in code
    env = {e["name"]: e["value"] for e in step["container"]["env"]}
    assert env["AZURE_ML_INPUT_iris_csv"] == "{{inputs.artifacts.iris_csv.path}}"


def test_names_timeout_tags_and_outputs() -> None:
    job = job_from("""$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python x.py --out ${{outputs.model}}
environment_variables: {MY_VAR: hello}
limits: {timeout: PT90S}
tags: {team: vision}
outputs:
  model: {type: mlflow_model}
""", "/tmp/some-dir/My Job.yml")
    conv, spec = spec_of(job)
    assert executable_id(job) == "azureml-my-job" and scenario_id(job) == "some-dir"
    step = conv.document["spec"]["templates"][0]
    assert step["activeDeadlineSeconds"] == 90
    assert conv.document["metadata"]["labels"]["ext.ai.sap.com/team"] == "vision"
    assert spec.artifact_meta["model"].kind == "model"
    env = {e["name"]: e["value"] for e in step["container"]["env"]}
    assert env["MY_VAR"] == "hello" and env["AZURE_ML_OUTPUT_model"] == "{{outputs.artifacts.model.path}}"


def test_distribution_variables_for_one_process() -> None:
    for typ, extra in (("pytorch", "process_count_per_instance: 4"), ("tensorflow", "worker_count: 2"),
                       ("mpi", "process_count_per_instance: 2")):
        job = job_from(f"""$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python -c "import os, json; print(json.dumps(dict(os.environ)))"
distribution: {{type: {typ}, {extra}}}
""")
        conv, spec = spec_of(job)
        c = spec.templates["main"].container
        assert c is not None
        env = dict(c.env)
        proc = subprocess.run([*c.command, *c.args], env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=30, check=True)
        seen = json.loads(proc.stdout)
        assert (seen["WORLD_SIZE"], seen["RANK"], seen["LOCAL_RANK"]) == ("1", "0", "0")
        assert seen["MASTER_ADDR"] == "127.0.0.1" and 0 < int(seen["MASTER_PORT"]) < 65536
        if typ == "tensorflow":
            tf = json.loads(seen["TF_CONFIG"])
            assert tf["task"] == {"type": "worker", "index": 0}
            assert tf["cluster"]["worker"] == [f"127.0.0.1:{seen['MASTER_PORT']}"]
        if typ == "mpi":
            assert seen["OMPI_COMM_WORLD_SIZE"] == "1"


def test_hostile_values_stay_single_argv_words(tmp_path: Path) -> None:
    job = job_from("""$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: >-
    python -c "import sys, json; print(json.dumps(sys.argv[1:]))"
    --a ${{inputs.a}} --b "${{inputs.b}}" --c x${{search_space.c}}y --d '${{inputs.a}}'
inputs: {a: 1, b: 2}
search_space: {c: {type: choice, values: [1]}}
objective: {primary_metric: m, goal: maximize}
""")
    conv, spec = spec_of(job, trial=True)
    c = spec.templates["main"].container
    assert c is not None
    for value in HOSTILE:
        values = {"inputs.parameters.a": value, "inputs.parameters.b": value + "!", "inputs.parameters.c": value}
        done = splice.render(c.command, c.args, None, lambda e: values[e], set(os.environ), "main")
        assert value in done.env.values()  # the value travels in a variable, never as shell text
        out = subprocess.run(done.argv, env={**os.environ, **done.env}, capture_output=True, text=True,
                             cwd=tmp_path, timeout=30, check=True)
        assert json.loads(out.stdout) == ["--a", value, "--b", value + "!", "--c", f"x{value}y", "--d", value]
    assert not Path("/tmp/pwned-azureml").exists()


def test_old_rest_sweep_appends_dash_keys() -> None:
    docs, _ = load_file(str(FIX / "rest/seed-004-sweep.json"))
    job, _ = read(docs[0])
    assert job is not None
    conv, spec = spec_of(job, trial=True)
    code = conv.document["spec"]["templates"][0]["container"]["args"][0]
    assert code.endswith('--learning_rate "{{inputs.parameters.learning_rate}}" --boosting "{{inputs.parameters.boosting}}"')
    assert {p.name for p in spec.parameters} == {"learning_rate", "boosting"}
    env = {e["name"]: e["value"] for e in conv.document["spec"]["templates"][0]["container"]["env"]}
    assert env["AZUREML_SWEEP_learning_rate"] == "{{inputs.parameters.learning_rate}}"
    assert env["AZURE_ML_INPUT_iris"] == "{{inputs.artifacts.iris.path}}"
    assert sys.executable  # the generated template runs with this machine's interpreter (environment recorded)
