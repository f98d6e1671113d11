"""Expr-lang texts holding Argo ``{{…}}`` placeholders, compiled once, values never spliced in.

Owns: compiling a lifecycle hook's ``expression`` or a ``retryStrategy.expression`` into an AST in
which every placeholder is a reserved name (``$__ph0``, ``$__ph1``, …) bound to its value only at
evaluation (:func:`bind`). A placeholder inside a quoted literal (``'env-{{x}}'``) turns that literal
into a concatenation of its text pieces and the value, so the lexer only ever sees the template
author's text: a parameter value can never close a string or change the expression's structure
(DESIGN: a parameter value never changes a command's structure), and any character (``'``, a
backtick, ``é``) compares as itself. A bare placeholder's value is typed as Argo's textual
substitution reads it in the benign case: ``true``/``false`` and numbers as themselves, any other
text a string. :attr:`Compiled.names` lists the names the expression reads (the placeholders' own
included), for callers that re-evaluate only when one of them changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.spec import placeholders
from orchestrator.spec.exprfuncs import ExprLangError
from orchestrator.spec.exprparse import names, parse

HOLE = "$__ph"
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Compiled:
    """An expression parsed once: its AST, its placeholders (text, inside a quoted literal?)."""

    tree: tuple
    holes: tuple[tuple[str, bool], ...]
    names: tuple[str, ...]


def compile_text(text: str) -> Compiled:
    """Parse ``text`` with its placeholders as reserved names (ExprLangError when it is no expression)."""
    if HOLE in text:
        raise ExprLangError(f"{HOLE!r} is reserved in an expression")
    holes: list[tuple[str, bool]] = []
    out: list[str] = []
    pos = 0

    def hole(ex: str, quoted: bool) -> str:
        holes.append((ex, quoted))
        return f"{HOLE}{len(holes) - 1}"

    while pos < len(text):
        ch = text[pos]
        m = placeholders.PLACEHOLDER.match(text, pos) if text.startswith("{{", pos) else None
        if m:
            out.append(f" {hole(m.group(1), False)} ")
            pos = m.end()
        elif ch in "'\"`":
            end, parts = _literal(text, pos, hole)
            out.append(parts)
            pos = end
        else:
            out.append(ch)
            pos += 1
    tree = parse("".join(out))
    read = [n for n in names(tree) if not n.startswith(HOLE)]
    for ex, _ in holes:
        read.extend(_tag_names(ex))
    return Compiled(tree, tuple(holes), tuple(dict.fromkeys(read)))


def _literal(text: str, start: int, hole: Callable[[str, bool], str]) -> tuple[int, str]:
    """The quoted literal opening at ``start``: (its end, its source with placeholders as names)."""
    q, j, seg, pieces, found = text[start], start + 1, start + 1, [], False
    while j < len(text) and text[j] != q:
        m = placeholders.PLACEHOLDER.match(text, j) if text.startswith("{{", j) else None
        if q != "`" and text.startswith("\\{{", j) and placeholders.PLACEHOLDER.match(text, j + 1):
            raise ExprLangError("a placeholder right after a backslash in a string literal")
        if m:
            body = text[seg:j]
            if body:
                pieces.append(q + body + q)
            pieces.append(hole(m.group(1), True))
            found, j = True, m.end()
            seg = j
        else:
            j += 2 if text[j] == "\\" and q != "`" else 1
    if j >= len(text):  # unterminated: left to the lexer's error
        return len(text), text[start:]
    if not found:
        return j + 1, text[start:j + 1]
    if text[seg:j]:
        pieces.append(q + text[seg:j] + q)
    return j + 1, "(" + " + ".join(pieces) + ")"


def _tag_names(ex: str) -> list[str]:
    """The names a placeholder reads: itself, or an expression tag's (``=…``) names."""
    ex = ex.strip()
    if not ex.startswith("="):
        return [ex]
    try:
        return names(parse(ex[1:]))
    except ExprLangError:
        return ["?"]  # unknown: a caller re-evaluates it on every change


def typed(value: str) -> Any:
    """A bare placeholder's value: true/false/a number as itself, any other text a string."""
    v = value.strip()
    if v in ("true", "false"):
        return v == "true"
    if _NUMBER.fullmatch(v):
        return float(v) if "." in v else int(v)
    return value


def bind(compiled: Compiled, value: Callable[[str], str]) -> dict[str, Any]:
    """The reserved names and their values (``value(placeholder)``: its text; its errors propagate)."""
    return {f"{HOLE}{i}": (str(v) if quoted else typed(str(v)))
            for i, (ex, quoted) in enumerate(compiled.holes) for v in (value(ex.strip()),)}
