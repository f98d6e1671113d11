"""Parsing of the expr-lang subset (:mod:`orchestrator.spec.exprlang`): tokens -> a tuple AST.

Owns: the grammar — ternary ``?:``, ``??``, ``||``/``or``, ``&&``/``and``, comparisons and
``in``/``matches``/``contains``/``startsWith``/``endsWith``, ``+ - * / % **``, unary ``! - +``,
member access ``a.b``/``a?.b``/``a['b']``/``a[0]``/``a[1:2]``, calls of known functions only,
list and map literals, predicates ``{# > 1}`` — with length and nesting caps; the static names
an expression reads (for validation).
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.spec.exprfuncs import CLOSURES, FUNCTIONS, ExprLangError

MAX_LEN = 4096
MAX_DEPTH = 48

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>\?\?|\?\.|\.\.|==|!=|<=|>=|&&|\|\||\*\*|[-+*/%^<>!?:.,()\[\]{}\#])
)""", re.VERBOSE)
_ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}
WORD_OPS = {"and": "&&", "or": "||", "not": "!", "in": "in", "matches": "matches", "contains": "contains",
            "startsWith": "startsWith", "endsWith": "endsWith"}
_BINARY = [  # lowest precedence first
    ("??",), ("||",), ("&&",), ("==", "!=", "<", ">", "<=", ">=", "in", "not in", "matches", "contains",
                                 "startsWith", "endsWith"),
    ("+", "-"), ("*", "/", "%"), ("**", "^"),
]


