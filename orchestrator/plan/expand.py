"""Run-time growth of an execution graph: loops over lists known only when they start, and
recursive calls compiled one level at a time.

Owns: the items of ``withParam`` (a JSON list from a parameter, a previous step's output or an
expression) and ``withSequence`` (``count``/``start``/``end``/``format``), evaluated in the caller's
scope, and the nodes added for them (a LOOP node's instances, a deferred ENTER's children) with the
new edges to the node that waits for them. The runner adds the new nodes to its bookkeeping.
Pure: nothing here starts a process or writes state.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.plan.graph import EXIT, LOOP, MAX_NODES, Graph, Node, _Compiler, _item_label
from orchestrator.plan.resolve import Context, ResolveError
from orchestrator.spec import placeholders

MAX_DEPTH = 100  # recursive calls nested deeper than this fail (Argo's coinflip ends after a few)
_GO_VERB = re.compile(r"%(?P<flags>[-+ 0#]*)(?P<width>\d*)(?:\.(?P<prec>\d+))?(?P<verb>[dxXobsv])")


def loop_items(ctx: Context, node: Node) -> list[Any]:
    """The items a LOOP node runs its call for."""
    call = node.call
    assert call is not None and node.kind == LOOP
    if call.with_param:
        text = placeholders.substitute(call.with_param, lambda ex: ctx.caller(node, ex))
        try:
            items = json.loads(text)
        except ValueError:
            raise ResolveError(f"withParam {call.with_param!r} is not a JSON list: {text[:120]!r}") from None
        if not isinstance(items, list):
            raise ResolveError(f"withParam {call.with_param!r} is not a JSON list: {text[:120]!r}")
    else:
        fields = {k: placeholders.substitute(v, lambda ex: ctx.caller(node, ex)).strip()
                  for k, v in call.with_sequence or ()}
        items = sequence(fields)
    if len(items) > MAX_NODES:
        raise ResolveError(f"the loop has {len(items)} items, more than {MAX_NODES}")
    return items


def _int(fields: dict[str, str], key: str, default: int | None = None) -> int | None:
    if key not in fields or fields[key] == "":
        return default
    try:
        return int(fields[key])
    except ValueError:
        raise ResolveError(f"withSequence.{key} {fields[key][:40]!r} is not a whole number") from None


def sequence(fields: dict[str, str]) -> list[str]:
    """Argo's withSequence: ``count`` numbers from ``start`` (default 0), or ``start``..``end``
    inclusive (descending when end < start), each formatted with ``format`` (printf, default %d)."""
    start = _int(fields, "start", 0) or 0
    count, end = _int(fields, "count"), _int(fields, "end")
    if count is not None and end is not None:
        raise ResolveError("withSequence: give count or end, not both")
    if count is not None:
        if count < 0:
            raise ResolveError(f"withSequence.count {count} is negative")
        if count > MAX_NODES:
            raise ResolveError(f"withSequence.count {count} is more than {MAX_NODES}")
        numbers = list(range(start, start + count))
    elif end is not None:
        if abs(end - start) >= MAX_NODES:
            raise ResolveError(f"withSequence from {start} to {end} is more than {MAX_NODES} items")
        numbers = list(range(start, end + 1)) if end >= start else list(range(start, end - 1, -1))
    else:
        raise ResolveError("withSequence needs count or end")
    fmt = fields.get("format", "")
    return [_format(fmt, n) for n in numbers] if fmt else [str(n) for n in numbers]


def _format(fmt: str, n: int) -> str:
    """A Go printf format with the number (``%02d``, ``test-%X``, ``%v``); ``%%`` stays a percent sign."""
    count = 0

    def conv(m: re.Match[str]) -> str:
        nonlocal count
        if m.group(0) == "%%":
            return "%%"
        count += 1
        return m.group(0)[:-1].replace("#", "") + ("d" if m.group("verb") in "vb" else m.group("verb"))

    py = re.sub(r"%%|" + _GO_VERB.pattern, conv, fmt)
    try:
        return py % ((n,) * count)
    except (TypeError, ValueError):
        raise ResolveError(f"withSequence.format {fmt[:40]!r} is not a printf format for one number") from None


def expand_loop(graph: Graph, node: Node, items: list[Any]) -> tuple[list[str], list[str]]:
    """Add the instances of LOOP ``node``; returns (new node ids, instance ids to wait for)."""
    assert node.call is not None
    before = set(graph.nodes)
    prefix = node.id[:len(node.id) - len(node.call.name)]
    c = _Compiler.over(graph, node.handler, _stack(graph, node))
    tails = c.instances(node.call, node.scope, node.siblings, [node.id],
                        [(f"{prefix}{node.call.name}({i}:{_item_label(it)})", it, True) for i, it in enumerate(items)])
    return [n for n in graph.nodes if n not in before], tails


def expand_deferred(graph: Graph, node: Node) -> tuple[list[str], list[str]]:
    """Compile the children of a deferred (recursive) ENTER ``node``; returns (new ids, tails)."""
    stack = _stack(graph, node)
    if stack.count(node.template.name) > MAX_DEPTH:
        raise ResolveError(f"template {node.template.name!r} calls itself more than {MAX_DEPTH} levels deep")
    before = set(graph.nodes)
    c = _Compiler.over(graph, node.handler, stack[:-1])
    tails = c.expand_children(node.template, node.id)
    return [n for n in graph.nodes if n not in before], tails


def _stack(graph: Graph, node: Node) -> list[str]:
    """Templates of the calls enclosing ``node`` (outermost first), ``node``'s own last."""
    out = [node.template.name]
    scope = node.scope
    while scope:
        n = graph.nodes[scope]
        out.append(n.template.name)
        scope = n.scope
    out.append(graph.root_template.name)
    return out[::-1]


def connect(graph: Graph, tails: list[str], waiter: str) -> None:
    """``waiter`` (a LOOP_END or an EXIT) also waits for ``tails``."""
    for t in tails:
        if waiter not in graph.succ[t]:
            graph.succ[t].append(waiter)
            graph.pred[waiter].append(t)


__all__ = ["EXIT", "connect", "expand_deferred", "expand_loop", "loop_items", "sequence"]
