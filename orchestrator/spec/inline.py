"""Argo ``inline`` templates: a step or task that defines its template in place.

Owns: finding them (in steps groups and DAG tasks, inline ones inside inline ones too) and the
name each gets among the workflow's templates, ``PARENT/CALL`` — a slash no declared template
name can contain, so it never clashes. Validation checks them at their own position; the model
holds them as ordinary templates the call refers to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def name_of(parent: str, call: str) -> str:
    return f"{parent}/{call}"


def calls(t: dict[str, Any], ptr: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pointer, call) of every step and DAG task of template ``t`` at ``ptr``."""
    for g, group in enumerate(t.get("steps") or []):
        for j, c in enumerate(group if isinstance(group, list) else []):
            if isinstance(c, dict):
                yield f"{ptr}/steps/{g}/{j}", c
    dag = t.get("dag")
    for j, c in enumerate((dag.get("tasks") or []) if isinstance(dag, dict) else []):
        if isinstance(c, dict):
            yield f"{ptr}/dag/tasks/{j}", c


def walk(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(name, pointer, template, call) of every inline template, outermost first."""
    out: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    todo = [(str(t.get("name")), f"/spec/templates/{i}", t) for i, t in enumerate(spec.get("templates") or [])
            if isinstance(t, dict)]
    while todo:
        parent, ptr, t = todo.pop(0)
        for cptr, c in calls(t, ptr):
            inline = c.get("inline")
            if isinstance(inline, dict) and "template" not in c:
                name = name_of(parent, str(c.get("name")))
                out.append((name, f"{cptr}/inline", {**inline, "name": name}, c))
                todo.append((name, f"{cptr}/inline", inline))
    return out