def tokenize(text: str) -> list[tuple[str, Any]]:
    if len(text) > MAX_LEN:
        raise ExprLangError(f"expression longer than {MAX_LEN} characters")
    out: list[tuple[str, Any]] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprLangError(f"unexpected character {text[pos]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        v = m.group(kind)
        if kind == "num":
            out.append(("lit", int(v, 16) if v[:2] in ("0x", "0X") else float(v) if any(c in v for c in ".eE") else int(v)))
        elif kind == "str":
            body = v[1:-1]
            out.append(("lit", body if v[0] == "`" else re.sub(r"\\(.)", lambda e: _ESC.get(e.group(1), e.group(1)), body)))
        elif kind == "name" and v in ("true", "false"):
            out.append(("lit", v == "true"))
        elif kind == "name" and v == "nil":
            out.append(("lit", None))
        elif kind == "name" and v in WORD_OPS:
            out.append(("op", WORD_OPS[v]))
        else:
            out.append((kind, v))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.t, self.i, self.depth = tokens, 0, 0

    def peek(self, k: int = 0) -> tuple[str, Any] | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def take(self, want: str | None = None) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None or (want is not None and tok != ("op", want)):
            raise ExprLangError(f"expected {want!r}" if want else "unexpected end of expression")
        self.i += 1
        return tok

    def at(self, op: str) -> bool:
        return self.peek() == ("op", op)

    def expr(self) -> tuple:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprLangError(f"expression nested deeper than {MAX_DEPTH} levels")
        try:
            cond = self.binary(0)
            if self.at("?"):
                self.take()
                yes = self.expr()
                self.take(":")
                return ("if", cond, yes, self.expr())
            return cond
        finally:
            self.depth -= 1

    def binary(self, level: int) -> tuple:
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            tok = self.peek()
            op = tok[1] if tok and tok[0] == "op" else None
            if op == "!" and self.peek(1) == ("op", "in") and "in" in _BINARY[level]:
                self.i += 2
                op = "not in"
            elif op in _BINARY[level]:
                self.take()
            else:
                return left
            right = self.binary(level + 1) if op not in ("**", "^") else self.binary(level)
            left = ("bin", op, left, right)

    def unary(self) -> tuple:
        if self.at("!") or self.at("-") or self.at("+"):
            op = self.take()[1]
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprLangError(f"expression nested deeper than {MAX_DEPTH} levels")
            try:
                return ("un", op, self.unary())
            finally:
                self.depth -= 1
        return self.postfix(self.primary())

    def postfix(self, node: tuple) -> tuple:
        while True:
            if self.at(".") or self.at("?."):
                optional = self.take()[1] == "?."
                kind, name = self.take()
                if kind != "name":
                    raise ExprLangError(f"expected a name after '.', got {name!r}")
                node = ("get", node, ("lit", name), optional)
            elif self.at("["):
                self.take()
                if self.at(":"):
                    self.take()
                    node = ("slice", node, ("lit", None), ("lit", None) if self.at("]") else self.expr())
                else:
                    key = self.expr()
                    if self.at(":"):
                        self.take()
                        node = ("slice", node, key, ("lit", None) if self.at("]") else self.expr())
                    else:
                        node = ("get", node, key, False)
                self.take("]")
            elif self.at("(") and node[0] in ("var", "get"):
                self.take()
                name = _fname(node)
                args: list[tuple] = []
                while not self.at(")"):
                    args.append(self.closure() if self.at("{") and name in CLOSURES and args else self.expr())
                    if not self.at(")"):
                        self.take(",")
                self.take(")")
                node = ("call", name, tuple(args))
            else:
                return node

    def closure(self) -> tuple:
        self.take("{")
        body = self.expr()
        self.take("}")
        return ("closure", body)

    def primary(self) -> tuple:
        kind, v = self.take()
        if kind == "lit":
            return ("lit", v)
        if kind == "name":
            return ("var", v)
        if v == "#":
            return ("pred",)
        if v == "(":
            node = self.expr()
            self.take(")")
            return node
        if v == "[":
            items: list[tuple] = []
            while not self.at("]"):
                items.append(self.expr())
                if not self.at("]"):
                    self.take(",")
            self.take("]")
            return ("list", tuple(items))
        if v == "{":
            pairs: list[tuple[tuple, tuple]] = []
            while not self.at("}"):
                k = self.take()
                self.take(":")
                pairs.append((("lit", k[1]), self.expr()))
                if not self.at("}"):
                    self.take(",")
            self.take("}")
            return ("map", tuple(pairs))
        raise ExprLangError(f"unexpected {v!r}")


def _fname(node: tuple) -> str:
    if node[0] == "var":
        return str(node[1])
    if node[0] == "get" and node[1][0] == "var" and node[2][0] == "lit":
        return f"{node[1][1]}.{node[2][1]}"
    raise ExprLangError("only named functions can be called")


def parse(text: str) -> tuple:
    p = _Parser(tokenize(text))
    if not p.t:
        raise ExprLangError("empty expression")
    try:
        node = p.expr()
    except RecursionError:
        raise ExprLangError("expression nested too deeply") from None
    if p.peek() is not None:
        raise ExprLangError(f"unexpected {p.peek()[1]!r}")  # type: ignore[index]
    _check_calls(node)
    return node


def _check_calls(node: Any) -> None:
    if isinstance(node, tuple) and node:
        if node[0] == "call" and node[1] not in FUNCTIONS:
            raise ExprLangError(f"function {node[1]!r} is not supported",
                                hint=f"supported: {', '.join(sorted(FUNCTIONS))}")
        for part in node[1:]:
            _check_calls(part)


def check(text: str) -> str | None:
    """Validation: why ``text`` is not an expression this evaluator runs (None when it is)."""
    try:
        parse(text)
    except ExprLangError as exc:
        return exc.message + (f" ({exc.hint})" if getattr(exc, "hint", "") else "")
    return None


def static_path(node: tuple) -> str | None:
    """``inputs.parameters['a-b']`` -> ``"inputs.parameters.a-b"``; None if not a static name chain."""
    if node[0] == "var":
        return str(node[1])
    if node[0] == "get" and node[2][0] == "lit" and isinstance(node[2][1], str):
        base = static_path(node[1])
        return None if base is None else f"{base}.{node[2][1]}"
    return None


def names(node: Any) -> list[str]:
    """The longest static variable paths an expression reads (for validation of references)."""
    out: list[str] = []
    if isinstance(node, tuple) and node:
        path = static_path(node) if node[0] in ("var", "get") else None
        if path is not None:
            return [path]
        for part in node[1:] if node[0] != "call" else node[2]:
            out.extend(names(part))
    return out
