"""A quick yes/no JSON Schema check, so that a valid document never needs ``jsonschema``.

Owns: :func:`is_valid`, which decides whether a parsed document satisfies one of our schemas
(``schemas/*.schema.json``, draft 2020-12) for the keywords those schemas use, with the semantics
``jsonschema`` gives them (``Draft202012Validator`` without a format checker: ``format`` is an
annotation; ``integer`` accepts ``1.0``; ``true`` is not ``1`` in ``enum``/``const``). It answers
``None`` ("cannot tell") for anything else: a keyword it does not know, a ``$ref`` that is not a
local JSON pointer, a value that is not plain JSON data (a YAML timestamp, bytes, a non-string
key). Only a ``True`` is acted on: :func:`orchestrator.spec.schema.check` then returns no errors
without importing ``jsonschema`` (about 100 ms of CPU per process); on ``False`` or ``None`` the
errors come from ``jsonschema`` exactly as before, so error lists never depend on this module.
A differential test holds it to ``jsonschema``'s verdict on every shipped document and mutants.
"""

from __future__ import annotations

import re
from typing import Any

_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "default",
                          "examples", "format", "deprecated", "readOnly", "writeOnly"})
_PLAIN = (str, int, float, bool, type(None), list, dict)


class _CannotTell(Exception):
    """The document or schema uses something this module does not decide."""


def is_valid(instance: Any, schema: dict[str, Any]) -> bool | None:
    """``True``/``False``: what ``jsonschema`` would say; ``None``: cannot tell."""
    try:
        return _valid(instance, schema, schema)
    except _CannotTell:
        return None
    except RecursionError:  # a deeply nested document: jsonschema says what it says
        return None


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/") or "~" in ref or "%" in ref:
        raise _CannotTell(ref)
    node: Any = root
    for token in ref[2:].split("/"):
        if not isinstance(node, dict) or token not in node:
            raise _CannotTell(ref)
        node = node[token]
    return node


def _is_type(instance: Any, name: str) -> bool:
    if name == "string":
        return isinstance(instance, str)
    if name == "object":
        return isinstance(instance, dict)
    if name == "array":
        return isinstance(instance, list)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "null":
        return instance is None
    if isinstance(instance, bool):
        return False
    if name == "integer":
        return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())
    if name == "number":
        return isinstance(instance, (int, float))
    raise _CannotTell(name)


def _unbool(value: Any) -> Any:
    return ("\x00bool", value) if isinstance(value, bool) else value


def _equal(one: Any, two: Any) -> bool:
    """``jsonschema._utils.equal`` for plain JSON data."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return len(one) == len(two) and all(k in two and _equal(v, two[k]) for k, v in one.items())
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        return False
    return bool(_unbool(one) == _unbool(two))


def _valid(inst: Any, schema: Any, root: dict[str, Any]) -> bool:  # noqa: C901 - one keyword a branch
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise _CannotTell(repr(schema)[:40])
    if not isinstance(inst, _PLAIN):
        raise _CannotTell(type(inst).__name__)
    ok = True
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            if key == "$id" and schema is not root:
                raise _CannotTell("$id below the root")
            continue
        if key == "$ref":
            ok = _valid(inst, _resolve(value, root), root)
        elif key == "type":
            ok = any(_is_type(inst, t) for t in (value if isinstance(value, list) else [value]))
        elif key == "properties":
            ok = not isinstance(inst, dict) or all(
                _valid(inst[k], sub, root) for k, sub in value.items() if k in inst)
        elif key == "additionalProperties":
            if isinstance(inst, dict):
                if "patternProperties" in schema:
                    raise _CannotTell("patternProperties")
                known = schema.get("properties", {})
                extra = [k for k in inst if k not in known]
                ok = all(_valid(inst[k], value, root) for k in extra)
        elif key == "required":
            ok = not isinstance(inst, dict) or all(k in inst for k in value)
        elif key == "items":
            if isinstance(inst, list):
                ok = all(_valid(item, value, root) for item in inst[len(schema.get("prefixItems", [])):])
        elif key == "prefixItems":
            ok = not isinstance(inst, list) or all(_valid(item, sub, root) for item, sub in zip(inst, value))
        elif key == "enum":
            ok = any(_equal(each, inst) for each in value)
        elif key == "const":
            ok = _equal(inst, value)
        elif key in ("minLength", "maxLength"):
            if isinstance(inst, str):
                ok = len(inst) >= value if key == "minLength" else len(inst) <= value
        elif key in ("minItems", "maxItems"):
            if isinstance(inst, list):
                ok = len(inst) >= value if key == "minItems" else len(inst) <= value
        elif key in ("minProperties", "maxProperties"):
            if isinstance(inst, dict):
                ok = len(inst) >= value if key == "minProperties" else len(inst) <= value
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is_type(inst, "number"):
                ok = {"minimum": lambda: not inst < value, "maximum": lambda: not inst > value,
                      "exclusiveMinimum": lambda: not inst <= value,
                      "exclusiveMaximum": lambda: not inst >= value}[key]()
        elif key == "pattern":
            ok = not isinstance(inst, str) or re.search(value, inst) is not None
        elif key == "oneOf":
            ok = sum(1 for sub in value if _valid(inst, sub, root)) == 1
        elif key == "anyOf":
            ok = any(_valid(inst, sub, root) for sub in value)
        elif key == "allOf":
            ok = all(_valid(inst, sub, root) for sub in value)
        elif key == "not":
            ok = not _valid(inst, value, root)
        else:
            raise _CannotTell(key)
        if not ok:
            return False
    if isinstance(inst, dict) and not all(isinstance(k, str) for k in inst):
        raise _CannotTell("a key that is not a string")
    return True
