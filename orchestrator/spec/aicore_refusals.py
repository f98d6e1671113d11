"""Argo fields SAP AI Core forbids or makes pointless: located errors that say so and what to do instead.

Owns: the table of those fields (:data:`POD_FIELDS`, :data:`WORKFLOW_FIELDS`, :data:`TEMPLATE_FIELDS`,
artifact locations, volume sources, ConfigMap references), :func:`check` (every such field of one
WorkflowTemplate, rule ``aicore.unsupported``) and :func:`refine`, the validator's hook: it adds
those errors, drops the generic ``argo.unsupported-field`` / ``template.kind`` errors they
explain, and gives ``container.no-command`` AI Core's reason. Imports errors and yamlsafe only.

Sources (SAP-docs/sap-artificial-intelligence, docs/sap-ai-core/):
- workflow-templates-83523ab.md: "Output artifacts can only use the **default** object store";
  "For every container in the template, the ``command: ["/bin/sh", "-c"]`` field is mandatory
  ... The CMD and ENDPOINT specified in the Dockerfile of a container are ignored."
- choose-a-resource-plan-57f4f19.md: resources (CPU, memory, GPU, node pool) are selected "via the
  ``ai.sap.com/resourcePlan`` label at pod level"; for more disk "use the persistent volume claim
  in Argo Workflows" — so ``volumeClaimTemplates`` are *not* refused here (a missing feature
  locally, not an AI Core restriction).
- The AI API (reference/ai-api-v2.md §3 admin endpoints) gives a tenant generic secrets, object
  store secrets, docker registry secrets, git repositories and applications, and nothing else
  of Kubernetes: no ConfigMaps, service accounts, PersistentVolumeClaims, cluster templates,
  controller configuration (executor plugins, artifact repositories, Prometheus) or API access.
  Templates are synced as WorkflowTemplates only; executions are pods AI Core schedules.
- argo-workflows docs/http-template.md ("Argo Agent RBAC"): http templates run in the Argo agent,
  which needs a Role on ``workflowtasksets`` bound to the workflow's service account — RBAC a
  tenant cannot grant, as executions run under AI Core's service account.
Fields not listed here (``securityContext``, mutexes, ...) are either features (see README "Argo
conformance") or not decided for lack of a source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec.yamlsafe import Document, escape

RULE = "aicore.unsupported"

_PLAN = "choose the node with the `ai.sap.com/resourcePlan` label in the template's metadata.labels"
_POD = "AI Core builds and schedules the pods of an execution itself"
_API = "a tenant reaches AI Core only through the AI API, not the Kubernetes API"
_STORE = ("AI Core stages artifacts only from/to its object store: inputs come from a configuration's "
          "inputArtifactBindings, outputs go to the `default` object store secret")

# field -> (why AI Core refuses it, what to do instead); valid on the workflow spec and on a template
POD_FIELDS: dict[str, tuple[str, str]] = {
    "podSpecPatch": (_POD, f"{_PLAN}; set command, env and resources on the container"),
    "nodeSelector": (f"{_POD} on the nodes of the resource plan", _PLAN),
    "affinity": (f"{_POD} on the nodes of the resource plan", _PLAN),
    "tolerations": (f"{_POD} on the nodes of the resource plan", _PLAN),
    "schedulerName": (_POD, "remove it"),
    "priorityClassName": (f"{_POD} and queues executions by tenant quota", "remove it"),
    "priority": (f"{_POD} and queues executions by tenant quota", "remove it"),
    "serviceAccountName": (f"executions run under AI Core's service account; {_API}",
                           "remove it; give a step credentials through a generic secret (/v2/admin/secrets)"),
    "automountServiceAccountToken": (f"executions run under AI Core's service account; {_API}", "remove it"),
    "executor": (f"executions run under AI Core's service account; {_API}", "remove it"),
    "hostNetwork": (f"{_POD} in AI Core's cluster network", "remove it"),
    "dnsConfig": (f"{_POD} in AI Core's cluster network", "remove it"),
    "dnsPolicy": (f"{_POD} in AI Core's cluster network", "remove it"),
    "hostAliases": (f"{_POD} in AI Core's cluster network", "remove it"),
    "podDisruptionBudget": (_POD, "remove it"),
    "metrics": ("AI Core does not expose Argo's Prometheus metrics to a tenant",
                "log metrics from the step (ai_core_sdk tracking or orchestrator.tracking)"),
    # Kubernetes pod-level resources and dynamic resource allocation: AI Core sizes a pod by its plan
    "podResources": (f"{_POD}: CPU, memory and GPUs come from the resource plan", _PLAN),
    "resourceClaims": (f"{_POD}: devices (GPUs) come from the resource plan, not Kubernetes resource claims",
                       _PLAN),
}
WORKFLOW_FIELDS: dict[str, tuple[str, str]] = {
    "podGC": ("AI Core manages the pods of an execution", "remove it"),
    "ttlStrategy": ("executions live until they are deleted through the AI API",
                    "remove it; DELETE /v2/lm/executions/{id} removes an execution"),
    "podPriorityClassName": (f"{_POD} and queues executions by tenant quota", "remove it"),
    "podPriority": (f"{_POD} and queues executions by tenant quota", "remove it"),
    "artifactRepositoryRef": (_STORE, "remove it; register an object store secret named `default`"),
    "artifactGC": ("AI Core registers output artifacts and keeps them", "remove it"),
    "archiveLogs": ("AI Core serves logs through the AI API (GET /v2/lm/executions/{id}/logs)", "remove it"),
    "executorPlugins": ("executor plugins are installed in the Argo controller, which a tenant cannot configure",
                        "run the plugin's work in a container step"),
}
TEMPLATE_FIELDS: dict[str, tuple[str, str]] = {
    "resource": (f"a resource template creates Kubernetes objects; {_API}",
                 "call the service's own API from a container step"),
    # Argo runs http (and plugin) templates in its agent pod, which needs a Role on workflowtasksets
    # bound to the workflow's service account (Argo docs, http-template.md "Argo Agent RBAC");
    # executions run under AI Core's service account and a tenant grants no RBAC.
    "http": ("Argo runs an http template in its agent pod, which needs a Role (workflowtasksets) bound to the "
             "workflow's service account; executions run under AI Core's service account and a tenant grants "
             "no Kubernetes RBAC", "make the request from a container or script step (curl, python)"),
    "plugin": ("executor plugins are installed in the Argo controller, which a tenant cannot configure",
               "run the plugin's work in a container step"),
    "archiveLocation": (_STORE, "remove it; outputs with a globalName go to the `default` object store"),
}
ARTIFACT_LOCATIONS = ("s3", "gcs", "oss", "hdfs", "http", "git", "artifactory", "azure", "plugin")
VOLUME_SOURCES: dict[str, tuple[str, str]] = {
    "persistentVolumeClaim": (f"an existing claim must be created beforehand; {_API}",
                              "declare it in spec.volumeClaimTemplates (SAP documents PVCs for disk size)"),
    "hostPath": (f"{_POD}: the node's file system is not the tenant's", "use an emptyDir volume"),
    "configMap": (f"there are no ConfigMaps in AI Core; {_API}",
                  "register a generic secret (/v2/admin/secrets) and mount it as a secret volume"),
    "nfs": (f"{_POD}; {_API}", "use artifacts from the object store"),
}
_CONFIGMAP = (f"there are no ConfigMaps in AI Core; {_API}",
              "use a generic secret (secretKeyRef, /v2/admin/secrets) or a workflow parameter")
_CONTAINER_KEYS = ("container", "script")
NO_COMMAND = ("AI Core requires a command on every container (it ignores the image's ENTRYPOINT and CMD, "
              "and so does a local run)")
NO_COMMAND_HINT = 'set command (AI Core documents ["/bin/sh", "-c"] with the script in args)'
_CONTAINER_LISTS = ("sidecars", "initContainers")


def _dicts(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, dict):
                yield i, v


class _Checker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errs: list[SpecError] = []

    def refuse(self, ptr: str, field: str, why: str, instead: str) -> None:
        self.errs.append(self.doc.error(ptr, RULE, f"AI Core does not support {field!r}: {why}",
                                        f"instead: {instead}", key=True))

    def fields(self, ptr: str, obj: dict[str, Any], table: dict[str, tuple[str, str]]) -> None:
        for field, (why, instead) in table.items():
            if field in obj:
                self.refuse(f"{ptr}/{field}", field, why, instead)

    def artifacts(self, ptr: str, arts: Any, output: bool) -> None:
        for j, a in _dicts(arts):
            for loc in ARTIFACT_LOCATIONS:
                if loc in a:
                    where = ("output artifacts can only use the `default` object store" if output else _STORE)
                    self.refuse(f"{ptr}/{j}/{loc}", f"{loc} artifact location", where,
                                "give the artifact a path only: outputs with a globalName are stored, inputs "
                                "are bound by the configuration")

    def volumes(self, ptr: str, vols: Any) -> None:
        for j, v in _dicts(vols):
            for src, (why, instead) in VOLUME_SOURCES.items():
                if src in v:
                    self.refuse(f"{ptr}/{j}/{src}", f"{src} volume", why, instead)

    def env(self, ptr: str, c: dict[str, Any]) -> None:
        for j, e in _dicts(c.get("env")):
            vf = e.get("valueFrom")
            if isinstance(vf, dict) and "configMapKeyRef" in vf:
                self.refuse(f"{ptr}/env/{j}/valueFrom/configMapKeyRef", "configMapKeyRef", *_CONFIGMAP)
        for j, e in _dicts(c.get("envFrom")):
            if "configMapRef" in e:
                self.refuse(f"{ptr}/envFrom/{j}/configMapRef", "configMapRef", *_CONFIGMAP)

    def params(self, ptr: str, params: Any) -> None:
        for j, p in _dicts(params):
            vf = p.get("valueFrom")
            if isinstance(vf, dict) and "configMapKeyRef" in vf:
                self.refuse(f"{ptr}/{j}/valueFrom/configMapKeyRef", "configMapKeyRef", *_CONFIGMAP)

    def sync(self, ptr: str, sync: Any) -> None:
        """Semaphores count in a ConfigMap (or Argo's database): neither is a tenant's in AI Core."""
        if not isinstance(sync, dict):
            return
        sems = [(f"{ptr}/semaphore", sync["semaphore"])] if isinstance(sync.get("semaphore"), dict) else []
        sems += [(f"{ptr}/semaphores/{j}", v) for j, v in _dicts(sync.get("semaphores"))]
        for sptr, sem in sems:
            for key in ("configMapKeyRef", "database"):
                if key in sem:
                    self.refuse(f"{sptr}/{key}", f"semaphore {key}",
                                "there are no ConfigMaps in AI Core, nor an Argo database a tenant configures",
                                "use synchronization.mutexes (one holder at a time)")
        mutexes = [(f"{ptr}/mutex", sync["mutex"])] if isinstance(sync.get("mutex"), dict) else []
        mutexes += [(f"{ptr}/mutexes/{j}", v) for j, v in _dicts(sync.get("mutexes"))]
        for mptr, m in mutexes:
            if "database" in m:  # Argo's multi-controller locks live in a database its operator configures
                self.refuse(f"{mptr}/database", "mutex database",
                            "the synchronization database is configured in Argo's controller, which a tenant "
                            "cannot configure", "remove database: a mutex is held across the executions of "
                            "the tenant's resource group")

    def calls(self, ptr: str, calls: Iterator[tuple[str, dict[str, Any]]]) -> None:
        for cptr, call in calls:
            args = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
            self.artifacts(f"{cptr}/arguments/artifacts", args.get("artifacts"), output=False)
            self.cluster_ref(cptr, call)
            self.hooks(f"{cptr}/hooks", call.get("hooks"))

    def hooks(self, ptr: str, hooks: Any) -> None:
        """Lifecycle hooks name their template as calls do (``templateRef`` too)."""
        for name, h in (hooks.items() if isinstance(hooks, dict) else ()):
            if isinstance(h, dict):
                self.cluster_ref(f"{ptr}/{escape(str(name))}", h)

    def cluster_ref(self, cptr: str, call: dict[str, Any]) -> None:
        ref = call.get("templateRef")
        if isinstance(ref, dict) and ref.get("clusterScope"):
            self.refuse(f"{cptr}/templateRef/clusterScope", "ClusterWorkflowTemplate references",
                        "AI Core syncs WorkflowTemplates of a tenant, it has no cluster-scoped templates",
                        "refer to a template of the same scenario")

    def template(self, ptr: str, t: dict[str, Any]) -> None:
        self.fields(ptr, t, POD_FIELDS)
        self.fields(ptr, t, TEMPLATE_FIELDS)
        self.volumes(f"{ptr}/volumes", t.get("volumes"))
        self.sync(f"{ptr}/synchronization", t.get("synchronization"))
        for side in ("inputs", "outputs"):
            io = t.get(side) if isinstance(t.get(side), dict) else {}
            self.artifacts(f"{ptr}/{side}/artifacts", io.get("artifacts"), output=side == "outputs")
            self.params(f"{ptr}/{side}/parameters", io.get("parameters"))
        for key in _CONTAINER_KEYS:
            if isinstance(t.get(key), dict):
                self.env(f"{ptr}/{key}", t[key])
        cset = t.get("containerSet") if isinstance(t.get("containerSet"), dict) else {}
        for key, items in [(key, t.get(key)) for key in _CONTAINER_LISTS] + [
                ("containerSet/containers", cset.get("containers"))]:
            for j, c in _dicts(items):
                self.env(f"{ptr}/{key}/{j}", c)
                if not c.get("command"):  # "for every container in the template" (workflow-templates doc)
                    self.errs.append(self.doc.error(f"{ptr}/{key}/{j}", "container.no-command",
                                                    f"container {c.get('name', j)!r} has no command: {NO_COMMAND}",
                                                    NO_COMMAND_HINT))
        data = t.get("data")
        if isinstance(data, dict) and isinstance(data.get("source"), dict):
            src = data["source"].get("artifactPaths")
            for loc in ARTIFACT_LOCATIONS if isinstance(src, dict) else ():
                if loc in src:
                    self.refuse(f"{ptr}/data/source/artifactPaths/{loc}", f"{loc} artifact location", _STORE,
                                "stage the data as an input artifact bound by the configuration")
        if isinstance(t.get("steps"), list):
            self.calls(ptr, ((f"{ptr}/steps/{g}/{k}", s) for g, group in enumerate(t["steps"])
                             if isinstance(group, list) for k, s in _dicts(group)))
        dag = t.get("dag")
        if isinstance(dag, dict):
            self.calls(ptr, ((f"{ptr}/dag/tasks/{k}", s) for k, s in _dicts(dag.get("tasks"))))

    def workflow(self, spec: dict[str, Any]) -> None:
        self.fields("/spec", spec, POD_FIELDS)
        self.fields("/spec", spec, WORKFLOW_FIELDS)
        self.volumes("/spec/volumes", spec.get("volumes"))
        self.sync("/spec/synchronization", spec.get("synchronization"))
        args = spec.get("arguments") if isinstance(spec.get("arguments"), dict) else {}
        self.artifacts("/spec/arguments/artifacts", args.get("artifacts"), output=False)
        self.params("/spec/arguments/parameters", args.get("parameters"))
        ref = spec.get("workflowTemplateRef")
        if isinstance(ref, dict) and ref.get("clusterScope"):
            self.refuse("/spec/workflowTemplateRef/clusterScope", "ClusterWorkflowTemplate references",
                        "AI Core syncs WorkflowTemplates of a tenant, it has no cluster-scoped templates",
                        "copy the templates into this file")
        self.hooks("/spec/hooks", spec.get("hooks"))
        defaults = spec.get("templateDefaults")
        if isinstance(defaults, dict):
            self.template("/spec/templateDefaults", defaults)
        for i, t in _dicts(spec.get("templates")):
            self.template(f"/spec/templates/{i}", t)


def check(doc: Document) -> list[SpecError]:
    """An ``aicore.unsupported`` error for every field of a WorkflowTemplate AI Core forbids, and a
    ``container.no-command`` one for every sidecar, init or containerSet container without command."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    if not isinstance(spec, dict):
        return []
    c = _Checker(doc)
    c.workflow(spec)
    return c.errs




def _explained(err: SpecError, refused: list[str], kind_refused: set[str]) -> bool:
    """``err`` is a generic error one of the AI Core refusals already explains."""
    if err.rule == "argo.unsupported-field":
        return any(err.pointer == p or err.pointer.startswith(p + "/") or p.startswith(err.pointer + "/")
                   for p in refused)
    if err.rule == "schema.required" and f"{err.pointer}/templateRef/clusterScope" in refused:
        return True  # a cluster templateRef in place of template: the refusal says why
    return err.rule == "template.kind" and err.pointer in kind_refused


def refine(doc: Document, errs: list[SpecError]) -> list[SpecError]:
    """The validator's hook for WorkflowTemplates: ``errs`` with AI Core's reasons in place of
    generic errors (unknown field, template kind), and AI Core's reason on a missing command."""
    seen = {(e.rule, e.pointer) for e in errs}
    found = [e for e in check(doc) if (e.rule, e.pointer) not in seen]
    if not found and not any(e.rule == "container.no-command" for e in errs):
        return errs
    refused = [e.pointer for e in found if e.rule == RULE]
    kind_refused = {p.rsplit("/", 1)[0] for p in refused
                    if p.rsplit("/", 1)[-1] in ("resource", "plugin", "http") and p.count("/") == 4}
    out = [dataclasses.replace(e, message=f"container has no command: {NO_COMMAND}", hint=NO_COMMAND_HINT)
           if e.rule == "container.no-command" and "AI Core" not in e.message else e
           for e in errs if not _explained(e, refused, kind_refused)]
    return out + found
