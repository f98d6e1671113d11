"""Reading an Azure ML REST job body (``PUT …/workspaces/WS/jobs/ID``) into an :class:`AzureJob`.

Owns: the REST shapes, old (API 2021-03-01-preview: ``inputDataBindings`` with ``dataId``,
``compute: {target, instanceCount}``, ``algorithm``, flat ``maxTotalTrials``/``maxConcurrentTrials``/
``timeout``, ``"--lr"`` search-space keys that become ``--lr VALUE`` arguments) and new (2022+:
``inputs`` with ``jobInputType``, ``computeId``, ``samplingAlgorithm``, ``limits``,
``earlyTermination.policyType``), camelCase throughout, ISO-8601 durations. Shared reading
pieces and the command checks are :class:`orchestrator.spec.azureml._Reader`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.spec.azureml_job import AzureJob, JobInput, JobOutput, normalize_command
from orchestrator.spec.sweep import EarlyTermination, Objective, Sampling
from orchestrator.spec.yamlsafe import escape

if TYPE_CHECKING:
    from orchestrator.spec.azureml import _Reader

_POLICIES = {"bandit": "bandit", "medianstopping": "median_stopping", "median_stopping": "median_stopping",
             "truncationselection": "truncation_selection", "truncation_selection": "truncation_selection"}
_REST_TYPES = {"urifile": "uri_file", "urifolder": "uri_folder", "mltable": "mltable", "mlflowmodel": "mlflow_model",
               "custommodel": "custom_model", "tritonmodel": "triton_model", "literal": "literal"}

def read_rest(r: _Reader) -> AzureJob:
    """A REST body (old or new shape) as an :class:`AzureJob`; problems go to ``r.errs``."""
    p = r.doc.data["properties"]
    kind = str(p["jobType"]).lower()
    sweep = kind == "sweep"
    t = p.get("trial") if sweep else p
    base = "/properties/trial" if sweep else "/properties"
    if not isinstance(t, dict) or "command" not in t:
        r.err(base if sweep else "/properties", "schema.required",
                 f"missing required field {'trial' if sweep and not isinstance(t, dict) else 'command'!r}")
        t = {"command": "true"}
    r.pointers.update(command=f"{base}/command", code=f"{base}/codeId")
    old = "inputDataBindings" in p or "compute" in p or "algorithm" in p or "maxTotalTrials" in p
    inputs: list[JobInput] = []
    for key in ("inputs", "inputDataBindings"):
        for name, v in (p.get(key) or {}).items():
            inputs.append(_rest_input(r, str(name), v, f"/properties/{key}/{escape(str(name))}"))
    outputs = []
    for key in ("outputs", "outputDataBindings"):
        for name, v in (p.get(key) or {}).items():
            ptr = f"/properties/{key}/{escape(str(name))}"
            r._name(str(name), ptr, "output")
            typ = str((v or {}).get("jobOutputType", "UriFolder")).lower()
            outputs.append(JobOutput(str(name), _REST_TYPES.get(typ, "uri_folder"), ptr))
    for key, what in (("environmentId", "environment"), ("computeId", "compute"), ("compute", "compute"),
                      ("resources", "resources"), ("identity", "identity"), ("services", "services"),
                      ("queueSettings", "queue_settings")):
        src, ptr = (t, f"{base}/{key}") if key in ("environmentId", "resources") and key in t else (p, f"/properties/{key}")
        if src.get(key) is not None:
            r._recorded(ptr, what, src[key])
    dist = r._distribution(f"{base}/distribution", t.get("distribution"), rest=True)
    timeout = None
    lim = p.get("limits") or {}
    if not sweep and "timeout" in lim:
        timeout = r._seconds("/properties/limits/timeout", lim["timeout"])
    job: dict[str, Any] = dict(
        source=r.doc.file, form="rest-preview" if old else "rest", job_type=kind,
        command=normalize_command(str(t["command"])), name=str(r.doc.data.get("name", "")),
        display_name=str(p.get("displayName", "")), experiment_name=str(p.get("experimentName", "")),
        description=str(p.get("description", "")),
        tags=tuple((str(k), r.text(f"/properties/tags/{escape(str(k))}", v)) for k, v in (p.get("tags") or {}).items()),
        code=str(t.get("codeId", "")), inputs=tuple(inputs), outputs=tuple(outputs), timeout=timeout,
        distribution=dist, environment_variables=r._env(f"{base}/environmentVariables", t.get("environmentVariables")))
    if sweep:
        job.update(_sweep_rest(r, p))
    return r._finish(job)

def _rest_input(r: _Reader, name: str, v: dict[str, Any], ptr: str) -> JobInput:
    r._name(name, ptr, "input")
    typ = str(v.get("jobInputType", "")).lower()
    if typ == "literal" or ("value" in v and not typ):
        return JobInput(name, "literal", r.text(f"{ptr}/value", v.get("value")), pointer=f"{ptr}/value")
    if "dataId" in v:
        return JobInput(name, _REST_TYPES.get(typ, "uri_folder"), str(v["dataId"]), str(v.get("mode", "")), f"{ptr}/dataId")
    if "uri" not in v:
        r.err(ptr, "azureml.input-path", f"input {name!r} has no uri (or dataId)")
    kind = _REST_TYPES.get(typ, "uri_folder") if typ else "uri_folder"
    if typ and typ not in _REST_TYPES:
        r.err(f"{ptr}/jobInputType", "azureml.input-type", f"unknown jobInputType {v['jobInputType']!r}",
                 "one of Literal, UriFile, UriFolder, MLTable, MLFlowModel, CustomModel, TritonModel")
    return JobInput(name, kind, str(v.get("uri", "")), str(v.get("mode", "")), f"{ptr}/uri")

def _sweep_rest(r: _Reader, p: dict[str, Any]) -> dict[str, Any]:
    algo_key = "samplingAlgorithm" if "samplingAlgorithm" in p else "algorithm"
    lim_old = "limits" not in p
    r.pointers.update(searchSpace="/properties/searchSpace", samplingAlgorithm=f"/properties/{algo_key}",
                         objective="/properties/objective", earlyTermination="/properties/earlyTermination",
                         limits="/properties" if lim_old else "/properties/limits", trial="/properties/trial")
    for key in ("searchSpace", "objective"):
        if key not in p:
            r.err("/properties", "schema.required", f"missing required field {key!r}", key=True)
    algo = p.get(algo_key, "Random")
    if isinstance(algo, dict):
        sampling = Sampling(str(algo.get("samplingAlgorithmType", "Random")).lower(), algo.get("seed"),
                            str(algo.get("rule", "Random")).lower())
    else:
        sampling = Sampling(str(algo).lower())
    et = p.get("earlyTermination")
    policy = None
    if isinstance(et, dict):
        name = str(et.get("policyType", "")).lower()
        if name not in _POLICIES:
            r.err("/properties/earlyTermination/policyType", "sweep.policy", f"unknown policyType {et.get('policyType')!r}",
                     "one of Bandit, MedianStopping, TruncationSelection")
        policy = EarlyTermination(
            policy=_POLICIES.get(name, name), evaluation_interval=int(et.get("evaluationInterval", 1)),
            delay_evaluation=int(et.get("delayEvaluation", 0)), slack_factor=et.get("slackFactor"),
            slack_amount=et.get("slackAmount"), truncation_percentage=et.get("truncationPercentage"),
            exclude_finished_jobs=bool(et.get("excludeFinishedJobs", False)))
    lim = p if lim_old else p["limits"]
    obj = p.get("objective") or {"primaryMetric": "", "goal": "maximize"}
    raw_space = p.get("searchSpace") or {}
    appended = tuple(k for k in raw_space if str(k).startswith("-"))
    space = r._space("/properties/searchSpace", raw_space)
    return dict(search_space=space, sampling=sampling, early_termination=policy, appended=appended,
                objective=Objective(str(obj["primaryMetric"]), str(obj["goal"]).lower()),
                limits=r._limits(r.pointers["limits"], lim.get("maxTotalTrials"), lim.get("maxConcurrentTrials"),
                                    lim.get("timeout"), lim.get("trialTimeout"), "timeout", "trialTimeout"))
