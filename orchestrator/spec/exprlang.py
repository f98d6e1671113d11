"""A safe evaluator for the expr-lang subset Argo documents for ``{{=…}}`` tags and ``expression:`` fields.

Owns: evaluating expressions (parsed by :mod:`orchestrator.spec.exprparse`, functions and value
conversions in :mod:`orchestrator.spec.exprfuncs`)
such as ``asInt(inputs.parameters.foo) * 10``, ``steps['flip-coin'].outputs.result == 'heads' ?
a : b``, ``jsonpath(workflow.parameters.json, '$[0].value') == 'true'``, ``x ?? 'fallback'``,
``lastRetry.message matches 'pod deleted'`` and ``filter([1, 3], {# > 1})``. Never Python
``eval``: the grammar is closed, names resolve only through the caller's ``resolve`` callback,
functions only from the table below. Input length, nesting depth, list sizes and string sizes are
capped, so a hostile template or value cannot hang or exhaust the process. Variables follow Argo:
a dotted name (``inputs.parameters.x``, ``steps.a.outputs.result``) is one key looked up whole;
its value is a string (parameters are strings), an item's value keeps its JSON type.
:func:`check` is the validation entry point (syntax and function names).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.spec.exprfuncs import (
    MAX_ITEMS,
    MAX_STR,
    SIMPLE,
    ExprLangError,
    Missing,
    _bool,
    _eq,
    _int,
    _list,
    _number,
    _str,
    to_text,
)
from orchestrator.spec.exprparse import MAX_DEPTH, MAX_LEN, check, names, parse, static_path, tokenize

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_LEN", "ExprLangError", "Missing", "check", "names", "parse", "run",
           "tokenize", "to_text"]


# ---------------------------------------------------------------- evaluation
Resolver = Callable[[str], Any]


def evaluate(node: tuple, resolve: Resolver, pred: Any = None) -> Any:
    try:
        return _ev(node, resolve, pred)
    except RecursionError:
        raise ExprLangError("expression nested too deeply") from None


def _ev(n: tuple, resolve: Resolver, pred: Any) -> Any:
    op = n[0]
    if op == "lit":
        return n[1]
    if op == "pred":
        return pred
    if op == "list":
        return [_ev(x, resolve, pred) for x in n[1]]
    if op == "map":
        return {str(_ev(k, resolve, pred)): _ev(v, resolve, pred) for k, v in n[1]}
    if op in ("var", "get"):
        path = static_path(n)
        if path is not None and path not in ("sprig",):
            try:
                return resolve(path)
            except Missing:
                if op == "var":
                    raise
        if op == "var":
            raise Missing(f"unknown name {n[1]!r}")
        base = _ev(n[1], resolve, pred)
        if base is None and n[3]:
            return None
        return _index(base, _ev(n[2], resolve, pred), path)
    if op == "slice":
        base = _ev(n[1], resolve, pred)
        lo, hi = _ev(n[2], resolve, pred), _ev(n[3], resolve, pred)
        if not isinstance(base, (list, str)):
            raise ExprLangError("only lists and strings can be sliced")
        return base[_int(lo) if lo is not None else None:_int(hi) if hi is not None else None]
    if op == "if":
        return _ev(n[2], resolve, pred) if _bool(_ev(n[1], resolve, pred)) else _ev(n[3], resolve, pred)
    if op == "un":
        v = _ev(n[2], resolve, pred)
        if n[1] == "!":
            return not _bool(v)
        x = _number(v)
        return -x if n[1] == "-" else x
    if op == "bin":
        return _binary(n[1], n[2], n[3], resolve, pred)
    if op == "call":
        return _call(n[1], n[2], resolve, pred)
    if op == "closure":
        raise ExprLangError("a predicate {…} is only valid as a function argument")
    raise ExprLangError(f"cannot evaluate {op!r}")


def _index(base: Any, key: Any, path: str | None) -> Any:
    if isinstance(base, str) and base[:1] in ("{", "["):
        try:
            base = json.loads(base)
        except ValueError:
            pass
    if isinstance(base, dict):
        if str(key) in base:
            return base[str(key)]
        raise Missing(f"{path or 'the value'} has no value" if path else f"no key {key!r}")
    if isinstance(base, (list, str)) and not isinstance(key, bool) and isinstance(key, (int, float)):
        i = _int(key)
        if -len(base) <= i < len(base):
            return base[i]
        raise ExprLangError(f"index {i} out of range (length {len(base)})")
    raise Missing(f"{path or 'the value'} has no value")


def _binary(op: str, ln: tuple, rn: tuple, resolve: Resolver, pred: Any) -> Any:
    if op == "??":
        try:
            v = _ev(ln, resolve, pred)
        except Missing:
            v = None
        return _ev(rn, resolve, pred) if v is None else v
    if op == "||":
        return _bool(_ev(ln, resolve, pred)) or _bool(_ev(rn, resolve, pred))
    if op == "&&":
        return _bool(_ev(ln, resolve, pred)) and _bool(_ev(rn, resolve, pred))
    a, b = _ev(ln, resolve, pred), _ev(rn, resolve, pred)
    if op == "==":
        return _eq(a, b)
    if op == "!=":
        return not _eq(a, b)
    if op in ("in", "not in"):
        found = (str(a) in b) if isinstance(b, str) else (a in b.keys() if isinstance(b, dict) else
                                                          any(_eq(a, x) for x in _list(b)))
        return found if op == "in" else not found
    if op == "matches":
        from orchestrator.spec.expr import _regex

        return _regex(_str(b)).search(_str(a)) is not None
    if op == "contains":
        return _str(b) in _str(a)
    if op == "startsWith":
        return _str(a).startswith(_str(b))
    if op == "endsWith":
        return _str(a).endswith(_str(b))
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STR:
            raise ExprLangError("string too long")
        return a + b
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return _list(a + b)
    if op in ("<", ">", "<=", ">=") and isinstance(a, str) and isinstance(b, str):
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    x, y = _number(a), _number(b)
    if op in ("<", ">", "<=", ">="):
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            return x / y  # expr-lang: always a float
        if op == "%":
            return _int(x) % _int(y)
        if abs(y) > 1024 or abs(x) > 2 ** 64:
            raise ExprLangError("power too large")
        return float(x) ** y
    except ZeroDivisionError:
        raise ExprLangError("division by zero") from None


def _closure_fn(name: str, args: tuple, resolve: Resolver, pred: Any) -> Any:
    items = _list(_ev(args[0], resolve, pred))
    if len(args) != 2 or args[1][0] != "closure":
        raise ExprLangError(f"{name}(list, {{predicate}}) expected")
    body = args[1][1]
    values = [_ev(body, resolve, x) for x in items]
    if name == "map":
        return values
    flags = [_bool(v) for v in values]
    if name == "filter":
        return [x for x, f in zip(items, flags) if f]
    return {"all": all(flags), "any": any(flags), "none": not any(flags), "count": sum(flags)}[name]




def _call(name: str, args: tuple, resolve: Resolver, pred: Any) -> Any:
    if name in ("filter", "map", "all", "any", "none", "count"):
        return _closure_fn(name, args, resolve, pred)
    fn = SIMPLE.get(name)
    if fn is None:
        raise ExprLangError(f"function {name!r} is not supported")
    values = [_ev(a, resolve, pred) for a in args]
    try:
        return fn(*values)
    except TypeError:
        raise ExprLangError(f"{name}: wrong number or kind of arguments") from None
    except (ValueError, UnicodeError) as exc:
        raise ExprLangError(f"{name}: {exc}") from None


def run(text: str, resolve: Resolver) -> Any:
    """Parse and evaluate ``text`` (the value, with its type)."""
    return evaluate(parse(text), resolve)
