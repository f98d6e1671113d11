"""The configuration ``orchestrator deploy`` creates before its deployment, from what the user typed.

Owns: ``deploy CONFIG_FILE`` (a Configuration document of a registered ServingTemplate),
``deploy TEMPLATE_FILE`` (registered first), ``deploy EXECUTABLE_ID -p k=v --artifact k=PATH|URL|ID|models:/…``
and ``deploy --model models:/NAME@ALIAS`` (the built-in ServingTemplate below, registered in the
resource group on first use, whose predictor is the built-in runtime). Every binding is checked
by :func:`orchestrator.control.resources.create_configuration` before it is written.

Must not import: api, cli.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from orchestrator.control import modelrefs
from orchestrator.errors import UsageError

BUILTIN_ID = "orchestrator-model-server"
BUILTIN = """\
apiVersion: ai.sap.com/v1alpha1
kind: ServingTemplate
metadata:
  name: orchestrator-model-server
  annotations:
    scenarios.ai.sap.com/name: "orchestrator models"
    scenarios.ai.sap.com/description: "Models served with the built-in predictor"
    executables.ai.sap.com/name: "model-server"
    executables.ai.sap.com/description: "Serve a trained or registered model (KServe V1, Open Inference V2, MLflow)"
    artifacts.ai.sap.com/model.kind: "model"
  labels:
    scenarios.ai.sap.com/id: "orchestrator-models"
    ai.sap.com/version: "1"
spec:
  inputs:
    parameters:
      - name: modelName
        type: string
        default: "model"
    artifacts:
      - name: model
  template:
    apiVersion: "serving.kserve.io/v1beta1"
    metadata:
      labels: |
        ai.sap.com/resourcePlan: starter
    spec: |
      predictor:
        containers:
        - name: kserve-container
          image: orchestrator/predictor
          env:
            - name: STORAGE_URI
              value: "{{inputs.artifacts.model}}"
            - name: MODEL_NAME
              value: "{{inputs.parameters.modelName}}"
"""


def builtin_executable(svc: Any) -> Any:
    """The built-in model server, registered in ``svc``'s group when missing."""
    from orchestrator.errors import NotFound

    try:
        return svc.store.get_executable(svc.rg, BUILTIN_ID)
    except NotFound:
        pass
    res = svc._checked(BUILTIN.encode(), "<built-in model server>")
    spec = res.workflows[0]
    with svc.store.transaction():
        svc.store.register_executable(svc.rg, spec, {"text": BUILTIN, "index": 0, "file": "<built-in model server>"})
    return svc.store.get_executable(svc.rg, BUILTIN_ID)


def _pairs(items: Sequence[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad {what} {item!r}", hint=f"use {'-p' if what == 'parameter' else '--artifact'} "
                             "name=value")
        out.append((key, value))
    return out


def _artifact_id(svc: Any, key: str, value: str, scenario_id: str) -> str:
    """A binding's value as stored: a ``models:/`` reference as written, an artifact id (or prefix),
    or a new ``model`` artifact for a path / ``file://`` / ``ai://`` URL."""
    if modelrefs.is_reference(value):
        return value
    url = svc._artifact_url(value)
    if not url:
        return str(svc.resolve_id("artifact", value))
    from orchestrator.control.resources import create_artifact

    if url.startswith("file://"):
        svc.objects.local_path(svc.rg, url)
        art = svc.store.create_artifact(svc.rg, name=key, kind="model", url=url, scenario_id=scenario_id)
    else:
        art = create_artifact(svc, name=key, kind="model", url=url, scenario_id=scenario_id)
    return str(art.id)


def configure(svc: Any, target: str | None, *, params: Sequence[str] = (), artifacts: Sequence[str] = (),
              model: str | None = None, name: str | None = None) -> str:
    """The id of a new configuration to deploy (nothing is written when a check fails)."""
    from orchestrator.control.resources import create_configuration

    param_pairs = _pairs(params, "parameter")
    art_pairs = _pairs(artifacts, "artifact binding")
    config_name = name
    if model:
        if target:
            raise UsageError("give either a target or --model, not both")
        if not modelrefs.is_reference(model):
            raise UsageError(f"--model {model!r} is not a model reference", hint=f"use {modelrefs.SYNTAX}")
        mv = modelrefs.resolve(svc.store, svc.rg, model, key="model")
        exe = builtin_executable(svc)
        if not any(k == "modelName" for k, _ in param_pairs):
            param_pairs.append(("modelName", mv.model))
        art_pairs.append(("model", model))
        config_name = config_name or f"{mv.model}-serving"
    elif target and os.path.isfile(target):
        res, _, _lib = svc._load_file(target)
        if res.configurations:
            if len(res.configurations) != 1:
                raise UsageError(f"{target} must contain exactly one Configuration document")
            c = res.configurations[0]
            exe = svc.store.get_executable(svc.rg, c.executable_id)
            param_pairs = list(c.parameter_bindings) + param_pairs
            art_pairs = list(c.artifact_bindings) + art_pairs
            config_name = config_name or c.name
        else:
            serving = [w for w in res.workflows if w.deployable]
            if len(serving) != 1:
                batch = [w.executable_id for w in res.workflows if not w.deployable]
                raise UsageError(f"{target} holds {len(serving)} ServingTemplates; expected exactly one"
                                 + (f" (it holds the WorkflowTemplate {batch[0]!r}, which runs: orchestrator run "
                                    f"{target})" if batch and not serving else ""),
                                 hint="pass a Configuration file, a ServingTemplate file or an executable id; "
                                 "to serve a model a run trained: orchestrator deploy --model models:/NAME@ALIAS")
            svc.register([target])
            exe = svc.store.get_executable(svc.rg, serving[0].executable_id)
    elif target:
        if os.sep in target or target.endswith((".yaml", ".yml")):
            raise UsageError(f"no such file: {target}")
        exe = svc.store.get_executable(svc.rg, target)
    else:
        raise UsageError("nothing to deploy", hint="give a Configuration file, an executable id or --model "
                         "models:/NAME@ALIAS")
    if not exe.deployable:
        raise UsageError(f"{exe.id!r} is a WorkflowTemplate: it is run, not deployed",
                         hint="deploy a ServingTemplate (or --model models:/NAME@ALIAS)")
    bound = [(k, _artifact_id(svc, k, v, exe.scenario_id)) for k, v in art_pairs]
    cfg = create_configuration(svc, name=config_name or f"{exe.id}-deploy", scenario_id=exe.scenario_id,
                               executable_id=exe.id, parameters=param_pairs, artifacts=bound)
    return str(cfg.id)
