"""Resource plan labels: ``ai.sap.com/resourcePlan`` / ``ai.sap.com/instanceType`` on a pod.

Owns the list of AI Core's resource plans and the warning for a value outside it (AI Core picks
the node size from the label; a local run only records it, so a wrong value is never an error
here). Plans, from SAP's "Choose an Instance" / "Choose a Resource Plan" pages
(SAP-docs/sap-artificial-intelligence, resource plan table for AWS): starter, basic, basic.8x,
train.l, infer.s, infer.m, infer.l; GPU plans of SAP's LLM samples (SAP-samples/ai-core-samples,
``sap-internal`` service plan): infer2.l, infer2.4xl, train2.8xl, train2.8xxl. Instance types
(``ai.sap.com/instanceType``, extended service plan) are a per-tenant catalogue
(``GET /v2/admin/resources/instanceType``), so only a plan id used as an instance type is flagged.
A value that is one ``{{…parameters.X}}`` placeholder is checked through X's default.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.shape import live
from orchestrator.spec.yamlsafe import Document, escape

RESOURCE_PLANS = ("starter", "basic", "basic.8x", "train.l", "infer.s", "infer.m", "infer.l",
                  "infer2.l", "infer2.4xl", "train2.8xl", "train2.8xxl")
PLAN_LABEL = "ai.sap.com/resourcePlan"
INSTANCE_LABEL = "ai.sap.com/instanceType"
_ONE_PARAM = re.compile(r"^\s*\{\{\s*(inputs|workflow)\.parameters\.([^{}\s]+)\s*\}\}\s*$")


def check_plan(doc: Document, ptr: str, label: str, value: Any, defaults: dict[str, dict[str, str]],
               at: tuple[int, int] | None = None) -> list[SpecError]:
    """The warning for one resource label ``label: value`` at ``ptr`` (``at``: exact position).

    ``defaults`` maps ``"inputs"`` / ``"workflow"`` to the parameter defaults a placeholder value
    may stand for.
    """
    if label not in (PLAN_LABEL, INSTANCE_LABEL):
        return []
    text = "" if value is None else str(value)
    via = ""
    m = _ONE_PARAM.match(text)
    if m:
        default = defaults.get(m.group(1), {}).get(m.group(2))
        if default is None:
            return []  # no default: the configuration decides
        text, via = default, f" (default of parameter {m.group(2)!r})"
    elif "{{" in text:
        return []
    if label == INSTANCE_LABEL:
        if text in RESOURCE_PLANS:
            return [doc.error(ptr, "resource.instance-type", f"instance type {text!r}{via} is a resource plan id",
                              f"use {PLAN_LABEL}: {text}", severity="warning", at=at)]
        return []
    if text in RESOURCE_PLANS:
        return []
    lower = text.lower()
    hint = f"did you mean {lower!r}?" if lower in RESOURCE_PLANS else did_you_mean(lower, list(RESOURCE_PLANS))
    return [doc.error(ptr, "resource.plan-unknown",
                      f"resource plan {text!r}{via} is not one of AI Core's: {', '.join(RESOURCE_PLANS)}",
                      hint or f"use one of these, or {INSTANCE_LABEL} for an instance type of your tenant",
                      severity="warning", at=at)]


def check_template_plans(doc: Document) -> list[SpecError]:
    """Resource labels on the templates of a WorkflowTemplate (``spec.templates[].metadata.labels``)."""
    spec = doc.data["spec"]
    wf = {str(p["name"]): _default(p) for _j, p in live((spec.get("arguments") or {}).get("parameters"))}
    errs: list[SpecError] = []
    for i, t in live(spec.get("templates")):
        labels = (t.get("metadata") or {}).get("labels")
        if not isinstance(labels, dict):
            continue
        inputs = {str(p["name"]): _default(p) for _j, p in live((t.get("inputs") or {}).get("parameters"))}
        defaults = {"workflow": _known(wf), "inputs": _known(inputs)}
        for label, value in labels.items():
            ptr = f"/spec/templates/{i}/metadata/labels/{escape(str(label))}"
            errs += check_plan(doc, ptr, str(label), value, defaults)
    return errs


def _default(p: dict[str, Any]) -> str | None:
    for key in ("default", "value"):
        if key in p and p[key] is not None:
            return str(p[key])
    return None


def _known(params: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in params.items() if v is not None}
