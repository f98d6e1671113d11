"""Limits known only at run time: deadlines, timeouts and retry limits given as placeholders.

Owns: resolving a template's ``activeDeadlineSeconds`` / ``timeout`` (and the workflow's
``spec.activeDeadlineSeconds``) when they are written as ``"{{inputs.parameters.timeout}}"``, and
``retryStrategy.limit`` likewise. Argo substitutes these fields before it runs the pod; an
unparsable result is an error of the step (never "no limit"). Also the retry decision's inputs
that Argo derives from a failed attempt (``lastRetry.*``) and ``retryStrategy.expression``.
Functions over the runner's state; called by :mod:`orchestrator.run.runner` and
:mod:`orchestrator.run.outcome`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.model import RetryStrategy
from orchestrator.plan.graph import Node
from orchestrator.plan.resolve import ResolveError
from orchestrator.spec import placeholders
from orchestrator.spec.build import parse_duration


def step_limit(r: Any, node: Node) -> tuple[float | None, str]:
    """The attempt's time limit in seconds and its name for messages (``timeout (30 s)``)."""
    t = node.template
    found: list[tuple[float, str]] = []
    for value, text, name in ((t.active_deadline_seconds, t.deadline_text, "activeDeadlineSeconds"),
                              (t.timeout, t.timeout_text, "timeout")):
        if text:
            resolved = r.ctx.declared_path(node, text)
            value = parse_duration(resolved)
            if value is None:
                raise ResolveError(f"template {t.name!r}: {name} {resolved.strip()[:80]!r} (from {text!r}) "
                                   "is not a duration (seconds, or a number with ms/s/m/h/d)")
        if value:
            found.append((value, name))
    if not found:
        return None, ""
    value, name = min(found)
    return value, f"template {name} ({value:g} s)"


def workflow_deadline(r: Any) -> tuple[float | None, str]:
    """``spec.activeDeadlineSeconds`` of the workflow (a placeholder takes workflow parameters);
    returns (seconds or None, error message)."""
    spec = r.graph.spec
    if not spec.deadline_text:
        return spec.active_deadline_seconds, ""
    try:
        resolved = placeholders.substitute(spec.deadline_text, lambda ex: r.ctx.workflow(ex.split(".")))
    except ResolveError as exc:
        return None, f"workflow activeDeadlineSeconds: {exc}"
    value = parse_duration(resolved)
    if value is None:
        return None, (f"workflow activeDeadlineSeconds {resolved.strip()[:80]!r} (from {spec.deadline_text!r}) "
                      "is not a duration")
    return value, ""


def retry_strategy(r: Any, node: Node) -> tuple[RetryStrategy | None, str]:
    """The node's retry strategy with a placeholder ``limit`` resolved; (strategy, problem)."""
    s = node.template.retry
    if s is None or not s.limit_text:
        return s, ""
    try:
        text = r.ctx.declared_path(node, s.limit_text).strip()
    except ResolveError as exc:
        return dataclasses.replace(s, limit=0), f"retryStrategy.limit: {exc}"
    if not text.isdigit():
        return dataclasses.replace(s, limit=0), f"retryStrategy.limit {text[:40]!r} is not a whole number: not retried"
    return dataclasses.replace(s, limit=int(text)), ""


def retry_expression(r: Any, node: Node, text: str, kind: str, result: Any, run: Any) -> tuple[bool, str]:
    """``retryStrategy.expression`` after a failed attempt: retried only while it is true. Its
    ``{{…}}`` placeholders are bound as values, never spliced into its text (spec.exprholes)."""
    from orchestrator.spec import exprholes, exprlang

    d = r.ctx.data[node.id]
    extra: dict[str, Any] = {f"lastRetry.{k}": v for k, v in d.last_retry.items()}
    extra["retries"] = str(d.attempt - 1)
    try:
        compiled = exprholes.compile_text(text)
        extra.update(exprholes.bind(compiled, lambda ex: r.ctx.declared_path(node, "{{" + ex + "}}")))
        value = r.ctx.expression_value(node, compiled.tree, lambda p: r.ctx.leaf(node, {}, p), extra)
    except (ResolveError, exprlang.ExprLangError) as exc:
        return False, f"retryStrategy.expression: {exc.message}: not retried"
    if value is not True:
        return False, f"retryStrategy.expression {text.strip()[:80]!r} is false: not retried"
    return True, ""


def suspend_seconds(r: Any, node: Node) -> float:
    """``suspend.duration`` of a suspend template (a placeholder is resolved now); seconds."""
    text = node.template.suspend or ""
    resolved = r.ctx.declared_path(node, text) if "{{" in text else text
    value = parse_duration(resolved)
    if value is None:
        raise ResolveError(f"suspend.duration {resolved.strip()[:80]!r} is not a duration")
    return value
