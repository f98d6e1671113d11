"""Run-time resolution of placeholders, ``when``, ``depends`` and call inputs for one node.

Owns: the scope rules of Argo placeholders at run time. A call's arguments, ``when`` and
``from`` are evaluated in the *caller's* scope (its template inputs, sibling tasks/steps, the
item, workflow parameters); a leaf's command, args, env and script source in the *leaf's* scope
(its inputs and outputs). Substitution is one pass; a ``when`` is parsed before any value is
bound (values are literals, never expression text); nothing here starts processes or writes state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import StepState
from orchestrator.plan.graph import Graph, Node
from orchestrator.spec import expr, placeholders


class ResolveError(OrchestratorError):
    """A placeholder could not be resolved at run time (the node fails with this message)."""

    code = "UNRESOLVED"


@dataclass
class NodeData:
    """What is known about a node while the execution runs."""

    state: StepState = StepState.PENDING
    params: dict[str, str] = field(default_factory=dict)  # resolved input parameters
    in_artifacts: dict[str, Path] = field(default_factory=dict)
    out_params: dict[str, str] = field(default_factory=dict)
    out_artifacts: dict[str, Path] = field(default_factory=dict)
    out_digests: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None


@dataclass
class Context:
    graph: Graph
    workflow_name: str
    params: dict[str, str]
    bound_artifacts: dict[str, Path]
    data: dict[str, NodeData]
    status: str = "Running"

    def workflow(self, parts: list[str]) -> str:
        if len(parts) == 3 and parts[1] == "parameters":
            if parts[2] in self.params:
                return self.params[parts[2]]
            raise ResolveError(f"workflow parameter {parts[2]!r} has no value")
        if len(parts) == 2 and parts[1] in ("name", "uid"):
            return self.workflow_name
        if len(parts) == 2 and parts[1] == "status":
            return self.status
        if len(parts) == 2 and parts[1] == "namespace":
            return "default"
        raise ResolveError(f"unsupported workflow variable {'.'.join(parts)!r}")

    # ---------------------------------------------------------------- caller scope
    def caller(self, node: Node, ex: str) -> str:
        parts = ex.split(".")
        if parts[0] == "workflow":
            return self.workflow(parts)
        if parts[0] == "item":
            return _item(node.item, parts[1:])
        scope = self.data[node.scope] if node.scope else None
        if parts[0] == "inputs" and len(parts) >= 3:
            if scope is None:
                if parts[1] == "parameters" and parts[2] in self.params:
                    return self.params[parts[2]]
                raise ResolveError(f"{{{{{ex}}}}} has no value at the top level")
            if parts[1] == "parameters" and parts[2] in scope.params:
                return scope.params[parts[2]]
            if parts[1] == "artifacts" and parts[2] in scope.in_artifacts:
                return str(scope.in_artifacts[parts[2]])
            raise ResolveError(f"{{{{{ex}}}}} has no value")
        if parts[0] in ("tasks", "steps") and len(parts) >= 3:
            ids = node.siblings.get(parts[1])
            if not ids:
                raise ResolveError(f"{{{{{ex}}}}}: no {parts[0][:-1]} {parts[1]!r}")
            values = [self.sibling_value(i, parts[2:], ex) for i in ids]
            return values[0] if len(values) == 1 else json.dumps(values)
        raise ResolveError(f"unsupported placeholder {{{{{ex}}}}}")

    def sibling_value(self, nid: str, rest: list[str], ex: str) -> str:
        d = self.data[nid]
        if rest == ["status"]:
            return d.state.value.capitalize()
        if rest == ["exitCode"]:
            return "" if d.exit_code is None else str(d.exit_code)
        if len(rest) == 3 and rest[0] == "outputs" and rest[1] == "parameters":
            if rest[2] in d.out_params:
                return d.out_params[rest[2]]
        if len(rest) == 3 and rest[0] == "outputs" and rest[1] == "artifacts":
            if rest[2] in d.out_artifacts:
                return str(d.out_artifacts[rest[2]])
        if rest == ["outputs", "result"] and "result" in d.out_params:
            return d.out_params["result"]
        raise ResolveError(f"{{{{{ex}}}}} has no value (step {nid!r} is {d.state.value.lower()})")

    def when(self, node: Node) -> bool:
        """The call's ``when``: the template's expression is parsed with its placeholders as holes,
        then each value is bound as one literal, so no value can change the expression."""
        if node.call is None or not node.call.when:
            return True
        try:
            compiled = expr.parse_when(node.call.when)
        except expr.ExprError as exc:
            raise ResolveError(f"when {node.call.when!r}: {exc}") from None
        values = [self.caller(node, ex) for ex in compiled.holes]
        try:
            return expr.evaluate_when_template(compiled, values)
        except expr.ExprError as exc:
            raise ResolveError(f"when {node.call.when!r}: {exc}") from None

    def depends_ok(self, node: Node, preds: list[str]) -> bool:
        """Whether the node may run, given its predecessors' final states."""
        if node.call is not None and node.call.depends:
            def atom(word: str) -> bool:
                task, _, result = word.partition(".")
                states = [self.data[i].state for i in node.siblings.get(task, ())]
                return _result(states, result)
            return bool(expr.evaluate(expr.parse(node.call.depends), atom))
        return all(self.data[p].state.ok for p in preds)

    def call_inputs(self, node: Node) -> tuple[dict[str, str], dict[str, Path]]:
        """Input parameters and artifacts of the called template, evaluated in the caller's scope."""
        t = node.template
        params: dict[str, str] = {}
        given = {a.name: a.value for a in node.call.parameters} if node.call else {}
        for p in t.input_parameters:
            if p.name in given:
                params[p.name] = placeholders.substitute(given[p.name], lambda ex: self.caller(node, ex))
            elif node.call is None and p.name in self.params:
                params[p.name] = self.params[p.name]
            elif p.default is not None:
                params[p.name] = placeholders.substitute(p.default, lambda ex: self.caller(node, ex))
            else:
                raise ResolveError(f"input parameter {p.name!r} of template {t.name!r} has no value")
        arts: dict[str, Path] = {}
        sources = {a.name: a.source for a in node.call.artifacts} if node.call else {}
        for a in t.input_artifacts:
            if a.name in sources:
                arts[a.name] = self.artifact_source(node, sources[a.name])
            elif a.name in self.bound_artifacts:
                arts[a.name] = self.bound_artifacts[a.name]
            elif not a.optional:
                raise ResolveError(f"input artifact {a.name!r} of template {t.name!r} is not bound")
        return params, arts

    def artifact_source(self, node: Node, source: str) -> Path:
        """``from:`` is exactly one artifact reference, resolved to a path this execution made or
        was given — never a literal path (that would read any file the user can read)."""
        m = placeholders.PLACEHOLDER.fullmatch(source.strip())
        parts = m.group(1).split(".") if m else []
        if len(parts) == 5 and parts[0] in ("tasks", "steps") and parts[2:4] == ["outputs", "artifacts"]:
            paths = [self.data[i].out_artifacts.get(parts[4]) for i in node.siblings.get(parts[1], ())]
            if paths and all(p is not None for p in paths):
                if len(paths) > 1:
                    raise ResolveError(f"from: {source!r} names {len(paths)} artifacts (a withItems fan-out)")
                return paths[0]  # type: ignore[return-value]
            raise ResolveError(f"from: {source!r} has no value (the producing step wrote no such artifact)")
        if len(parts) == 3 and parts[:2] == ["inputs", "artifacts"] and node.scope:
            path = self.data[node.scope].in_artifacts.get(parts[2])
            if path is not None:
                return path
        raise ResolveError(f"from: {source!r} must be one artifact reference such as "
                           "{{tasks.NAME.outputs.artifacts.ART}} or {{inputs.artifacts.ART}}")

    # ---------------------------------------------------------------- leaf scope
    def declared_path(self, node: Node, text: str) -> str:
        """A declared path (artifact ``path:``, ``valueFrom.path``, ``workingDir``) with its
        placeholders substituted in the leaf's scope (its parameters, workflow values, the item).
        The result is untrusted: callers keep it inside the step directory (``resolve_inside``)."""
        return placeholders.substitute(text, lambda ex: self.leaf(node, {}, ex))

    def leaf(self, node: Node, paths: dict[str, str], ex: str) -> str:
        """Resolve ``ex`` inside a leaf's container/script (``paths`` maps declared -> host)."""
        parts = ex.split(".")
        d = self.data[node.id]
        if parts[0] == "workflow":
            return self.workflow(parts)
        if parts[0] == "inputs" and len(parts) == 3 and parts[1] == "parameters" and parts[2] in d.params:
            return d.params[parts[2]]
        if len(parts) >= 3 and parts[0] in ("inputs", "outputs") and parts[1] in ("artifacts", "parameters"):
            key = f"{parts[0]}.{parts[1]}.{parts[2]}"
            if key in paths:
                return paths[key]
        if parts[0] == "item" and node.has_item:
            return _item(node.item, parts[1:])
        raise ResolveError(f"unresolved placeholder {{{{{ex}}}}} in template {node.template.name!r}")


def _item(item: Any, rest: list[str]) -> str:
    value = item
    for key in rest:
        if not isinstance(value, dict) or key not in value:
            raise ResolveError(f"item has no field {'.'.join(rest)!r}")
        value = value[key]
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _result(states: list[StepState], result: str) -> bool:
    if not states:
        return False
    ok = {"": lambda s: s in (StepState.SUCCEEDED, StepState.CACHED, StepState.SKIPPED),
          "Succeeded": lambda s: s in (StepState.SUCCEEDED, StepState.CACHED),
          "Failed": lambda s: s == StepState.FAILED,
          "Errored": lambda s: s == StepState.FAILED,
          "Skipped": lambda s: s == StepState.SKIPPED,
          "Omitted": lambda s: s == StepState.OMITTED,
          "Daemoned": lambda s: False,
          "Completed": lambda s: s in (StepState.SUCCEEDED, StepState.CACHED, StepState.FAILED)}
    if result == "AnySucceeded":
        return any(s in (StepState.SUCCEEDED, StepState.CACHED) for s in states)
    if result == "AllFailed":
        return all(s == StepState.FAILED for s in states)
    check = ok.get(result)
    if check is None:
        raise ResolveError(f"unknown task result {result!r}")
    return all(check(s) for s in states)
