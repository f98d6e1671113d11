"""Document shape between the YAML and the semantic stages: empty values and pruning.

Owns two schema-driven passes over one parsed document:

* :func:`normalize` reads YAML ``null`` where the schema expects a list or a mapping
  (``artifacts:`` with nothing after it) as an empty one, as Kubernetes does;
* :func:`prune` makes a copy from which everything the JSON Schema rejected is cut away, so the
  semantic checks can run on a document that has schema errors and report every other problem of
  the file in the same run. A cut list item stays in place (indices, so pointers and positions,
  do not move) as ``None`` or, if it had a name, as a *ghost* ``{"name": …, GHOST: True}``: its
  name still resolves (no follow-on "does not exist"), but nothing else of it is checked.

Imports only :mod:`orchestrator.spec.yamlsafe` and (lazily) :mod:`orchestrator.spec.schema`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from orchestrator.spec.yamlsafe import Document, escape

GHOST = "\x00ghost"
_MAX_ROUNDS = 50


def _schema(name: str) -> dict[str, Any]:
    from orchestrator.spec.schema import document

    return document(name)  # parsed once per process, shared with the schema stage


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while isinstance(node, dict) and "$ref" in node:
        ref = str(node["$ref"])
        target: Any = root
        for token in ref.lstrip("#/").split("/"):
            target = target.get(token, {}) if isinstance(target, dict) else {}
        node = target
    return node if isinstance(node, dict) else {}


def normalize(doc: Document, name: str) -> None:
    """Replace ``null`` by ``[]`` / ``{}`` (in place) wherever schema ``name`` wants a list / mapping."""
    root = _schema(name)
    _normalize(doc.data, root, root)


def _normalize(data: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    schema = _resolve(schema, root)
    if isinstance(data, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in data.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if not isinstance(sub, dict):
                continue
            sub = _resolve(sub, root)
            if value is None and sub.get("type") in ("array", "object"):
                data[key] = [] if sub["type"] == "array" else {}
            else:
                _normalize(value, sub, root)
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for item in data:
            _normalize(item, schema["items"], root)


def prune(doc: Document, name: str) -> Document:
    """A copy of ``doc`` without what schema ``name`` rejects (unknown fields are kept: harmless).

    A rejected node takes the nearest list item that contains it along (a template, a task, a
    parameter, an env entry…): checking what is left of a half-valid item would only report
    follow-on errors. Cutting repeats until the copy is valid apart from unknown fields and the
    cut items themselves, so an object that lost a required field is cut as well. A cut mapping
    value is removed; a cut list item is replaced (see the module docstring); the root is never cut.
    """
    from orchestrator.spec.schema import validator

    data = copy.deepcopy(doc.data)
    cut: set[str] = set()
    check = validator(name)
    for _ in range(_MAX_ROUNDS):
        fresh = {_unit(data, p) for p in _rejected(check, data) if p not in cut}
        fresh -= cut
        if not fresh:
            break
        for ptr in sorted(fresh, key=len):
            if not any(ptr.startswith(c + "/") for c in cut):
                _cut(data, ptr, doc)
                cut.add(ptr)
    pruned = copy.copy(doc)
    pruned.data = data
    return pruned


def _tokens(ptr: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]]


def _unit(data: Any, ptr: str) -> str:
    """The innermost list item holding ``ptr`` (``ptr`` itself if none does)."""
    node, unit, walked = data, ptr, ""
    for token in ptr.split("/")[1:]:
        walked += "/" + token
        plain = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and plain.isdigit() and int(plain) < len(node):
            node, unit = node[int(plain)], walked
        elif isinstance(node, dict):
            node = node.get(plain)
        else:
            break
    return unit


def _rejected(check: Any, data: Any) -> Iterator[str]:
    for e in check.iter_errors(data):
        if e.validator == "additionalProperties":
            continue
        path = list(e.absolute_path)
        if not path:
            continue  # the root: required top-level keys are guarded by the checkers themselves
        yield "".join("/" + escape(str(p)) for p in path)


def _cut(data: Any, ptr: str, doc: Document) -> None:
    tokens = _tokens(ptr)
    parent = data
    for t in tokens[:-1]:
        parent = parent[int(t)] if isinstance(parent, list) else parent.get(t)
        if parent is None:
            return
    last = tokens[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        original = doc.data_at(ptr)
        named = isinstance(original, dict) and isinstance(original.get("name"), str) and original["name"]
        parent[int(last)] = {"name": original["name"], GHOST: True} if named else None


def live(items: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, item)`` of the mapping items of a list that were not cut by :func:`prune`."""
    if isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict) and not item.get(GHOST):
                yield i, item


class AnyName(set):  # type: ignore[type-arg]
    """A name set of a list that lost an unnamed item to :func:`prune`: any name may be declared."""

    def __contains__(self, name: object) -> bool:
        return True


def name_set(items: Any) -> set[str]:
    """:func:`names` as a set; an :class:`AnyName` when a cut item's name is unknown."""
    found = set(names(items))
    return AnyName(found) if isinstance(items, list) and any(i is None for i in items) else found


def names(items: Any) -> list[str]:
    """The names of the items of a list, cut ones (ghosts) included, in order."""
    out: list[str] = []
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and "name" in item:
                out.append(str(item["name"]))
    return out
