"""Turn a validated raw document into frozen model objects (raw dicts stop here).

Owns: the mapping from Argo / AI Core YAML fields to :mod:`orchestrator.model` dataclasses,
including string normalisation of parameter values (AI Core parameters are strings; an unquoted
``0.2`` or ``1.10`` keeps its source text) and duration parsing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from orchestrator.model import (
    ArgArtifact,
    ArgParam,
    ArtifactDecl,
    ArtifactMeta,
    Call,
    ConfigurationSpec,
    Container,
    Mount,
    OutputParam,
    ParameterDecl,
    RetryStrategy,
    SecretEnv,
    SecretEnvFrom,
    Template,
    WorkflowSpec,
)
from orchestrator.spec import hooks, inline
from orchestrator.spec.metadata import ART_ANNOTATION
from orchestrator.spec.yamlsafe import Document, escape

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: Any) -> float | None:
    """``30``, ``"30"``, ``"30s"``, ``"5m"``, ``"1h"`` -> seconds; None when absent/invalid."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        return None
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    return float(m.group(1)) * unit


def duration_field(value: Any) -> tuple[float | None, str]:
    """A duration field as (seconds, "") or, when it holds a ``{{…}}`` placeholder, (None, text):
    resolved when the step starts (an unparsable result fails the step, never "no limit")."""
    if isinstance(value, str) and "{{" in value:
        return None, value
    return parse_duration(value), ""


def text(doc: Document, ptr: str, value: Any) -> str:
    """A scalar as the string the user wrote (``0.2`` stays ``"0.2"``, ``1.10`` stays ``"1.10"``)."""
    if ptr in doc.raw_scalars:
        return doc.raw_scalars[ptr]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _params(doc: Document, ptr: str, items: list[dict[str, Any]]) -> tuple[ParameterDecl, ...]:
    out = []
    for j, p in enumerate(items):
        key = "default" if "default" in p else "value" if "value" in p else None
        default = text(doc, f"{ptr}/{j}/{key}", p[key]) if key else None
        enum = tuple(text(doc, f"{ptr}/{j}/enum/{k}", v) for k, v in enumerate(p.get("enum") or []))
        out.append(ParameterDecl(str(p["name"]), default, str(p.get("description", "")), enum))
    return tuple(out)


def _artifacts(items: list[dict[str, Any]]) -> tuple[ArtifactDecl, ...]:
    return tuple(
        ArtifactDecl(str(a["name"]), str(a.get("path", "")), str(a.get("globalName", "")),
                     "none" in (a.get("archive") or {}), bool(a.get("optional", False)),
                     str(a.get("from", "") or ""), str(a.get("fromExpression", "") or ""),
                     str((a.get("raw") or {}).get("data", "")) if "raw" in a else None,
                     a["mode"] if isinstance(a.get("mode"), int) and not isinstance(a.get("mode"), bool) else None)
        for a in items)


def _calls(doc: Document, ptr: str, items: list[dict[str, Any]], parent: str) -> tuple[Call, ...]:
    out = []
    for j, c in enumerate(items):
        args = c.get("arguments") or {}
        params = tuple(ArgParam(str(a["name"]), text(doc, f"{ptr}/{j}/arguments/parameters/{k}/value", a.get("value")))
                       for k, a in enumerate(args.get("parameters") or []))
        arts = tuple(ArgArtifact(str(a["name"]), str(a.get("from", "")), str(a.get("subPath", "") or ""))
                     for a in args.get("artifacts") or [])
        items_ = c.get("withItems")
        cont = c.get("continueOn") or {}
        hook = (c.get("hooks") or {}).get("exit") or {}
        hp = f"{ptr}/{j}/hooks/exit/arguments/parameters"
        seq = c.get("withSequence")
        out.append(Call(str(c["name"]), str(c["template"]) if "template" in c else inline.name_of(parent, str(c["name"])),
                        params, arts,
                        tuple(str(d) for d in c.get("dependencies") or []), str(c.get("depends", "")),
                        str(c.get("when", "")), tuple(items_) if items_ is not None else None,
                        with_param=text(doc, f"{ptr}/{j}/withParam", c["withParam"]) if "withParam" in c else "",
                        with_sequence=tuple((str(k), text(doc, f"{ptr}/{j}/withSequence/{k}", v))
                                            for k, v in seq.items()) if isinstance(seq, dict) else None,
                        continue_on=tuple(k for k in ("failed", "error") if cont.get(k) is True),
                        on_exit=str(c.get("onExit", "") or hook.get("template", "") or ""),
                        exit_args=tuple(ArgParam(str(a["name"]), text(doc, f"{hp}/{k}/value", a.get("value")))
                                        for k, a in enumerate((hook.get("arguments") or {}).get("parameters") or [])),
                        exit_artifacts=tuple(ArgArtifact(str(a["name"]), str(a.get("from", "")),
                                                         str(a.get("subPath", "") or ""))
                                             for a in (hook.get("arguments") or {}).get("artifacts") or []),
                        hooks=hooks.build(doc, f"{ptr}/{j}/hooks", c.get("hooks"))))
    return tuple(out)


