"""Safe expression language for Argo ``when`` and ``depends`` (never ``eval``).

Owns: tokenizing and parsing ``a == b && (c > 3 || !d)``-style expressions into a tiny AST and
evaluating it. Grammar (lowest precedence first): ``||``, ``&&``, comparison
(``== != < > <= >= =~ !~``), unary ``!``, atoms (quoted string, number, bare word, parentheses).
A bare word is a string (``when: "{{x}} == heads"``) or, in ``depends``, a task reference resolved
by a callback. A ``when`` from a template is parsed with its placeholders as holes
(:func:`parse_when`) and values are bound into the tree as literals, so a value can never change
the expression. Imports nothing from the package but :mod:`orchestrator.errors` and the
placeholder grammar.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.spec.placeholders import PLACEHOLDER

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>\|\||&&|==|!=|<=|>=|=~|!~|<|>|!|\(|\))
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<word>[^\s()!<>=&|"']+)
    )""",
    re.VERBOSE,
)
MAX_EXPR = 4096
MAX_DEPTH = 64


class ExprError(UsageError):
    """An expression that cannot be parsed."""

    code = "INVALID_EXPRESSION"


@dataclass(frozen=True)
class Node:
    op: str  # "or" "and" "not" "cmp" "lit" "word"
    args: tuple[object, ...]


