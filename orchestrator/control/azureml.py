"""Running Azure ML job files: a command job as an ordinary execution, a sweep job as a sweep.

Owns: reading a job file (``job.yml`` or a REST body ``.json``) with every error located,
resolving what its inputs name — local paths relative to the job file's folder, ``file://``,
``ai://``, registered artifacts and ``azureml:`` assets, datastore/blob URIs through the mapping
(:mod:`orchestrator.control.azureml_assets`); ``https://`` is refused (nothing is downloaded) —
snapshotting ``code`` into the object store, and building the :class:`RunPlan` of the template
:func:`orchestrator.plan.azureml.convert` generates: after that the job is an execution like any
other (logs, metrics, MLflow, artifacts, compare, registry, resume). ``-p NAME=VALUE`` overrides a
literal input, ``--artifact NAME=PATH|URL|ID`` a data input. A sweep job registers its trial as
an executable and hands a :class:`~orchestrator.spec.sweep.SweepSpec` to the sweep engine
(:func:`orchestrator.control.sweeps.run_sweep`). Must not import api or cli.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.control import azureml_assets as assets
from orchestrator.errors import ArtifactError, NotFound, OrchestratorError, SpecError, UsageError, ValidationFailed
from orchestrator.plan.azureml import Converted, convert
from orchestrator.plan.binding import RunPlan, bind_parameters
from orchestrator.plan.binding import hint as _hint
from orchestrator.spec.azureml import job_kind, read
from orchestrator.spec.azureml_job import AzureJob, JobInput, classify
from orchestrator.spec.yamlsafe import load_bytes, load_file

if TYPE_CHECKING:
    from orchestrator.control.service import Service
    from orchestrator.model import WorkflowSpec
    from orchestrator.spec.sweep import SweepSpec

_UNSUPPORTED = {
    "https": "https:// inputs are not downloaded (runs use local data only)",
    "other": "this kind of reference has no local equivalent",
}


def job_type(path: str | None) -> str | None:
    """``command``/``sweep``/``rest`` when ``path`` is an Azure ML job file, else None (cheap enough
    for ``run``: the file is parsed by the safe loader, nothing else)."""
    if not path or not os.path.isfile(path) or not path.endswith((".yml", ".yaml", ".json")):
        return None
    docs, errs = load_file(path)
    if errs or len(docs) != 1:
        return None
    return job_kind(docs[0].data)


def load_job(path: str, data: bytes | None = None) -> tuple[AzureJob, list[SpecError]]:
    """The job in ``path`` (or in ``data``, a body sent to the server, named ``path``: its local
    paths resolve relative to that name's folder) and its warnings; :class:`ValidationFailed` with
    every error."""
    docs, errs = load_file(path) if data is None else load_bytes(data, path)
    if errs:
        raise ValidationFailed(errs)
    if len(docs) != 1:
        raise UsageError(f"{path} must hold exactly one Azure ML job")
    job, found = read(docs[0])
    if job is None:
        raise ValidationFailed([e for e in found if e.severity == "error"])
    return job, found


def _spec_of(conv: Converted, job: AzureJob) -> WorkflowSpec:
    """Validate the generated template like any template; a problem is reported at the job's command."""
    from orchestrator.spec import validate_text

    res = validate_text(conv.text().encode(), job.source)
    if res.errors or len(res.workflows) != 1:
        raise ValidationFailed([SpecError(job.source, 1, 1, job.pointer("command"), e.rule,
                                          f"the generated template is invalid: {e.message}", e.hint)
                                for e in res.errors] or [SpecError(job.source, 1, 1, "", "internal.azureml",
                                                                   "the generated template did not build")])
    return res.workflows[0]


def resolve_input(svc: Service, job: AzureJob, inp: JobInput) -> tuple[str, str]:
    """``("url", URL)`` or ``("id", ARTIFACT_ID)`` for a data input, as written in the job."""
    ref = classify(inp.value)
    what = f"input {inp.name!r}"
    if ref.kind == "local":
        base = Path(os.path.abspath(job.source)).parent
        path = (base / os.path.expanduser(ref.path)).resolve()
        if not path.exists():
            raise ArtifactError(f"{what}: {ref.path!r} does not exist (relative to {base})",
                                hint=f"or bind it: orchestrator run {job.source} --artifact {inp.name}=PATH")
        return "url", path.as_uri()
    if ref.kind == "file":
        p = ref.path if ref.path.startswith("/") else str(Path(os.path.abspath(job.source)).parent / ref.path)
        return "url", Path(p).resolve().as_uri()
    if ref.kind == "ai":
        return "url", ref.text.rstrip("/") if ref.text.count("/") > 3 else ref.text
    if ref.kind == "asset":
        return "id", assets.resolve_asset(svc.store, svc.rg, ref, what=inp.name).id
    if ref.kind in ("datastore", "blob"):
        return "url", assets.resolve_datastore(svc.home, ref, job_file=job.source, what=what)
    raise ArtifactError(f"{what}: {ref.text!r}: {_UNSUPPORTED[ref.kind]}",
                        hint=f"bind a local copy: orchestrator run {job.source} --artifact {inp.name}=PATH, or register "
                             f"it (orchestrator assets register NAME PATH) and use azureml:NAME@latest")


def code_url(svc: Service, job: AzureJob) -> tuple[str, str]:
    """The code snapshot: ``("url", ai://…)`` of a copy of the local folder, or an asset's artifact id."""
    ref = classify(job.code)
    if ref.kind == "asset":
        return "id", assets.resolve_asset(svc.store, svc.rg, ref, what="code", kind="code").id
    if ref.kind not in ("local", "file"):
        raise ArtifactError(f"code {job.code!r}: only a local folder or a registered code asset runs locally",
                            hint="point code: at the folder with the scripts")
    base = Path(os.path.abspath(job.source)).parent
    path = (base / os.path.expanduser(ref.path)).resolve()
    if not path.exists():
        raise ArtifactError(f"code {job.code!r}: {path} does not exist", hint="code: is relative to the job file's folder")
    svc.objects.local_path(svc.rg, path.as_uri())  # the file-root rule applies to code too
    import hashlib

    return "url", assets.snapshot(svc, path, f"azureml-code/{hashlib.sha256(str(path).encode()).hexdigest()[:16]}-"
                                  f"{os.urandom(4).hex()}")


def _bindings(svc: Service, job: AzureJob, artifacts: list[str]) -> tuple[AzureJob, dict[str, tuple[str, str]]]:
    """Input artifact name -> ("url", URL) | ("id", ID): ``--artifact`` overrides, then the job's own.

    Returns the job too: a data input without a type that turns out to be one file is staged as a
    file (``uri_file``), as scripts that open it expect (the 2021 ``dataId`` bindings have no type)."""
    import dataclasses

    wanted = {i.name: i for i in job.inputs if not i.literal and not (i.optional and not i.value)}
    out: dict[str, tuple[str, str]] = {}
    for a in artifacts:
        key, sep, value = a.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"bad artifact binding {a!r}", hint="use --artifact name=PATH, =ai://default/... or =ID")
        if key not in wanted:
            raise UsageError(f"the job has no data input {key!r}", hint=_hint(key, sorted(wanted)))
        url = svc._artifact_url(value)
        out[key] = ("url", url) if url else ("id", svc.resolve_id("artifact", value))
    problems: list[OrchestratorError] = []
    for name, inp in wanted.items():
        if name not in out:
            try:
                out[name] = resolve_input(svc, job, inp)
            except (ArtifactError, NotFound) as exc:
                problems.append(exc)
    if job.code and classify(job.code).kind == "asset":  # a local folder is checked when it is copied
        try:
            assets.resolve_asset(svc.store, svc.rg, classify(job.code), what="code", kind="code")
        except (ArtifactError, NotFound) as exc:
            problems.append(exc)
    _raise_all(job, problems)
    files = set()
    for name, (how, ref) in out.items():
        art = svc.store.get_artifact(svc.rg, ref) if how == "id" else None
        one_file = svc.objects.local_path(svc.rg, art.url if art else ref).is_file() or \
            (art is not None and dict(art.labels).get(assets.TYPE_LABEL) == "uri_file")
        if wanted[name].kind == "uri_folder" and one_file:
            files.add(name)
    if files:
        job = dataclasses.replace(job, inputs=tuple(dataclasses.replace(i, kind="uri_file") if i.name in files else i
                                                    for i in job.inputs))
    return job, out