def _secret_env(c: dict[str, Any]) -> tuple[SecretEnv, ...]:
    """``env[].valueFrom.secretKeyRef`` entries (other ``valueFrom`` kinds are not set locally)."""
    out = []
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if isinstance(ref, dict):
            out.append(SecretEnv(str(e["name"]), str(ref["name"]), str(ref["key"]), ref.get("optional") is True))
    return tuple(out)


def _secret_env_from(c: dict[str, Any]) -> tuple[SecretEnvFrom, ...]:
    """``envFrom[].secretRef`` entries with their ``prefix``."""
    out = []
    for item in c.get("envFrom") or []:
        ref = item.get("secretRef")
        if isinstance(ref, dict):
            out.append(SecretEnvFrom(str(ref["name"]), str(item.get("prefix") or ""), ref.get("optional") is True))
    return tuple(out)


def _mounts(c: dict[str, Any], volumes: dict[str, dict[str, Any]]) -> tuple[Mount, ...]:
    out = []
    for m in c.get("volumeMounts") or []:
        v = volumes.get(str(m.get("name")), {})
        sec = v.get("secret") if isinstance(v.get("secret"), dict) else None
        mode = (sec or {}).get("defaultMode")
        kind = "secret" if sec is not None else "claim" if v.get(CLAIM) else "emptyDir"
        out.append(Mount(str(m["name"]), str(m["mountPath"]), kind,
                         str((sec or {}).get("secretName", "")),
                         tuple((str(i["key"]), str(i.get("path") or i["key"])) for i in (sec or {}).get("items") or []),
                         (sec or {}).get("optional") is True, mode if isinstance(mode, int) else 0o644,
                         str(m.get("subPath", "") or ""), m.get("readOnly") is True))
    return tuple(out)


def _container(doc: Document, cp: str, c: dict[str, Any], script: bool,
               volumes: dict[str, dict[str, Any]]) -> Container:
    command = tuple(text(doc, f"{cp}/command/{k}", v) for k, v in enumerate(c.get("command") or []))
    args = tuple(text(doc, f"{cp}/args/{k}", v) for k, v in enumerate(c.get("args") or []))
    env = tuple((str(e["name"]), text(doc, f"{cp}/env/{k}/value", e.get("value")))
                for k, e in enumerate(c.get("env") or []) if "valueFrom" not in e)
    return Container(str(c.get("image", "")), command, args, env, str(c.get("workingDir", "")),
                     str(c["source"]) if script else None,
                     env_secrets=_secret_env(c), env_from_secrets=_secret_env_from(c), mounts=_mounts(c, volumes))


