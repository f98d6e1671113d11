"""Semantic checks of one ServingTemplate (``ai.sap.com/v1alpha1``).

Owns: serving inputs (artifact names AI Core cannot render), placeholders in the KServe template
(located to their line inside the multi-line ``spec`` text), resource plan labels, and the legacy
forms AI Core still tolerates, each a warning naming the modern field: ``spec.imagePullSecrets``
(now in the predictor), ``description`` on input artifacts (now the
``artifacts.ai.sap.com/<name>.description`` annotation), a missing or ``serving.kubeflow.org/*``
``apiVersion`` and the KFServing predictor shapes SAP's 2208a migration script
(``v1alpha2_to_v1beta1.py``) converts or leaves behind (``default.predictor``,
``custom.container``, a container named ``kfserving-container``).
Metadata rules: :mod:`orchestrator.spec.metadata`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec import placeholders
from orchestrator.spec.image_ref import image_problem
from orchestrator.spec.metadata import check_artifact_annotations, check_metadata
from orchestrator.spec.resources import check_plan
from orchestrator.spec.shape import live, name_set
from orchestrator.spec.yamlsafe import Document, load_text

KSERVE_API = "serving.kserve.io/v1beta1"


def check_serving(doc: Document) -> list[SpecError]:
    """Every semantic problem of one ServingTemplate (maybe a pruned copy: see :mod:`orchestrator.spec.shape`)."""
    d = doc.data
    errs = check_metadata(doc, serving=True) if isinstance(d.get("metadata"), dict) else []
    spec = d.get("spec")
    if not isinstance(spec, dict):
        return errs
    inputs = spec.get("inputs") or {}
    params = {str(p["name"]): p for _j, p in live(inputs.get("parameters"))}
    arts = name_set(inputs.get("artifacts"))
    for j, a in live(inputs.get("artifacts")):
        if "-" in str(a["name"]):
            errs.append(doc.error(f"/spec/inputs/artifacts/{j}/name", "serving.artifact-name",
                                  f"serving artifact name {a['name']!r} contains '-'",
                                  "AI Core cannot resolve it ('dict object' has no attribute): use camelCase"))
        if "description" in a:
            errs.append(_legacy(doc, f"/spec/inputs/artifacts/{j}/description", "'description' on an input artifact",
                                f"the annotation artifacts.ai.sap.com/{a['name']}.description"))
    if "imagePullSecrets" in spec:
        errs.append(_legacy(doc, "/spec/imagePullSecrets", "spec.imagePullSecrets",
                            "imagePullSecrets in the predictor of spec.template.spec"))
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        errs += _check_template(doc, tmpl, name_set(inputs.get("parameters")), arts, _defaults(params))
    if isinstance(d.get("metadata"), dict):
        errs += check_artifact_annotations(doc, arts)
    return errs


def _legacy(doc: Document, ptr: str, what: str, modern: str, at: tuple[int, int] | None = None) -> SpecError:
    return doc.error(ptr, "serving.legacy-field", f"{what} is a legacy form AI Core still accepts",
                     f"use {modern}", key=at is None, severity="warning", at=at)


def _defaults(params: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {"inputs": {k: str(p["default"]) for k, p in params.items() if p.get("default") is not None}}


def _check_template(doc: Document, tmpl: dict[str, Any], params: set[str], arts: set[str],
                    defaults: dict[str, dict[str, str]]) -> list[SpecError]:
    errs: list[SpecError] = []
    api = tmpl.get("apiVersion")
    if api is None:
        errs.append(doc.error("/spec/template", "serving.legacy-api-version",
                              "spec.template has no apiVersion: AI Core reads it as legacy KFServing v1alpha2",
                              f"add apiVersion: {KSERVE_API}", severity="warning"))
    elif str(api).startswith("serving.kubeflow.org/"):
        errs.append(doc.error("/spec/template/apiVersion", "serving.legacy-api-version",
                              f"{api!r} is legacy KFServing, which AI Core still accepts",
                              f"use apiVersion: {KSERVE_API}", severity="warning"))
    meta = tmpl.get("metadata") or {}
    parts = [("/spec/template/spec", tmpl.get("spec"))]
    parts += [(f"/spec/template/metadata/{k}", meta.get(k)) for k in ("annotations", "labels") if k in meta]
    for ptr, value in parts:
        errs += _check_placeholders(doc, ptr, value, params, arts)
    labels = meta.get("labels")
    for label, value, offset in _entries(labels):
        at = doc.text_where("/spec/template/metadata/labels", offset) if offset is not None else None
        errs += check_plan(doc, "/spec/template/metadata/labels", label, value, defaults, at)
    text = tmpl.get("spec")
    if isinstance(text, str):
        errs += _check_predictor(doc, text)
    return errs


def _check_placeholders(doc: Document, ptr: str, value: Any, params: set[str], arts: set[str]) -> list[SpecError]:
    errs: list[SpecError] = []
    text = value if isinstance(value, str) else json.dumps(value)
    for m in placeholders.PLACEHOLDER.finditer(text or ""):
        parts = m.group(1).split(".")
        ok = (len(parts) == 3 and parts[0] == "inputs" and
              ((parts[1] == "parameters" and parts[2] in params) or (parts[1] == "artifacts" and parts[2] in arts)))
        if not ok:
            at = doc.text_where(ptr, m.start()) if isinstance(value, str) else None
            errs.append(doc.error(ptr, "placeholder.unknown", f"{{{{{m.group(1)}}}}} references nothing declared",
                                  f"declared: parameters {sorted(params)}, artifacts {sorted(arts)}", at=at))
    return errs


def render(text: str) -> tuple[Any, dict[str, str]]:
    """``text`` (KServe YAML with ``{{…}}`` placeholders) parsed with each placeholder as a plain
    word, and the words -> the placeholders they stand for; data None when it is not YAML."""
    words: dict[str, str] = {}

    def word(m: re.Match[str]) -> str:
        key = f"placeholder{len(words)}x"
        words[key] = m.group(0)
        return key

    docs, errs = load_text(placeholders.PLACEHOLDER.sub(word, text), "<template>")
    return (docs[0].data if docs and not errs else None), words


def _entries(value: Any) -> list[tuple[str, Any, int | None]]:
    """``(key, value, offset of the key in the text or None)`` of a labels mapping or text."""
    if isinstance(value, dict):
        return [(str(k), v, None) for k, v in value.items()]
    if not isinstance(value, str):
        return []
    data, words = render(value)
    if not isinstance(data, dict):
        return []
    out: list[tuple[str, Any, int | None]] = []
    for key, item in data.items():
        text = str(item) if item is not None else ""
        for w, ph in words.items():
            text = text.replace(w, ph)
        m = re.search(rf"^[ \t]*['\"]?{re.escape(str(key))}['\"]?[ \t]*:", value, re.MULTILINE)
        out.append((str(key), text if item is not None else None, value.index(str(key), m.start()) if m else None))
    return out


def _check_predictor(doc: Document, text: str) -> list[SpecError]:
    """Legacy KFServing shapes in the ``spec`` text (each a warning at its line)."""
    data, _words = render(text)
    if not isinstance(data, dict):
        return []
    ptr = "/spec/template/spec"
    errs: list[SpecError] = []

    def at(pattern: str) -> tuple[int, int] | None:
        m = re.search(pattern, text, re.MULTILINE)
        return doc.text_where(ptr, m.start(1)) if m else None

    predictor = data.get("predictor")
    if isinstance(data.get("default"), dict):
        errs.append(doc.error(ptr, "serving.legacy-predictor",
                              "'default.predictor' is the KFServing v1alpha2 shape, which AI Core still accepts",
                              "KServe reads 'predictor' at the top of spec", severity="warning",
                              at=at(r"^\s*(default)\s*:")))
        predictor = data["default"].get("predictor")
    if isinstance(predictor, dict) and isinstance(predictor.get("custom"), dict):
        errs.append(doc.error(ptr, "serving.legacy-predictor",
                              "'custom.container' is the KFServing v1alpha2 predictor, which AI Core still accepts",
                              "KServe reads 'predictor.containers' (a list)", severity="warning",
                              at=at(r"^\s*(custom)\s*:")))
    errs += _check_images(doc, predictor, at)
    found = at(r"name\s*:\s*['\"]?(kfserving-container)\b")
    if found:
        errs.append(doc.error(ptr, "serving.legacy-predictor",
                              "container name 'kfserving-container' is KFServing's, which AI Core still accepts",
                              "KServe's predictor container is named 'kserve-container'", severity="warning",
                              at=found))
    return errs


def _check_images(doc: Document, predictor: Any, at: Any) -> list[SpecError]:
    """The predictor's images are words of the container executor's ``run`` (``image.invalid``):
    a leading '-' or whitespace is an error, another malformed reference a warning."""
    if not isinstance(predictor, dict):
        return []
    custom = predictor.get("custom")
    containers = [*(predictor.get("containers") if isinstance(predictor.get("containers"), list) else []),
                  *([custom["container"]] if isinstance(custom, dict) and isinstance(custom.get("container"), dict)
                    else [])]
    errs: list[SpecError] = []
    for c in containers:
        image = c.get("image") if isinstance(c, dict) else None
        if not isinstance(image, str) or not image:
            continue
        problem = image_problem(image)  # placeholders were rendered as plain words
        if problem is None:
            continue
        hostile = image.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in image)
        errs.append(doc.error("/spec/template/spec", "image.invalid", f"image {image[:200]!r}: {problem}",
                              "use a reference such as registry.example.com/team/image:1.0",
                              severity="error" if hostile else "warning",
                              at=at(r"^\s*-?\s*image\s*:\s*['\"]?(" + re.escape((image.split() or [''])[0][:80]) + ")")))
    return errs
