"""Where each ``{{…}}`` placeholder sits in Python code: code, comment or a string literal.

Owns: a small lexer of Python source (a ``script.source`` run by python, or ``python -c CODE``)
that reports, for every placeholder, whether Python would read it as code, as a comment, or
inside a string literal — and then which literal (its prefix ``r b u f t`` and its quote, single
or triple) and how many backslashes precede it. Only a placeholder inside a literal can take a
user's value safely (escaped for that literal by :mod:`orchestrator.plan.splice`); a value
anywhere else would be Python code, which :mod:`orchestrator.spec.splice` refuses at validation.
An f-string's replacement field (``f"{…}"``) is code, everything in it too (nested literals, the
format spec); fields are lexed with PEP 701 (3.12) semantics, and code the lexer cannot classify
with confidence has every placeholder read as code (fail closed). A literal passed straight to a call that runs
it (``os.system``, ``eval``, ``exec``, ``subprocess.run(…, shell=True)`` …) is code too: the hole
records the call (``reparsed``). Pure; imports only the placeholder grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from orchestrator.spec.placeholders import PLACEHOLDER

CODE, COMMENT, STRING = "code", "comment", "string"
_PREFIXES = {"", "r", "u", "b", "br", "rb", "f", "fr", "rf", "t", "tr", "rt"}
# Calls that run a string argument as code: always, or (subprocess) with shell=True.
_RUNS_CODE = {"system", "popen", "eval", "exec", "compile", "getoutput", "getstatusoutput", "execfile",
              "run_command", "spawn"}
_RUNS_SHELL_IF = {"run", "call", "check_call", "check_output", "Popen"}
_SHELL_TRUE = re.compile(r"\bshell\s*=\s*True\b")


@dataclass(frozen=True)
class PyHole:
    """One placeholder in Python code."""

    start: int
    end: int
    expr: str
    context: str  # CODE | COMMENT | STRING
    prefix: str = ""  # STRING: the literal's prefix as written (e.g. "rb", "F")
    quote: str = ""  # STRING: ', ", ''' or \"\"\"
    backslashes: int = 0  # STRING: backslashes right before the placeholder
    reparsed: str = ""  # STRING: the call that runs the literal as code (``os.system``, ``eval`` …)

    @property
    def raw(self) -> bool:
        return "r" in self.prefix.lower()

    @property
    def is_bytes(self) -> bool:
        return "b" in self.prefix.lower()

    @property
    def formatted(self) -> bool:
        return bool({"f", "t"} & set(self.prefix.lower()))


def _prefix(text: str, quote_at: int) -> str:
    """The string prefix written right before the quote at ``quote_at`` ("" if none)."""
    j = quote_at
    while j > 0 and text[j - 1].isalpha() and quote_at - j < 2:
        j -= 1
    pfx = text[j:quote_at]
    if pfx.lower() not in _PREFIXES:
        return ""
    if j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_"):
        return ""  # part of an identifier (``bar"…"`` is not a prefix)
    return pfx


def _callee(code: str, paren: int) -> str:
    """The dotted name right before the parenthesis at ``paren`` ("" if none)."""
    j = paren
    while j > 0 and code[j - 1] in " \t":
        j -= 1
    k = j
    while k > 0 and (code[k - 1].isalnum() or code[k - 1] in "_."):
        k -= 1
    return code[k:j]


class _Unsure(Exception):
    """The lexer cannot classify the code confidently: every placeholder in it is treated as code."""


_QUOTES = "'\""
_NAMED = re.compile(r"\\N\{[A-Za-z0-9 \-]+\}")  # a named escape \N{…} of a non-raw str literal
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_MAX_DEPTH = 16  # f-strings nested in fields nested in f-strings …: deeper is refused, not guessed


class _Lexer:
    """Python source read with PEP 701 (3.12) f-string semantics, a superset of what 3.11 accepts:
    inside a replacement field any quote starts a nested literal, braces inside it do not count,
    and the field ends at its own ``}`` (after an optional ``!r`` conversion and a format spec that
    may hold nested fields). A placeholder anywhere inside a field is code."""

    def __init__(self, code: str) -> None:
        self.code, self.n = code, len(code)
        self.holes: list[PyHole] = []
        self.calls: list[tuple[int, str]] = []  # open parentheses: (index, the dotted name called)
        self.spans: dict[int, int] = {}  # open parenthesis -> its closing one
        self.inside: dict[int, tuple[tuple[int, str], ...]] = {}  # hole index -> the calls around it

    def code_hole(self, m: re.Match[str]) -> int:
        self.holes.append(PyHole(m.start(), m.end(), m.group(1), CODE))
        return m.end()

    def top(self) -> None:
        code, n, i = self.code, self.n, 0
        while i < n:
            m = PLACEHOLDER.match(code, i)
            if m:
                i = self.code_hole(m)
                continue
            c = code[i]
            if c == "#":
                end = code.find("\n", i)
                end = n if end < 0 else end
                for cm in PLACEHOLDER.finditer(code, i, end):
                    self.holes.append(PyHole(cm.start(), cm.end(), cm.group(1), COMMENT))
                i = end
            elif c in _QUOTES:
                i = self.string(i, 0)
            else:
                if c == "(":
                    self.calls.append((i, _callee(code, i)))
                elif c == ")" and self.calls:
                    self.spans[self.calls.pop()[0]] = i
                i += 1

    def string(self, at: int, depth: int) -> int:
        """Lex the literal whose quote is at ``at`` (``depth`` > 0: nested in a replacement field);
        the index right after its closing quote."""
        code, n = self.code, self.n
        if depth > _MAX_DEPTH:
            raise _Unsure
        quote = code[at:at + 3] if code[at:at + 3] in ("'''", '"""') else code[at]
        pfx = _prefix(code, at)
        low = pfx.lower()
        fmt, raw, byt = bool({"f", "t"} & set(low)), "r" in low, "b" in low
        j = at + len(quote)
        while True:
            if j >= n:
                raise _Unsure  # unterminated
            m = PLACEHOLDER.match(code, j)
            if m:
                if depth:
                    j = self.code_hole(m)
                    continue
                k = j
                while k > 0 and code[k - 1] == "\\":
                    k -= 1
                self.inside[len(self.holes)] = tuple(self.calls)
                self.holes.append(PyHole(m.start(), m.end(), m.group(1), STRING, pfx, quote, j - k))
                j = m.end()
                continue
            c = code[j]
            if c == "\\":
                if depth:
                    raise _Unsure  # a backslash in a field: a syntax error before 3.12
                nxt = code[j + 1:j + 2]
                if PLACEHOLDER.match(code, j + 1) or (fmt and nxt in ("{", "}")):
                    j += 1  # ``\{`` does not escape an f-string's brace
                elif nxt == "N" and not raw and not byt and code[j + 2:j + 3] == "{":
                    nm = _NAMED.match(code, j)
                    if not nm:
                        raise _Unsure
                    j = nm.end()
                else:
                    j += 2
            elif code.startswith(quote, j):
                return j + len(quote)
            elif c == "\n" and len(quote) == 1:
                raise _Unsure  # an unterminated literal (a syntax error)
            elif fmt and c == "{":
                j = j + 2 if code.startswith("{{", j) else self.field(j + 1, quote, depth + 1)
            elif fmt and c == "}":
                if not code.startswith("}}", j):
                    raise _Unsure  # a lone ``}`` in an f-string: a syntax error
                j += 2
            else:
                j += 1

    def field(self, j: int, quote: str, depth: int) -> int:
        """Lex a replacement field starting at ``j`` (after its ``{``) of an f-string quoted with
        ``quote``; the index right after its closing ``}``."""
        code, n = self.code, self.n
        if depth > _MAX_DEPTH:
            raise _Unsure
        brackets: list[str] = []
        while True:
            if j >= n:
                raise _Unsure
            m = PLACEHOLDER.match(code, j)
            if m:
                j = self.code_hole(m)
                continue
            c = code[j]
            if c in _QUOTES:
                j = self.string(j, depth)
                continue
            if c in "\\#" or (c == "\n" and len(quote) == 1):
                raise _Unsure
            if c in _CLOSE:
                brackets.append(_CLOSE[c])
            elif c in ")]}":
                if not brackets:
                    if c == "}":
                        return j + 1
                    raise _Unsure
                if brackets.pop() != c:
                    raise _Unsure
            elif not brackets and c == "!" and code[j + 1:j + 2] != "=":
                if code[j + 1:j + 2] not in ("r", "s", "a"):
                    raise _Unsure
                j += 2
                while j < n and code[j] in " \t":
                    j += 1
                if code[j:j + 1] == "}":
                    return j + 1
                if code[j:j + 1] != ":":
                    raise _Unsure
                return self.spec(j + 1, quote, depth)
            elif not brackets and c == ":":
                return self.spec(j + 1, quote, depth)
            j += 1

    def spec(self, j: int, quote: str, depth: int) -> int:
        """Lex a format spec starting at ``j`` (after its ``:``); the index right after the field's ``}``."""
        code, n = self.code, self.n
        while True:
            if j >= n:
                raise _Unsure
            m = PLACEHOLDER.match(code, j)
            if m:
                j = self.code_hole(m)
                continue
            c = code[j]
            if c == "{":
                if code.startswith("{{", j):
                    raise _Unsure
                j = self.field(j + 1, quote, depth + 1)
                continue
            if c == "}":
                return j + 1
            if c == "\\" or code.startswith(quote, j) or (c == "\n" and len(quote) == 1):
                raise _Unsure
            j += 1


def python_holes(code: str) -> list[PyHole]:
    """Every placeholder of ``code`` with where Python reads it.

    Fails closed: code the lexer cannot classify with confidence (an unterminated literal, odd
    nesting, a backslash or comment in an f-string field, a malformed ``\\N{…}``), or where it would
    see other placeholders than the substitution does, has every placeholder read as code."""
    lx = _Lexer(code)
    try:
        lx.top()
    except (_Unsure, RecursionError):
        lx.holes = []
    every = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(code)]
    if sorted((h.start, h.end) for h in lx.holes) != every:
        return [PyHole(m.start(), m.end(), m.group(1), CODE) for m in PLACEHOLDER.finditer(code)]
    holes = lx.holes
    for k, around in lx.inside.items():
        for start, name in reversed(around):
            call = code[start:lx.spans.get(start, len(code))]
            last = name.rsplit(".", 1)[-1]
            if last in _RUNS_CODE or (last in _RUNS_SHELL_IF and _SHELL_TRUE.search(call)):
                holes[k] = replace(holes[k], reparsed=name)
                break
    return holes
