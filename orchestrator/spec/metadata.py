"""Semantic checks of template metadata: AI Core labels, annotations, ids and artifact kinds.

Owns: rules 1-3 and 5 of reference §1.3 (scenario/version labels, name annotations, the
executable id, ``artifacts.ai.sap.com/<name>.*`` annotations). Errors only where AI Core itself
refuses or mis-runs a template: an executable id outside the AI API pattern ``^[\\w.-]{4,64}$``,
a missing scenario label (the template is silently ignored), an invalid kind of a declared
artifact. What AI Core tolerates is a warning: an id that is not a lowercase Kubernetes name with
'-' as its only separator (what SAP's docs ask for), an ``executables.ai.sap.com/id`` label that
differs from ``metadata.name`` (AI Core uses the name), an artifact annotation naming no artifact.
Argo structure: :mod:`orchestrator.spec.semantic`; ServingTemplates: :mod:`orchestrator.spec.serving`.
"""

from __future__ import annotations

import json
import re

from orchestrator.errors import SpecError
from orchestrator.model import ARTIFACT_KINDS
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.yamlsafe import Document, escape

API_ID = re.compile(r"^[\w.-]{4,64}$", re.ASCII)  # the AI API's pattern, printed; used with fullmatch
K8S_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
SCENARIO_LABEL = "scenarios.ai.sap.com/id"
VERSION_LABEL = "ai.sap.com/version"
EXE_ID_LABEL = "executables.ai.sap.com/id"
ART_ANNOTATION = re.compile(r"^artifacts\.ai\.sap\.com/(.+)\.(kind|description|labels|name|suffix)\Z")


def check_metadata(doc: Document, serving: bool) -> list[SpecError]:
    """Labels, name annotations and the executable id (rules 1-3 of §1.3)."""
    meta = doc.data["metadata"]
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    errs = check_executable_id(doc, str(meta["name"]))
    if SCENARIO_LABEL not in labels:
        errs.append(doc.error("/metadata/labels" if "labels" in meta else "/metadata", "label.scenario-missing",
                              f"label {SCENARIO_LABEL!r} is missing",
                              "AI Core silently ignores a template without it: add the scenario id"))
    elif not API_ID.fullmatch(str(labels[SCENARIO_LABEL])):
        errs.append(doc.error(f"/metadata/labels/{escape(SCENARIO_LABEL)}", "id.pattern",
                              f"scenario id {labels[SCENARIO_LABEL]!r} must match {API_ID.pattern}"))
    if VERSION_LABEL not in labels:
        errs.append(doc.error("/metadata/labels" if "labels" in meta else "/metadata", "label.version-missing",
                              f"label {VERSION_LABEL!r} is missing", "add e.g. ai.sap.com/version: \"1.0.0\""))
    if EXE_ID_LABEL in labels and str(labels[EXE_ID_LABEL]) != str(meta["name"]):
        errs.append(doc.error(f"/metadata/labels/{escape(EXE_ID_LABEL)}", "label.executable-id-mismatch",
                              f"label {EXE_ID_LABEL!r} is {labels[EXE_ID_LABEL]!r} but metadata.name is "
                              f"{meta['name']!r}: AI Core's executable id is metadata.name",
                              "configurations use metadata.name; make them equal or drop the label",
                              severity="warning"))
    for key, what in (("scenarios.ai.sap.com/name", "scenario"), ("executables.ai.sap.com/name", "executable")):
        if key not in ann:
            errs.append(doc.error("/metadata/annotations" if "annotations" in meta else "/metadata",
                                  "annotation.name-missing", f"annotation {key!r} is missing",
                                  f"AI Core shows the {what} under this name: add it"))
    return errs


def check_executable_id(doc: Document, name: str) -> list[SpecError]:
    """``id.pattern`` (error) outside the AI API pattern; ``id.k8s-name`` (warning) for SAP's naming rule."""
    p = "/metadata/name"
    if not API_ID.fullmatch(name):
        why = ("must be 4 to 64 characters long" if not 4 <= len(name) <= 64
               else "may contain only letters, digits, '_', '.' and '-'")
        return [doc.error(p, "id.pattern", f"executable id {name!r} {why} (AI API pattern {API_ID.pattern})")]
    if len(name) > 63:
        return [doc.error(p, "id.k8s-name", f"executable id {name!r} is {len(name)} characters long",
                          "Argo labels each run with it and Kubernetes label values hold 63: shorten it",
                          severity="warning")]
    if K8S_NAME.match(name):
        return []
    fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return [doc.error(p, "id.k8s-name",
                      f"executable id {name!r} is not a lowercase name with '-' as the only separator",
                      f"SAP's docs and Kubernetes names ask for that: use {fixed!r}", severity="warning")]


def check_artifact_annotations(doc: Document, names: set[str]) -> list[SpecError]:
    """``artifacts.ai.sap.com/<art>.*``: the kind of a declared artifact must be valid.

    An annotation naming no declared artifact is a warning (AI Core syncs the file and ignores
    it); its own value is then not checked apart from a kind, named in the same warning.
    """
    errs: list[SpecError] = []
    ann = doc.data["metadata"].get("annotations") or {}
    for key, value in ann.items():
        m = ART_ANNOTATION.match(str(key))
        if not m:
            continue
        ptr = f"/metadata/annotations/{escape(str(key))}"
        art, fld = m.groups()
        bad_kind = fld == "kind" and str(value) not in ARTIFACT_KINDS
        if art not in names:
            also = f"; its kind {value!r} is not one of {'|'.join(ARTIFACT_KINDS)} either" if bad_kind else ""
            errs.append(doc.error(ptr, "artifact.annotation-unknown",
                                  f"annotation names artifact {art!r}, which is neither an input artifact "
                                  f"nor an output globalName: AI Core ignores it{also}",
                                  did_you_mean(art, sorted(names)) or f"known: {', '.join(sorted(names)) or 'none'}",
                                  key=True, severity="warning"))
            continue
        if bad_kind:
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
