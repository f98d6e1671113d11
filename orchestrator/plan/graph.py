"""Compile a :class:`WorkflowSpec` into a DAG of concrete nodes.

Owns: expansion of ``steps`` groups (sequential groups, parallel inside a group), ``dag`` tasks
(``dependencies`` / ``depends``), nested template calls (an *enter* and an *exit* node around
each composite call, so ``when`` and results apply to the whole call), and ``withItems`` fan-out.
Values that are only known at run time (task outputs, ``when``) stay as expressions on the nodes;
:mod:`orchestrator.plan.resolve` evaluates them in one pass when a node becomes ready.
Also ``select`` for rerun-from. The runner walks plain adjacency lists (``succ``/``pred``):
importing networkx costs ~0.1 s per run, more than a whole 50-step chain adds. ``Graph.dag`` still
gives the networkx view (built, and networkx imported, on first use). Imports model and spec.expr.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.model import Call, Hook, Template, WorkflowSpec
from orchestrator.spec import expr

LEAF, ENTER, EXIT = "leaf", "enter", "exit"
LOOP, LOOP_END = "loop", "loop-end"  # a withParam/withSequence call: instances are added when it starts
HANDLER = "onExit"
MAX_NODES = 10_000


@dataclass(frozen=True, eq=False)
class Node:
    """One node of an execution graph."""

    id: str
    kind: str
    template: Template
    call: Call | None
    scope: str  # id of the enclosing composite's ENTER node ("" = top level)
    siblings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    item: Any = None
    has_item: bool = False
    partner: str = ""  # ENTER <-> EXIT pairing
    order: int = 0
    handler: bool = False  # part of the onExit handler, run after everything else
    deferred: bool = False  # an ENTER whose children are compiled when it starts (a recursive call)
    hook_of: str = ""  # an exit hook (step/task ``onExit``): runs once that node ended, whatever its state
    trigger: str = ""  # a lifecycle hook (``hooks.NAME.expression``): runs once it is true (run.lifecycle)

    @property
    def name(self) -> str:
        return self.id


def _topo(nodes: Iterable[str], succ: Mapping[str, Iterable[str]], key: Callable[[str], Any]) -> list[str]:
    """Topological order, smallest ``key`` first among the ready (networkx's lexicographical sort)."""
    nodes = list(nodes)
    indeg = dict.fromkeys(nodes, 0)
    for n in nodes:
        for s in succ.get(n, ()):
            indeg[s] += 1
    heap = [(key(n), i, n) for i, n in enumerate(nodes) if indeg[n] == 0]
    heapq.heapify(heap)
    out: list[str] = []
    pos = {n: i for i, n in enumerate(nodes)}
    while heap:
        _k, _i, n = heapq.heappop(heap)
        out.append(n)
        for s in succ.get(n, ()):
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, (key(s), pos[s], s))
    if len(out) != len(nodes):
        raise UsageError("the workflow graph has a cycle")
    return out


@dataclass
class Graph:
    """The compiled DAG (adjacency lists in insertion order) plus lookup tables."""

    spec: WorkflowSpec
    succ: dict[str, list[str]]
    pred: dict[str, list[str]]
    nodes: dict[str, Node]
    root_template: Template
    exit_handler: Template | None = None
    _dag: Any = field(default=None, repr=False, compare=False)
    # ENTER id ("" = the entrypoint) -> its children by step/task name (for the template's outputs)
    inner: dict[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    after: dict[str, list[str]] = field(default_factory=dict)

    @property
    def dag(self) -> Any:
        """The same graph as a networkx.DiGraph (attribute "node" on every node), built on first use."""
        if self._dag is None:
            import networkx as nx

            g = nx.DiGraph()
            for nid, node in self.nodes.items():
                g.add_node(nid, node=node)
            g.add_edges_from((a, b) for a, bs in self.succ.items() for b in bs)
            self._dag = g
        return self._dag

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == LEAF]

    def topo(self) -> list[str]:
        return _topo(self.nodes, self.succ, lambda n: self.nodes[n].order)