def _template(doc: Document, i: int, t: dict[str, Any], volumes: dict[str, dict[str, Any]] | None = None,
              at: str = "", pod_meta: dict[str, Any] | None = None) -> Template:
    """One template; ``pod_meta``: the workflow's ``podMetadata`` (labels and annotations of every
    pod, under the template's own ``metadata``; recorded)."""
    ptr = at or f"/spec/templates/{i}"
    container = None
    volumes = {**(volumes or {}), **{str(v.get("name")): v for v in t.get("volumes") or [] if isinstance(v, dict)}}
    for key in ("container", "script"):
        if key in t:
            container = _container(doc, f"{ptr}/{key}", t[key], key == "script", volumes)
    before: tuple[tuple[str, Container], ...] = ()
    cset = t.get("containerSet")
    if isinstance(cset, dict):  # the "main" container decides the step; the others run before it
        shared = list(cset.get("volumeMounts") or [])
        order = _container_order(cset.get("containers") or [])
        made = {j: _container(doc, f"{ptr}/containerSet/containers/{j}",
                              {**c, "volumeMounts": shared + list(c.get("volumeMounts") or [])}, False, volumes)
                for j, c in enumerate(cset.get("containers") or [])}
        names = {j: str(c.get("name")) for j, c in enumerate(cset.get("containers") or [])}
        container = next((made[j] for j in order if names[j] == "main"), None)
        before = tuple((names[j], made[j]) for j in order if names[j] != "main")
    sidecars = tuple((str(c.get("name", j)), _container(doc, f"{ptr}/sidecars/{j}", c, False, volumes or {}))
                     for j, c in enumerate(t.get("sidecars") or []))
    main_mounts = list(((t.get("container") or t.get("script") or {}) if isinstance(t.get("container") or t.get(
        "script"), dict) else {}).get("volumeMounts") or [])
    # initContainers run one at a time before the main container, as a containerSet's others do
    before = tuple((str(c.get("name", j)), _container(
        doc, f"{ptr}/initContainers/{j}", {**c, "volumeMounts": (main_mounts if c.get("mirrorVolumeMounts") else [])
                                            + list(c.get("volumeMounts") or [])}, False, volumes))
        for j, c in enumerate(t.get("initContainers") or [])) + before
    retry = None
    if "retryStrategy" in t:
        r = t["retryStrategy"] or {}
        b = r.get("backoff") or {}
        raw_limit = r.get("limit")
        limit: int | None = None  # Argo: no limit means retried until it succeeds
        limit_text = ""
        if isinstance(raw_limit, str) and "{{" in raw_limit:
            limit_text = raw_limit
        elif raw_limit is not None:
            limit = int(str(raw_limit).strip()) if str(raw_limit).strip().isdigit() else 0
        retry = RetryStrategy(limit, str(r.get("retryPolicy", "OnFailure")),
                              parse_duration(b.get("duration")) or 0.0,
                              float(str(b.get("factor", 1) or 1)), parse_duration(b.get("maxDuration")) or 0.0,
                              limit_text, str(r.get("expression", "") or ""), parse_duration(b.get("cap")) or 0.0)
    deadline, deadline_text = duration_field(t.get("activeDeadlineSeconds"))
    timeout, timeout_text = duration_field(t.get("timeout"))
    meta = t.get("metadata") or {}
    memo = t.get("memoize") if isinstance(t.get("memoize"), dict) else None
    return Template(
        name=str(t["name"]),
        container=container,
        steps=tuple(_calls(doc, f"{ptr}/steps/{g}", grp, str(t["name"])) for g, grp in enumerate(t["steps"]))
        if "steps" in t else None,
        dag=_calls(doc, f"{ptr}/dag/tasks", t["dag"]["tasks"], str(t["name"])) if "dag" in t else None,
        input_parameters=_params(doc, f"{ptr}/inputs/parameters", (t.get("inputs") or {}).get("parameters") or []),
        input_artifacts=_artifacts((t.get("inputs") or {}).get("artifacts") or []),
        output_parameters=tuple(
            OutputParam(str(o["name"]), str((o.get("valueFrom") or {}).get("path", "")),
                        text(doc, f"{ptr}/outputs/parameters/{k}/value", o["value"]) if "value" in o else None,
                        text(doc, f"{ptr}/outputs/parameters/{k}/valueFrom/default", o["valueFrom"]["default"])
                        if "default" in (o.get("valueFrom") or {}) else None,
                        str((o.get("valueFrom") or {}).get("parameter", "") or ""),
                        str((o.get("valueFrom") or {}).get("expression", "") or ""),
                        str(o.get("globalName", "") or ""), "supplied" in (o.get("valueFrom") or {}))
            for k, o in enumerate((t.get("outputs") or {}).get("parameters") or [])),
        output_artifacts=_artifacts((t.get("outputs") or {}).get("artifacts") or []),
        retry=retry,
        active_deadline_seconds=deadline,
        timeout=timeout,
        parallelism=t.get("parallelism"),
        labels=tuple((str(k), str(v)) for k, v in {**(pod_meta or {}).get("labels", {}),
                                                     **(meta.get("labels") or {})}.items()),
        annotations=tuple((str(k), str(v)) for k, v in {**(pod_meta or {}).get("annotations", {}),
                                                          **(meta.get("annotations") or {}),
                                                          **(t.get("annotations") or {})}.items()),
        deadline_text=deadline_text, timeout_text=timeout_text,
        fail_fast=(t["dag"].get("failFast") is not False) if isinstance(t.get("dag"), dict) else t.get("failFast") is True,
        suspend=text(doc, f"{ptr}/suspend/duration", t["suspend"].get("duration", ""))
        if isinstance(t.get("suspend"), dict) else None,
        mutexes=mutexes(t),
        sidecars=sidecars,
        before_main=before,
        memoize=(text(doc, f"{ptr}/memoize/key", memo.get("key")), str(memo.get("maxAge", "") or ""),
                 str(((memo.get("cache") or {}).get("configMap") or {}).get("name", ""))) if memo else None,
        dag_target=text(doc, f"{ptr}/dag/target", t["dag"].get("target", "")) if isinstance(t.get("dag"), dict) else "",
        daemon=json.dumps(((t.get("container") or t.get("script") or {}).get("readinessProbe") or {}))
        if t.get("daemon") is True else None,
    )


