"""An Azure ML job as an ordinary AI Core template: the pure conversion.

Owns: turning an :class:`~orchestrator.spec.azureml_job.AzureJob` into the WorkflowTemplate
document it runs as — one container step ``bash -c COMMAND`` whose working directory is the
``code`` snapshot (input artifact ``code``, at ``/azureml/code``) with ``./outputs`` already there
and collected as the output artifact ``outputs``; literal inputs and search-space values as
template parameters (user values: hoisted into variables by :mod:`orchestrator.plan.splice`,
never spliced into the code), data inputs as input artifacts, outputs as output artifacts
(``globalName`` = the output's name, kind from its type), ``environment_variables`` plus the
variables Azure sets (``AZURE_ML_INPUT_<name>``, ``AZURE_ML_OUTPUT_<name>``,
``AZUREML_SWEEP_<name>``) and, for a ``distribution``, the single-process rendezvous variables
(``WORLD_SIZE=1``, ``RANK=0``, ``LOCAL_RANK=0``, ``MASTER_ADDR``, a free ``MASTER_PORT``,
``TF_CONFIG``), ``limits.timeout`` as ``activeDeadlineSeconds``, ``experiment_name`` as the
scenario. The executable id and scenario id are derived names (``azureml-<job>``).
Pure: no files, no store. Imports spec only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.spec.azureml_job import MODEL_TYPES, AzureJob, JobInput, classify, shell_code

CODE_PATH = "/azureml/code"
INPUTS = "/azureml/inputs"
OUTPUTS = "/azureml/outputs"
VERSION = "1.0.0"
_SLUG = re.compile(r"[^a-z0-9]+")
_FREE_PORT = ("export MASTER_PORT=\"$(python3 -c 'import socket; s = socket.socket(); "
              "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])')\"\n")


@dataclass(frozen=True)
class Converted:
    """The generated template and what still has to be bound to run it."""

    document: dict[str, Any]
    executable_id: str
    scenario_id: str
    code_artifact: str  # input artifact name of the code snapshot ("" when the job has no code)
    outputs_artifact: str  # output artifact name of ./outputs
    data_inputs: tuple[JobInput, ...]  # inputs bound as artifacts (name = artifact name)
    parameters: tuple[str, ...]  # template parameters: literal inputs, then search-space names

    def text(self) -> str:
        """The document as the text stored with the executable (JSON is YAML)."""
        return json.dumps(self.document, indent=2, sort_keys=False) + "\n"


def slug(text: str, fallback: str = "job") -> str:
    """A lowercase Kubernetes-style name part: letters, digits and single '-'."""
    s = _SLUG.sub("-", text.lower()).strip("-")
    return s or fallback


def executable_id(job: AzureJob, *, trial: bool = False) -> str:
    """``azureml-<name|display_name|file stem>`` (``-trial`` for a sweep's trial), 4..64 chars."""
    stem = os.path.splitext(os.path.basename(job.source))[0]
    base = slug(job.name or job.display_name or stem)
    suffix = "-trial" if trial else ""
    return ("azureml-" + base)[:64 - len(suffix)].rstrip("-") + suffix


def scenario_id(job: AzureJob) -> str:
    """The experiment name (Azure's default: the folder the job file is in; REST: ``Default``)."""
    name = job.experiment_name or ("Default" if job.form.startswith("rest") else
                                   os.path.basename(os.path.dirname(os.path.abspath(job.source))))
    s = re.sub(r"[^\w.-]+", "-", name, flags=re.ASCII).strip("-")[:64] or "azureml"
    return s if len(s) >= 4 else (s + "-azureml")


def _kind(azure_type: str) -> str:
    return "model" if azure_type in MODEL_TYPES else "dataset" if azure_type == "mltable" else "other"


def input_path(inp: JobInput) -> str:
    """Where a data input is staged: a folder for uri_folder/mltable/models, a file for uri_file."""
    if inp.kind == "uri_file":
        ref = classify(inp.value)
        tail = (ref.path or ref.name or inp.value).rstrip("/").rsplit("/", 1)[-1]
        base = tail if tail and "." in tail and len(tail) < 200 and re.fullmatch(r"[\w.-]+", tail) else f"{inp.name}.dat"
        return f"{INPUTS}/{inp.name}/{base}"
    return f"{INPUTS}/{inp.name}/"


def _env(job: AzureJob, data: set[str]) -> list[dict[str, str]]:
    env: list[tuple[str, str]] = list(job.environment_variables)
    for i in job.inputs:
        expr = f"inputs.artifacts.{i.name}.path" if i.name in data else f"inputs.parameters.{i.name}"
        if i.literal or i.name in data:
            env.append((f"AZURE_ML_INPUT_{i.name}", "{{" + expr + "}}"))
    for o in job.outputs:
        env.append((f"AZURE_ML_OUTPUT_{o.name}", "{{outputs.artifacts." + o.name + ".path}}"))
    for name, _ in job.search_space:
        env.append((f"AZUREML_SWEEP_{name}", "{{inputs.parameters." + name + "}}"))
    d = job.distribution
    if d is not None:
        env += [("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("NODE_RANK", "0"),
                ("LOCAL_WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")]
        if d.type == "mpi":
            env += [("OMPI_COMM_WORLD_SIZE", "1"), ("OMPI_COMM_WORLD_RANK", "0"),
                    ("OMPI_COMM_WORLD_LOCAL_RANK", "0"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "1")]
    seen: dict[str, str] = {}
    for k, v in env:
        seen.setdefault(k, v)  # the job's own environment_variables win
    return [{"name": k, "value": v} for k, v in seen.items()]


def _prelude(job: AzureJob) -> str:
    """Generated shell lines run before the command (no user value in them): ``./outputs`` exists
    whatever the executor stages (a remote node unpacks the code snapshot over the working
    directory), then what ``distribution`` sets."""
    out = "mkdir -p outputs\n"
    d = job.distribution
    if d is None:
        return out
    out += _FREE_PORT
    if d.type == "tensorflow":
        out += ("export TF_CONFIG=\"{\\\"cluster\\\": {\\\"worker\\\": [\\\"127.0.0.1:${MASTER_PORT}\\\"]}, "
                "\\\"task\\\": {\\\"type\\\": \\\"worker\\\", \\\"index\\\": 0}}\"\n")
    return out


def convert(job: AzureJob, *, trial: bool = False) -> Converted:
    """The WorkflowTemplate an Azure ML command job (or a sweep's trial) runs as."""
    exe = executable_id(job, trial=trial)
    scenario = scenario_id(job)
    data = [i for i in job.inputs if not i.literal and not (i.optional and not i.value)]
    names = {i.name for i in job.inputs} | {o.name for o in job.outputs}
    code_art = ("code" if "code" not in names else "code-snapshot") if job.code else ""
    out_art = "outputs" if "outputs" not in names else "outputs-folder"
    literal = [i for i in job.inputs if i.literal]
    space = [n for n, _ in job.search_space if n not in {i.name for i in literal}]
    params = [{"name": i.name, "value": i.value} for i in literal] + [{"name": n} for n in space]
    in_arts = [{"name": i.name, "path": input_path(i)} for i in data]
    if code_art:
        in_arts.insert(0, {"name": code_art, "path": CODE_PATH + "/"})
    out_arts = [{"name": out_art, "globalName": out_art, "path": CODE_PATH + "/outputs/", "optional": True,
                 "archive": {"none": {}}}]
    out_arts += [{"name": o.name, "globalName": o.name, "path": f"{OUTPUTS}/{o.name}/", "archive": {"none": {}}}
                 for o in job.outputs]
    ann: dict[str, str] = {
        "scenarios.ai.sap.com/name": scenario,
        "executables.ai.sap.com/name": job.display_name or exe,
        "executables.ai.sap.com/description": (job.description or f"Azure ML {job.job_type} job {exe}")[:5000],
        "orchestrator/azureml-source": job.source,
        "orchestrator/azureml-form": job.form,
        # Azure ML's place for the trained model: kind model, so `models register` and a sweep's
        # registerModel take it like any model output
        f"artifacts.ai.sap.com/{out_art}.kind": "model",
        f"artifacts.ai.sap.com/{out_art}.description": "the job's ./outputs folder",
    }
    for o in job.outputs:
        ann[f"artifacts.ai.sap.com/{o.name}.kind"] = _kind(o.kind)
        ann[f"artifacts.ai.sap.com/{o.name}.description"] = f"output {o.name} ({o.kind})"
    for i in data:
        ann[f"artifacts.ai.sap.com/{i.name}.kind"] = _kind(i.kind) if i.kind in MODEL_TYPES else "dataset"
    if code_art:
        ann[f"artifacts.ai.sap.com/{code_art}.kind"] = "other"
        ann[f"artifacts.ai.sap.com/{code_art}.description"] = "snapshot of the job's code folder"
    if job.objective is not None:  # `orchestrator metrics` and compare show the best value by the sweep's goal
        ann["orchestrator/metrics"] = f"{job.objective.primary_metric}:{'max' if job.objective.goal == 'maximize' else 'min'}"
    for field, value in job.recorded:
        ann[f"orchestrator/azureml-{field.replace('_', '-')}"] = value
    labels = {"scenarios.ai.sap.com/id": scenario, "ai.sap.com/version": VERSION}
    for k, v in job.tags:
        key = "ext.ai.sap.com/" + re.sub(r"[^A-Za-z0-9_.-]", "-", k)[:60]
        labels.setdefault(key, v[:63])
    step: dict[str, Any] = {
        "name": "main",
        "inputs": {"parameters": [{"name": p["name"]} for p in params], "artifacts": in_arts},
        "outputs": {"artifacts": out_arts},
        "container": {"image": _image(job), "command": ["bash", "-c"], "args": [_prelude(job) + shell_code(job)],
                      "workingDir": CODE_PATH, "env": _env(job, {i.name for i in data})},
    }
    if job.timeout:
        step["activeDeadlineSeconds"] = int(max(1, round(job.timeout)))
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
           "metadata": {"name": exe, "labels": labels, "annotations": ann},
           "spec": {"entrypoint": "main", "arguments": {"parameters": params}, "templates": [step]}}
    return Converted(doc, exe, scenario, code_art, out_art, tuple(data), tuple(p["name"] for p in params))


def _image(job: AzureJob) -> str:
    env = dict(job.recorded).get("environment", "")
    if env.startswith("{"):
        try:
            env = str(json.loads(env).get("image") or "azureml-environment")
        except (ValueError, AttributeError):
            env = "azureml-environment"
    return env or "azureml-environment"