def _item_label(item: Any) -> str:
    text = item if isinstance(item, str) else repr(item)
    return text if len(text) <= 24 else text[:21] + "..."


class _Compiler:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.succ: dict[str, list[str]] = {}
        self.pred: dict[str, list[str]] = {}
        self.nodes: dict[str, Node] = {}
        self.inner: dict[str, Mapping[str, tuple[str, ...]]] = {}
        self.after: dict[str, list[str]] = {}  # a call's end -> its exit hook's end (what follows waits)
        self.handler = False
        self.stack: list[str] = []  # templates being expanded: calling one of them again is recursion

    @classmethod
    def over(cls, graph: Graph, handler: bool, stack: list[str]) -> _Compiler:
        """A compiler that adds nodes to an existing graph (run-time expansion)."""
        c = cls(graph.spec)
        c.succ, c.pred, c.nodes, c.handler, c.stack = graph.succ, graph.pred, graph.nodes, handler, list(stack)
        c.inner, c.after = graph.inner, graph.after
        return c

    def add(self, node: Node, deps: list[str]) -> None:
        if node.id in self.nodes:
            raise UsageError(f"two steps compile to the same id {node.id!r}", hint="rename one of them")
        if len(self.nodes) >= MAX_NODES:
            raise UsageError(f"workflow expands to more than {MAX_NODES} steps")
        node = Node(node.id, node.kind, node.template, node.call, node.scope, node.siblings, node.item,
                    node.has_item, node.partner, len(self.nodes), self.handler, node.deferred, node.hook_of,
                    node.trigger)
        self.nodes[node.id] = node
        self.succ[node.id] = []
        preds = self.pred[node.id] = []
        for d in dict.fromkeys(deps):  # an edge once, like a DiGraph
            self.succ[d].append(node.id)
            preds.append(d)

    def expand_calls(self, template: Template, scope: str, prefix: str, entry_deps: list[str]) -> list[str]:
        """Expand the children of a composite; returns the ids downstream nodes must wait for."""
        if template.steps is not None:
            return self.expand_steps(template, scope, prefix, entry_deps)
        assert template.dag is not None
        return self.expand_dag(template, scope, prefix, entry_deps)

    def expand_steps(self, t: Template, scope: str, prefix: str, entry_deps: list[str]) -> list[str]:
        prev = list(entry_deps)
        siblings: dict[str, tuple[str, ...]] = {}
        for group in t.steps or ():
            done: list[str] = []
            group_sibs = dict(siblings)
            produced: dict[str, tuple[str, ...]] = {}
            for call in group:
                exits = self.expand_call(call, scope, prefix, prev, group_sibs)
                produced[call.name] = tuple(exits)
                done.extend(self.with_hooks(exits))
            siblings.update(produced)
            prev = done or prev
        self.inner[scope] = siblings
        return prev

    def expand_dag(self, t: Template, scope: str, prefix: str, entry_deps: list[str]) -> list[str]:
        calls = {c.name: c for c in t.dag or ()}
        index = {name: i for i, name in enumerate(calls)}
        succ: dict[str, dict[str, None]] = {name: {} for name in calls}
        pred: dict[str, dict[str, None]] = {name: {} for name in calls}
        for c in calls.values():
            refs = list(c.dependencies)
            if c.depends:
                refs += [r for r, _ in expr.depends_refs(expr.parse(c.depends))]
            for r in refs:
                if r not in calls:
                    raise UsageError(f"task {c.name!r} depends on unknown task {r!r}")
                succ[r][c.name] = None
                pred[c.name][r] = None
        exits: dict[str, tuple[str, ...]] = {}
        for name in _topo(calls, succ, index.__getitem__):
            c = calls[name]
            deps = self.with_hooks([x for d in pred[name] for x in exits[d]]) or list(entry_deps)
            exits[name] = tuple(self.expand_call(c, scope, prefix, deps, exits))
        sinks = [n for n in calls if not succ[n]]
        self.inner[scope] = exits
        return self.with_hooks([x for s in sinks for x in exits[s]])

    def with_hooks(self, ids: list[str]) -> list[str]:
        return [*ids, *(h for i in ids for h in self.after.get(i, ()))]

    def hook(self, call: Call, end: str, scope: str, sibs: Mapping[str, tuple[str, ...]], item: Any,
             has_item: bool) -> None:
        """A call's exit hook (``onExit`` / ``hooks.exit``): runs after ``end``, in the call's scope."""
        hook_call = Call(call.name + ".onExit", call.on_exit, call.exit_args, call.exit_artifacts)
        callee = self.spec.templates[call.on_exit]
        own = {**sibs, call.name: (end,)}
        nid = (end[:-4] if end.endswith("/end") else end[:-5] if end.endswith("/loop") else end) + ".onExit"
        first = [end, *self.after.get(end, ())]  # its lifecycle hooks that started end first (Argo)
        if callee.is_leaf:
            self.add(Node(nid, LEAF, callee, hook_call, scope, own, item, has_item, hook_of=end), first)
            self.after[end] = [*self.after.get(end, ()), nid]
            return
        self.add(Node(nid, ENTER, callee, hook_call, scope, own, item, has_item, nid + "/end", hook_of=end), first)
        tails = self.expand_children(callee, nid)
        self.add(Node(nid + "/end", EXIT, callee, hook_call, scope, own, item, has_item, nid), tails or [nid])
        self.after[end] = [*self.after.get(end, ()), nid + "/end"]

    def lifecycle(self, call: Call, deps: list[str], end: str, scope: str, sibs: Mapping[str, tuple[str, ...]],
                  item: Any, has_item: bool) -> None:
        """A call's lifecycle hooks (``hooks.NAME`` other than exit), armed when the call is ready;
        what follows the call waits for them (``after``)."""
        base = end[:-4] if end.endswith("/end") else end
        own = {**sibs, call.name: (end,)}
        for h in call.hooks:
            hid = self.hook_node(f"{base}.hooks.{h.name}", h, scope, own, item, has_item, end, deps)
            self.after[end] = [*self.after.get(end, ()), hid]

    def hook_node(self, nid: str, h: Hook, scope: str, sibs: Mapping[str, tuple[str, ...]], item: Any,
                  has_item: bool, hook_of: str, deps: list[str]) -> str:
        """The nodes of one lifecycle hook; returns the id its end is known by."""
        callee = self.spec.templates[h.template]
        hc = Call(nid.rsplit("/", 1)[-1], h.template, h.parameters, h.artifacts)
        if callee.is_leaf:
            self.add(Node(nid, LEAF, callee, hc, scope, sibs, item, has_item, hook_of=hook_of, trigger=h.expression),
                     deps)
            return nid
        self.add(Node(nid, ENTER, callee, hc, scope, sibs, item, has_item, nid + "/end", hook_of=hook_of,
                      trigger=h.expression), deps)
        tails = self.expand_children(callee, nid)
        self.add(Node(nid + "/end", EXIT, callee, hc, scope, sibs, item, has_item, nid, trigger=h.expression),
                 tails or [nid])
        return nid + "/end"

    def expand_call(self, call: Call, scope: str, prefix: str, deps: list[str],
                    siblings: Mapping[str, tuple[str, ...]]) -> list[str]:
        callee = self.spec.templates[call.template]
        sibs = siblings  # shared, not copied: validation guarantees references are upstream
        if call.with_param or call.with_sequence is not None:
            # The items are known only when the call starts: LOOP -> (instances) -> LOOP_END.
            nid = prefix + call.name
            self.add(Node(nid, LOOP, callee, call, scope, sibs, partner=nid + "/loop"), deps)
            self.add(Node(nid + "/loop", LOOP_END, callee, call, scope, sibs, partner=nid), [nid])
            if call.on_exit:
                self.hook(call, nid + "/loop", scope, sibs, None, False)
            return [nid + "/loop"]
        if call.with_items is None:
            instances: list[tuple[str, Any, bool]] = [(prefix + call.name, None, False)]
        else:
            instances = [(f"{prefix}{call.name}({i}:{_item_label(it)})", it, True)
                         for i, it in enumerate(call.with_items)]
        return self.instances(call, scope, sibs, deps, instances)

    def instances(self, call: Call, scope: str, sibs: Mapping[str, tuple[str, ...]], deps: list[str],
                  instances: list[tuple[str, Any, bool]]) -> list[str]:
        callee = self.spec.templates[call.template]
        out: list[str] = []
        for nid, item, has_item in instances:
            if callee.is_leaf:
                self.add(Node(nid, LEAF, callee, call, scope, sibs, item, has_item), deps)
                out.append(nid)
                self.lifecycle(call, deps, nid, scope, sibs, item, has_item)
                if call.on_exit and not call.with_param and call.with_sequence is None:
                    self.hook(call, nid, scope, sibs, item, has_item)
            else:
                exit_id = nid + "/end"
                deferred = callee.name in self.stack
                self.add(Node(nid, ENTER, callee, call, scope, sibs, item, has_item, exit_id, deferred=deferred), deps)
                tails = [] if deferred else self.expand_children(callee, nid)
                self.add(Node(exit_id, EXIT, callee, call, scope, sibs, item, has_item, nid), tails or [nid])
                out.append(exit_id)
                self.lifecycle(call, deps, exit_id, scope, sibs, item, has_item)
                if call.on_exit and not call.with_param and call.with_sequence is None:
                    self.hook(call, exit_id, scope, sibs, item, has_item)
        return out

    def expand_children(self, callee: Template, nid: str) -> list[str]:
        self.stack.append(callee.name)
        try:
            return self.expand_calls(callee, nid, nid + ".", [nid])
        finally:
            self.stack.pop()


