"""Our ``Sweep`` kind (``apiVersion: orchestrator/v1``): semantic checks, build, round trip.

Owns: the located semantic errors of a schema-valid ``Sweep`` document (:func:`check_sweep`: the
:func:`~orchestrator.spec.sweep.problems` of the spec it builds, at ``/spec/...`` pointers), the
document -> :class:`~orchestrator.spec.sweep.SweepSpec` step (:func:`build_sweep`), and the
canonical document of any spec (:func:`to_document`, whichever front end built it: stored with the
sweep and read back by :func:`from_document`). Must not import plan, store or anything above.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec.sweep import (
    ARGS,
    DEFAULT_TIMEOUT,
    MAX_TRIALS,
    Distribution,
    DistributionError,
    EarlyTermination,
    Objective,
    Sampling,
    SubSpace,
    SweepLimits,
    SweepSpec,
    TrialTarget,
    parse_distribution,
    problems,
)
from orchestrator.spec.yamlsafe import Document, escape


def _pointer(path: tuple[str, ...]) -> str:
    return "/spec" + "".join("/" + escape(p) for p in path)


def _seconds(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def check_sweep(doc: Document) -> list[SpecError]:
    """Every semantic error of one schema-valid ``Sweep`` document, located: a search-space entry
    that is not a distribution is reported and left out, and the rest is still checked."""
    errors: list[SpecError] = []
    broken: set[str] = set()
    for k, v in doc.data["spec"]["searchSpace"].items():
        try:
            parse_distribution(v, ("searchSpace", str(k)))
        except DistributionError as exc:
            errors.append(doc.error(_pointer(exc.path), "sweep.distribution", exc.message, exc.hint))
            broken.add(str(k))
    spec = build_sweep(doc, skip=frozenset(broken))
    return errors + [doc.error(_pointer(p.path), p.rule, p.message, p.hint) for p in problems(spec)
                     if not (broken and p.rule == "sweep.search-space")]


def build_sweep(doc: Document, *, skip: frozenset[str] = frozenset()) -> SweepSpec:
    """A schema-valid ``Sweep`` document -> :class:`SweepSpec` (raises :class:`DistributionError`);
    the search-space entries named in ``skip`` are left out."""
    d = doc.data
    s = d["spec"]
    t = s["trial"]
    space = tuple((str(k), parse_distribution(v, ("searchSpace", str(k)))) for k, v in s["searchSpace"].items()
                  if str(k) not in skip)
    algo = s.get("samplingAlgorithm", "random")
    sampling = Sampling(algo.lower()) if isinstance(algo, str) else \
        Sampling(str(algo.get("type", "random")).lower(), algo.get("seed"), str(algo.get("rule", "random")).lower())
    et = s.get("earlyTermination")
    policy = None if et is None else EarlyTermination(
        policy=str(et["type"]), evaluation_interval=int(et.get("evaluationInterval", 1)),
        delay_evaluation=int(et.get("delayEvaluation", 0)), slack_factor=et.get("slackFactor"),
        slack_amount=et.get("slackAmount"), truncation_percentage=et.get("truncationPercentage"),
        exclude_finished_jobs=bool(et.get("excludeFinishedJobs", False)))
    lim = s.get("limits") or {}
    meta = d["metadata"]
    return SweepSpec(
        name=str(meta["name"]),
        trial=TrialTarget(
            executable_id=str(t.get("executableId", "")), scenario_id=str(t.get("scenarioId", "")),
            configuration_id=str(t.get("configurationId", "")),
            parameter_bindings=tuple((str(b["key"]), str(b["value"])) for b in t.get("parameterBindings") or []),
            artifact_bindings=tuple((str(b["key"]), str(b.get("artifactId") or b.get("url")))
                                    for b in t.get("inputArtifactBindings") or []),
            parameter_map=tuple((str(k), str(v)) for k, v in (t.get("parameterMap") or {}).items())),
        search_space=space,
        objective=Objective(str(s["objective"]["primaryMetric"]), str(s["objective"].get("goal", "maximize")).lower()),
        sampling=sampling, early_termination=policy,
        limits=SweepLimits(max_total_trials=int(lim.get("maxTotalTrials", MAX_TRIALS)),
                           max_concurrent_trials=lim.get("maxConcurrentTrials"),
                           timeout=float(lim.get("timeout", DEFAULT_TIMEOUT)),
                           trial_timeout=_seconds(lim.get("trialTimeout"))),
        register_model=str(s.get("registerModel", "")), description=str(s.get("description", "")),
        tags=tuple((str(k), str(v)) for k, v in (meta.get("labels") or {}).items()),
        source=doc.file,
        digest=hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest())


def _dist_document(d: Distribution) -> dict[str, Any]:
    if d.type == "choice":
        return {"type": "choice", "values": [
            {k: _dist_document(v) if isinstance(v, Distribution) else v for k, v in x.items}
            if isinstance(x, SubSpace) else x for x in d.values]}
    return {"type": d.type, **{n: getattr(d, n) for n in ARGS[d.type]}}


def to_document(spec: SweepSpec) -> dict[str, Any]:
    """The ``Sweep`` document (``apiVersion: orchestrator/v1``) of any :class:`SweepSpec`; stored
    with the sweep and read back by :func:`from_document`, whichever front end built the spec."""
    t = spec.trial
    trial: dict[str, Any] = {"executableId": t.executable_id}
    if t.scenario_id:
        trial["scenarioId"] = t.scenario_id
    if t.configuration_id:
        trial["configurationId"] = t.configuration_id
    if t.parameter_bindings:
        trial["parameterBindings"] = [{"key": k, "value": v} for k, v in t.parameter_bindings]
    if t.artifact_bindings:
        trial["inputArtifactBindings"] = [{"key": k, "artifactId": v} for k, v in t.artifact_bindings]
    if t.parameter_map:
        trial["parameterMap"] = dict(t.parameter_map)
    samp: dict[str, Any] = {"type": spec.sampling.algorithm}
    if spec.sampling.algorithm == "random":
        samp["rule"] = spec.sampling.rule
        if spec.sampling.seed is not None:
            samp["seed"] = spec.sampling.seed
    lim = spec.limits
    limits: dict[str, Any] = {"maxTotalTrials": lim.max_total_trials, "timeout": lim.timeout}
    if lim.max_concurrent_trials is not None:
        limits["maxConcurrentTrials"] = lim.max_concurrent_trials
    if lim.trial_timeout is not None:
        limits["trialTimeout"] = lim.trial_timeout
    body: dict[str, Any] = {
        "trial": trial, "searchSpace": {n: _dist_document(d) for n, d in spec.search_space},
        "samplingAlgorithm": samp,
        "objective": {"primaryMetric": spec.objective.primary_metric, "goal": spec.objective.goal},
        "limits": limits}
    et = spec.early_termination
    if et is not None:
        pol: dict[str, Any] = {"type": et.policy, "evaluationInterval": et.evaluation_interval,
                               "delayEvaluation": et.delay_evaluation}
        for key, value in (("slackFactor", et.slack_factor), ("slackAmount", et.slack_amount),
                           ("truncationPercentage", et.truncation_percentage)):
            if value is not None:
                pol[key] = value
        if et.exclude_finished_jobs:
            pol["excludeFinishedJobs"] = True
        body["earlyTermination"] = pol
    if spec.register_model:
        body["registerModel"] = spec.register_model
    if spec.description:
        body["description"] = spec.description
    meta: dict[str, Any] = {"name": spec.name}
    if spec.tags:
        meta["labels"] = dict(spec.tags)
    return {"apiVersion": "orchestrator/v1", "kind": "Sweep", "metadata": meta, "spec": body}


def from_document(data: dict[str, Any], source: str = "") -> SweepSpec:
    """A :class:`SweepSpec` from a document :func:`to_document` wrote (already validated once)."""
    return build_sweep(Document(source, 0, data))
