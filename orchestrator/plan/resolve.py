"""Run-time resolution of placeholders, ``when``, ``depends`` and call inputs for one node.

Owns: the scope rules of Argo placeholders at run time. A call's arguments, ``when`` and
``from`` are evaluated in the *caller's* scope (its template inputs, sibling tasks/steps, the
item, workflow parameters); a leaf's command, args, env and script source in the *leaf's* scope
(its inputs and outputs). Substitution is one pass; nothing here starts processes or writes state.
``when`` and ``depends`` are :mod:`orchestrator.plan.conditions` (a base of :class:`Context`);
:class:`NodeData` and :class:`ResolveError` are :mod:`orchestrator.plan.nodedata` (re-exported).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.model import StepState
from orchestrator.plan.conditions import Conditions
from orchestrator.plan.graph import EXIT, LOOP_END, Graph, Node
from orchestrator.plan.nodedata import NodeData, ResolveError
from orchestrator.spec import exprlang, placeholders

__all__ = ["Context", "NodeData", "ResolveError", "aggregate"]


@dataclass
class Context(Conditions):
    """The scopes of one execution at run time: workflow values, node data, bound inputs, globals."""

    graph: Graph
    workflow_name: str
    params: dict[str, str]
    bound_artifacts: dict[str, Path]
    data: dict[str, NodeData]
    status: str = "Running"
    created: str = ""  # {{workflow.creationTimestamp}} (RFC 3339, UTC)
    t0: float = field(default_factory=time.time)
    failures: Callable[[], list[dict[str, str]]] | None = None  # {{workflow.failures}}
    global_params: dict[str, str] = field(default_factory=dict)  # {{workflow.outputs.parameters.X}}
    global_artifacts: dict[str, Path] = field(default_factory=dict)  # {{workflow.outputs.artifacts.X}}

    def workflow(self, parts: list[str]) -> str:
        spec = self.graph.spec
        if len(parts) == 3 and parts[1] == "parameters":
            if parts[2] in self.params:
                return self.params[parts[2]]
            if parts[2] == "json":
                return json.dumps([{"name": k, "value": v} for k, v in self.params.items()])
            raise ResolveError(f"workflow parameter {parts[2]!r} has no value")
        if len(parts) >= 3 and parts[1] in ("labels", "annotations"):
            values = dict(spec.labels if parts[1] == "labels" else spec.annotations)
            key = ".".join(parts[2:])
            if key in values:
                return values[key]
            raise ResolveError(f"workflow {parts[1][:-1]} {key!r} is not set")
        if len(parts) == 4 and parts[1] == "outputs" and parts[2] in ("parameters", "artifacts"):
            found = self.global_params if parts[2] == "parameters" else self.global_artifacts
            if parts[3] in found:
                return str(found[parts[3]])
            raise ResolveError(f"no step has produced the global output {parts[3]!r} yet")
        if len(parts) == 2 and parts[1] == "creationTimestamp":
            return self.created
        if len(parts) == 2 and parts[1] == "duration":
            return f"{time.time() - self.t0:.6f}"
        if len(parts) == 2 and parts[1] == "mainEntrypoint":
            return spec.entrypoint
        if len(parts) == 2 and parts[1] == "failures":
            return json.dumps(self.failures() if self.failures else [])
        if len(parts) == 2 and parts[1] in ("name", "uid"):
            return self.workflow_name
        if len(parts) == 2 and parts[1] == "status":
            return self.status
        if len(parts) == 2 and parts[1] == "namespace":
            return "default"
        raise ResolveError(f"unsupported workflow variable {'.'.join(parts)!r}")

    # ---------------------------------------------------------------- expressions
    def expression(self, node: Node, text: str, lookup: Callable[[str], str]) -> str:
        """A ``{{=…}}`` tag: evaluated by the safe expr-lang subset, names looked up by ``lookup``
        (the scope of the place it is written in); the result as Argo writes it (JSON unless a string)."""
        try:
            return exprlang.to_text(self.expression_value(node, text, lookup))
        except exprlang.ExprLangError as exc:
            raise ResolveError(f"{{{{={text.strip()[:120]}}}}}: {exc.message}") from None

    def expression_value(self, node: Node, text: str | tuple, lookup: Callable[[str], str],
                         extra: dict[str, Any] | None = None) -> Any:
        """An expr-lang text's (or an AST's, parsed once: spec.exprholes) value; ``extra`` names first."""
        def resolve(path: str) -> Any:
            if extra is not None and path in extra:
                return extra[path]
            if path == "item" or path.startswith("item."):
                if not node.has_item:
                    raise exprlang.Missing("{{item}} is only defined in a loop")
                return _item_value(node.item, path.split(".")[1:])
            try:
                return lookup(path)
            except ResolveError as exc:
                raise exprlang.Missing(exc.message) from None
        return exprlang.evaluate(text, resolve) if isinstance(text, tuple) else exprlang.run(text, resolve)

    # ---------------------------------------------------------------- caller scope
    def caller(self, node: Node, ex: str) -> str:
        if ex.startswith("="):
            return self.expression(node, ex[1:], lambda p: self.caller(node, p))
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
            loop = self.is_loop(ids)
            if loop and parts[2:] in (["status"], ["exitCode"]):
                ends = [i for i in ids if self.data[i].instances is not None]
                return self.sibling_value(ends[0] if ends else ids[0], parts[2:], ex)
            members = self.members(ids)
            if parts[2:] == ["outputs", "parameters"]:  # a loop's outputs: one map per item
                return json.dumps([self.data[i].out_params for i in members if self.data[i].out_params
                                   and self.data[i].state.ok])
            if not loop:
                return self.sibling_value(members[0], parts[2:], ex)
            return aggregate([self.sibling_value(i, parts[2:], ex) for i in members
                              if self.data[i].state not in (StepState.SKIPPED, StepState.OMITTED)])
        raise ResolveError(f"unsupported placeholder {{{{{ex}}}}}")

    def members(self, ids: tuple[str, ...] | list[str]) -> list[str]:
        """Sibling node ids with a run-time loop replaced by its instances."""
        out: list[str] = []
        for i in ids:
            inst = self.data[i].instances
            out.extend(inst if inst is not None else [i])
        return out

    def is_loop(self, ids: tuple[str, ...] | list[str]) -> bool:
        call = self.graph.nodes[ids[0]].call
        return call is not None and (call.with_items is not None or bool(call.with_param)
                                     or call.with_sequence is not None)

    def sibling_value(self, nid: str, rest: list[str], ex: str) -> str:
        d = self.data[nid]
        if rest == ["status"]:
            node = self.graph.nodes[nid]
            if d.state == StepState.PENDING and node.partner and node.kind in (EXIT, LOOP_END) and \
                    self.data[node.partner].state == StepState.SUCCEEDED:
                return "Running"  # a steps/dag call or a loop whose steps run (a lifecycle hook asks)
            return "Succeeded" if d.state == StepState.CACHED else d.state.value.capitalize()
        if rest == ["exitCode"]:
            return "" if d.exit_code is None else str(d.exit_code)
        if rest == ["ip"]:  # the pod's IP in Argo (a daemon's address): every step runs on this host
            return "127.0.0.1"
        if len(rest) == 3 and rest[0] == "outputs" and rest[1] == "parameters":
            if rest[2] in d.out_params:
                return d.out_params[rest[2]]
        if len(rest) == 3 and rest[0] == "outputs" and rest[1] == "artifacts":
            if rest[2] in d.out_artifacts:
                return str(d.out_artifacts[rest[2]])
        if rest == ["outputs", "result"] and "result" in d.out_params:
            return d.out_params["result"]
        raise ResolveError(f"{{{{{ex}}}}} has no value (step {nid!r} is {d.state.value.lower()})")

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
        sources = {a.name: a for a in node.call.artifacts} if node.call else {}
        for a in t.input_artifacts:
            if a.name in sources:
                arts[a.name] = _sub_path(self.artifact_source(node, sources[a.name].source), sources[a.name].sub_path)
            elif a.name in self.bound_artifacts:
                arts[a.name] = self.bound_artifacts[a.name]
            elif not a.optional and a.raw is None:
                raise ResolveError(f"input artifact {a.name!r} of template {t.name!r} is not bound")
        return params, arts

    def artifact_source(self, node: Node, source: str) -> Path:
        """``from:`` is exactly one artifact reference, resolved to a path this execution made or
        was given — never a literal path (that would read any file the user can read)."""
        m = placeholders.PLACEHOLDER.fullmatch(source.strip())
        parts = m.group(1).split(".") if m else []
        if len(parts) == 5 and parts[0] in ("tasks", "steps") and parts[2:4] == ["outputs", "artifacts"]:
            paths = [self.data[i].out_artifacts.get(parts[4]) for i in self.members(node.siblings.get(parts[1], ()))]
            if paths and all(p is not None for p in paths):
                if len(paths) > 1:
                    raise ResolveError(f"from: {source!r} names {len(paths)} artifacts (a withItems fan-out)")
                return paths[0]  # type: ignore[return-value]
            raise ResolveError(f"from: {source!r} has no value (the producing step wrote no such artifact)")
        if len(parts) == 4 and parts[:3] == ["workflow", "outputs", "artifacts"] and parts[3] in self.global_artifacts:
            return self.global_artifacts[parts[3]]
        if len(parts) == 3 and parts[:2] == ["inputs", "artifacts"] and node.scope:
            path = self.data[node.scope].in_artifacts.get(parts[2])
            if path is not None:
                return path
        raise ResolveError(f"from: {source!r} must be one artifact reference such as "
                           "{{tasks.NAME.outputs.artifacts.ART}} or {{inputs.artifacts.ART}}")

    # ---------------------------------------------------------------- outputs of steps/dag templates
    def composite_outputs(self, node: Node) -> None:
        """The EXIT ``node`` of a steps/dag call: its template's ``outputs`` from its children
        (``valueFrom.parameter``/``expression``/``default``, artifacts ``from``/``fromExpression``)."""
        t = node.template
        if not t.output_parameters and not t.output_artifacts:
            return
        inside = Node(node.id + "#outputs", "outputs", t, None, node.partner, self.graph.inner.get(node.partner, {}))
        d = self.data[node.id]
        lookup = lambda p: self.caller(inside, p)  # noqa: E731
        for o in t.output_parameters:
            try:
                if o.expression:
                    d.out_params[o.name] = exprlang.to_text(self.expression_value(inside, o.expression, lookup))
                elif o.value_from_parameter:
                    d.out_params[o.name] = placeholders.substitute(o.value_from_parameter, lookup)
                elif o.value is not None:
                    d.out_params[o.name] = placeholders.substitute(o.value, lookup)
                else:
                    raise ResolveError(f"output parameter {o.name!r} has no valueFrom.parameter or expression")
            except (ResolveError, exprlang.ExprLangError) as exc:
                if o.default is None:
                    raise ResolveError(f"output parameter {o.name!r} of template {t.name!r}: {exc.message}") from None
                d.out_params[o.name] = o.default
        produced = {str(p): p for nd in self.data.values() for p in nd.out_artifacts.values()}
        for a in t.output_artifacts:
            try:
                if a.from_expression:
                    value = exprlang.to_text(self.expression_value(inside, a.from_expression, lookup))
                    if value not in produced:
                        raise ResolveError(f"fromExpression gave {value[:80]!r}, not an artifact of this execution")
                    d.out_artifacts[a.name] = produced[value]
                elif a.source:
                    d.out_artifacts[a.name] = self.artifact_source(inside, a.source)
            except (ResolveError, exprlang.ExprLangError) as exc:
                if not a.optional:
                    raise ResolveError(f"output artifact {a.name!r} of template {t.name!r}: {exc.message}") from None

    # ---------------------------------------------------------------- leaf scope
    def declared_path(self, node: Node, text: str) -> str:
        """A declared path (artifact ``path:``, ``valueFrom.path``, ``workingDir``) with its
        placeholders substituted in the leaf's scope (its parameters, workflow values, the item).
        The result is untrusted: callers keep it inside the step directory (``resolve_inside``)."""
        return placeholders.substitute(text, lambda ex: self.leaf(node, {}, ex))

    def leaf(self, node: Node, paths: dict[str, str], ex: str) -> str:
        """Resolve ``ex`` inside a leaf's container/script (``paths`` maps declared -> host)."""
        if ex.startswith("="):
            return self.expression(node, ex[1:], lambda p: self.leaf(node, paths, p))
        parts = ex.split(".")
        d = self.data[node.id]
        if parts[0] == "workflow":
            return self.workflow(parts)
        if ex == "retries":
            return str(d.attempt - 1)
        if parts[0] == "lastRetry" and len(parts) == 2 and parts[1] in ("exitCode", "status", "duration", "message"):
            return d.last_retry.get(parts[1], "")
        if ex == "inputs.parameters":
            return json.dumps([{"name": k, "value": v} for k, v in d.params.items()])
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


def _sub_path(path: Path, sub: str) -> Path:
    """``subPath`` of an artifact: a path inside it, never outside (no ``..``, no symlink)."""
    if not sub:
        return path
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ResolveError(f"subPath {sub!r} must name a path inside the artifact")
    target = path.joinpath(*parts)
    probe = path
    for p in parts:
        probe = probe / p
        if probe.is_symlink():
            raise ResolveError(f"subPath {sub!r} goes through a symbolic link")
    if not path.is_dir() or not target.exists():
        raise ResolveError(f"subPath {sub!r}: the artifact has no such file or directory")
    return target


def aggregate(values: list[str]) -> str:
    """Argo's aggregated loop output: a JSON list of the values, each parsed as JSON if all parse."""
    try:
        return json.dumps([json.loads(v) for v in values])
    except ValueError:
        return json.dumps(values)


def _item_value(item: Any, rest: list[str]) -> Any:
    value = item
    for key in rest:
        if not isinstance(value, dict) or key not in value:
            raise exprlang.Missing(f"item has no field {'.'.join(rest)!r}")
        value = value[key]
    return value
