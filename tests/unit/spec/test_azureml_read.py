"""Reading Azure ML job files: Azure's public examples (tests/fixtures/azureml, see its README),
the seed-004 REST bodies, the 2021 preview shapes, and every problem located at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.spec import validate_paths, validate_text
from orchestrator.spec.azureml import job_kind, read
from orchestrator.spec.azureml_job import AzureJob, classify, iso_seconds, normalize_command
from orchestrator.spec.yamlsafe import load_bytes, load_file

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "azureml"
JOBS = sorted(p for p in FIX.rglob("*.yml")) + sorted((FIX / "rest").glob("*.json"))


def job_of(path: Path) -> AzureJob:
    docs, errs = load_file(str(path))
    assert not errs
    job, found = read(docs[0])
    assert job is not None, [e.format() for e in found]
    return job


def errors_of(text: str, name: str = "job.yml") -> list:
    res = validate_text(text.encode(), name)
    return res.errors


@pytest.mark.parametrize("path", JOBS, ids=lambda p: str(p.relative_to(FIX)))
def test_public_examples_validate(path: Path) -> None:
    res = validate_paths([str(path)])
    assert res.ok, [e.format() for e in res.errors]
    assert len(res.azure_jobs) == 1
    # what is not built is said, never silently dropped
    job = res.azure_jobs[0]
    recorded = {k for k, _ in job.recorded}
    assert recorded <= {w.message.split()[0] for w in res.warnings if w.rule == "azureml.not-built"}


def test_kinds_are_recognised() -> None:
    assert job_kind({"$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
                     "command": "x"}) == "command"
    assert job_kind({"$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
                     "type": "sweep"}) == "sweep"
    assert job_kind({"properties": {"jobType": "Command"}}) == "rest"
    assert job_kind({"command": "python x.py", "environment": "azureml:env@latest"}) == "command"
    assert job_kind({"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
                     "type": "pipeline"}) == "unsupported:pipeline"
    assert job_kind({"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate"}) is None
    assert job_kind({"command": "x"}) is None


def test_iris_command_job_reads_every_field() -> None:
    job = job_of(FIX / "single-step/scikit-learn/iris/job.yml")
    assert (job.job_type, job.form, job.code) == ("command", "yaml", "src")
    assert job.experiment_name == "sklearn-iris-example" and job.display_name == "sklearn-iris-example"
    by = {i.name: i for i in job.inputs}
    assert by["iris_csv"].kind == "uri_file" and by["iris_csv"].value.startswith("wasbs://datasets@")
    assert (by["C"].kind, by["C"].value, by["coef0"].value, by["kernel"].value) == ("literal", "0.8", "0.1", "rbf")
    assert dict(job.recorded)["compute"] == "azureml:cpu-cluster"


def test_hello_sweep() -> None:
    job = job_of(FIX / "basics/hello-sweep.yml")
    assert job.job_type == "sweep" and job.sampling.algorithm == "random"
    space = dict(job.search_space)
    assert space["B"].type == "choice" and space["B"].values == ("hello", "world", "hello_world")
    assert (space["C"].min_value, space["C"].max_value) == (0.1, 1.0)
    assert job.objective is not None and (job.objective.primary_metric, job.objective.goal) == ("random_metric", "minimize")
    assert (job.limits.max_total_trials, job.limits.max_concurrent_trials, job.limits.timeout) == (4, 2, 3600.0)


def test_preview_shapes() -> None:
    job = job_of(FIX / "preview/hello-iris-file.yml")
    assert job.form == "yaml-preview" and job.code == "src"
    assert job.inputs[0].kind == "uri_file" and job.inputs[0].value.endswith("iris.csv")
    folder = job_of(FIX / "preview/hello-iris-folder.yml")
    assert folder.inputs[0].kind == "uri_folder" and folder.inputs[0].value.startswith("wasbs://")
    lgbm = job_of(FIX / "preview/lightgbm-iris-job.yml")
    assert "${{inputs.iris}}" in lgbm.command  # the 2021 {inputs.iris}
    assert dict(lgbm.recorded)["compute"] == '{"target": "azureml:cpu-cluster"}'
    cifar = job_of(FIX / "preview/pytorch-cifar-job.yml")
    assert cifar.inputs[0].value == "data" and cifar.distribution is not None and cifar.distribution.processes == 4


def test_seed_004_rest_bodies() -> None:
    cmd = job_of(FIX / "rest/seed-004-command.json")
    assert (cmd.job_type, cmd.form, cmd.experiment_name) == ("command", "rest-preview", "lightgbm-iris")
    assert cmd.code.endswith("/codes/train-lightgbm/versions/1")
    assert cmd.inputs[0].name == "iris" and classify(cmd.inputs[0].value).name == "iris-data"
    sweep = job_of(FIX / "rest/seed-004-sweep.json")
    assert sweep.appended == ("--learning_rate", "--boosting")
    assert [n for n, _ in sweep.search_space] == ["learning_rate", "boosting"]
    assert (sweep.limits.max_total_trials, sweep.limits.max_concurrent_trials, sweep.limits.timeout) == (20, 10, 7200.0)
    new = job_of(FIX / "rest/sweep-2022.json")
    assert new.form == "rest" and new.sampling.seed == 7
    assert new.early_termination is not None and new.early_termination.policy == "median_stopping"
    assert (new.limits.max_total_trials, new.limits.trial_timeout) == (3, 120.0)


def test_every_problem_is_located_at_once() -> None:
    text = """$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: python t.py --x ${{search_space.x}} --y ${{inputs.missing}}
  environmnt: azureml:env@latest