def _raise_all(job: AzureJob, problems: list[OrchestratorError]) -> None:
    """Every reference of the job that cannot be resolved, at once (one fix-and-retry per job, not
    per reference): one as it is, several as one error listing each with its hint."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ArtifactError(f"{len(problems)} references of {job.source} cannot be resolved (nothing was run):\n"
                            + "\n".join(f"  {p.message}" + (f"\n    hint: {p.hint}" if p.hint else "") for p in problems))


def _pairs(params: list[str]) -> list[tuple[str, str]]:
    """``-p NAME=VALUE`` items."""
    out = []
    for p in params:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UsageError(f"bad parameter {p!r}", hint="use -p name=value")
        out.append((key, value))
    return out


def plan_job(svc: Service, path: str, params: list[str], artifacts: list[str], data: bytes | None = None) -> RunPlan:
    """The plan of a command job: checked completely before anything is written (except the code
    snapshot, content-addressed, written last)."""
    job, _warnings = load_job(path, data)
    if job.job_type != "command":
        raise UsageError(f"{path} is a {job.job_type} job", hint="run it with `orchestrator run` (sweeps run all trials)")
    job, bound = _bindings(svc, job, artifacts)
    conv = convert(job)
    spec = _spec_of(conv, job)
    values = bind_parameters(spec, _pairs(params))
    plan = RunPlan(spec, values, config_name=f"{conv.executable_id}-azureml",
                   document={"text": conv.text(), "index": 0, "file": path})
    for name, (how, ref) in bound.items():
        if how == "url":
            svc.objects.check(svc.rg, ref)
            plan.artifact_urls[name] = ref
        else:
            svc.objects.check(svc.rg, svc.store.get_artifact(svc.rg, ref).url)
            plan.artifact_ids[name] = ref
    if conv.code_artifact:
        how, ref = code_url(svc, job)
        (plan.artifact_urls if how == "url" else plan.artifact_ids)[conv.code_artifact] = ref
    return plan


def sweep_spec(svc: Service, path: str, artifacts: list[str], params: list[str] = (),  # type: ignore[assignment]
               data: bytes | None = None) -> SweepSpec:
    """Register a sweep job's trial as an executable and describe the sweep for the engine."""
    import hashlib

    from orchestrator.spec.sweep import SweepSpec, TrialTarget

    job, _warnings = load_job(path, data)
    if job.job_type != "sweep" or job.objective is None:
        raise UsageError(f"{path} is not a sweep job")
    job, bound = _bindings(svc, job, artifacts)
    conv = convert(job, trial=True)
    spec = _spec_of(conv, job)
    if conv.code_artifact:
        bound[conv.code_artifact] = code_url(svc, job)
    literal = {i.name for i in job.inputs if i.literal}
    fixed = _pairs(params)
    for key, _value in fixed:
        if key not in literal:
            raise UsageError(f"unknown literal input {key!r}", hint=_hint(key, sorted(literal)))
    for _name, (how, ref) in bound.items():
        svc.objects.check(svc.rg, ref if how == "url" else svc.store.get_artifact(svc.rg, ref).url)
    svc.store.register_executable(svc.rg, spec, {"text": conv.text(), "index": 0, "file": path})
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    return SweepSpec(
        name=conv.executable_id[len("azureml-"):-len("-trial")] or "sweep",
        trial=TrialTarget(conv.executable_id, scenario_id=conv.scenario_id, parameter_bindings=tuple(fixed),
                          artifact_bindings=tuple((k, ref) for k, (_how, ref) in sorted(bound.items()))),
        search_space=job.search_space, objective=job.objective, sampling=job.sampling,
        early_termination=job.early_termination, limits=job.limits, description=job.description,
        tags=job.tags, source=path, digest=digest)


def run_sweep_job(svc: Service, path: str, artifacts: list[str], *, params: list[str] = (),  # type: ignore[assignment]
                  on_event: Any = None) -> Any:
    """Run a sweep job file to the end (the engine's progress events go to ``on_event``)."""
    from orchestrator.control import sweeps

    return sweeps.run_sweep(svc, sweep_spec(svc, path, artifacts, params), on_event=on_event)
