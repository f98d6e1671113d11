"""Semantic checks of one WorkflowTemplate document (ServingTemplates: :mod:`orchestrator.spec.serving`).

Owns: the Argo structural rules of the document and its templates (entrypoint and template
references, unique template names, template kinds, parameters and their enums, workflow argument
artifacts, placeholders that reference nothing: the scope of a leaf template and of a call) and
the artifacts an executable takes. Works on the raw document so every error keeps its position.
The document may have had schema errors: then it is the copy :func:`orchestrator.spec.shape.prune`
left, whose cut list items are skipped (``live``) but whose names still count (``names``). Leaf
templates: :mod:`orchestrator.spec.containers`; calls in steps/dag templates (arguments,
``when``/``depends``, DAG cycles, recursion): :mod:`orchestrator.spec.calls`; labels and
annotations: :mod:`orchestrator.spec.metadata`; resource plans: :mod:`orchestrator.spec.resources`;
cross-file rules: :mod:`orchestrator.spec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec import argo_checks, argo_extras, calls, hooks, inline, placeholders
from orchestrator.spec.argo_checks import LOOPS, OPEN
from orchestrator.spec.build import claim_names
from orchestrator.spec.containers import check_leaf
from orchestrator.spec.graphs import find_cycle, reaches
from orchestrator.spec.metadata import (
    ART_ANNOTATION,
    check_artifact_annotations,
    check_metadata,
)
from orchestrator.spec.resources import check_template_plans
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.serving import check_serving
from orchestrator.spec.shape import GHOST, AnyName, live, name_set
from orchestrator.spec.splice import check_code_splices
from orchestrator.spec.yamlsafe import Document

__all__ = ["ART_ANNOTATION", "check_serving", "check_workflow", "find_cycle", "reaches"]

WORKFLOW_VARS = {"name", "uid", "namespace", "status", "creationTimestamp", "duration", "mainEntrypoint", "failures"}
TASK_FIELDS = {"status", "exitCode", "startedAt", "finishedAt", "id", "ip"}


class _Workflow:
    """Checks of one WorkflowTemplate; ``self.errs`` collects everything."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.spec: dict[str, Any] = doc.data["spec"]
        self.errs: list[SpecError] = []
        self.templates: dict[str, tuple[int, dict[str, Any]]] = {}
        self.ptrs: dict[str, str] = {}  # inline templates: where they are
        self.wf_params = name_set((self.spec.get("arguments") or {}).get("parameters"))
        # a template cut without a name (a schema error) might be the one a reference means
        self.any_template = any(t is None for t in self.spec["templates"])

    def err(self, ptr: str, rule: str, msg: str, hint: str = "", *, key: bool = False,
            severity: str = "error") -> None:
        self.errs.append(self.doc.error(ptr, rule, msg, hint, key=key, severity=severity))

    def run(self) -> tuple[list[SpecError], set[str]]:
        self.check_params("/spec/arguments/parameters", (self.spec.get("arguments") or {}).get("parameters") or [])
        named = [(f"/spec/templates/{i}", t) for i, t in enumerate(self.spec["templates"]) if isinstance(t, dict)]
        for name, iptr, t, _call in inline.walk(self.spec) if all(x.get("name") for _p, x in named) else []:
            self.ptrs[name] = iptr
            named.append((iptr, t))
        for ptr, t in named:
            i = int(ptr.rsplit("/", 1)[1]) if ptr.startswith("/spec/templates/") and ptr.count("/") == 3 else -1
            if t["name"] in self.templates:
                self.err(f"{ptr}/name", "template.duplicate-name", f"template name {t['name']!r} is used twice")
            self.templates.setdefault(t["name"], (i, t))
            if t.get(GHOST):
                continue
            kinds = [k for k in ("container", "script", "steps", "dag", "suspend", "containerSet") if k in t]
            if len(kinds) != 1:
                self.err(ptr, "template.kind",
                         f"template {t['name']!r} must have exactly one of container, script, steps, dag, suspend, "
                         "containerSet"
                         f" (has {', '.join(kinds) or 'none'})")
            elif kinds == ["suspend"]:
                argo_checks.check_suspend(self, ptr, t)
        hook = ((self.spec.get("hooks") or {}).get("exit") or {}).get("template")
        if hook is not None and self.spec.get("onExit") is not None:
            self.err("/spec/hooks/exit", "hook.several", "use onExit or hooks.exit, not both", key=True)
        hooks.check_workflow(self)
        if "entrypoint" not in self.spec and "/spec/entrypoint" not in self.doc.positions \
                and self.doc.data.get("kind") == "WorkflowTemplate":
            self.err("/spec", "template.library", "no entrypoint: a library of templates other WorkflowTemplates "
                     "use through templateRef; it cannot be run on its own",
                     "add spec.entrypoint to run it (AI Core runs an executable from its entrypoint)", key=True,
                     severity="warning")
        for ref, ptr in ((self.spec.get("entrypoint"), "/spec/entrypoint"), (self.spec.get("onExit"), "/spec/onExit"),
                         (hook, "/spec/hooks/exit/template")):
            if ref is not None and ref not in self.templates and not self.any_template:
                self.err(ptr, "ref.template", f"template {ref!r} does not exist",
                         did_you_mean(str(ref), list(self.templates)))
        fed: dict[str, set[str]] = {}
        for name, (i, t) in self.templates.items():
            if not t.get(GHOST):
                self.check_template(self.ptrs.get(name, f"/spec/templates/{i}"), t, fed)
        calls.check_recursion(self)
        self.check_argument_artifacts()
        argo_checks.check_security_context(self, "/spec", self.spec)
        argo_checks.check_synchronization(self, "/spec", self.spec, True)
        defaults = self.spec.get("templateDefaults")
        if isinstance(defaults, dict):
            argo_checks.check_durations(self, "/spec/templateDefaults", defaults)
            argo_checks.check_retry(self, "/spec/templateDefaults", defaults,
                                    lambda ex: "templateDefaults take no placeholders here")
        argo_checks.check_images(self, [v for v in self.templates.values() if not v[1].get(GHOST)])
        return self.errs, self.executable_artifacts(fed)

    def check_argument_artifacts(self) -> None:
        """``spec.arguments.artifacts`` give the entrypoint's input artifacts their data: ``raw`` here
        (other locations are AI Core refusals; an executable's inputs are bound by its configuration)."""
        entry = self.templates.get(str(self.spec.get("entrypoint")))
        declared = self.io_names(entry[1], "inputs", "artifacts") if entry else set()
        for j, a in live((self.spec.get("arguments") or {}).get("artifacts")):
            aptr = f"/spec/arguments/artifacts/{j}"
            if "raw" not in a and not set(a) & {"s3", "gcs", "oss", "hdfs", "http", "git", "artifactory", "azure"}:
                self.err(aptr, "arg.artifact-source", f"workflow argument artifact {a.get('name')!r} needs raw data",
                         "declare it as an input artifact of a template: a configuration binds it")
            elif entry and str(a.get("name")) not in declared:
                self.err(f"{aptr}/name", "arg.unknown-artifact", f"the entrypoint {entry[1].get('name')!r} has no "
                         f"input artifact {a.get('name')!r}: Argo ignores it", did_you_mean(str(a.get("name")),
                                                                                           sorted(declared)),
                         severity="warning")

    def check_params(self, ptr: str, params: Any) -> None:
        seen: set[str] = set()
        for j, p in live(params):
            name = str(p.get("name", ""))
            if name in seen:
                self.err(f"{ptr}/{j}/name", "param.duplicate", f"parameter {name!r} is declared twice")
            seen.add(name)
            key = "default" if "default" in p else "value"
            default = self.doc.raw_scalars.get(f"{ptr}/{j}/{key}", p.get(key))
            enum = [self.doc.raw_scalars.get(f"{ptr}/{j}/enum/{k}", v) for k, v in enumerate(p.get("enum") or [])]
            if enum and default is not None and str(default) not in map(str, enum):
                self.err(f"{ptr}/{j}", "param.enum", f"default {default!r} of {name!r} is not in its enum")

    def io(self, t: dict[str, Any], side: str, what: str) -> list[tuple[int, dict[str, Any]]]:
        """``(index, item)`` of the live inputs/outputs parameters/artifacts of template ``t``."""
        return list(live((t.get(side) or {}).get(what)))

    def io_names(self, t: dict[str, Any], side: str, what: str) -> set[str]:
        return name_set((t.get(side) or {}).get(what))

    def check_template(self, ptr: str, t: dict[str, Any], fed: dict[str, set[str]]) -> None:
        argo_checks.check_security_context(self, ptr, t)
        argo_extras.check_memoize(self, ptr, t, "container" in t or "script" in t or "containerSet" in t)
        argo_extras.check_daemon(self, ptr, t)
        leafy = "container" in t or "script" in t or "containerSet" in t
        argo_checks.check_synchronization(self, ptr, t, leafy, (lambda ex: self.leaf_scope(t, ex)) if leafy else
                                          self.call_scope(t, {"name": "\x00sync"}, {}, None))
        self.check_params(f"{ptr}/inputs/parameters", (t.get("inputs") or {}).get("parameters"))
        leaf = "container" in t or "script" in t or "containerSet" in t
        for side in ("inputs", "outputs"):
            for j, a in self.io(t, side, "artifacts"):
                if leaf and not a.get("path"):
                    self.err(f"{ptr}/{side}/artifacts/{j}", "artifact.no-path",
                             f"artifact {a['name']!r} of a container template needs a path")

        if "steps" in t or "dag" in t:  # retryStrategy re-runs the whole call (run.callretry)
            argo_checks.check_composite_limits(self, ptr, t, lambda ex: self.leaf_scope(t, ex))
        elif not leaf:
            for fld in ("activeDeadlineSeconds", "timeout", "retryStrategy"):
                if fld in t:
                    self.err(f"{ptr}/{fld}", "argo.unsupported-field",
                             f"{fld!r} on a steps/dag template is not applied (Argo applies it to containers)",
                             "put it on the container or script templates it calls", key=True)
        if not leaf and "suspend" not in t and (self.io(t, "outputs", "artifacts") or
                                                self.io(t, "outputs", "parameters")):
            self.check_composite_outputs(ptr, t)
        if leaf:
            argo_checks.check_mounts(self, ptr, t, name_set(self.spec.get("volumes")) | set(claim_names(self.spec)))
            argo_checks.check_durations(self, ptr, t)
            argo_checks.check_retry(self, ptr, t, lambda ex: self.leaf_scope(t, ex))
            argo_checks.check_sidecars(self, ptr, t, lambda ex: self.leaf_scope(t, ex))
            argo_extras.check_init_containers(self, ptr, t, lambda ex: self.leaf_scope(t, ex))
            for j, o in self.io(t, "outputs", "parameters"):
                if not (o.get("valueFrom") or {}).get("path") and "value" not in o:
                    self.err(f"{ptr}/outputs/parameters/{j}", "param.no-source",
                             f"output parameter {o['name']!r} needs valueFrom.path" +
                             (" (valueFrom.supplied is for suspend templates)"
                              if "supplied" in (o.get("valueFrom") or {}) else ""))
            if "containerSet" in t:
                argo_checks.check_container_set(self, ptr, t, lambda ex: self.leaf_scope(t, ex))
            else:
                check_leaf(self, ptr, t, lambda ex: self.leaf_scope(t, ex))
        elif "steps" in t:
            calls.check_steps(self, ptr, t, fed)
        elif "dag" in t:
            calls.check_dag(self, ptr, t, fed)

    def check_composite_outputs(self, ptr: str, t: dict[str, Any]) -> None:
        argo_checks.check_composite_outputs(self, ptr, t)

    def leaf_scope(self, t: dict[str, Any], ex: str) -> str | None:
        """Return an error message if ``ex`` is not resolvable in a leaf template."""
        parts = ex.split(".")
        if parts[0] == "workflow":
            return self.workflow_ref(parts)
        if ex == "retries" or (parts[0] == "lastRetry" and len(parts) == 2):
            if "retryStrategy" not in t:
                return f"{{{{{ex}}}}} is only defined in a template with a retryStrategy"
            return None if ex == "retries" or parts[1] in ("exitCode", "status", "duration", "message") \
                else "lastRetry has exitCode, status, duration and message"
        if ex == "inputs.parameters":
            return None  # all input parameters as JSON
        if parts[0] in ("inputs", "outputs") and len(parts) >= 3 and parts[1] in ("parameters", "artifacts"):
            if parts[2] not in self.io_names(t, parts[0], parts[1]):
                return f"{parts[0]} {parts[1]} {parts[2]!r} is not declared on this template"
            if parts[1] == "artifacts" and parts[3:] not in ([], ["path"]):
                return "artifact placeholders support only '.path'"
            if parts[0] == "inputs" and parts[1] == "parameters" and len(parts) != 3:
                return "use {{inputs.parameters.NAME}}"
            return None
        return "unknown placeholder"

    def workflow_ref(self, parts: list[str]) -> str | None:
        if len(parts) == 3 and parts[1] == "parameters":
            if parts[2] == "json" and "json" not in self.wf_params:
                return None
            return None if parts[2] in self.wf_params else f"workflow parameter {parts[2]!r} is not declared"
        if len(parts) >= 3 and parts[1] in ("labels", "annotations"):
            return None
        if len(parts) == 4 and parts[1] == "outputs" and parts[2] in ("parameters", "artifacts"):
            return None if parts[3] in self.global_names(parts[2]) else \
                f"no template declares an output {parts[2][:-1]} with globalName {parts[3]!r}"
        if len(parts) == 2 and parts[1] in WORKFLOW_VARS:
            return None
        return "unknown workflow variable"

    def check_text(self, ptr: str, text: Any, scope: Any) -> None:
        if not isinstance(text, str):
            return
        for ex in placeholders.find(text):
            if ex.startswith("="):
                problem = self.expression_problem(ex[1:], scope)
                if problem:
                    self.err(ptr, "placeholder.expression", f"{{{{{ex}}}}}: {problem}",
                             "Argo's expr-lang subset: comparisons, arithmetic, asInt/asFloat/string, jsonpath, "
                             "filter/map, ?:, ??, the sprig functions listed in the README")
                continue
            problem = scope(ex)
            if problem:
                self.err(ptr, "placeholder.unknown", f"{{{{{ex}}}}}: {problem}", self.suggest(ex))

    def expression_problem(self, text: str, scope: Any, retry: bool = False) -> str | None:
        return argo_checks.expression_problem(self, text, scope, retry)

    def global_names(self, what: str) -> set[str]:
        return {str(o["globalName"]) for _i, t in self.templates.values() for _j, o in self.io(t, "outputs", what)
                if o.get("globalName")}

    def suggest(self, ex: str) -> str:
        parts = ex.split(".")
        if parts[0] == "workflow" and len(parts) == 3:
            return did_you_mean(parts[2], sorted(self.wf_params)) or \
                f"declared workflow parameters: {', '.join(sorted(self.wf_params)) or 'none'}"
        return "see the placeholder table in the README"

    def call_scope(self, t: dict[str, Any], call: dict[str, Any], siblings: dict[str, dict[str, Any]],
                   upstream: Callable[[str], bool] | None) -> Any:
        def scope(ex: str) -> str | None:
            parts = ex.split(".")
            if parts[0] == "workflow":
                return self.workflow_ref(parts)
            if parts[0] == "item":
                return None if LOOPS & set(call) else "{{item}} is only defined with withItems, withParam or withSequence"
            if parts[0] == "inputs" and len(parts) >= 3 and parts[1] in ("parameters", "artifacts"):
                declared = self.io_names(t, "inputs", parts[1])
                return None if parts[2] in declared else f"input {parts[1]} {parts[2]!r} is not declared"
            if parts[0] in ("tasks", "steps") and len(parts) >= 3:
                other = siblings.get(parts[1]) if parts[1] != call["name"] else None
                if other is None:
                    return None if OPEN in siblings else f"there is no {parts[0][:-1]} {parts[1]!r} here"
                if other.get(GHOST):
                    return None  # its own schema error is reported
                if upstream is not None and not upstream(parts[1]):
                    return f"{parts[1]!r} is not upstream of {call['name']!r}: add it to dependencies"
                if parts[2] in TASK_FIELDS and len(parts) == 3:
                    return None
                if parts[2] == "outputs" and len(parts) >= 4:
                    if parts[3] == "result" and len(parts) == 4:
                        return None
                    if parts[3] == "parameters" and len(parts) == 4:
                        return None if LOOPS & set(other) else "only a loop has aggregated outputs.parameters"
                    if parts[3] in ("parameters", "artifacts") and len(parts) == 5:
                        callee = self.templates.get(str(other.get("template")))
                        if callee is None or callee[1].get(GHOST):
                            return None  # reported as ref.template / the callee's schema error
                        declared = self.io_names(callee[1], "outputs", parts[3])
                        return None if parts[4] in declared else \
                            f"template {other.get('template')!r} declares no output {parts[3][:-1]} {parts[4]!r}"
                return f"unsupported {parts[0][:-1]} reference"
            return "unknown placeholder"
        return scope


    def executable_artifacts(self, fed: dict[str, set[str]]) -> set[str]:
        """Input artifacts nobody feeds with ``from:`` plus output globalNames."""
        found: set[str] = set()
        unknown = self.any_template
        for name, (_i, t) in self.templates.items():
            inputs = self.io_names(t, "inputs", "artifacts")
            unknown = unknown or isinstance(inputs, AnyName) or t.get(GHOST) is True
            raw = {str(x.get("name")) for _j, x in self.io(t, "inputs", "artifacts") if "raw" in x}
            found.update(a for a in inputs if a not in fed.get(name, set()) and a not in raw)
            found.update(str(a["globalName"]) for _j, a in self.io(t, "outputs", "artifacts") if a.get("globalName"))
        return AnyName(found) if unknown else found


def check_workflow(doc: Document) -> list[SpecError]:
    """Every semantic problem of one WorkflowTemplate (maybe a pruned copy: see the module docstring)."""
    d = doc.data
    live_meta = isinstance(d.get("metadata"), dict)
    errs = check_metadata(doc, serving=False) if live_meta else []
    if isinstance(d.get("spec"), dict):
        wf_errs, art_names = _Workflow(doc).run()
        errs += wf_errs + check_template_plans(doc) + check_code_splices(doc)
        if live_meta:
            errs += check_artifact_annotations(doc, art_names)
    return errs
