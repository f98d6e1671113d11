"""The model registry: named models whose versions are ``model`` artifacts of COMPLETED executions.

Owns: the rules of registration (an artifact of kind ``model``, output of the given execution, that
execution COMPLETED, its sha256 recorded; resource-group scoped), the names a model and an alias
may take, aliases and their moves (one transaction each, optionally compare-and-set), a version's
lineage (execution, configuration, parameters, metric summaries, input artifacts), registration
on success (template annotation ``orchestrator/register-model.<output>: NAME``), and the JSON shape
of models and versions shared by the CLI and the REST routes.

Entry point for other use cases (the MLflow endpoint): :func:`register_version`.
Must not import: api, cli.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import Conflict, NotFound, OrchestratorError, UsageError
from orchestrator.model import Status
from orchestrator.store.experiment_records import ModelVersion
from orchestrator.store.sqlite import SqliteStore

REGISTER_ANNOTATION = "orchestrator/register-model."
REQUEST_TAG = "orchestrator/register-model-request."  # + artifact id = model name (see request_registration)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALIAS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")  # never a number: NAME/3 is a version, NAME@x an alias
RESERVED_ALIASES = frozenset({"latest"})


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"bad model name {name[:80]!r}",
                         hint="1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def check_alias(alias: str) -> str:
    if not ALIAS_RE.fullmatch(alias or ""):
        raise UsageError(f"bad alias {alias[:80]!r}",
                         hint="1-64 characters: letters, digits, '_' or '-', starting with a letter or '_'")
    if alias.lower() in RESERVED_ALIASES:
        raise UsageError(f"alias {alias!r} is reserved", hint="'latest' always means the newest version")
    return alias


def parse_tags(items: Sequence[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` items (an empty value removes the tag when updating)."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad tag {item[:80]!r}", hint="use KEY=VALUE")
        out.append((key.strip(), value))
    return out


# ---------------------------------------------------------------------- registration
def register_version(store: SqliteStore, rg: str, name: str, artifact_id: str, *, execution_id: str,
                     description: str = "", tags: Sequence[tuple[str, str]] = ()) -> ModelVersion:
    """Register artifact ``artifact_id`` as the next version of model ``name`` (created if new).

    Refused unless the artifact exists in ``rg``, is of kind ``model``, is an output of
    ``execution_id``, carries a sha256, and that execution is COMPLETED. Registering the same
    artifact under the same name again returns the existing version (safe to retry).
    """
    check_name(name)
    art = store.get_artifact(rg, artifact_id)  # NotFound outside rg
    if art.kind != "model":
        raise UsageError(f"artifact {art.id} ({art.name!r}) is a {art.kind!r} artifact, not a model",
                         hint="only artifacts of kind 'model' are registered (annotation artifacts.ai.sap.com/"
                         "<output>.kind: model)")
    if not art.execution_id:
        raise UsageError(f"artifact {art.id} is not the output of an execution",
                         hint="register a model an execution produced")
    if art.execution_id != execution_id:
        raise UsageError(f"artifact {art.id} is an output of execution {art.execution_id}, not {execution_id}")
    ex = store.get_execution(rg, execution_id)
    if ex.status != Status.COMPLETED:
        raise Conflict(f"execution {ex.id} is {ex.status.value}; only a model of a COMPLETED execution is registered")
    if not art.digest:
        raise Conflict(f"artifact {art.id} has no recorded sha256", hint="only stored outputs can be registered")
    mv, _ = store.create_model_version(rg, name, artifact_id=art.id, sha256=art.digest,
                                       execution_id=ex.id, description=description, tags=list(tags))
    return mv


def request_registration(store: SqliteStore, rg: str, name: str, artifact_id: str, *,
                         execution_id: str) -> ModelVersion | None:
    """Register ``artifact_id`` as a version of ``name`` now if its execution is COMPLETED, else
    once it completes (:func:`register_on_success` honours the request, recorded as the execution
    tag ``orchestrator/register-model-request.<artifact id>: NAME``). For a step that registers
    while it runs (MLflow's ``log_model(registered_model_name=...)``). Everything that can be
    checked now is: the name, and that the artifact is a model output of that execution."""
    check_name(name)
    art = store.get_artifact(rg, artifact_id)
    ex = store.get_execution(rg, execution_id)
    if ex.status == Status.COMPLETED:
        return register_version(store, rg, name, art.id, execution_id=ex.id)
    if art.kind != "model" or art.execution_id != ex.id:
        raise UsageError(f"artifact {art.id} is not a model output of execution {ex.id}")
    if ex.status.terminal:
        raise Conflict(f"execution {ex.id} is {ex.status.value}; only a model of a COMPLETED execution is registered")
    store.add_metrics(rg, ex.id, "", [], tags=[(REQUEST_TAG + art.id, name)])
    return None


def register(store: SqliteStore, rg: str, name: str, *, execution_id: str | None = None, output: str | None = None,
             artifact_id: str | None = None, description: str = "",
             tags: Sequence[tuple[str, str]] = ()) -> ModelVersion:
    """``models register``: from ``--artifact ID``, or the model output of ``--execution ID``
    (``--output NAME`` when it has several)."""
    if (execution_id is None) == (artifact_id is None):
        raise UsageError("give exactly one of an execution (--execution, executionId) or an artifact "
                         "(--artifact, artifactId)")
    if artifact_id is not None:
        if output:
            raise UsageError("an output name goes with an execution, not with an artifact id")
        art = store.get_artifact(rg, artifact_id)
        return register_version(store, rg, name, art.id, execution_id=art.execution_id or "",
                                description=description, tags=tags)
    execution_id = execution_id or ""
    store.get_execution(rg, execution_id)
    outputs = store.list_artifacts(rg, execution_id=execution_id, limit=1000)
    models = [a for a in outputs if a.kind == "model"]
    if output:
        named = [a for a in outputs if a.name == output]
        if not named:
            raise NotFound(f"execution {execution_id} has no output {output!r}",
                           hint="its outputs: " + (", ".join(sorted({a.name for a in outputs})) or "none"))
        models = named
    if not models:
        raise NotFound(f"execution {execution_id} produced no model artifact",
                       hint="its outputs: " + (", ".join(f"{a.name} ({a.kind})" for a in outputs) or "none"))
    if len(models) > 1:
        raise UsageError(f"execution {execution_id} has {len(models)} model outputs: "
                         + ", ".join(sorted(a.name for a in models)), hint="name one (--output, output)")
    return register_version(store, rg, name, models[0].id, execution_id=execution_id, description=description,
                            tags=tags)


def register_on_success(store: SqliteStore, rg: str, execution_id: str) -> tuple[list[ModelVersion], list[str]]:
    """Register what the template asks for with ``orchestrator/register-model.<output>: NAME`` once the
    execution is COMPLETED. Returns the versions and, for requests that could not be honoured, why;
    both are also recorded as tags of the execution (``orchestrator/registered-model.<output>:
    NAME:VERSION``, ``orchestrator/register-model-error.<output>: reason``), so ``executions show`` and
    ``GET /v2/lm/metrics`` tell. The execution's outcome stays what it is. Nothing for any other status."""
    ex = store.get_execution(rg, execution_id)
    if ex.status != Status.COMPLETED:
        return [], []
    done: list[ModelVersion] = []
    problems: list[str] = []
    tags: list[tuple[str, str]] = []
    requested = [(f"output {o}", o, None, n) for o, n in register_requests(store, rg, ex.executable_id).items()]
    requested += [(f"artifact {k[len(REQUEST_TAG):]}", k[len(REQUEST_TAG):], k[len(REQUEST_TAG):], v)
                  for k, v in store.get_tags(rg, execution_id)[0] if k.startswith(REQUEST_TAG)]
    for what, key, artifact_id, name in requested:
        try:
            if artifact_id is None:
                mv = register(store, rg, name, execution_id=execution_id, output=key,
                              description=f"registered on success of execution {execution_id}")
            else:
                mv = register_version(store, rg, name, artifact_id, execution_id=execution_id,
                                      description=f"registered on success of execution {execution_id}")
        except OrchestratorError as exc:  # any refusal, even a store error: the run's outcome stands
            problems.append(f"{what}: {exc}")
            tags.append((f"orchestrator/register-model-error.{key}", str(exc)[:5000]))
        else:
            done.append(mv)
            tags.append((f"orchestrator/registered-model.{key}", f"{mv.model}:{mv.version}"))
    if tags:
        try:
            store.add_metrics(rg, execution_id, "", [], tags=tags)
        except OrchestratorError as exc:
            problems.append(f"recording the outcome as tags: {exc}")
    return done, problems


def register_requests(store: SqliteStore, rg: str, executable_id: str) -> dict[str, str]:
    """``{output: model name}`` from the executable's ``orchestrator/register-model.<output>``
    annotations (workflow metadata; a template's own metadata counts where the workflow is silent)."""
    try:
        doc = store.executable_document(rg, executable_id)
    except NotFound:
        return {}
    return dict(_requests_in(str(doc["text"]), int(doc.get("index", 0) or 0), executable_id))


@functools.lru_cache(maxsize=64)
def _requests_in(text: str, index: int, name: str) -> tuple[tuple[str, str], ...]:
    """The register-model annotations of document ``index`` of ``text``: parsed once per template
    text (a sweep's trials are executions of one template; the YAML parse was ~2 ms of each)."""
    from orchestrator.spec.yamlsafe import load_bytes

    docs, _ = load_bytes(text.encode(), name)
    data = next((d.data for d in docs if d.index == index), None)
    if not isinstance(data, dict):
        return ()
    metas = [t.get("metadata") for t in (data.get("spec") or {}).get("templates") or [] if isinstance(t, dict)]
    out: dict[str, str] = {}
    for meta in [*metas, data.get("metadata")]:  # the workflow's own annotations last: they win
        annotations = (meta or {}).get("annotations") if isinstance(meta, dict) else None
        for key, value in (annotations or {}).items() if isinstance(annotations, dict) else ():
            if str(key).startswith(REGISTER_ANNOTATION) and str(value or "").strip():
                out[str(key)[len(REGISTER_ANNOTATION):]] = str(value).strip()
    return tuple(out.items())


# ---------------------------------------------------------------------- reads and aliases
def resolve_version(store: SqliteStore, rg: str, name: str, ref: str | None) -> ModelVersion:
    """A version by number, by alias, or the latest (``ref`` None or ``latest``)."""
    if ref is None or ref == "latest":
        return store.get_model_version(rg, name)
    if ref.isdigit():
        return store.get_model_version(rg, name, int(ref))
    return store.model_alias(rg, name, ref)


def set_alias(store: SqliteStore, rg: str, name: str, alias: str, version: int, *,
              expected: int | None = None) -> int | None:
    """Point ``alias`` at ``version`` atomically; the version it named before (None if new)."""
    check_alias(alias)
    return store.set_model_alias(rg, name, alias, version, expected=expected)


def version_json(mv: ModelVersion) -> dict[str, Any]:
    return {"model": mv.model, "version": mv.version, "artifactId": mv.artifact_id, "sha256": mv.sha256,
            "executionId": mv.execution_id, "description": mv.description,
            "tags": [{"key": k, "value": v} for k, v in mv.tags], "aliases": list(mv.aliases),
            "createdAt": mv.created_at, "modifiedAt": mv.modified_at}


def lineage(store: SqliteStore, rg: str, mv: ModelVersion) -> dict[str, Any]:
    """Where a version comes from: its artifact, execution, configuration, parameters, metric
    summaries and the input artifacts the execution was bound to."""
    out: dict[str, Any] = {}
    try:
        art = store.get_artifact(rg, mv.artifact_id)
        out["artifact"] = {"id": art.id, "name": art.name, "kind": art.kind, "url": art.url, "sha256": art.digest,
                           "size": art.size, "digestMatches": art.digest == mv.sha256}
    except NotFound:
        out["artifact"] = {"id": mv.artifact_id, "missing": True}
    rows = store.compare_rows(rg, execution_ids=[mv.execution_id], limit=1)
    if not rows:
        out["execution"] = {"id": mv.execution_id, "missing": True}
        return out
    row = rows[0]
    ex = store.get_execution(rg, mv.execution_id)
    out["execution"] = {"id": ex.id, "status": ex.status.value, "scenarioId": ex.scenario_id,
                        "executableId": ex.executable_id, "createdAt": ex.created_at,
                        "completionTime": ex.completion_time, "commitSha": ex.commit_sha}
    out["configuration"] = {"id": ex.configuration_id, "name": ex.configuration_name}
    out["parameters"] = [{"name": k, "value": v} for k, v in sorted(row["parameters"].items())]
    out["metrics"] = row["metrics"]
    inputs = []
    try:
        bindings = store.get_configuration(rg, ex.configuration_id).input_artifact_bindings
    except NotFound:
        bindings = ()
    from orchestrator.control.modelrefs import execution_inputs, wire

    for item in execution_inputs(store, rg, ex.id, bindings):  # what it ran with (models:/ resolved)
        key, aid = item["key"], item["artifactId"]
        try:
            a = store.get_artifact(rg, aid)
            inputs.append({**wire(item), "name": a.name, "kind": a.kind, "url": a.url, "sha256": a.digest})
        except NotFound:
            inputs.append({"key": key, "artifactId": aid, "missing": True})
    out["inputArtifacts"] = inputs
    return out