sampling_algorithm: bayesian
search_space:
  x: {type: loguniform, min_value: 0, max_value: 1}
objective: {primary_metric: acc, goal: maximize}
"""
    errs = errors_of(text)
    rules = {(e.rule, e.line) for e in errs}
    assert ("azureml.unsupported-field", 5) in rules  # schema stage: reported alone, with did-you-mean
    assert any("environment" in e.hint for e in errs)
    fixed = text.replace("environmnt", "environment")
    errs = errors_of(fixed)
    by_rule = {e.rule: e for e in errs}
    assert by_rule["azureml.placeholder"].line == 4 and by_rule["azureml.placeholder"].col > 40
    assert by_rule["sweep.sampling-distribution"].line == 8
    assert by_rule["sweep.sampling-distribution"].pointer == "/search_space/x"


def test_distribution_errors_and_durations_are_located() -> None:
    text = """{"properties": {"jobType": "Sweep", "algorithm": "Grid",
  "trial": {"command": "python t.py"},
  "objective": {"primaryMetric": "m", "goal": "minimize"},
  "searchSpace": {"--lr": ["uniform", [0.1]]},
  "timeout": "PT2X"}}
"""
    errs = errors_of(text, "body.json")
    by = {e.rule: e for e in errs}
    assert by["sweep.distribution"].pointer == "/properties/searchSpace/--lr" and by["sweep.distribution"].line == 4
    assert by["azureml.duration"].line == 5


def test_hostile_command_is_refused_where_a_value_would_be_code() -> None:
    text = """$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: |
  eval "echo ${{inputs.x}}"
  echo {{workflow.name}}
inputs: {x: 1}
environment_variables: {A: "{{inputs.parameters.x}}"}
"""
    errs = errors_of(text)
    assert {(e.rule, e.line) for e in errs} >= {("azureml.braces", 4), ("azureml.braces", 6)}
    errs = errors_of(text.replace("  echo {{workflow.name}}\n", "").replace('{A: "{{inputs.parameters.x}}"}', "{A: b}"))
    assert [(e.rule, e.line, e.col) for e in errs] == [("security.code-splice", 3, 14)]


def test_helpers() -> None:
    assert iso_seconds("PT120M") == 7200 and iso_seconds("P1DT1H") == 90000 and iso_seconds(30) == 30
    assert iso_seconds("PT") is None and iso_seconds("soon") is None
    assert normalize_command("a {inputs.x} $[[--y ${{inputs.y}}]] ${{outputs.o}}") == \
        "a ${{inputs.x}} --y ${{inputs.y}} ${{outputs.o}}"
    assert classify("azureml:iris:3").version == "3" and classify("azureml:iris@latest").version == ""
    assert classify("azureml://datastores/workspaceblobstore/paths/a/b.csv").name == "workspaceblobstore"
    blob = classify("https://azuremlexamples.blob.core.windows.net/datasets/iris.csv")
    assert (blob.kind, blob.name, blob.path) == ("blob", "azuremlexamples/datasets", "iris.csv")
    assert classify("wasbs://datasets@azuremlexamples.blob.core.windows.net/").name == "azuremlexamples/datasets"
    assert classify("https://example.com/x.csv").kind == "https" and classify("data/x").kind == "local"


def test_unsupported_job_type_is_an_error() -> None:
    docs, _ = load_bytes(b"$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"
                         b"type: pipeline\njobs: {}\n", "p.yml")
    job, errs = read(docs[0])
    assert job is None and errs[0].rule == "azureml.job-type" and errs[0].line == 2


def test_optional_inputs_and_segments() -> None:
    text = """$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python t.py $[[--w ${{inputs.w}}]] $[[--v ${{inputs.v}}]]
inputs:
  w: {type: uri_folder, optional: true}
  v: 3
"""
    docs, _ = load_bytes(text.encode(), "job.yml")
    job, errs = read(docs[0])
    assert job is not None and job.command == "python t.py  --v ${{inputs.v}}"
    errs = errors_of(text.replace("$[[--w ${{inputs.w}}]]", "--w ${{inputs.w}}"))
    assert [(e.rule, e.line) for e in errs] == [("azureml.optional-input", 2)]
