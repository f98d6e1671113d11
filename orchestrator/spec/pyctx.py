"""Where each ``{{…}}`` placeholder sits in Python code: code, comment or a string literal.

Owns: a small lexer of Python source (a ``script.source`` run by python, or ``python -c CODE``)
that reports, for every placeholder, whether Python would read it as code, as a comment, or
inside a string literal — and then which literal (its prefix ``r b u f t`` and its quote, single
or triple) and how many backslashes precede it. Only a placeholder inside a literal can take a
user's value safely (escaped for that literal by :mod:`orchestrator.plan.splice`); a value
anywhere else would be Python code, which :mod:`orchestrator.spec.splice` refuses at validation.
An f-string's replacement field (``f"{…}"``) is code. A literal passed straight to a call that runs
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


def python_holes(code: str) -> list[PyHole]:
    """Every placeholder of ``code`` with where Python reads it."""
    holes: list[PyHole] = []
    i, n = 0, len(code)
    quote = ""  # inside a string literal: its closing quote
    pfx = ""
    field = 0  # inside an f-string: depth of the replacement field
    calls: list[tuple[int, str]] = []  # open parentheses: (index, the dotted name called)
    spans: dict[int, int] = {}  # open parenthesis -> its closing one
    inside: dict[int, tuple[tuple[int, str], ...]] = {}  # hole index -> the calls around it
    while i < n:
        m = PLACEHOLDER.match(code, i)
        if m:
            if quote and not field:
                k = i
                while k > 0 and code[k - 1] == "\\":
                    k -= 1
                inside[len(holes)] = tuple(calls)
                holes.append(PyHole(m.start(), m.end(), m.group(1), STRING, pfx, quote, i - k))
            else:
                holes.append(PyHole(m.start(), m.end(), m.group(1), CODE))
            i = m.end()
            continue
        c = code[i]
        if not quote:
            if c == "#":
                end = code.find("\n", i)
                end = n if end < 0 else end
                for cm in PLACEHOLDER.finditer(code, i, end):
                    holes.append(PyHole(cm.start(), cm.end(), cm.group(1), COMMENT))
                i = end
            elif c in "'\"":
                quote = code[i:i + 3] if code[i:i + 3] in ("'''", '"""') else c
                pfx = _prefix(code, i)
                field = 0
                i += len(quote)
            else:
                if c == "(":
                    calls.append((i, _callee(code, i)))
                elif c == ")" and calls:
                    spans[calls.pop()[0]] = i
                i += 1
            continue
        formatted = bool({"f", "t"} & set(pfx.lower()))
        if field:
            if c == "{":
                field += 1
            elif c == "}":
                field -= 1
            elif code.startswith(quote, i):
                i += len(quote)  # the literal ends (an f-string field cannot hold its own quote)
                quote, field = "", 0
                continue
            i += 1
            continue
        if c == "\\":
            i += 1 if PLACEHOLDER.match(code, i + 1) else 2
        elif formatted and c == "{":
            if code.startswith("{{", i):
                i += 2
            else:
                field = 1
                i += 1
        elif code.startswith(quote, i):
            i += len(quote)
            quote = ""
        elif c == "\n" and len(quote) == 1:
            quote = ""  # an unterminated single-quoted literal ends at the line (a syntax error)
            i += 1
        else:
            i += 1
    for k, around in inside.items():
        for start, name in reversed(around):
            call = code[start:spans.get(start, n)]
            last = name.rsplit(".", 1)[-1]
            if last in _RUNS_CODE or (last in _RUNS_SHELL_IF and _SHELL_TRUE.search(call)):
                holes[k] = replace(holes[k], reparsed=name)
                break
    return holes
