"""The quoting structure of shell code: the nested frames a placeholder can sit in.

Owns: the names of a hole's context (``WORD``, ``DQUOTE``, ``SQUOTE``, ``ANSI``, ``HEREDOC``,
``LITERAL``), the :class:`Hole` record, the :class:`Frame` of one open construct (code, ``"…"``,
``'…'``, ``$'…'``, arithmetic, ``${…}``) and :class:`QuoteScanner`, which opens and closes those
frames character by character inside quotes, arithmetic and parameter expansions, and says which
context (and whether arithmetic) the open frames give a hole. What a *command* does with its words
is :mod:`orchestrator.spec.shellctx`'s lexer (built on this scanner) and
:mod:`orchestrator.spec.shellcmd`. Pure; imports only the placeholder grammar (must not import
plan, run or anything above spec).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.spec.placeholders import PLACEHOLDER

WORD, DQUOTE, SQUOTE, ANSI, HEREDOC, LITERAL = "word", "dquote", "squote", "ansi", "heredoc", "literal"


@dataclass(frozen=True)
class Hole:
    """One placeholder in shell code: its span in the text, its expression and its context."""

    start: int
    end: int
    expr: str
    context: str  # WORD | DQUOTE | SQUOTE | ANSI | HEREDOC | LITERAL
    numeric: bool = False  # read as an arithmetic expression by bash/ksh/zsh: only a number is safe
    delimiter: str = ""  # LITERAL: the line that ends the quoted here-document
    strip_tabs: bool = False  # LITERAL: ``<<-`` (leading tabs are stripped before comparing)
    reparsed: bool = False  # in a word parsed again as code: ``eval …``, ``bash -c "…"``, ``python -c "…"``
    refused: str = ""  # why a user value may not go here at all (a variable name, an interpreter's stdin …)


@dataclass
class Frame:
    """One open construct of shell code; the ``code`` fields track its current simple command."""

    kind: str  # "code" | "dq" | "sq" | "ansi" | "arith" | "param"
    close: str = ""  # code: "" (top), ")" ($( or subshell), "`"; arith: "))" or "]"
    depth: int = 0  # arith: open parentheses
    in_dq: bool = False  # param: the ${…} is inside double quotes
    op_seen: bool = False  # param: past the name, in the word part (${x:-WORD})
    arith: bool = False  # param: in an offset/length part (${x:N:M})
    words: list[str] = field(default_factory=list)  # code: words of the current simple command
    word: str = ""  # code: the current word so far
    test_from: int = -1  # code: index of the first hole inside [[ … ]]
    test_text: list[str] = field(default_factory=list)
    procsub: str = ""  # code: "<" or ">" for a ``<(…)``/``>(…)`` process substitution
    first: int = 0  # code: index of the first hole inside this frame
    wstart: int = -1  # code: where the current word starts in the text
    cmd_from: int = 0  # code: index of the first hole of the current command
    pipe_from: int = -1  # code: index of the first hole of the current pipeline (after a ``|``)
    herestr: list[int] = field(default_factory=list)  # code: holes in here-string words of this command
    in_herestr: bool = False  # code: the current word follows ``<<<``
    pipe_reads: str = ""  # code: an interpreter of the current pipeline that runs its stdin


class QuoteScanner:
    """The stack of open frames over ``text`` and the scanning of the quoted and arithmetic ones."""

    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0
        self.holes: list[Hole] = []
        self.stack = [Frame("code")]

    def push(self, frame: Frame, skip: int) -> None:
        if frame.kind == "code":
            frame.first = frame.cmd_from = len(self.holes)
        self.stack.append(frame)
        self.i += skip

    def pop(self, skip: int) -> None:
        if len(self.stack) > 1:
            self.stack.pop()
        self.i += skip

    def code_frame(self) -> Frame:
        return next(f for f in reversed(self.stack) if f.kind == "code")

    def quote_context(self) -> tuple[str, bool]:
        """(context, numeric) of a hole at the current position, as the open frames make it."""
        numeric = False
        for f in reversed(self.stack):
            if f.kind == "arith":
                numeric = True
            if f.kind == "param" and (not f.op_seen or f.arith):
                numeric = True
        top = self.stack[-1]
        if top.kind == "code":
            return WORD, numeric
        if top.kind == "dq" or (top.kind == "param" and top.in_dq):
            return DQUOTE, numeric
        if top.kind == "sq":
            return SQUOTE, numeric
        if top.kind == "ansi":
            return ANSI, numeric
        return WORD, numeric


    def advance(self) -> None:
        self.i += 1

    def escape(self) -> None:
        """A backslash: it escapes the next character, unless that starts a placeholder."""
        nxt = self.i + 1
        self.i += 1 if PLACEHOLDER.match(self.t, nxt) or nxt >= len(self.t) else 2

    def dollar(self, in_dq: bool) -> bool:
        """``$((``, ``$(``, ``${``, ``$[`` (and ``$'`` outside quotes); True if one was taken."""
        t, i = self.t, self.i
        if t.startswith("$((", i):
            self.push(Frame("arith", close="))"), 3)
        elif t.startswith("$(", i):
            self.push(Frame("code", close=")"), 2)
        elif t.startswith("${", i) and not PLACEHOLDER.match(t, i + 1):
            self.push(Frame("param", in_dq=in_dq), 2)
        elif t.startswith("$[", i):
            self.push(Frame("arith", close="]"), 2)
        elif t.startswith("$'", i) and not in_dq:
            self.push(Frame("ansi"), 2)
        else:
            return False
        return True

    def dq(self) -> None:
        c = self.t[self.i]
        if c == '"':
            return self.pop(1)
        if c == "\\":
            return self.escape()
        if c == "$" and self.dollar(in_dq=True):
            return None
        if c == "`":
            return self.push(Frame("code", close="`"), 1)
        return self.advance()

    def ansi(self) -> None:
        c = self.t[self.i]
        if c == "\\":
            return self.escape()
        if c == "'":
            return self.pop(1)
        return self.advance()

    def arith(self) -> None:
        t, f = self.t, self.stack[-1]
        c = t[self.i]
        if c == "$" and self.dollar(in_dq=False):
            return None
        if c == "`":
            return self.push(Frame("code", close="`"), 1)
        if c in "'\"":
            return self.push(Frame("sq" if c == "'" else "dq"), 1)
        if c == "(":
            f.depth += 1
        elif c == ")":
            if f.depth:
                f.depth -= 1
            elif f.close == "))" and t.startswith("))", self.i):
                return self.pop(2)
            elif f.close == "))":
                return self.pop(1)  # unbalanced: leave arithmetic rather than swallow the script
        elif c == "]" and f.close == "]":
            return self.pop(1)
        return self.advance()

    def param(self) -> None:
        t, f = self.t, self.stack[-1]
        c = t[self.i]
        if c == "}":
            return self.pop(1)
        if c == "\\":
            return self.escape()
        if c == "$" and self.dollar(in_dq=f.in_dq):
            return None
        if c == "`":
            return self.push(Frame("code", close="`"), 1)
        if f.op_seen and not f.arith:
            if c == '"':
                return self.push(Frame("dq"), 1)
            if c == "'" and not f.in_dq:
                return self.push(Frame("sq"), 1)
            return self.advance()
        if c == "[":
            return self.push(Frame("arith", close="]"), 1)
        if c == ":":
            if t[self.i + 1:self.i + 2] in ("-", "=", "+", "?"):
                f.op_seen = True
                self.i += 2
                return None
            f.op_seen = f.arith = True  # ${x:offset:length}
            return self.advance()
        if c in "-=+?#%/^," and self.i > 0 and t[self.i - 1] not in "{!#":
            f.op_seen = True
        return self.advance()
