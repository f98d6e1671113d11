"""Azure ML job files: recognising them, validating them, reading them into :class:`AzureJob`.

Owns: which documents are Azure ML jobs (:func:`job_kind`: a CLI v2 YAML with an ``azureml``
``$schema`` or ``type: command|sweep``, or a REST body with ``properties.jobType``), the JSON
Schema stage for them (``schemas/azureml-*.schema.json``), and reading every shape we accept —
CLI v2 YAML (snake_case), the 2021 preview YAML (``code: {local_path}``, ``inputs: {x: {file|
folder|data|dataset: …}}``, ``{inputs.x}``, ``compute: {target}``) and the REST body, old
(``inputDataBindings``, ``algorithm``, flat ``maxTotalTrials``, ``"--lr"`` search-space keys) and
new (``inputs``, ``samplingAlgorithm``, ``limits``) — into one :class:`AzureJob`, with every
problem located (file:line:col + JSON pointer) and reported at once. What we do not build
(``environment``, ``compute``, ``distribution`` beyond one process, ``resources``, ``identity``
…) is a warning that says so. Search spaces are parsed by :mod:`orchestrator.spec.sweep`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec import schema
from orchestrator.spec.azureml_job import (
    NAME, AzureJob, JobDistribution, JobInput, JobOutput, iso_seconds, normalize_command, references,
    unknown_placeholders,
)
from orchestrator.spec.sweep import (
    DEFAULT_TIMEOUT, MAX_TRIALS, DistributionError, EarlyTermination, Objective, Sampling, SweepLimits, SweepSpec,
    TrialTarget, parse_distribution, problems,
)
from orchestrator.spec.yamlsafe import Document, escape

SCHEMAS = {"command": "azureml-commandjob", "sweep": "azureml-sweepjob", "rest": "azureml-restjob"}
_SCHEMA_KINDS = {"commandjob": "command", "sweepjob": "sweep"}
_NOT_BUILT = {
    "environment": "the command runs with this machine's interpreter and tools (no image or conda env is built)",
    "compute": "the job runs on this machine",
    "resources": "the job runs on this machine, one instance",
    "identity": "no Azure identity is used locally",
    "services": "no job services (SSH, Jupyter …) are started",
    "queue_settings": "there is no queue locally",
}


def job_kind(data: Any) -> str | None:
    """``command``, ``sweep``, ``rest``, ``unsupported:<what>`` or None (not an Azure ML job)."""
    if not isinstance(data, dict) or "apiVersion" in data or "kind" in data:
        return None
    props = data.get("properties")
    if isinstance(props, dict) and "jobType" in props:
        return "rest"
    url = data.get("$schema")
    if isinstance(url, str) and "azureml" in url.lower():
        base = os.path.basename(url.split("?")[0]).split(".")[0].lower()
        t = data.get("type")
        if base.endswith("component"):
            return f"unsupported:{base}"  # a component is a building block of pipelines, not a job
        if t in ("command", "sweep"):
            return str(t)
        if t is None and base in _SCHEMA_KINDS:
            return _SCHEMA_KINDS[base]
        return f"unsupported:{t or base}"
    if "version" in data and "$schema" not in data and data.get("type") == "command":
        return "unsupported:component"  # name + version + type: command is how a component looks
    if data.get("type") in ("command", "sweep") and ("command" in data or "trial" in data):
        return str(data["type"])
    if "type" not in data and isinstance(data.get("command"), str) and {"environment", "compute", "code"} & set(data):
        return "command"  # no $schema, no type: the CLI reads it as a command job
    return None


def check_document(doc: Document) -> list[SpecError]:
    """Every error and warning of one Azure ML job document."""
    return read(doc)[1]


def read(doc: Document) -> tuple[AzureJob | None, list[SpecError]]:
    """Schema + semantic checks, and the job when there is no error."""
    kind = job_kind(doc.data) or ""
    if kind.startswith("unsupported:"):
        what = kind.split(":", 1)[1]
        return None, [doc.error("/type" if "type" in doc.data else "/$schema", "azureml.job-type",
                                f"Azure ML {what!r} files are not supported", "command and sweep jobs run locally")]
    errs = [_azure_rule(e) for e in schema.check(doc, SCHEMAS[kind])]
    if errs:  # the structure is not what we read: report the schema errors only
        return None, errs
    from orchestrator.spec.azureml_rest import read_rest

    r = _Reader(doc)
    try:
        job = read_rest(r) if kind == "rest" else r.yaml(kind)
    except Exception as exc:  # noqa: BLE001 - a reader bug must not hide the other files
        return None, [doc.error("", "internal.check-failed", f"reading the Azure ML job crashed "
                                f"({type(exc).__name__}: {exc})", "please report this with the file")]
    if any(e.severity == "error" for e in r.errs):
        return None, r.errs
    return job, r.errs


def _azure_rule(e: SpecError) -> SpecError:
    import dataclasses

    return dataclasses.replace(e, rule="azureml.unsupported-field") if e.rule == "argo.unsupported-field" else e


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


class _Reader:
    """Reads one schema-valid document; collects located problems in ``errs``."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errs: list[SpecError] = []
        self.pointers: dict[str, str] = {}

    def err(self, ptr: str, rule: str, msg: str, hint: str = "", *, warn: bool = False, key: bool = False,
            at: tuple[int, int] | None = None) -> None:
        self.errs.append(self.doc.error(ptr, rule, msg, hint, severity="warning" if warn else "error", key=key, at=at))

    def text(self, ptr: str, value: Any) -> str:
        """A scalar as written (``0.10`` stays ``0.10``)."""
        raw = self.doc.raw_scalars.get(ptr)
        if raw is not None and not isinstance(value, str):
            return raw
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    # ------------------------------------------------------------------ CLI v2 YAML
    def yaml(self, kind: str) -> AzureJob:
        d = self.doc.data
        sweep = kind == "sweep"
        t = d["trial"] if sweep else d
        base = "/trial" if sweep else ""
        preview = isinstance(t.get("code"), dict) or any(
            isinstance(v, dict) and {"file", "folder", "data", "dataset"} & set(v) for v in (d.get("inputs") or {}).values())
        code = t.get("code")
        code_text = str(code["local_path"]) if isinstance(code, dict) else str(code or "")
        self.pointers["code"] = f"{base}/code" + ("/local_path" if isinstance(code, dict) else "")
        inputs = tuple(self._yaml_input(str(k), v) for k, v in (d.get("inputs") or {}).items())
        outputs = tuple(JobOutput(str(k), str((v or {}).get("type", "uri_folder")), f"/outputs/{escape(str(k))}")
                        for k, v in (d.get("outputs") or {}).items())
        for o in outputs:
            self._name(o.name, o.pointer, "output")
        for key in ("environment", "compute", "resources", "identity", "services", "queue_settings"):
            src = t if key in ("environment", "resources") else d
            if src.get(key) is not None and not (key == "compute" and src[key] == "local"):
                self._recorded(f"{base if src is t else ''}/{key}", key, src[key])
        dist = self._distribution(f"{base}/distribution", t.get("distribution"), rest=False)
        timeout = None
        if not sweep and isinstance(d.get("limits"), dict) and "timeout" in d["limits"]:
            timeout = self._seconds("/limits/timeout", d["limits"]["timeout"])
        job = dict(
            source=self.doc.file, form="yaml-preview" if preview else "yaml", job_type=kind,
            command=normalize_command(str(t["command"]), frozenset(i.name for i in inputs if i.optional and not i.value)),
            name=str(d.get("name", "")),
            display_name=str(d.get("display_name", "")), experiment_name=str(d.get("experiment_name", "")),
            description=str(d.get("description", "")),
            tags=tuple((str(k), self.text(f"/tags/{escape(str(k))}", v)) for k, v in (d.get("tags") or {}).items()),
            code=code_text, inputs=inputs, outputs=outputs, timeout=timeout, distribution=dist,
            environment_variables=self._env(f"{base}/environment_variables", t.get("environment_variables")))
        self.pointers["command"] = f"{base}/command"
        if sweep:
            job.update(self._sweep_yaml(d))
        return self._finish(job)

    def _yaml_input(self, name: str, v: Any) -> JobInput:
        ptr = f"/inputs/{escape(name)}"
        self._name(name, ptr, "input")
        if not isinstance(v, dict):
            return JobInput(name, "literal", self.text(ptr, v), pointer=ptr)
        mode = str(v.get("mode", ""))
        for old, kind in (("file", "uri_file"), ("folder", "uri_folder"), ("dataset", "uri_folder"), ("data", "uri_folder")):
            if old in v:
                val = v[old]
                sub = f"{ptr}/{old}"
                if isinstance(val, dict):
                    key = "path" if "path" in val else "local_path" if "local_path" in val else ""
                    if not key:
                        self.err(sub, "azureml.input-path", f"input {name!r}: {old} needs a path or local_path")
                        return JobInput(name, kind, "", mode, sub)
                    val, sub = val[key], f"{sub}/{key}"
                return JobInput(name, kind, str(val), mode, sub)
        kind = str(v.get("type", "uri_folder"))
        if kind in ("string", "integer", "number", "boolean"):
            key = "value" if "value" in v else "default" if "default" in v else ""
            if not key:
                self.err(ptr, "azureml.input-value", f"literal input {name!r} has no value", "add value: …")
            return JobInput(name, "literal", self.text(f"{ptr}/{key}", v.get(key)), pointer=f"{ptr}/{key or ''}".rstrip("/"))
        if "path" not in v:
            if v.get("optional"):
                return JobInput(name, kind, "", mode, ptr, optional=True)
            self.err(ptr, "azureml.input-path", f"input {name!r} ({kind}) has no path",
                     "give path: a local file or folder, file://…, ai://…, azureml:NAME:VERSION or a datastore URI")
        return JobInput(name, kind, str(v.get("path", "")), mode, f"{ptr}/path", bool(v.get("optional", False)))

    def _sweep_yaml(self, d: dict[str, Any]) -> dict[str, Any]:
        self.pointers.update(searchSpace="/search_space", samplingAlgorithm="/sampling_algorithm",
                             objective="/objective", earlyTermination="/early_termination", limits="/limits", trial="/trial")
        algo = d.get("sampling_algorithm", "random")
        if isinstance(algo, str):
            sampling = Sampling(algo.lower())
        else:
            sampling = Sampling(str(algo.get("type", "random")).lower(), algo.get("seed"), str(algo.get("rule", "random")))
        et = d.get("early_termination")
        policy = None
        if isinstance(et, dict):
            policy = EarlyTermination(
                policy=str(et["type"]), evaluation_interval=int(et.get("evaluation_interval", 1)),
                delay_evaluation=int(et.get("delay_evaluation", 0)), slack_factor=et.get("slack_factor"),
                slack_amount=et.get("slack_amount"), truncation_percentage=et.get("truncation_percentage"),
                exclude_finished_jobs=bool(et.get("exclude_finished_jobs", False)))
        lim = d.get("limits") or {}
        space = self._space("/search_space", d["search_space"])
        obj = d["objective"]
        return dict(search_space=space, sampling=sampling, early_termination=policy,
                    objective=Objective(str(obj["primary_metric"]), str(obj["goal"]).lower()),
                    limits=self._limits("/limits", lim.get("max_total_trials"), lim.get("max_concurrent_trials"),
                                        lim.get("timeout"), lim.get("trial_timeout"), "timeout", "trial_timeout"))

    # ------------------------------------------------------------------ shared pieces
    def _name(self, name: str, ptr: str, what: str) -> None:
        if not NAME.match(name):
            self.err(ptr, "azureml.name", f"{what} name {name!r} must be letters, digits and '_' (not starting with a digit)",
                     key=True)

    def _recorded(self, ptr: str, key: str, value: Any) -> None:
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        self._rec.append((key, shown[:300]))
        short = shown if len(shown) <= 100 else shown[:48] + "…" + shown[-48:]
        self.err(ptr, "azureml.not-built", f"{key} {short!r} is recorded, not built: {_NOT_BUILT[key]}", warn=True)

    @property
    def _rec(self) -> list[tuple[str, str]]:
        if not hasattr(self, "_recorded_list"):
            self._recorded_list: list[tuple[str, str]] = []
        return self._recorded_list

    def _env(self, ptr: str, env: Any) -> tuple[tuple[str, str], ...]:
        self.pointers["env"] = ptr
        out = []
        for k, v in (env or {}).items():
            if not NAME.match(str(k)):
                self.err(f"{ptr}/{escape(str(k))}", "azureml.env-name", f"environment variable name {k!r} is not valid",
                         key=True)
            out.append((str(k), self.text(f"{ptr}/{escape(str(k))}", v)))
        return tuple(out)

    def _distribution(self, ptr: str, dist: Any, *, rest: bool) -> JobDistribution | None:
        if not isinstance(dist, dict):
            return None
        d = {_snake(str(k)): v for k, v in dist.items()}
        typ = str(d.get("distribution_type" if rest else "type", "")).lower()
        if typ not in ("pytorch", "tensorflow", "mpi", "ray"):
            self.err(ptr, "azureml.distribution", f"unknown distribution type {typ!r}", "pytorch, tensorflow or mpi")
            return None
        procs = int(d.get("process_count_per_instance") or d.get("process_count") or 1)
        workers = int(d.get("worker_count") or 1)
        self._rec.append(("distribution", json.dumps(dist, sort_keys=True, default=str)))
        self.err(ptr, "azureml.not-built", f"distribution {typ}: runs as ONE process on this machine (WORLD_SIZE=1, "
                 f"RANK=0{', TF_CONFIG' if typ == 'tensorflow' else ''})"
                 + (f", not {max(procs, workers)}" if max(procs, workers) > 1 else ""), warn=True)
        return JobDistribution(typ, procs, workers)

    def _seconds(self, ptr: str, value: Any) -> float | None:
        s = iso_seconds(value)
        if s is None or s <= 0:
            self.err(ptr, "azureml.duration", f"{value!r} is not a positive duration",
                     "seconds (3600) or an ISO-8601 duration (PT1H)")
            return None
        return s

    def _limits(self, ptr: str, total: Any, concurrent: Any, timeout: Any, trial: Any, tkey: str, trkey: str) -> SweepLimits:
        return SweepLimits(
            max_total_trials=int(total) if total is not None else MAX_TRIALS,
            max_concurrent_trials=int(concurrent) if concurrent is not None else None,
            timeout=(self._seconds(f"{ptr}/{tkey}", timeout) or DEFAULT_TIMEOUT) if timeout is not None else DEFAULT_TIMEOUT,
            trial_timeout=self._seconds(f"{ptr}/{trkey}", trial) if trial is not None else None)

    def _space(self, ptr: str, raw: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        out = []
        for key, v in raw.items():
            name = str(key).lstrip("-")
            kp = f"{ptr}/{escape(str(key))}"
            if not NAME.match(name):
                self.err(kp, "azureml.name", f"search-space name {key!r} must be letters, digits and '_'", key=True)
                continue
            try:
                out.append((name, parse_distribution(v, ("searchSpace", str(key)))))
            except DistributionError as exc:
                self.err(self._where(exc.path), "sweep.distribution", exc.message, exc.hint)
        return tuple(out)

    def _where(self, path: tuple[str, ...]) -> str:
        """A :class:`SweepProblem` path (our Sweep kind's camelCase) as a pointer into this file."""
        if not path:
            return ""
        base = self.pointers.get(path[0], "")
        rest = path[1:]
        if not base.startswith("/properties"):
            rest = tuple(_snake(p) if p[:1].islower() else p for p in rest)
        return base + "".join("/" + escape(p) for p in rest)

    def _finish(self, job: dict[str, Any]) -> AzureJob:
        out = AzureJob(**job, recorded=tuple(self._rec), pointers=tuple(self.pointers.items()))
        self._check_command(out)
        if out.job_type == "sweep" and out.objective is not None:
            spec = SweepSpec(name="check", trial=TrialTarget("check"), search_space=out.search_space,
                             objective=out.objective, sampling=out.sampling, early_termination=out.early_termination,
                             limits=out.limits)
            for p in problems(spec):
                if p.rule == "sweep.search-space" and any(e.pointer.startswith(self.pointers["searchSpace"]) for e in self.errs):
                    continue
                self.err(self._where(p.path), p.rule, p.message, p.hint)
        return out

    def _at(self, ptr: str, offset: int) -> tuple[int, int]:
        """Position of a character of the command: exact in a ``|`` block and a one-line scalar."""
        value = self.doc.data_at(ptr)
        if ptr in self.doc.block_starts or not isinstance(value, str) or "\n" in value.rstrip("\n"):
            return self.doc.text_where(ptr, offset)
        line, col = self.doc.where(ptr)
        return line, col + offset

    def _check_command(self, job: AzureJob) -> None:
        ptr = self.pointers["command"]
        cmd = job.command
        names = {"inputs": {i.name for i in job.inputs}, "outputs": {o.name for o in job.outputs},
                 "search_space": {n for n, _ in job.search_space}}
        if not cmd.strip():
            self.err(ptr, "azureml.command", "the command is empty")
        missing = {i.name for i in job.inputs if i.optional and not i.value}
        for scope, name, off in references(cmd):
            if scope == "inputs" and name in missing:
                self.err(ptr, "azureml.optional-input", f"optional input {name!r} has no value but the command uses it",
                         f"put it in an optional segment: $[[--{name} ${{{{inputs.{name}}}}}]]", at=self._at(ptr, off))
            elif job.job_type != "sweep" and scope == "search_space":
                self.err(ptr, "azureml.placeholder", f"${{{{search_space.{name}}}}} is only valid in a sweep job's trial",
                         at=self._at(ptr, off))
            elif name not in names[scope] and not (scope == "search_space" and job.job_type != "sweep"):
                from orchestrator.spec.schema import did_you_mean

                self.err(ptr, "azureml.placeholder", f"${{{{{scope}.{name}}}}} names no {scope.rstrip('s')} of this job",
                         did_you_mean(name, sorted(names[scope])) or
                         (f"declared: {', '.join(sorted(names[scope]))}" if names[scope] else f"declare it under {scope}:"),
                         at=self._at(ptr, off))
        for text, off in unknown_placeholders(cmd):
            self.err(ptr, "azureml.placeholder", f"unknown placeholder {text[:80]!r}",
                     "use ${{inputs.NAME}}, ${{outputs.NAME}} or ${{search_space.NAME}}", at=self._at(ptr, off))
        import re

        spans = [(m.start(), m.end()) for m in re.finditer(r"\$\{\{.*?\}\}", cmd)]
        for m in re.finditer(r"\{\{|\}\}", cmd):
            if not any(a <= m.start() < b for a, b in spans):
                self.err(ptr, "azureml.braces", "the command contains '{{' or '}}' outside a ${{…}} placeholder, which "
                         "the local runner would read as a placeholder", "write it differently (e.g. '{''{')",
                         at=self._at(ptr, m.start()))
                break
        if not any(e.severity == "error" for e in self.errs):
            from orchestrator.spec.azureml_job import shell_code
            from orchestrator.spec.splice import refusal

            for expr, why in refusal("shell", "bash", shell_code(job)):
                name = expr.split(".")[-1]
                found = [off for scope, n, off in references(cmd) if n == name and scope != "outputs"]
                self.err(ptr, "security.code-splice", f"{name!r} is spliced into {why}; a value there would run as code",
                         at=self._at(ptr, found[0] if found else 0),
                         hint=f"pass it as an argument after the code (bash -c 'echo \"$1\"' _ ${{{{inputs.{name}}}}}) "
                         "or read it from an environment variable")
        for k, v in job.environment_variables:
            if "{{" in v or "}}" in v:
                self.err(f"{self.pointers.get('env', '')}/{escape(k)}", "azureml.braces",
                         f"environment variable {k!r} contains '{{{{' or '}}}}', which the local runner would read as a "
                         "placeholder")
        if job.job_type == "sweep":
            used = {n for s, n, _ in references(cmd) if s == "search_space"}
            for name, _ in job.search_space:
                if name not in used and f"--{name}" not in job.appended and f"-{name}" not in job.appended:
                    self.err(f"{self.pointers['searchSpace']}/{escape(name)}", "azureml.unused-parameter",
                             f"search-space parameter {name!r} is not used in the trial command",
                             f"add ${{{{search_space.{name}}}}} to the command (it is still set as $AZUREML_SWEEP_{name})",
                             warn=True, key=True)
