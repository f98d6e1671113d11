"""Semantic checks of template metadata: AI Core labels, annotations, ids and artifact kinds.

Owns: rules 1-3, 5 and 7 of reference §1.3 (scenario/version labels, name annotations, the
executable id pattern, ``artifacts.ai.sap.com/<name>.*`` annotations keyed by existing artifacts
with valid kinds) and the ServingTemplate checks. Argo structure lives in
:mod:`orchestrator.spec.semantic`.
"""

from __future__ import annotations

import json
import re

from orchestrator.errors import SpecError
from orchestrator.model import ARTIFACT_KINDS
from orchestrator.spec import placeholders
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.yamlsafe import Document, escape

EXECUTABLE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
API_ID = re.compile(r"^[\w.-]{4,64}$")
SCENARIO_LABEL = "scenarios.ai.sap.com/id"
VERSION_LABEL = "ai.sap.com/version"
EXE_ID_LABEL = "executables.ai.sap.com/id"
ART_ANNOTATION = re.compile(r"^artifacts\.ai\.sap\.com/(.+)\.(kind|description|labels|name|suffix)$")


def check_metadata(doc: Document, serving: bool) -> list[SpecError]:
    """Labels, name annotations and the executable id (rules 1-3 of §1.3)."""
    meta = doc.data["metadata"]
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    errs: list[SpecError] = []
    name = str(meta["name"])
    p = "/metadata/name"
    if not 4 <= len(name) <= 64:
        errs.append(doc.error(p, "id.pattern", f"executable id {name!r} must be 4 to 64 characters long"))
    if not EXECUTABLE_ID.match(name):
        fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
        errs.append(doc.error(p, "id.pattern",
                              f"executable id {name!r} must be lowercase letters, digits and '-' only",
                              f"AI Core allows '-' as the only separator: use {fixed!r}"))
    if SCENARIO_LABEL not in labels:
        errs.append(doc.error("/metadata/labels" if "labels" in meta else "/metadata", "label.scenario-missing",
                              f"label {SCENARIO_LABEL!r} is missing",
                              "AI Core silently ignores a template without it: add the scenario id"))
    elif not API_ID.match(str(labels[SCENARIO_LABEL])):
        errs.append(doc.error(f"/metadata/labels/{escape(SCENARIO_LABEL)}", "id.pattern",
                              f"scenario id {labels[SCENARIO_LABEL]!r} must match {API_ID.pattern}"))
    if VERSION_LABEL not in labels:
        errs.append(doc.error("/metadata/labels" if "labels" in meta else "/metadata", "label.version-missing",
                              f"label {VERSION_LABEL!r} is missing", "add e.g. ai.sap.com/version: \"1.0.0\""))
    if EXE_ID_LABEL in labels and str(labels[EXE_ID_LABEL]) != name:
        errs.append(doc.error(f"/metadata/labels/{escape(EXE_ID_LABEL)}", "label.executable-id-mismatch",
                              f"label {EXE_ID_LABEL!r} is {labels[EXE_ID_LABEL]!r} but metadata.name is {name!r}",
                              "configurations use metadata.name; make them equal or drop the label"))
    for key, what in (("scenarios.ai.sap.com/name", "scenario"), ("executables.ai.sap.com/name", "executable")):
        if key not in ann:
            errs.append(doc.error("/metadata/annotations" if "annotations" in meta else "/metadata",
                                  "annotation.name-missing", f"annotation {key!r} is missing",
                                  f"AI Core shows the {what} under this name: add it"))
    return errs


def check_artifact_annotations(doc: Document, names: set[str]) -> list[SpecError]:
    """``artifacts.ai.sap.com/<art>.*``: the artifact must exist, the kind must be valid."""
    errs: list[SpecError] = []
    ann = doc.data["metadata"].get("annotations") or {}
    for key, value in ann.items():
        m = ART_ANNOTATION.match(str(key))
        if not m:
            continue
        ptr = f"/metadata/annotations/{escape(str(key))}"
        art, fld = m.groups()
        if art not in names:
            errs.append(doc.error(ptr, "artifact.annotation-unknown",
                                  f"annotation names artifact {art!r}, which is neither an input artifact "
                                  f"nor an output globalName",
                                  did_you_mean(art, sorted(names)) or f"known: {', '.join(sorted(names)) or 'none'}",
                                  key=True))
        if fld == "kind" and str(value) not in ARTIFACT_KINDS:
            errs.append(doc.error(ptr, "artifact.kind",
                                  f"artifact kind {value!r} is not one of {'|'.join(ARTIFACT_KINDS)}",
                                  did_you_mean(str(value), list(ARTIFACT_KINDS)) or "use 'other' for anything else"))
        if fld == "labels":
            try:
                parsed = json.loads(str(value))
                ok = isinstance(parsed, dict)
            except ValueError:
                ok = False
            if not ok:
                errs.append(doc.error(ptr, "artifact.labels", "artifact labels must be a JSON object string",
                                      'e.g. \'{"ext.ai.sap.com/step": "train"}\''))
    return errs


def check_serving(doc: Document) -> list[SpecError]:
    """Every semantic error of one schema-valid ServingTemplate."""
    errs = check_metadata(doc, serving=True)
    inputs = doc.data["spec"].get("inputs") or {}
    params = {str(p["name"]) for p in inputs.get("parameters") or []}
    arts = {str(a["name"]) for a in inputs.get("artifacts") or []}
    for j, a in enumerate(inputs.get("artifacts") or []):
        if "-" in str(a["name"]):
            errs.append(doc.error(f"/spec/inputs/artifacts/{j}/name", "serving.artifact-name",
                                  f"serving artifact name {a['name']!r} contains '-'",
                                  "AI Core cannot resolve it ('dict object' has no attribute): use camelCase"))
    tmpl = doc.data["spec"]["template"]
    texts = [("/spec/template/spec", tmpl.get("spec"))]
    meta = tmpl.get("metadata") or {}
    texts += [(f"/spec/template/metadata/{k}", meta.get(k)) for k in ("annotations", "labels")]
    for ptr, text in texts:
        blob = text if isinstance(text, str) else json.dumps(text)
        for ex in placeholders.find(blob or ""):
            parts = ex.split(".")
            ok = (len(parts) == 3 and parts[0] == "inputs" and
                  ((parts[1] == "parameters" and parts[2] in params) or (parts[1] == "artifacts" and parts[2] in arts)))
            if not ok:
                errs.append(doc.error(ptr, "placeholder.unknown", f"{{{{{ex}}}}} references nothing declared",
                                      f"declared: parameters {sorted(params)}, artifacts {sorted(arts)}"))
    return errs + check_artifact_annotations(doc, arts)