def _container_order(containers: list[dict[str, Any]]) -> list[int]:
    """Indexes of a containerSet's containers in dependency order (ties: as written)."""
    names = {str(c.get("name")): j for j, c in enumerate(containers)}
    done: list[int] = []
    todo = list(range(len(containers)))
    while todo:
        ready = [j for j in todo if all(names.get(str(d)) in done for d in containers[j].get("dependencies") or [])]
        if not ready:  # a cycle (validation refuses it): keep the written order
            return done + todo
        done.append(ready[0])
        todo.remove(ready[0])
    return done


CLAIM = "\x00claim"  # marks a volumeClaimTemplates volume among the spec's volumes


def claim_names(spec: dict[str, Any]) -> list[str]:
    """Names of ``volumeClaimTemplates``: one volume per execution, shared by its steps (Argo makes
    one PersistentVolumeClaim per workflow; here a directory of the execution)."""
    return [str((c.get("metadata") or {}).get("name")) for c in spec.get("volumeClaimTemplates") or []
            if isinstance(c, dict) and isinstance(c.get("metadata"), dict)]


def mutexes(owner: dict[str, Any]) -> tuple[str, ...]:
    """Names of ``synchronization.mutex`` / ``synchronization.mutexes[]``."""
    sync = owner.get("synchronization") or {}
    found = [sync["mutex"]] if isinstance(sync.get("mutex"), dict) else []
    found += [m for m in sync.get("mutexes") or [] if isinstance(m, dict)]
    return tuple(str(m.get("name")) for m in found)


def artifact_meta(annotations: dict[str, Any]) -> dict[str, ArtifactMeta]:
    fields: dict[str, dict[str, str]] = {}
    for key, value in annotations.items():
        m = ART_ANNOTATION.match(str(key))
        if m:
            fields.setdefault(m.group(1), {})[m.group(2)] = str(value)
    out = {}
    for art, f in fields.items():
        labels: tuple[tuple[str, str], ...] = ()
        if "labels" in f:
            try:
                labels = tuple((str(k), str(v)) for k, v in json.loads(f["labels"]).items())
            except (ValueError, AttributeError):
                labels = ()
        out[art] = ArtifactMeta(f.get("kind", "other"), f.get("description", ""), labels, f.get("name", ""))
    return out


def digest_of(doc: Document) -> str:
    return hashlib.sha256(json.dumps(doc.data, sort_keys=True, default=str).encode()).hexdigest()


