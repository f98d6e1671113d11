"""Argo lifecycle hooks other than ``exit``: ``hooks.NAME: {expression, template, arguments}`` on
the workflow (``spec.hooks``) and on a step or DAG task.

Owns: their validation (a located error for a missing or invalid expression, a name the place does
not define, an unknown template, arguments) and their build into :class:`~orchestrator.model.Hook`
values. A hook's expression is Argo's expr-lang (the safe subset of :mod:`orchestrator.spec.exprlang`,
never ``eval``); a step's hook sees the step's siblings and the step itself
(``steps["step-1"].status == "Running"``), a workflow's hook the workflow variables
(``workflow.status``). When it fires and what its end means is :mod:`orchestrator.run.lifecycle`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.model import ArgArtifact, ArgParam, Hook
from orchestrator.spec import placeholders
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.shape import live
from orchestrator.spec.yamlsafe import Document, escape

EXIT = "exit"  # the exit hook (onExit): handled with onExit, not here


def named(hooks: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(name, hook)`` of the lifecycle hooks other than ``exit`` in a ``hooks:`` mapping."""
    if not isinstance(hooks, dict):
        return []
    return [(str(k), v) for k, v in hooks.items() if str(k) != EXIT and isinstance(v, dict)]


def build(doc: Document, ptr: str, hooks: Any) -> tuple[Hook, ...]:
    """The :class:`Hook` values of a validated ``hooks:`` mapping at ``ptr``."""
    return tuple(Hook(name, str(h.get("template", "")), str(h.get("expression", "")),
                      *_arguments(doc, f"{ptr}/{escape(name)}", h)) for name, h in named(hooks))


def _arguments(doc: Document, ptr: str, h: dict[str, Any]) -> tuple[tuple[ArgParam, ...], tuple[ArgArtifact, ...]]:
    from orchestrator.spec.build import text

    args = h.get("arguments") or {}
    return (tuple(ArgParam(str(a["name"]), text(doc, f"{ptr}/arguments/parameters/{k}/value", a.get("value")))
                  for k, a in enumerate(args.get("parameters") or [])),
            tuple(ArgArtifact(str(a["name"]), str(a.get("from", "")), str(a.get("subPath", "") or ""))
                  for a in args.get("artifacts") or []))


def check(w: Any, ptr: str, hooks: Any, scope: Callable[[str], str | None]) -> None:
    """Every lifecycle hook of one ``hooks:`` mapping at ``ptr``: template, expression, arguments,
    with names resolved by ``scope`` (the caller's scope with the hooked step in it)."""
    for name, h in named(hooks):
        hptr = f"{ptr}/{escape(name)}"
        target = h.get("template")
        if target not in w.templates and not w.any_template:
            w.err(f"{hptr}/template", "ref.template", f"template {target!r} does not exist",
                  did_you_mean(str(target), list(w.templates)))
        text = h.get("expression")
        if not isinstance(text, str) or not text.strip():
            w.err(hptr, "hook.expression", f"lifecycle hook {name!r} needs an expression (when it runs)",
                  f"e.g. expression: steps[\"NAME\"].status == \"Running\"; a hook named {EXIT!r} is the "
                  "exit handler instead", key=True)
        else:
            masked = placeholders.PLACEHOLDER.sub("true", text)  # placeholders are bound as literals
            for ex in placeholders.find(text):
                problem = scope(ex)
                if problem:
                    w.err(f"{hptr}/expression", "placeholder.unknown", f"{{{{{ex}}}}}: {problem}")
            problem = w.expression_problem(masked, scope)
            if problem:
                w.err(f"{hptr}/expression", "hook.expression", f"hook {name!r}: {problem}",
                      "Argo's expr-lang subset: comparisons, &&, ||, !, the step's status "
                      "(steps[\"NAME\"].status, tasks.NAME.status), workflow.status")
        args = h.get("arguments") or {}
        for j, a in live(args.get("parameters")):
            w.check_text(f"{hptr}/arguments/parameters/{j}/value", a.get("value"), scope)
        for j, a in live(args.get("artifacts")):
            w.check_text(f"{hptr}/arguments/artifacts/{j}/from", a.get("from"), scope)
            if not a.get("from"):
                w.err(f"{hptr}/arguments/artifacts/{j}", "arg.artifact-source", "an artifact argument needs 'from'")


def check_call(w: Any, ptr: str, t: dict[str, Any], call: dict[str, Any],
               siblings: dict[str, dict[str, Any]]) -> None:
    """The lifecycle hooks of a step or DAG task (it may name itself: ``steps["me"].status``)."""
    if named(call.get("hooks")):
        own = w.call_scope(t, {**call, "name": "\x00hook"}, {**siblings, str(call["name"]): call}, None)
        check(w, f"{ptr}/hooks", call.get("hooks"), own)


def check_workflow(w: Any) -> None:
    """``spec.hooks``: only workflow variables are defined there (``workflow.status``, parameters)."""
    check(w, "/spec/hooks", w.spec.get("hooks"), _workflow_scope(w))
    check_exit(w)


def workflow_exit(doc: Document, spec: dict[str, Any]) -> dict[str, Any]:
    """``on_exit``, ``exit_args`` and ``exit_artifacts`` of a WorkflowSpec: ``spec.onExit`` or
    ``spec.hooks.exit`` with its arguments (Argo's ``GetExitHook``: a hook without arguments gets the
    workflow's, which the resolver gives a handler without a call)."""
    hook = (spec.get("hooks") or {}).get(EXIT) or {}
    params, arts = _arguments(doc, f"/spec/hooks/{EXIT}", hook) if not spec.get("onExit") else ((), ())
    return {"on_exit": str(spec.get("onExit", "") or hook.get("template", "") or ""),
            "exit_args": params, "exit_artifacts": arts}


def exit_fed(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """``(template, artifact)`` the workflow's exit hook arguments supply (not workflow inputs)."""
    hook = (spec.get("hooks") or {}).get(EXIT) or {}
    return {(str(hook.get("template")), str(a.get("name")))
            for _j, a in live((hook.get("arguments") or {}).get("artifacts"))}


def check_exit(w: Any) -> None:
    """``spec.hooks.exit.arguments``: workflow variables only, as a workflow-level hook's."""
    args = ((w.spec.get("hooks") or {}).get(EXIT) or {}).get("arguments") or {}
    for j, a in live(args.get("parameters")):
        w.check_text(f"/spec/hooks/exit/arguments/parameters/{j}/value", a.get("value"), _workflow_scope(w))
    for j, a in live(args.get("artifacts")):
        w.check_text(f"/spec/hooks/exit/arguments/artifacts/{j}/from", a.get("from"), _workflow_scope(w))
        if not a.get("from"):
            w.err(f"/spec/hooks/exit/arguments/artifacts/{j}", "arg.artifact-source", "an artifact argument needs 'from'")


def _workflow_scope(w: Any) -> Callable[[str], str | None]:
    def scope(ex: str) -> str | None:
        parts = ex.split(".")
        if parts[0] == "workflow":
            return w.workflow_ref(parts)
        return "a workflow-level hook sees only workflow variables (workflow.status, workflow.parameters.X)"
    return scope


def feed(call: dict[str, Any], fed: dict[str, set[str]]) -> None:
    """Input artifacts of hook templates that the hook's arguments supply (not workflow inputs)."""
    for _name, h in named(call.get("hooks")):
        for _j, a in live((h.get("arguments") or {}).get("artifacts")):
            fed.setdefault(str(h.get("template")), set()).add(str(a.get("name")))
