"""Graph helpers of the semantic checks: cycle search and reachability, without networkx.

Owns two small iterative algorithms over ``{node: [successor, ...]}`` dicts (no recursion, so no
recursion limit on large DAGs). Imports nothing.
"""

from __future__ import annotations

__all__ = ["find_cycle", "reaches"]


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """The first cycle a depth-first search meets, as ``[a, b, …, a]`` (nodes and edges in
    insertion order, as networkx's ``find_cycle``), or ``[]``. Iterative: no recursion limit."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in graph:
        if state.get(start):
            continue
        path, stack = [start], [iter(graph.get(start, ()))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph.get(nxt, ())))
    return []


def reaches(graph: dict[str, list[str]], src: str, dst: str) -> bool:
    """Whether ``dst`` is reachable from ``src`` (a node reaches itself)."""
    seen, todo = {src}, [src]
    while todo:
        node = todo.pop()
        if node == dst:
            return True
        for n in graph.get(node, ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return False
