"""Substituting placeholders into a leaf's argv and script without letting a value become code.

Owns: the run-time rendering of a container's ``command``/``args`` and ``script.source``.
Plain argv words get the value as is (an argv word is never parsed). Code gets it by context:

- **shell** (``sh|bash|zsh|dash|ash|ksh -c CODE``, or a script run by a shell): every placeholder is
  *hoisted* into an environment variable ``ORCH_P_<n>`` (a name no other variable of the step
  uses) and replaced by a reference for its quoting context — unquoted ``${V}`` (zsh: ``${=V}``;
  the shell still splits it into words, as Argo's textual splice does, but never parses it),
  in ``"…"`` ``${V}``, in ``'…'`` ``'"${V}"'``, in ``$'…'`` ``'"${V}"$'``. Where bash would
  evaluate the value as arithmetic (``a[$(cmd)]`` runs ``cmd``) it must be a number; where the
  word is parsed again as code (``eval``, ``bash -c "…"`` started by the script) a user value is
  refused, since no reference survives a second parse. Only in a
  quoted here-document (``<<'EOF'``, never expanded) is a value spliced literally, and only if no
  line of it would end the document.
- **python** (``python -c CODE`` or a script run by python): a value inside a string literal is
  escaped for that literal (quotes, backslashes, control characters; braces doubled in an
  f-string; a raw literal is closed, a plain literal concatenated, and the raw one reopened); in
  a comment it is escaped onto one line. A literal that ``os.system``/``eval``/``exec``/
  ``subprocess.…(shell=True)`` runs is code. A user value anywhere else is refused (validation
  refuses it first: :mod:`orchestrator.spec.splice`); platform values are spliced as they are.
- **other interpreters' code** (node -e, perl -e, …) and **command strings** of wrappers (``su -c``,
  ``script -qc``, ``ssh HOST CMD``, ``watch CMD``, ``sudo sh -c`` …): user values are refused.
  Code words are found anywhere in argv (:func:`orchestrator.spec.interp.code_words`), behind any
  wrapper. Shell holes that bash reads as a variable name or feeds to a second interpreter
  (``| sh``, ``python3 - <<EOF``, ``trap``, ``source <(…)``) are refused; see
  :mod:`orchestrator.spec.shellctx` for the full list and the known gaps.

Imports spec and errors only; the placeholder lexers live in :mod:`orchestrator.spec.shellctx`
and :mod:`orchestrator.spec.pyctx`.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from orchestrator.errors import OrchestratorError
from orchestrator.spec import placeholders, shellctx
from orchestrator.spec.interp import code_words, script_code
from orchestrator.spec.pyctx import CODE, COMMENT, PyHole, python_holes
from orchestrator.spec.splice import is_user_value

PREFIX = "ORCH_P_"
NUMBER = re.compile(r"\s*[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)\s*")


class SpliceError(OrchestratorError):
    """A value cannot be placed safely where the template puts it (the step fails)."""

    code = "UNSAFE_SPLICE"


@dataclass
class Hoister:
    """Names for hoisted values: one variable per placeholder expression, none already taken."""

    taken: Collection[str]
    env: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    next: int = 0

    def var(self, expr: str, value: str) -> str:
        if expr in self.names:
            return self.names[expr]
        while f"{PREFIX}{self.next}" in self.taken:
            self.next += 1
        name = f"{PREFIX}{self.next}"
        self.next += 1
        self.names[expr] = name
        self.env[name] = value
        return name


@dataclass(frozen=True)
class Rendered:
    """A leaf's argv (the script's path still to be inserted by the caller), its script text,
    and the hoisted variables to add to its environment."""

    argv: list[str]
    script: str | None
    env: dict[str, str]


Resolve = Callable[[str], str]
# Set while rendering a loop instance whose items came from values (withParam): {{item}} is then
# a user value like a parameter (withItems items are written in the template itself).
USER_ITEMS: contextvars.ContextVar[bool] = contextvars.ContextVar("USER_ITEMS", default=False)


def _is_user(ex: str) -> bool:
    return is_user_value(ex) or (USER_ITEMS.get() and ex.split(".")[0] == "item")


def render(command: Sequence[str], args: Sequence[str], source: str | None, resolve: Resolve,
           taken: Collection[str], template: str) -> Rendered:
    """Substitute ``resolve(expr)`` for every placeholder of a leaf, safely for where it sits.

    ``template`` names the template in errors; ``taken`` are environment names the step already
    has. For a script, ``argv`` is ``command`` (default ``python3``) + ``args`` and the caller
    inserts the script's path after the command.
    """
    hoist = Hoister(taken)

    def plain(text: str) -> str:
        return placeholders.substitute(text, resolve)

    argv_t = list(command) + list(args)
    if source is not None:
        kind, name = script_code(command)
        script = render_code(kind, name, source, resolve, hoist, template)
        # code words of the command, too, with the script's path where the caller puts it
        words = _render_argv([*command, "\0script", *args], plain, resolve, hoist, template)
        argv = words[:len(command)] or ["python3"]
        return Rendered(argv + words[len(command) + 1:], script, hoist.env)
    return Rendered(_render_argv(argv_t, plain, resolve, hoist, template), None, hoist.env)


def _render_argv(argv_t: list[str], plain: Callable[[str], str], resolve: Resolve, hoist: Hoister,
                 template: str) -> list[str]:
    codes = {c.index: c for c in code_words(argv_t)}
    argv: list[str] = []
    for i, word in enumerate(argv_t):
        code = codes.get(i)
        if code is not None:
            head, body = word[:code.offset], word[code.offset:]
            argv.append(plain(head) + render_code(code.kind, code.name, body, resolve, hoist, template))
        else:
            argv.append(plain(word))
    return argv


def render_code(kind: str, name: str, code: str, resolve: Resolve, hoist: Hoister, template: str) -> str:
    if "{{" not in code:
        return code
    if kind == "shell":
        return render_shell(code, resolve, hoist, template, zsh=name == "zsh")
    if kind == "python":
        return render_python(code, resolve, template)
    def other(ex: str) -> str:
        if _is_user(ex):
            what = f"a command string that {name} runs" if kind == "wrapped" else f"{name} code"
            raise SpliceError(f"{{{{{ex}}}}} in template {template!r} is spliced into {what}, where a value "
                              "would run as code", hint="pass it through env: and read it from the environment")
        return resolve(ex)
    return placeholders.substitute(code, other)


def render_shell(code: str, resolve: Resolve, hoist: Hoister, template: str, *, zsh: bool = False) -> str:
    out: list[str] = []
    pos = 0
    for h in shellctx.shell_holes(code):
        out.append(code[pos:h.start])
        pos = h.end
        if h.refused and _is_user(h.expr):
            raise SpliceError(f"{{{{{h.expr}}}}} in template {template!r} is {h.refused}, where a value would change "
                              "the command", hint="pass it through env: and read the variable instead")
        if h.reparsed and _is_user(h.expr):
            raise SpliceError(f"{{{{{h.expr}}}}} in template {template!r} is in shell code that eval or a nested "
                              "interpreter parses again, where a value would run as code",
                              hint="pass it as an argument after the code: bash -c 'echo \"$1\"' _ \"{{…}}\"")
        value = resolve(h.expr)
        if h.numeric and not NUMBER.fullmatch(value):
            raise SpliceError(f"{{{{{h.expr}}}}} in template {template!r} is read as shell arithmetic, so its "
                              "value must be a number", hint="quote it or compare it as a string")
        if h.context == shellctx.LITERAL:
            lines = value.split("\n")
            if any((ln.lstrip("\t") if h.strip_tabs else ln) == h.delimiter for ln in lines):
                raise SpliceError(f"the value of {{{{{h.expr}}}}} in template {template!r} contains the line "
                                  f"{h.delimiter!r}, which would end its here-document")
            out.append(value)
            continue
        var = hoist.var(h.expr, value)
        if h.context == shellctx.SQUOTE:
            out.append(f"'\"${{{var}}}\"'")
        elif h.context == shellctx.ANSI:
            out.append(f"'\"${{{var}}}\"$'")
        elif h.context == shellctx.WORD and zsh and not h.numeric:
            out.append(f"${{={var}}}")
        else:
            out.append(f"${{{var}}}")
    out.append(code[pos:])
    return "".join(out)


def py_escape(value: str, *, as_bytes: bool = False, braces: bool = False) -> str:
    """``value`` as the inside of a Python literal quoted with either quote (no newline in it)."""
    out: list[str] = []
    if as_bytes:
        for b in value.encode("utf-8", "surrogatepass"):
            ch = chr(b)
            if ch in "\\'\"":
                out.append("\\" + ch)
            elif 0x20 <= b < 0x7F:
                out.append("{{" if braces and ch == "{" else "}}" if braces and ch == "}" else ch)
            else:
                out.append(f"\\x{b:02x}")
        return "".join(out)
    for ch in value:
        o = ord(ch)
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif braces and ch in "{}":
            out.append(ch * 2)
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{o:02x}"))
        elif 0xD800 <= o < 0xE000 or o in (0x2028, 0x2029, 0xFEFF):
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def render_python(code: str, resolve: Resolve, template: str) -> str:
    out: list[str] = []
    pos = 0
    for h in python_holes(code):
        out.append(code[pos:h.start])
        pos = h.end
        out.append(_python_value(h, resolve(h.expr), template))
    out.append(code[pos:])
    return "".join(out)


def _python_value(h: PyHole, value: str, template: str) -> str:
    if h.context == COMMENT:
        return py_escape(value)
    if h.context == CODE or h.backslashes % 2 or h.reparsed:
        if _is_user(h.expr):
            where = "Python code outside a string literal" if h.context == CODE else \
                "a Python string right after a backslash" if h.backslashes % 2 else \
                f"a Python string that {h.reparsed}() runs as code"
            raise SpliceError(f"{{{{{h.expr}}}}} in template {template!r} is spliced into {where}, where a value "
                              "would run as code", hint='pass it through env: and read os.environ["NAME"]')
        if not h.reparsed:
            return value  # a platform value (a path, the workflow name) as Argo splices it
    if h.raw:  # close the raw literal, add an escaped plain one, reopen: r'a' 'VALUE' r'b'
        lit = ("b" if h.is_bytes else "") + "'" + py_escape(value, as_bytes=h.is_bytes) + "'"
        return f"{h.quote} {lit} {h.prefix}{h.quote}"
    return py_escape(value, as_bytes=h.is_bytes, braces=h.formatted)

