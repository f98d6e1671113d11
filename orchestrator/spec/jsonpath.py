"""A small JSONPath evaluator for Argo's ``jsonpath(json, path)`` expression function.

Owns: the path subset Argo's examples and documentation use — ``$``, ``.key``, ``['key']``,
``[n]`` (negative too), ``[a:b]``, ``[*]``/``.*``, ``..key`` and filters ``[?(@.k == 'v' && @.n > 3)]``
(comparisons ``== != < > <= >=`` joined by ``&&``/``||``). Like the Go library Argo uses, a path
that selects one element by keys and indexes only returns that element; a wildcard, slice or
filter returns a list. Pure, bounded (path length, result size), no ``eval``.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.errors import UsageError

MAX_PATH = 1024
MAX_RESULTS = 10_000


class JsonPathError(UsageError):
    code = "INVALID_EXPRESSION"


_STEP = re.compile(r"""
    \.\.(?P<deep>[A-Za-z0-9_$-]+|\*)
  | \.(?P<key>[A-Za-z0-9_$-]+|\*)
  | \[\s*(?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*\]
  | \[\s*(?P<slice>-?\d*\s*:\s*-?\d*)\s*\]
  | \[\s*(?P<index>-?\d+)\s*\]
  | \[\s*(?P<star>\*)\s*\]
  | \[\s*\?\s*\((?P<filter>.*?)\)\s*\]
""", re.VERBOSE)
_COND = re.compile(r"""\s*@((?:\.[A-Za-z0-9_$-]+|\['[^']*'\])*)\s*(?:(==|!=|<=|>=|<|>)\s*
    ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null))?\s*""", re.VERBOSE)


def _steps(path: str) -> list[tuple[str, Any]]:
    if len(path) > MAX_PATH:
        raise JsonPathError(f"jsonpath longer than {MAX_PATH} characters")
    p = path.strip()
    if not p.startswith("$"):
        raise JsonPathError(f"jsonpath must start with '$': {path[:60]!r}")
    pos, out = 1, []
    while pos < len(p):
        m = _STEP.match(p, pos)
        if not m:
            raise JsonPathError(f"jsonpath {path[:60]!r}: cannot read {p[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        v = m.group(kind)
        if kind == "quoted":
            out.append(("key", re.sub(r"\\(.)", r"\1", v[1:-1])))
        elif kind == "key" and v == "*":
            out.append(("star", None))
        elif kind == "deep":
            out.append(("deep", v))
        elif kind == "index":
            out.append(("index", int(v)))
        elif kind == "slice":
            lo, hi = (s.strip() for s in v.split(":"))
            out.append(("slice", (int(lo) if lo else None, int(hi) if hi else None)))
        elif kind == "filter":
            out.append(("filter", _parse_filter(v)))
        else:
            out.append((kind, v))
    return out


def _parse_filter(text: str) -> list[list[tuple[list[str], str, Any]]]:
    """``a && b || c`` -> [[a, b], [c]] (or of ands)."""
    ors = []
    for alt in re.split(r"\|\|", text):
        ands = []
        for cond in re.split(r"&&", alt):
            m = _COND.fullmatch(cond)
            if not m:
                raise JsonPathError(f"jsonpath filter {text[:60]!r}: cannot read {cond.strip()[:30]!r}")
            keys = re.findall(r"\.([A-Za-z0-9_$-]+)|\['([^']*)'\]", m.group(1) or "")
            lit = m.group(3)
            value: Any = None
            if lit is not None:
                import json

                value = re.sub(r"\\(.)", r"\1", lit[1:-1]) if lit[0] in "'\"" else json.loads(lit)
            ands.append(([a or b for a, b in keys], m.group(2) or "", value))
        ors.append(ands)
    return ors


def _holds(item: Any, cond: tuple[list[str], str, Any]) -> bool:
    keys, op, want = cond
    v = item
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return False
        v = v[k]
    if not op:
        return v is not None and v is not False
    try:
        return {"==": v == want, "!=": v != want, "<": v < want, ">": v > want,
                "<=": v <= want, ">=": v >= want}[op]
    except TypeError:
        return False


def _children(v: Any) -> list[Any]:
    return list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, list) else []


def _deep(v: Any, key: str, out: list[Any]) -> None:
    if len(out) > MAX_RESULTS:
        raise JsonPathError("jsonpath result too large")
    if isinstance(v, dict):
        if key == "*":
            out.extend(v.values())
        elif key in v:
            out.append(v[key])
    elif isinstance(v, list) and key == "*":
        out.extend(v)
    for c in _children(v):
        _deep(c, key, out)


def query(path: str, doc: Any) -> Any:
    """Evaluate ``path`` on ``doc``; one value for a definite path, else a list."""
    current = [doc]
    definite = True
    for kind, arg in _steps(path):
        nxt: list[Any] = []
        for v in current:
            if kind == "key":
                if isinstance(v, dict) and arg in v:
                    nxt.append(v[arg])
            elif kind == "index":
                if isinstance(v, list) and -len(v) <= arg < len(v):
                    nxt.append(v[arg])
            elif kind == "star":
                nxt.extend(_children(v))
            elif kind == "slice":
                if isinstance(v, list):
                    nxt.extend(v[arg[0]:arg[1]])
            elif kind == "deep":
                _deep(v, arg, nxt)
            elif kind == "filter":
                nxt.extend(x for x in _children(v) if any(all(_holds(x, c) for c in ands) for ands in arg))
        if kind not in ("key", "index"):
            definite = False
        if len(nxt) > MAX_RESULTS:
            raise JsonPathError("jsonpath result too large")
        current = nxt
    if definite:
        if not current:
            raise JsonPathError(f"jsonpath {path[:60]!r} selects nothing")
        return current[0]
    return current
