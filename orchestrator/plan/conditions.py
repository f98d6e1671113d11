"""Whether a node may run: its call's ``when`` and ``depends``, and its predecessors' results.

Owns: evaluating a call's ``when`` (parsed with its placeholders as holes before any value is
bound, so no value can change the expression), ``depends`` expressions over sibling task results
(``Succeeded``, ``Failed``, ``AnySucceeded`` …, a run-time loop as one group) and plain
dependencies with ``continueOn``. A base of :class:`orchestrator.plan.resolve.Context`, whose
caller scope resolves the placeholders. Pure; must not import run, store or control.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.model import StepState
from orchestrator.plan.graph import Graph, Node
from orchestrator.plan.nodedata import NodeData, ResolveError
from orchestrator.spec import expr


class Conditions:
    """``when`` and ``depends`` of a node, over the execution's node data."""

    graph: Graph
    data: dict[str, NodeData]

    def caller(self, node: Node, ex: str) -> str: ...  # provided by Context: the caller's scope

    def members(self, ids: tuple[str, ...] | list[str]) -> list[str]: ...  # provided by Context

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

    def depends_ok(self, node: Node, preds: list[str],
                   continues: Callable[[Node], bool] | None = None) -> bool:
        """Whether the node may run, given its predecessors' final states (a failed predecessor
        whose ``continueOn`` accepts the failure counts as done, as in Argo)."""
        if node.call is not None and node.call.depends:
            def atom(word: str) -> bool:
                task, _, result = word.partition(".")
                raw = node.siblings.get(task, ())
                # a run-time loop is one group node to Argo (Failed when an item failed); only
                # AnySucceeded / AllFailed look at its items
                ids = self.members(raw) if result in ("AnySucceeded", "AllFailed") else list(raw)
                states = [self.data[i].state for i in ids]
                if not result and continues is not None:  # a bare name accepts what continueOn accepts
                    return bool(states) and all(
                        _result([self.data[i].state], "") or (self.data[i].state == StepState.FAILED
                                                            and continues(self.graph.nodes[i])) for i in ids)
                return _result(states, result)
            return bool(expr.evaluate(expr.parse(node.call.depends), atom))
        return all(self.data[p].state.ok or (self.data[p].state == StepState.FAILED and continues is not None
                                             and continues(self.graph.nodes[p])) for p in preds)


def _result(states: list[StepState], result: str) -> bool:
    """Whether ``states`` (one task, or a loop's items) meet the task result ``result`` of a ``depends``."""
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