def compile_workflow(spec: WorkflowSpec) -> Graph:
    """Build the execution graph of a (validated) WorkflowTemplate."""
    if spec.deployable:
        raise UsageError(f"{spec.executable_id!r} is a ServingTemplate; it is deployed, not run")
    c = _Compiler(spec)
    root = spec.templates[spec.entrypoint]
    if root.is_leaf:
        c.add(Node(spec.entrypoint, LEAF, root, None, ""), [])
    else:
        c.stack.append(root.name)
        c.expand_calls(root, "", "", [])
        c.stack.pop()
    for h in spec.hooks:  # workflow-level lifecycle hooks: armed from the start (run.lifecycle)
        c.hook_node(f"hooks.{h.name}", h, "", {}, None, False, "", [])
    handler = spec.templates.get(spec.on_exit) if spec.on_exit else None
    if handler is not None:  # Argo: hooks.exit's own arguments, else the workflow's (resolve: call None)
        c.handler = True
        hc = Call(HANDLER, spec.on_exit, spec.exit_args, spec.exit_artifacts) \
            if spec.exit_args or spec.exit_artifacts else None
        if handler.is_leaf:
            c.add(Node(HANDLER, LEAF, handler, hc, ""), [])
        else:
            c.add(Node(HANDLER, ENTER, handler, hc, "", partner=HANDLER + "/end"), [])
            tails = c.expand_children(handler, HANDLER)
            c.add(Node(HANDLER + "/end", EXIT, handler, hc, "", partner=HANDLER), tails or [HANDLER])
    return Graph(spec, c.succ, c.pred, c.nodes, root, handler, inner=c.inner, after=c.after)


def select(graph: Graph, from_node: str) -> set[str]:
    """Node ids of ``from_node`` and everything downstream of it (for rerun --from)."""
    if from_node not in graph.nodes:
        raise UsageError(f"no step {from_node!r} in this execution",
                         hint=f"steps: {', '.join(n.id for n in graph.leaves())}")
    seen, todo = {from_node}, [from_node]
    while todo:
        for s in graph.succ[todo.pop()]:
            if s not in seen:
                seen.add(s)
                todo.append(s)
    return seen