def build_workflow(doc: Document) -> WorkflowSpec:
    """A validated WorkflowTemplate or ServingTemplate document -> :class:`WorkflowSpec`."""
    d = doc.data
    meta = d["metadata"]
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    lab = lambda k: text(doc, f"/metadata/labels/{escape(k)}", labels.get(k, ""))  # noqa: E731
    common = dict(
        executable_id=str(meta["name"]), kind=str(d["kind"]),
        scenario_id=lab("scenarios.ai.sap.com/id"),
        scenario_name=str(ann.get("scenarios.ai.sap.com/name", "")),
        scenario_description=str(ann.get("scenarios.ai.sap.com/description", "")),
        version=lab("ai.sap.com/version"),
        executable_name=str(ann.get("executables.ai.sap.com/name", "")),
        executable_description=str(ann.get("executables.ai.sap.com/description", "")),
        artifact_meta=artifact_meta(ann), source=doc.file, digest=digest_of(doc), doc_index=doc.index,
    )
    spec = d["spec"]
    if d["kind"] == "ServingTemplate":
        inputs = spec.get("inputs") or {}
        return WorkflowSpec(entrypoint="", parameters=_params(doc, "/spec/inputs/parameters", inputs.get("parameters") or []),
                            input_artifacts=tuple(ArtifactDecl(str(a["name"])) for a in inputs.get("artifacts") or []),
                            **common)  # type: ignore[arg-type]
    defaults = spec.get("templateDefaults") or {}  # Argo: every template's unset fields (here: leaves)
    volumes = {str(v.get("name")): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
    volumes.update({name: {"name": name, CLAIM: True} for name in claim_names(spec)})
    pod_meta = spec.get("podMetadata") if isinstance(spec.get("podMetadata"), dict) else None
    templates = {str(t["name"]): _template(doc, i, _defaulted(defaults, t), volumes, pod_meta=pod_meta)
                 for i, t in enumerate(spec["templates"])}
    for name, ptr, t, _call in inline.walk(spec):  # inline templates, named PARENT/CALL
        templates[name] = _template(doc, -1, _defaulted(defaults, t), volumes, ptr, pod_meta)
    entry = templates.get(str(spec.get("entrypoint") or ""))
    raw_args = {str(a["name"]): str(a["raw"].get("data", "")) for a in (spec.get("arguments") or {}).get("artifacts") or []
                if isinstance(a, dict) and isinstance(a.get("raw"), dict)}
    if entry is not None and raw_args:  # Argo: the workflow's argument artifacts are the entrypoint's inputs
        templates[entry.name] = dataclasses.replace(entry, input_artifacts=tuple(
            dataclasses.replace(a, raw=raw_args[a.name]) if a.name in raw_args else a for a in entry.input_artifacts))
    fed = {(c.template, a.name) for t in templates.values()
           for c in (list(t.dag or ()) + [c for g in t.steps or () for c in g]) for a in c.artifacts}
    fed |= {(c.on_exit, a.name) for t in templates.values()
            for c in (list(t.dag or ()) + [c for g in t.steps or () for c in g]) for a in c.exit_artifacts} | hooks.exit_fed(spec)
    inputs: list[ArtifactDecl] = []
    seen: set[str] = set()
    outputs: list[ArtifactDecl] = []
    for t in templates.values():
        for a in t.input_artifacts:
            if (t.name, a.name) not in fed and a.name not in seen and a.raw is None:
                seen.add(a.name)
                inputs.append(a)
        outputs.extend(a for a in t.output_artifacts if a.global_name)
    wf_deadline, wf_deadline_text = duration_field(spec.get("activeDeadlineSeconds"))
    return WorkflowSpec(
        entrypoint=str(spec.get("entrypoint") or ""),  # none: a library for templateRef, not runnable
        parameters=_params(doc, "/spec/arguments/parameters", (spec.get("arguments") or {}).get("parameters") or []),
        templates=templates, parallelism=spec.get("parallelism"),
        active_deadline_seconds=wf_deadline, deadline_text=wf_deadline_text, mutexes=mutexes(spec),
        **hooks.workflow_exit(doc, spec),  # on_exit, exit_args, exit_artifacts
        input_artifacts=tuple(inputs), output_artifacts=tuple(outputs),
        hooks=hooks.build(doc, "/spec/hooks", spec.get("hooks")),
        labels=tuple((str(k), text(doc, f"/metadata/labels/{escape(str(k))}", v)) for k, v in labels.items()),
        annotations=tuple((str(k), str(v)) for k, v in ann.items()),
        **common)  # type: ignore[arg-type]


def _defaulted(defaults: dict[str, Any], t: dict[str, Any]) -> dict[str, Any]:
    """``templateDefaults`` under a template's own fields: all of them for a container/script; for a
    steps/dag template its ``retryStrategy`` (Argo merges it there too; a timeout bounds no call)."""
    if "container" in t or "script" in t:
        return {**defaults, **t}
    if ("steps" in t or "dag" in t) and "retryStrategy" in defaults:
        return {"retryStrategy": defaults["retryStrategy"], **t}
    return t


def build_configuration(doc: Document) -> ConfigurationSpec:
    d = doc.data
    s = d["spec"]
    return ConfigurationSpec(
        name=str(d["metadata"]["name"]), executable_id=str(s["executableId"]),
        scenario_id=str(s.get("scenarioId", "")),
        parameter_bindings=tuple((str(b["key"]), text(doc, f"/spec/parameterBindings/{k}/value", b["value"]))
                                 for k, b in enumerate(s.get("parameterBindings") or [])),
        artifact_bindings=tuple((str(b["key"]), str(b.get("artifactId") or b.get("url")))
                                for b in s.get("inputArtifactBindings") or []),
        source=doc.file)
