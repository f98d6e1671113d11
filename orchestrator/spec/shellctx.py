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
grammar and :mod:`orchestrator.spec.interp`.

Also reported (fail closed): ``<<<`` here-strings are one operator whose word is scanned normally;
any word of ``let``, an array subscript ``NAME[…`` (also ``NAME["…"]``) and, in a script that uses
``declare/typeset/local -i`` or ``-n`` (nameref) or ``${!name}`` anywhere, *every* hole are numeric; a hole that may be
read as a variable *name* (operands of ``declare``/``typeset``/``local``/``export``/``readonly``
before ``=``, ``unset``, ``read`` (not ``-p``/``-d``/``-i`` arguments), ``mapfile``/``readarray``,
``getopts``, ``printf -v``, ``[[ -v``/``test -v``), a value assigned to ``PS0``-``PS4``,
``PROMPT_COMMAND``, ``BASH_ENV`` or ``ENV`` and any argument of ``trap``/``alias`` is ``refused``; so is a hole fed to a second interpreter: a here-document or here-string of a command
that runs its stdin (``sh``, ``bash -s``, ``python3 -``, ``node``, ``source /dev/stdin``, ``ssh`` …),
any earlier stage of a pipeline such a command is in (``… | sh``, ``| xargs -I{} sh -c``), and
``source <(…)``/``. <(…)``/``bash <(…)``.

Not supported (known gaps): values that reach code through data flow the lexer cannot follow —
a value written to a file that is later sourced or run, passed to a function or positional
parameter that a later ``eval``/``bash -c "$1"`` runs, read back by ``read`` and then evaluated,
a ``coproc`` or a named pipe feeding a shell; interpreters not listed in :mod:`orchestrator.spec.interp`;
associative-array subscripts are treated as arithmetic (numbers only), which refuses some safe
uses; csh/fish syntax is lexed as POSIX shell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from orchestrator.spec.interp import OTHER_CODE_FLAGS, code_words, is_shell, kind_of
from orchestrator.spec.placeholders import PLACEHOLDER

WORD, DQUOTE, SQUOTE, ANSI, HEREDOC, LITERAL = "word", "dquote", "squote", "ansi", "heredoc", "literal"
_SEPARATORS = set(";&|(){}\n")
_WORD_END = set(" \t;&|()<>\n")
_ARITH_TEST = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
_DECLARE = {"declare", "typeset", "local", "export", "readonly"}


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
class _Frame:
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


class _Lexer:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0
        self.holes: list[Hole] = []
        self.stack = [_Frame("code")]
        self.heredocs: list[list] = []  # [delimiter, quoted, strip tabs, interpreter reads it (None: unknown)]

    # ------------------------------------------------------------------ helpers
    def push(self, frame: _Frame, skip: int) -> None:
        if frame.kind == "code":
            frame.first = frame.cmd_from = len(self.holes)
        self.stack.append(frame)
        self.i += skip

    def pop(self, skip: int) -> None:
        if len(self.stack) > 1:
            self.stack.pop()
        self.i += skip

    def code_frame(self) -> _Frame:
        return next(f for f in reversed(self.stack) if f.kind == "code")

    def hole_context(self) -> tuple[str, bool]:
        """(context, numeric) of a hole at the current position."""
        numeric = False
        for f in reversed(self.stack):
            if f.kind == "arith":
                numeric = True
            if f.kind == "param" and (not f.op_seen or f.arith):
                numeric = True
        cf = self.code_frame()
        cmd = _cmd(cf.words)
        if cmd and cmd[0] == "let":
            numeric = True  # every word of let, quoted or not, is an arithmetic expression
        if cmd and cmd[0] in _DECLARE and any(w.startswith("-") and "i" in w for w in cmd[1:]):
            numeric = True
        if _SUBSCRIPT.match(cf.word) and "]" not in cf.word:
            numeric = True  # NAME[…]: bash evaluates an array subscript as arithmetic
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

    def name_context(self, start: int) -> str:
        """Why a hole at ``start`` may be read as a variable *name* (bash then evaluates a
        subscript in it: ``a[$(cmd)]``), or ""."""
        cf = self.code_frame()
        cmd = _cmd(cf.words)
        word = self.t[cf.wstart:start] if cf.wstart >= 0 else ""
        m = _PROMPT_VARS.match(word)
        if m and not cf.in_herestr:
            return f"the value of {m.group(1)}, which the shell expands again as code"
        if not cmd or cf.in_herestr:
            return ""
        head, prev = cmd[0], cmd[-1]
        word = self.t[cf.wstart:start] if cf.wstart >= 0 else ""
        if head in _DECLARE and "=" not in word and not word.startswith("-"):
            return f"a variable name of {head}"
        if head in ("unset", "mapfile", "readarray", "getopts"):
            return f"a variable name of {head}"
        if head == "read" and prev not in ("-p", "-d", "-i"):
            return "a variable name of read"
        if head == "printf" and (prev == "-v" or word.startswith("-v")) and len(cmd) <= 2:
            return "the variable name of printf -v"
        if head in ("[[", "test", "[") and prev in ("-v", "-R"):
            return f"the variable name of {prev}"
        if head in ("trap", "alias"):
            return f"an argument of {head}, which the shell parses again as code"
        return ""

    def reparsed(self) -> bool:
        """Whether the current word is parsed again as code in any enclosing command: an argument
        of ``eval``, or the code word of an interpreter it starts (``sudo bash -c "…"``, including
        through ``$(…)``: ``bash -c "$(echo …)"``)."""
        for f in self.stack:
            if f.kind != "code" or not f.words:
                continue
            words = [_unq(w) for w in f.words]
            if words[0] in ("eval", "builtin", "command") and "eval" in words[:2]:
                return True
            current = len(words)
            if any(c.index == current for c in code_words([*words, _unq(f.word) or "\0"])):
                return True
        for f, inner in zip(self.stack, self.stack[1:]):
            if f.kind == "code" and inner.procsub and _cmd(f.words) and _reads_code(_cmd(f.words), True):
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

    def end_word(self, f: _Frame) -> None:
        if not f.word:
            return
        if f.in_herestr:  # the here-string's word is input, not an operand
            f.in_herestr = False
            f.word = ""
            return
        f.words.append(f.word)
        if f.word == "]]" and f.test_from >= 0:
            if _ARITH_TEST & set(f.test_text):
                for k in range(f.test_from, len(self.holes)):
                    self.holes[k] = replace(self.holes[k], numeric=True)
            f.test_from = -1
            f.test_text = []
        elif f.word == "[[" and len(f.words) == 1:
            f.test_from = len(self.holes)
        elif f.test_from >= 0:
            f.test_text.append(f.word)
        f.word = ""

    def end_command(self, f: _Frame, pipe: bool = False) -> None:
        self.end_word(f)
        if f.test_from >= 0:
            return
        words = _cmd(f.words)
        if words:
            reads = _reads_code(words)
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
            self.push(_Frame("arith", close="))"), 3)
        elif t.startswith("$(", i):
            self.push(_Frame("code", close=")"), 2)
        elif t.startswith("${", i) and not PLACEHOLDER.match(t, i + 1):
            self.push(_Frame("param", in_dq=in_dq), 2)
        elif t.startswith("$[", i):
            self.push(_Frame("arith", close="]"), 2)
        elif t.startswith("$'", i) and not in_dq:
            self.push(_Frame("ansi"), 2)
        else:
            return False
        return True

    def code(self) -> None:
        t, i, f = self.t, self.i, self.stack[-1]
        c = t[i]
        if c == "\\":
            f.word += t[i:i + 2]
            return self.escape()
        if c == "'":
            f.word += "'"
            return self.push(_Frame("sq"), 1)
        if c == '"':
            f.word += '"'
            return self.push(_Frame("dq"), 1)
        if c == "$":
            f.word += "$"
            if not self.dollar(in_dq=False):
                self.advance()
            return None
        if c == "`":
            if f.close == "`":
                return self.pop(1)
            return self.push(_Frame("code", close="`"), 1)
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
            return self.push(_Frame("code", close=")", procsub=c), 2)
        if c == "(":
            self.end_command(f)
            if t.startswith("((", i):  # arithmetic command; "( (" nested subshells keep a space
                return self.push(_Frame("arith", close="))"), 2)
            return self.push(_Frame("code", close=")"), 1)
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

    def dq(self) -> None:
        c = self.t[self.i]
        if c == '"':
            return self.pop(1)
        if c == "\\":
            return self.escape()
        if c == "$" and self.dollar(in_dq=True):
            return None
        if c == "`":
            return self.push(_Frame("code", close="`"), 1)
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
            return self.push(_Frame("code", close="`"), 1)
        if c in "'\"":
            return self.push(_Frame("sq" if c == "'" else "dq"), 1)
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
            return self.push(_Frame("code", close="`"), 1)
        if f.op_seen and not f.arith:
            if c == '"':
                return self.push(_Frame("dq"), 1)
            if c == "'" and not f.in_dq:
                return self.push(_Frame("sq"), 1)
            return self.advance()
        if c == "[":
            return self.push(_Frame("arith", close="]"), 1)
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
    if _INT_VARS.search(code):  # an integer variable or ``${!name}``: any value may become arithmetic
        holes = [replace(h, numeric=True) if h.context != LITERAL else h for h in holes]
    return holes


_KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "!", "time", "{", "exec", "builtin", "command"}


def _cmd(words: list[str]) -> list[str]:
    """The words of a simple command without leading keywords (``do let …``, ``then read …``)."""
    out = [_unq(w) for w in words]
    while out and out[0] in _KEYWORDS:
        out = out[1:]
    return out


def _unq(word: str) -> str:
    return word.replace("'", "").replace('"', "").replace("\\", "")


_STDIN_NAMES = ("-", "/dev/stdin", "/proc/self/fd/0", "/dev/fd/0")


def _reads_code(words: list[str], procsub: bool = False) -> str:
    """The interpreter of a command that runs its standard input (or, ``procsub``, a file
    operand) as code: ``sh``, ``bash -s``, ``python3 -``, ``source /dev/stdin``, ``ssh host`` …; ""."""
    if words[0] in ("source", ".", "eval") and (procsub or len(words) < 2 or words[1] in _STDIN_NAMES
                                                 or words[0] == "eval"):
        return words[0]
    for k, w in enumerate(words):
        name = os.path.basename(w)
        rest = words[k + 1:]
        if name in ("su", "runuser") and not any(x in ("-c", "--command") or x.startswith("--command=") or
                                                  (x[:1] == "-" and x[1:2] != "-" and x.endswith("c")) for x in rest):
            return name  # su [-] [user]: a login shell that reads its commands from stdin
        if name in ("sudo", "doas") and any(x in ("-s", "-i", "--shell", "--login") for x in rest):
            return name  # fail closed: a shell started by sudo -s/-i may read stdin
        if name == "xargs" and not any(x.startswith(("-I", "-J", "-i", "--replace")) for x in words[k + 1:]):
            continue  # without a replace string xargs passes its input as arguments, never as code
        if name in ("ssh", "su", "xargs") and any(is_shell(os.path.basename(x)) or kind_of(os.path.basename(x)) !=
                                                  "other" for x in words[k + 1:]) or name == "ssh":
            return name
        kind = "shell" if is_shell(name) else kind_of(name)
        if kind == "other" and name not in OTHER_CODE_FLAGS:
            continue
        if code_words(words[k:]):
            return ""  # -c CODE: its stdin is data
        rest = words[k + 1:]
        operands = [x for x in rest if not x.startswith("-") or x in _STDIN_NAMES]
        if procsub or not operands or operands[0] in _STDIN_NAMES or (kind == "shell" and any(
                x.startswith("-") and not x.startswith("--") and "s" in x for x in rest)):
            return name
        return ""
    return ""


_PROMPT_VARS = re.compile(r"(PS[0-4]|PROMPT_COMMAND|BASH_ENV|ENV)\+?=")
_SUBSCRIPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[")
_INT_VARS = re.compile(r"\b(declare|typeset|local|export|readonly)\s+(-[A-Za-z]+\s+)*-[A-Za-z]*[in]|\$\{!(?![A-Za-z_][A-Za-z0-9_]*(\[[@*]\]|[@*])\})")
