"""Semantic checks of the calls in a steps or dag template: what one template asks of another.

Owns: each call's template reference (``template`` or ``inline``), its arguments (placeholders,
artifact ``from`` references, agreement with the callee's inputs), ``when`` syntax, step and task
names, DAG ``dependencies``/``depends`` (unknown tasks, cycles with their path) and templates that
call each other (recursion). Works on the raw document through the workflow checker of
:mod:`orchestrator.spec.semantic`, so every error keeps its position; imports only spec helpers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.spec import argo_checks, argo_extras, expr, hooks, inline
from orchestrator.spec.argo_checks import OPEN
from orchestrator.spec.graphs import find_cycle, reaches
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.shape import GHOST, live, name_set, names


class Workflow(Protocol):
    """What the workflow checker offers the call checks."""

    templates: dict[str, tuple[int, dict[str, Any]]]
    ptrs: dict[str, str]
    any_template: bool

    def err(self, ptr: str, rule: str, msg: str, hint: str = "", *, key: bool = False,
            severity: str = "error") -> None: ...

    def check_text(self, ptr: str, text: Any, scope: Any) -> None: ...

    def io(self, t: dict[str, Any], side: str, what: str) -> list[tuple[int, dict[str, Any]]]: ...

    def io_names(self, t: dict[str, Any], side: str, what: str) -> set[str]: ...

    def call_scope(self, t: dict[str, Any], call: dict[str, Any], siblings: dict[str, dict[str, Any]],
                   upstream: Callable[[str], bool] | None) -> Any: ...


def check_call(w: Workflow, ptr: str, t: dict[str, Any], call: dict[str, Any],
               siblings: dict[str, dict[str, Any]], upstream: Callable[[str], bool] | None,
               fed: dict[str, set[str]]) -> None:
    """Check one step or task ``call`` of template ``t`` at ``ptr`` against its callee; record in ``fed``
    the input artifacts it feeds with ``from:``. ``upstream(name)`` says whether a sibling runs before it
    (None: a steps template, where ``siblings`` are the earlier groups)."""
    scope = w.call_scope(t, call, siblings, upstream)
    ref = call["template"] if "template" in call else inline.name_of(str(t["name"]), str(call["name"]))
    if "template" in call and "inline" in call:
        w.err(f"{ptr}/inline", "call.template-and-inline", "use template or inline, not both", key=True)
    elif "template" not in call and "inline" not in call:
        return w.err(ptr, "schema.required", "missing required field 'template' (or 'inline')")
    callee = w.templates.get(ref)
    if callee is None and not w.any_template:
        w.err(f"{ptr}/template", "ref.template", f"template {ref!r} does not exist",
              did_you_mean(str(ref), list(w.templates)))
    args = call.get("arguments") or {}
    for j, a in live(args.get("parameters")):
        w.check_text(f"{ptr}/arguments/parameters/{j}/value", a.get("value"), scope)
    for j, a in live(args.get("artifacts")):
        src = str(a.get("from", ""))
        w.check_text(f"{ptr}/arguments/artifacts/{j}/from", src, scope)
        if src and not re.fullmatch(r"\s*\{\{\s*((tasks|steps)\.[^.{}]+\.outputs\.artifacts\.[^.{}\s]+"
                                    r"|inputs\.artifacts\.[^.{}\s]+|workflow\.outputs\.artifacts\.[^.{}\s]+)"
                                    r"\s*\}\}\s*", src):
            w.err(f"{ptr}/arguments/artifacts/{j}/from", "arg.artifact-source",
                  f"'from' must be one artifact reference, not {src[:80]!r}",
                  "use {{tasks.NAME.outputs.artifacts.ART}}, {{steps.NAME.outputs.artifacts.ART}} "
                  "or {{inputs.artifacts.ART}}")
    argo_checks.check_call_extras(w, ptr, t, call, siblings, scope)
    hook = (call.get("hooks") or {}).get("exit") or {}
    for _j, a in live((hook.get("arguments") or {}).get("artifacts")):
        fed.setdefault(str(hook.get("template")), set()).add(str(a.get("name")))
    hooks.feed(call, fed)
    if "when" in call:
        w.check_text(f"{ptr}/when", call["when"], scope)
        problem = expr.check_when(str(call["when"]))
        if problem:
            w.err(f"{ptr}/when", "when.syntax", f"invalid when expression: {problem}")
    if callee is None or callee[1].get(GHOST):
        return
    ct = callee[1]
    given = name_set(args.get("parameters"))
    inputs = {str(p.get("name")): p for _j, p in w.io(ct, "inputs", "parameters")}
    declared = w.io_names(ct, "inputs", "parameters")
    for j, a in live(args.get("parameters")):
        if str(a.get("name")) not in declared:
            w.err(f"{ptr}/arguments/parameters/{j}/name", "arg.unknown-parameter",
                  f"template {ref!r} has no input parameter {a.get('name')!r}: Argo ignores it",
                  did_you_mean(str(a.get("name")), list(inputs)), severity="warning")
    for name, p in inputs.items():
        if name not in given and "value" not in p and "default" not in p:
            w.err(ptr, "arg.missing-parameter",
                  f"input parameter {name!r} of template {ref!r} gets no value",
                  "pass it in arguments.parameters or give it a default")
    in_arts = w.io_names(ct, "inputs", "artifacts")
    for j, a in live(args.get("artifacts")):
        if str(a.get("name")) not in in_arts:
            w.err(f"{ptr}/arguments/artifacts/{j}/name", "arg.unknown-artifact",
                  f"template {ref!r} has no input artifact {a.get('name')!r}",
                  did_you_mean(str(a.get("name")), sorted(in_arts)))
        elif not a.get("from"):
            w.err(f"{ptr}/arguments/artifacts/{j}", "arg.artifact-source",
                  "an artifact argument needs 'from'")
        fed.setdefault(ref, set()).add(str(a.get("name")))


def check_steps(w: Workflow, ptr: str, t: dict[str, Any], fed: dict[str, set[str]]) -> None:
    """Check the step groups of steps template ``t``: unique names, no DAG fields, each call."""
    seen: dict[str, dict[str, Any]] = {}
    for g, group in enumerate(t["steps"]):
        if not isinstance(group, list):
            continue
        current = {str(s["name"]): s for s in group if isinstance(s, dict)}
        if None in group:
            current[OPEN] = {}
        for j, s in live(group):
            sptr = f"{ptr}/steps/{g}/{j}"
            if s["name"] in seen or names(group).count(str(s["name"])) > 1:
                w.err(f"{sptr}/name", "step.duplicate-name", f"step name {s['name']!r} is used twice")
            for bad in ("dependencies", "depends"):
                if bad in s:
                    w.err(f"{sptr}/{bad}", "argo.unsupported-field",
                          f"{bad!r} is only valid in dag tasks", "order steps with groups", key=True)
            check_call(w, sptr, t, s, dict(seen), None, fed)
        seen.update(current)


def check_dag(w: Workflow, ptr: str, t: dict[str, Any], fed: dict[str, set[str]]) -> None:
    """Check the tasks of dag template ``t``: unique names, dependencies (known, acyclic), each call."""
    tasks = t["dag"]["tasks"]
    by_name: dict[str, dict[str, Any]] = {}
    g: dict[str, list[str]] = {}
    for j, task in enumerate(tasks):
        if not isinstance(task, dict):
            by_name[OPEN] = {}
            continue
        name = str(task["name"])
        if name in by_name:
            w.err(f"{ptr}/dag/tasks/{j}/name", "step.duplicate-name", f"task name {name!r} is used twice")
        by_name.setdefault(name, task)
        g.setdefault(name, [])
    for j, task in live(tasks):
        tptr = f"{ptr}/dag/tasks/{j}"
        deps: list[tuple[str, str]] = []
        for k, d in enumerate(task.get("dependencies") or []):
            deps.append((str(d), f"{tptr}/dependencies/{k}"))
        if "depends" in task:
            if "dependencies" in task:
                w.err(f"{tptr}/depends", "dag.depends-and-dependencies",
                      "use either 'dependencies' or 'depends', not both")
            try:
                for ref, result in expr.depends_refs(expr.parse(str(task["depends"]))):
                    deps.append((ref, f"{tptr}/depends"))
                    if result and result not in expr.DEPENDS_RESULTS:
                        w.err(f"{tptr}/depends", "dag.depends-syntax", f"unknown task result {result!r}",
                              did_you_mean(result, list(expr.DEPENDS_RESULTS)))
            except expr.ExprError as exc:
                w.err(f"{tptr}/depends", "dag.depends-syntax", f"invalid depends expression: {exc}")
        for d, dptr in deps:
            if OPEN in by_name and d not in by_name:
                continue
            if d not in by_name:
                w.err(dptr, "dag.unknown-dependency", f"task {task['name']!r} depends on unknown task {d!r}",
                      did_you_mean(d, list(by_name)) or f"tasks here: {', '.join(by_name)}")
            else:
                g[d].append(str(task["name"]))
    cycle = find_cycle(g)
    if cycle:
        idx = next(j for j, x in live(tasks) if str(x["name"]) == cycle[0])
        w.err(f"{ptr}/dag/tasks/{idx}", "dag.cycle", f"dependency cycle: {' -> '.join(cycle)}",
              "remove one of these dependencies")
    argo_extras.check_dag_target(w, ptr, t, set(by_name) - {OPEN},
                                 w.call_scope(t, {"name": "\x00target"}, {}, None))
    for j, task in live(tasks):
        # With a cycle "upstream" is meaningless: still check everything else of each task.
        # Upstream is asked lazily (reaches), so big DAGs without task references stay linear.
        up = (lambda other, me=str(task["name"]): reaches(g, other, me)) if not cycle else None
        check_call(w, f"{ptr}/dag/tasks/{j}", t, task, by_name, up, fed)


def check_recursion(w: Workflow) -> None:
    """Warn about templates that call each other: a ``when`` must end the recursion."""
    g: dict[str, list[str]] = {}
    for name, (_i, t) in w.templates.items():
        groups = [grp for grp in t.get("steps") or [] if isinstance(grp, list)]
        calls = [c for grp in groups for _j, c in live(grp)] + [c for _j, c in live((t.get("dag") or {}).get("tasks"))]
        for c in calls:
            ref = c.get("template") or inline.name_of(name, str(c.get("name")))
            if ref in w.templates:
                g.setdefault(name, []).append(ref)
    cycle = find_cycle(g)
    if cycle:  # Argo runs it; a `when` must end it (nested deeper than 100 levels, it fails)
        i = w.templates[cycle[0]][0]
        w.err(w.ptrs.get(cycle[0], f"/spec/templates/{i}"), "template.recursion",
              f"templates call each other: {' -> '.join(cycle)}; each level is compiled when it starts",
              "a when: condition must end the recursion (at most 100 levels)", severity="warning")
