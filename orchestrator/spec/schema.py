"""JSON Schema stage of validation: the schemas in ``schemas/`` applied to one document.

Owns: locating the schema files (repo checkout or installed wheel), compiling validators once
(only for a document the quick check does not find valid: ``jsonschema`` is not imported for a
valid one), and turning jsonschema errors into located :class:`SpecError` values with stable rule codes
(``argo.unsupported-field`` for fields outside the supported Argo subset).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec.schema_quick import is_valid
from orchestrator.spec.yamlsafe import Document, escape

KINDS = {
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): "workflowtemplate",
    ("ai.sap.com/v1alpha1", "ServingTemplate"): "servingtemplate",
    ("orchestrator/v1", "Configuration"): "configuration",
    ("orchestrator/v1", "ExecutionSchedule"): "executionschedule",
    ("orchestrator/v1", "Sweep"): "sweep",
}


def schema_dir() -> Path:
    """Where the JSON Schemas live: ``schemas/`` of a checkout, or ``_schemas`` in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "schemas", here / "_schemas"):
        if (cand / "workflowtemplate.schema.json").is_file():
            return cand
    raise FileNotFoundError("orchestrator schemas not found (broken installation)")


@functools.lru_cache(maxsize=None)
def document(name: str) -> dict[str, Any]:
    """Schema ``name`` as parsed JSON (read once per process; never modified)."""
    return dict(json.loads((schema_dir() / f"{name}.schema.json").read_text()))


@functools.lru_cache(maxsize=None)
def validator(name: str) -> Any:
    import jsonschema  # heavy (~100 ms of CPU): imported only when a document may have errors

    schema = document(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _pointer(path: Any) -> str:
    return "".join("/" + escape(str(p)) for p in path)


def check(doc: Document, name: str) -> list[SpecError]:
    """Validate ``doc`` against schema ``name``; every error, located. A document the quick
    check (:mod:`.schema_quick`) finds valid has none; any other is checked by ``jsonschema``."""
    if is_valid(doc.data, document(name)):
        return []
    errs: list[SpecError] = []
    for e in sorted(validator(name).iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        ptr = _pointer(e.absolute_path)
        if e.validator == "additionalProperties":
            allowed = sorted(e.schema.get("properties", {}))
            extra = [k for k in e.instance if k not in e.schema.get("properties", {})]
            for key in extra:
                kp = f"{ptr}/{escape(str(key))}"
                errs.append(doc.error(kp, "argo.unsupported-field",
                                      f"unsupported field {key!r}",
                                      _did_you_mean(str(key), allowed)
                                      or f"supported here: {', '.join(allowed)}", key=True))
            continue
        if e.validator == "required":
            missing = str(e.message).split("'")[1] if "'" in e.message else e.message
            rule = "param.missing-name" if missing == "name" and "/parameters/" in ptr + "/" else "schema.required"
            errs.append(doc.error(ptr, rule, f"missing required field {missing!r}",
                                  "every parameter needs a name" if rule == "param.missing-name" else ""))
            continue
        if e.validator == "const":
            errs.append(doc.error(ptr, "schema.const", f"must be {e.validator_value!r}, got {e.instance!r}"))
            continue
        if e.validator == "enum":
            errs.append(doc.error(ptr, "schema.enum", f"{e.instance!r} is not one of {e.validator_value}"))
            continue
        msg = e.message if len(e.message) < 200 else e.message[:200] + "…"
        hint = ""
        if e.validator == "type" and e.instance is None:
            msg = f"the value is empty (YAML reads it as null), expected {_types(e.validator_value)}"
            hint = "write the value, or remove the key"
        elif e.validator == "type" and doc.raw_scalars.get(ptr, "").strip():
            raw = doc.raw_scalars[ptr]
            what = _YAML_TYPES.get(type(e.instance).__name__, type(e.instance).__name__)
            msg = f"{raw!r} is read as {what} {e.instance!r}, expected {_types(e.validator_value)}"
            hint = f'YAML 1.1 turns {raw} into {what}: quote it ("{raw}")'
        # an empty value has no text of its own: point at its key
        errs.append(doc.error(ptr, f"schema.{e.validator}", msg, hint, key=e.instance is None))
    return errs


_YAML_TYPES = {"bool": "a boolean", "int": "an integer", "float": "a number", "NoneType": "null",
               "str": "a string", "list": "a list", "dict": "a mapping"}


def _types(value: Any) -> str:
    """A schema ``type`` (a name or a list of names) in words: ``string or number``."""
    return " or ".join(value) if isinstance(value, list) else str(value)


def _did_you_mean(word: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


did_you_mean = _did_you_mean
