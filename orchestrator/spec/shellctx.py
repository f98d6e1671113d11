"""Where each ``{{…}}`` placeholder sits in shell code: the quoting context of every hole.

Owns: a small lexer of POSIX/bash/zsh code (what ``sh|bash|zsh|dash|ash|ksh -c`` runs and what a
shell ``script.source`` is) that reports, for every placeholder, the context the shell would read
it in: unquoted word, inside ``"…"``, inside ``'…'``, inside ``$'…'``, in a here-document body
(expanding or quoted), and whether the context is arithmetic (``$((…))``, ``((…))``, ``$[…]``,
``${x:N}``/``${a[N]}``, ``let``, ``declare -i``, ``[[ … -eq … ]]``), where bash evaluates a value
as an expression (``a[$(cmd)]`` runs ``cmd``), so only a number may go there — and whether the
word is parsed *again* as code (an argument of ``eval``, the code word of ``bash -c``/``python -c``
started from this code), where no reference can keep a value from running.

:mod:`orchestrator.plan.splice` uses the holes to hoist every value into an environment variable
and put a reference of the right form in its place; the value itself never becomes shell text
(except in a quoted here-document, whose body the shell never expands: there it is spliced
literally, provided no line of it ends the document). A mis-read context can therefore only make
a script print a reference instead of a value, never run a value. Pure; imports the placeholder
grammar, :mod:`orchestrator.spec.interp` and :mod:`orchestrator.spec.shellcmd`.

Also reported (fail closed): ``<<<`` here-strings are one operator whose word is scanned normally;
a hole that a command reads as arithmetic, as a variable *name* or as code again (the rules of
:mod:`orchestrator.spec.shellcmd`) is ``numeric`` or ``refused``; so is a hole fed to a second
interpreter: a here-document or here-string of a command that runs its stdin (``sh``, ``bash -s``,
``python3 -``, ``node``, ``source /dev/stdin``, ``ssh`` …), any earlier stage of a pipeline such a
command is in (``… | sh``, ``| xargs -I{} sh -c``), and ``source <(…)``/``. <(…)``/``bash <(…)``.

Not supported (known gaps): values that reach code through data flow the lexer cannot follow —
a value written to a file that is later sourced or run, passed to a function or positional
parameter that a later ``eval``/``bash -c "$1"`` runs, read back by ``read`` and then evaluated,
a ``coproc`` or a named pipe feeding a shell; interpreters not listed in :mod:`orchestrator.spec.interp`;
associative-array subscripts are treated as arithmetic (numbers only), which refuses some safe
uses; csh/fish syntax is lexed as POSIX shell.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.spec.placeholders import PLACEHOLDER
from orchestrator.spec.shellcmd import (
    ARITH_TEST,
    arithmetic_word,
    command_words,
    name_role,
    reads_code,
    reparses,
    uses_int_vars,
)
from orchestrator.spec.shellquote import ANSI, DQUOTE, HEREDOC, LITERAL, SQUOTE, WORD, Frame, Hole, QuoteScanner

__all__ = ["ANSI", "DQUOTE", "HEREDOC", "LITERAL", "SQUOTE", "WORD", "Hole", "shell_holes"]

_SEPARATORS = set(";&|(){}\n")
_WORD_END = set(" \t;&|()<>\n")


class _Lexer(QuoteScanner):
    """The shell lexer: commands, pipelines, here-documents and the holes they hold."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.heredocs: list[list] = []  # [delimiter, quoted, strip tabs, interpreter reads it (None: unknown)]

    # ------------------------------------------------------------------ commands
    def hole_context(self) -> tuple[str, bool]:
        """(context, numeric) of a hole at the current position."""
        context, numeric = self.quote_context()
        cf = self.code_frame()
        return context, numeric or arithmetic_word(command_words(cf.words), cf.word)

    def name_context(self, start: int) -> str:
        """Why a hole at ``start`` may be read as a variable *name* (bash then evaluates a
        subscript in it: ``a[$(cmd)]``), or ""."""
        cf = self.code_frame()
        word = self.t[cf.wstart:start] if cf.wstart >= 0 else ""
        return name_role(command_words(cf.words), word, cf.in_herestr)

    def reparsed(self) -> bool:
        """Whether the current word is parsed again as code in any enclosing command: an argument
        of ``eval``, or the code word of an interpreter it starts (``sudo bash -c "…"``, including
        through ``$(…)``: ``bash -c "$(echo …)"``)."""
        if any(f.kind == "code" and f.words and reparses(f.words, f.word) for f in self.stack):
            return True
        for f, inner in zip(self.stack, self.stack[1:]):
            cmd = command_words(f.words)
            if f.kind == "code" and inner.procsub and cmd and reads_code(cmd, True):
                return True  # source <(…), bash <(…)
        return False

    def add_hole(self, start: int, end: int, expr: str) -> None:
        top = self.stack[-1]
        if top.kind == "code" and not top.word:
            top.wstart = start
        context, numeric = self.hole_context()
        cf = self.code_frame()
        if cf.in_herestr:
            cf.herestr.append(len(self.holes))
        self.holes.append(Hole(start, end, expr, context, numeric, reparsed=self.reparsed(),
                               refused=self.name_context(start)))
        if top.kind == "code":
            top.word += "\0"  # a hole is part of a word, never a keyword

    def end_word(self, f: Frame) -> None:
        if not f.word:
            return
        if f.in_herestr:  # the here-string's word is input, not an operand
            f.in_herestr = False
            f.word = ""
            return
        f.words.append(f.word)
        if f.word == "]]" and f.test_from >= 0:
            if ARITH_TEST & set(f.test_text):
                for k in range(f.test_from, len(self.holes)):
                    self.holes[k] = replace(self.holes[k], numeric=True)
            f.test_from = -1
            f.test_text = []
        elif f.word == "[[" and len(f.words) == 1:
            f.test_from = len(self.holes)
        elif f.test_from >= 0:
            f.test_text.append(f.word)
        f.word = ""

    def end_command(self, f: Frame, pipe: bool = False) -> None:
        self.end_word(f)
        if f.test_from >= 0:
            return
        words = command_words(f.words)
        if words:
            reads = reads_code(words)
            if reads and f.pipe_from >= 0:  # fail closed: every earlier hole of this list (``{ …; } | sh``)
                for k in range(min(f.first, f.pipe_from), f.cmd_from):
                    self.refuse(k, f"piped into {reads}, which runs its input as code")
            if reads and f.procsub == ">":  # tee >(sh): whatever came before may be its input
                for k in range(f.first):
                    self.refuse(k, f"written to {reads} in >(…), which runs its input as code")
            if reads:
                for k in f.herestr:
                    self.refuse(k, f"a here-string that {reads} runs as code")
            f.pipe_reads = f.pipe_reads or reads
            if not pipe:  # a here-document feeds its own stage; any stage of the pipeline may run it
                for hd in self.heredocs:
                    if hd[3] is None and hd[4] is f:
                        hd[3] = f.pipe_reads
                f.pipe_reads = ""
            if pipe:
                f.pipe_from = f.cmd_from if f.pipe_from < 0 else f.pipe_from
            else:
                f.pipe_from = -1
        elif pipe and f.pipe_from < 0:  # ``{ …; } | sh``, ``( … ) | sh``, ``done | sh``
            f.pipe_from = f.first
        elif not pipe and f.pipe_from >= 0 and self.t[self.i:self.i + 1] != "\n":
            f.pipe_from = -1
        f.words = []
        f.herestr = []
        f.in_herestr = False
        f.cmd_from = len(self.holes)

    def refuse(self, k: int, why: str) -> None:
        if not self.holes[k].refused:
            self.holes[k] = replace(self.holes[k], refused=why)

    # ------------------------------------------------------------------ scanning
    def scan(self) -> list[Hole]:
        t = self.t
        while self.i < len(t):
            m = PLACEHOLDER.match(t, self.i)
            if m:
                self.add_hole(m.start(), m.end(), m.group(1))
                self.i = m.end()
                continue
            kind = self.stack[-1].kind
            if kind == "code":
                f = self.stack[-1]
                if not f.word:
                    f.wstart = self.i
                self.code()
            elif kind == "dq":
                self.dq()
            elif kind == "sq":
                self.pop(1) if t[self.i] == "'" else self.advance()
            elif kind == "ansi":
                self.ansi()
            elif kind == "arith":
                self.arith()
            else:
                self.param()
        for f in reversed(self.stack):
            if f.kind == "code":
                self.end_command(f)
        return self.holes

    def code(self) -> None:
        t, i, f = self.t, self.i, self.stack[-1]
        c = t[i]
        if c == "\\":
            f.word += t[i:i + 2]
            return self.escape()
        if c == "'":
            f.word += "'"
            return self.push(Frame("sq"), 1)
        if c == '"':
            f.word += '"'
            return self.push(Frame("dq"), 1)
        if c == "$":
            f.word += "$"
            if not self.dollar(in_dq=False):
                self.advance()
            return None
        if c == "`":
            if f.close == "`":
                return self.pop(1)
            return self.push(Frame("code", close="`"), 1)
        if c == "#" and not f.word:
            while self.i < len(t) and t[self.i] != "\n":
                m = PLACEHOLDER.match(t, self.i)
                if m:
                    self.holes.append(Hole(m.start(), m.end(), m.group(1), WORD))
                    self.i = m.end()
                else:
                    self.i += 1
            return None
        if c in "<>" and t.startswith("(", i + 1):  # process substitution: part of this command
            f.word += c + "("
            return self.push(Frame("code", close=")", procsub=c), 2)
        if c == "(":
            self.end_command(f)
            if t.startswith("((", i):  # arithmetic command; "( (" nested subshells keep a space
                return self.push(Frame("arith", close="))"), 2)
            return self.push(Frame("code", close=")"), 1)
        if c == ")":
            self.end_command(f)
            if f.close == ")":
                return self.pop(1)
            return self.advance()
        if t.startswith("<<<", i):  # a here-string: one operator; its word is scanned normally
            self.end_word(f)
            f.in_herestr = True
            self.i += 3
            while self.i < len(t) and t[self.i] in " \t":
                self.i += 1
            return None
        if t.startswith("<<", i):
            self.end_word(f)
            return self.heredoc_operator()
        if c == "\n":
            self.end_command(f)
            self.i += 1
            if self.heredocs:
                self.heredoc_bodies()
            return None
        if c == "|" and not t.startswith("||", i) and not (i and t[i - 1] == "|"):
            self.end_command(f, pipe=True)
            if t.startswith("|&", i):
                self.i += 1
        elif c in "{}" and f.word:  # -I{} / a{b,c}: part of the word
            f.word += c
        elif c in _SEPARATORS:
            self.end_command(f)
        elif c in _WORD_END:
            self.end_word(f)
        else:
            f.word += c
        return self.advance()

    # ------------------------------------------------------------------ here-documents
    def heredoc_operator(self) -> None:
        t = self.t
        self.i += 2
        strip = t.startswith("-", self.i)
        if strip:
            self.i += 1
        while self.i < len(t) and t[self.i] in " \t":
            self.i += 1
        start = self.i
        quote = ""
        while self.i < len(t):
            c = t[self.i]
            if quote:
                if c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c in _WORD_END:
                break
            elif c == "\\":
                self.i += 1
            self.i += 1
        word = t[start:self.i]
        quoted = any(q in word for q in "'\"\\")
        delim = "".join(ch for ch in word if ch not in "'\"\\")
        if delim:
            self.heredocs.append([delim, quoted, strip, None, self.code_frame()])

    def heredoc_bodies(self) -> None:
        t = self.t
        for delim, quoted, strip, reads, _ in self.heredocs:
            while self.i < len(t):
                end = t.find("\n", self.i)
                end = len(t) if end < 0 else end
                line = t[self.i:end]
                if (line.lstrip("\t") if strip else line) == delim:
                    self.i = min(end + 1, len(t))
                    break
                for m in PLACEHOLDER.finditer(t, self.i, end):
                    if reads:
                        self.holes.append(Hole(m.start(), m.end(), m.group(1), HEREDOC,
                                               refused=f"a here-document that {reads} runs as code"))
                    elif quoted:
                        self.holes.append(Hole(m.start(), m.end(), m.group(1), LITERAL, False, delim, strip))
                    else:
                        self.holes.append(Hole(m.start(), m.end(), m.group(1), HEREDOC))
                self.i = min(end + 1, len(t))
        self.heredocs = []


def shell_holes(code: str) -> list[Hole]:
    """Every placeholder of ``code`` with the context a POSIX shell (or bash/zsh/ksh) reads it in."""
    holes = _Lexer(code).scan()
    if uses_int_vars(code):  # an integer variable or ``${!name}``: any value may become arithmetic
        holes = [replace(h, numeric=True) if h.context != LITERAL else h for h in holes]
    return holes