def tokenize(text: str) -> list[tuple[str, str]]:
    if len(text) > MAX_EXPR:
        raise ExprError(f"expression longer than {MAX_EXPR} characters")
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos]!r} at offset {pos} in {text!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], source: str) -> None:
        self.t = tokens
        self.i = 0
        self.src = source
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ExprError(f"unexpected end of expression {self.src!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.t:
            raise ExprError("empty expression")
        node = self.or_()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r} in {self.src!r}")  # type: ignore[index]
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            node = Node("or", (node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            node = Node("and", (node, self.cmp()))
        return node

    def cmp(self) -> Node:
        node = self.unary()
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", ">", "<=", ">=", "=~", "!~"):
            self.take()
            node = Node("cmp", (tok[1], node, self.unary()))
        return node

    def unary(self) -> Node:
        tok = self.take()
        if tok in (("op", "!"), ("op", "(")):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprError(f"expression nested deeper than {MAX_DEPTH} levels")
            try:
                if tok == ("op", "!"):
                    return Node("not", (self.unary(),))
                node = self.or_()
                if self.take() != ("op", ")"):
                    raise ExprError(f"missing ')' in {self.src!r}")
                return node
            finally:
                self.depth -= 1
        if tok[0] == "op":
            raise ExprError(f"unexpected {tok[1]!r} in {self.src!r}")
        return Node("lit" if tok[0] == "str" else "word", (tok[1],))


def parse(text: str) -> Node:
    """Parse an expression; raises :class:`ExprError` with the offending text."""
    try:
        return _Parser(tokenize(text), text).parse()
    except RecursionError:
        raise ExprError("expression nested too deeply") from None


def _num(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(str(v))
    except (ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None  # "nan" and "inf" compare as the strings they are


def _truthy(v: object) -> bool:
    if isinstance(v, bool):
        return v
    return str(v).strip().lower() not in ("", "false", "0", "no")


def evaluate(node: Node, atom: Callable[[str], object] | None = None) -> object:
    """Evaluate ``node``; ``atom`` resolves bare words (default: the word itself, or a bool)."""
    try:
        return _evaluate(node, atom)
    except RecursionError:
        raise ExprError("expression nested too deeply") from None


def _evaluate(node: Node, atom: Callable[[str], object] | None = None) -> object:
    if node.op == "or":
        return _truthy(_evaluate(node.args[0], atom)) or _truthy(_evaluate(node.args[1], atom))  # type: ignore[arg-type]
    if node.op == "and":
        return _truthy(_evaluate(node.args[0], atom)) and _truthy(_evaluate(node.args[1], atom))  # type: ignore[arg-type]
    if node.op == "not":
        return not _truthy(_evaluate(node.args[0], atom))  # type: ignore[arg-type]
    if node.op == "lit":
        return node.args[0]
    if node.op == "word":
        word = str(node.args[0])
        if atom is not None:
            return atom(word)
        if word in ("true", "false"):
            return word == "true"
        return word
    op, left_n, right_n = node.args
    left, right = _evaluate(left_n, atom), _evaluate(right_n, atom)  # type: ignore[arg-type]
    if op in ("=~", "!~"):
        found = _regex(str(right)).search(str(left)) is not None
        return found if op == "=~" else not found
    ln, rn = _num(left), _num(right)
    a: object
    b: object
    if ln is not None and rn is not None:
        a, b = ln, rn
    else:
        a, b = str(left).lower() if isinstance(left, bool) else str(left), str(right).lower() if isinstance(right, bool) else str(right)
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    try:
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
    except TypeError:
        raise ExprError(f"cannot compare {left!r} {op} {right!r}") from None


def _regex(pattern: str) -> Any:
    """Compile with RE2: linear time like Argo's Go regexp, so a pattern cannot hang the runner."""
    import re2

    opts = re2.Options()
    opts.log_errors = False
    try:
        return re2.compile(pattern, opts)
    except re2.error as exc:
        raise ExprError(f"bad regular expression {pattern!r}: {exc}") from None


def evaluate_when(text: str) -> bool:
    """Evaluate a fully substituted ``when`` expression (trusted text only: see :func:`parse_when`)."""
    return _truthy(evaluate(parse(text)))


# ---------------------------------------------------------------- when with placeholders as holes
# A placeholder is masked by a private-use sentinel that the tokenizer reads as part of a word or a
# quoted string, so the *template's* text alone decides the expression's structure. Values are
# bound into the parsed tree afterwards as the literal text of the token they sit in:
# ``-p "cond=x' == 'x' || 'a"`` stays one string, whatever its quotes and operators.
_OPEN, _CLOSE = "\ue000", "\ue001"
_HOLE = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


@dataclass(frozen=True)
class WhenTemplate:
    """A parsed ``when`` whose placeholders are holes; ``holes[i]`` is the i-th placeholder's expression."""

    tree: Node
    holes: tuple[str, ...]


_HOLE_REPR = re.compile(r"\\ue000(\d+)\\ue001")  # the same hole inside a repr() of the text


def _unmask(text: str, holes: tuple[str, ...] | list[str]) -> str:
    def back(m: re.Match[str]) -> str:
        return "{{" + holes[int(m.group(1))] + "}}"

    return _HOLE_REPR.sub(back, _HOLE.sub(back, text))


@functools.lru_cache(maxsize=1024)
def parse_when(text: str) -> WhenTemplate:
    """Parse a template's ``when`` with its ``{{…}}`` placeholders as holes (ExprError if it does not parse)."""
    if _OPEN in text or _CLOSE in text:
        raise ExprError("expression contains a reserved character (U+E000/U+E001)")
    holes: list[str] = []

    def mask(m: re.Match[str]) -> str:
        holes.append(m.group(1))
        return f"{_OPEN}{len(holes) - 1}{_CLOSE}"

    masked = PLACEHOLDER.sub(mask, text)
    try:
        tree = parse(masked)
    except ExprError as exc:
        raise ExprError(_unmask(exc.message, holes)) from None
    return WhenTemplate(tree, tuple(holes))


def check_when(text: str) -> str | None:
    """Validation: why a template's ``when`` does not parse (None when it does)."""
    try:
        parse_when(text)
    except ExprError as exc:
        return exc.message
    return None


def _bind(node: Node, values: list[str]) -> Node:
    if node.op in ("lit", "word"):
        text = str(node.args[0])
        if _OPEN not in text:
            return node
        return Node(node.op, (_HOLE.sub(lambda m: values[int(m.group(1))], text),))
    if node.op == "cmp":
        op, left, right = node.args
        return Node("cmp", (op, _bind(left, values), _bind(right, values)))  # type: ignore[arg-type]
    return Node(node.op, tuple(_bind(a, values) for a in node.args))  # type: ignore[arg-type]


def evaluate_when_template(compiled: WhenTemplate, values: list[str]) -> bool:
    """Evaluate a parsed ``when`` with ``values[i]`` bound, as a literal, to hole ``i``."""
    if len(values) != len(compiled.holes):
        raise ExprError(f"{len(compiled.holes)} placeholder values expected, got {len(values)}")
    try:
        return _truthy(evaluate(_bind(compiled.tree, values)))
    except RecursionError:
        raise ExprError("expression nested too deeply") from None


DEPENDS_RESULTS = ("Succeeded", "Failed", "Skipped", "Errored", "Completed", "Daemoned", "Omitted",
                   "AnySucceeded", "AllFailed")


def depends_refs(node: Node) -> list[tuple[str, str]]:
    """(task, result) pairs referenced by a ``depends`` expression (result "" = bare)."""
    out: list[tuple[str, str]] = []
    if node.op == "word":
        word = str(node.args[0])
        task, _, result = word.partition(".")
        out.append((task, result))
    elif node.op in ("lit", "cmp"):
        raise ExprError("depends only allows task names, .Result suffixes, &&, || and !")
    else:
        for a in node.args:
            out.extend(depends_refs(a))  # type: ignore[arg-type]
    return out
