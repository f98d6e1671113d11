"""Which strings of a container are code, in which language, and the validation-time refusal.

Owns: finding the inline code of a leaf template — the ``-c`` string of ``sh|bash|zsh|dash|ash|ksh``
or ``python``, the ``-e``-style string of other interpreters (node, perl, ruby, Rscript, php,
julia), and a ``script.source`` (its language is its ``command``; none means python) — and
``check_code_splices``: the rule ``security.code-splice``, an error for a user value
(``{{inputs.parameters.*}}``, ``{{workflow.parameters.*}}``, ``{{item…}}``) placed where it would be
*code* and cannot be made safe: in Python outside a string literal (or inside an f-string field,
or after a backslash), or anywhere in another interpreter's code. Shell code is never refused:
:mod:`orchestrator.plan.splice` hoists every value into an environment variable at run time.
Platform values (artifact and output paths, ``{{workflow.name}}`` …) may appear anywhere.
Pure; works on the raw document (positions kept) like :mod:`orchestrator.spec.semantic`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import SpecError
from orchestrator.spec.placeholders import PLACEHOLDER
from orchestrator.spec.pyctx import CODE, STRING, python_holes
from orchestrator.spec.shape import live
from orchestrator.spec.yamlsafe import Document

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ash", "ksh", "mksh", "yash"})
_PYTHON = re.compile(r"(python|pypy)(\d+(\.\d+)*)?[mdu]?$")
# Interpreters whose inline code we cannot escape values for: the flag(s) that introduce code.
OTHER_CODE_FLAGS: dict[str, tuple[str, ...]] = {
    "node": ("-e", "--eval", "-p", "--print"), "nodejs": ("-e", "--eval", "-p", "--print"),
    "bun": ("-e", "--eval", "-p", "--print"), "deno": ("eval",), "perl": ("-e", "-E"),
    "ruby": ("-e",), "Rscript": ("-e",), "R": ("-e",), "php": ("-r",), "julia": ("-e", "--eval"),
    "lua": ("-e",), "awk": (), "tclsh": (), "pwsh": ("-c", "-Command"), "powershell": ("-c", "-Command"),
}
_ENV_HINT = {"python": 'os.environ["NAME"]', "node": "process.env.NAME", "perl": "$ENV{NAME}",
             "ruby": 'ENV["NAME"]', "Rscript": 'Sys.getenv("NAME")', "R": 'Sys.getenv("NAME")',
             "php": 'getenv("NAME")', "julia": 'ENV["NAME"]'}


@dataclass(frozen=True)
class Code:
    """Inline code found in an argv: its language ("shell", "python", "other"), interpreter name,
    the argv index of the code string and the offset where the code starts inside it."""

    kind: str
    name: str
    index: int
    offset: int = 0


def is_user_value(expr: str) -> bool:
    """A value a user chooses (parameters, items), as opposed to one the platform resolves."""
    parts = expr.split(".")
    return parts[0] == "item" or (len(parts) >= 2 and parts[1] == "parameters" and parts[0] in ("inputs", "workflow"))


def program(argv: Sequence[str]) -> tuple[str, int]:
    """The interpreter's base name and argv index, looking through ``env [-i] [VAR=x] prog``
    and ``busybox sh``; ("", -1) when argv is empty."""
    k = 0
    while k < len(argv):
        name = os.path.basename(argv[k])
        if name == "env":
            k += 1
            while k < len(argv) and (argv[k].startswith("-") or "=" in argv[k]):
                k += 2 if argv[k] in ("-u", "--unset", "-C", "--chdir") else 1
            continue
        if name == "busybox" and k + 1 < len(argv):
            k += 1
            continue
        return name, k
    return "", -1


def kind_of(name: str) -> str:
    if name in SHELLS:
        return "shell"
    if _PYTHON.match(name):
        return "python"
    return "other"


def inline_code(argv: Sequence[str]) -> Code | None:
    """The ``-c``/``-e`` code string of ``argv``, if its program takes one."""
    name, k = program(argv)
    if k < 0:
        return None
    kind = kind_of(name)
    if kind == "shell":
        return _shell_code(argv, k, name)
    if kind == "python":
        return _python_code(argv, k, name)
    flags = OTHER_CODE_FLAGS.get(name, ())
    for j in range(k + 1, len(argv)):
        a = argv[j]
        if a in flags and j + 1 < len(argv):
            return Code("other", name, j + 1)
        for f in flags:
            if f.startswith("--") and a.startswith(f + "="):
                return Code("other", name, j, len(f) + 1)
    return None


def _shell_code(argv: Sequence[str], k: int, name: str) -> Code | None:
    has_c = False
    j = k + 1
    while j < len(argv):
        a = argv[j]
        if a == "--":
            j += 1
            break
        if len(a) > 1 and a[0] in "-+" and not a.startswith("--"):
            has_c = has_c or (a[0] == "-" and "c" in a[1:])
            j += 1 + sum(1 for ch in a[1:] if ch in "oO")  # -o OPTION / -O shopt take a word
            continue
        if a.startswith("--"):
            j += 2 if a in ("--rcfile", "--init-file") else 1
            continue
        break
    return Code("shell", name, j) if has_c and j < len(argv) else None


def _python_code(argv: Sequence[str], k: int, name: str) -> Code | None:
    j = k + 1
    while j < len(argv):
        a = argv[j]
        if a.startswith("--") and a != "--":
            j += 2 if a == "--check-hash-based-pycs" else 1
            continue
        if not a.startswith("-") or a in ("-", "--"):
            return None  # a script file, stdin or the end of options: no inline code
        flags = a[1:]
        for pos, ch in enumerate(flags):
            rest = flags[pos + 1:]
            if ch == "c":
                if rest:  # -c'print(1)' / -uc'…': the code is the rest of this word
                    return Code("python", name, j, 2 + pos)
                return Code("python", name, j + 1) if j + 1 < len(argv) else None
            if ch == "m":
                return None
            if ch in "WX":  # -W arg / -X opt (attached or the next word)
                j += 0 if rest else 1
                break
        j += 1
    return None


def script_code(command: Sequence[str]) -> tuple[str, str]:
    """(kind, interpreter) of a ``script.source`` run by ``command`` (none: python3, as run locally)."""
    name, k = program(command)
    if k < 0:
        return "python", "python3"
    return kind_of(name), name


def refusal(kind: str, name: str, code: str, offset: int = 0) -> list[tuple[str, str]]:
    """(placeholder, why) for every user value in ``code`` that cannot be made safe."""
    text = code[offset:]
    out: list[tuple[str, str]] = []
    if kind == "shell":
        return out
    if kind == "other":
        for m in PLACEHOLDER.finditer(text):
            if is_user_value(m.group(1)):
                out.append((m.group(1), f"{name} code (values are only escaped for shell and Python)"))
        return out
    for h in python_holes(text):
        if not is_user_value(h.expr):
            continue
        if h.context == CODE:
            out.append((h.expr, "Python code outside a string literal"))
        elif h.context == STRING and h.backslashes % 2:
            out.append((h.expr, "a Python string right after a backslash"))
    return out


def check_code_splices(doc: Document) -> list[SpecError]:
    """``security.code-splice`` errors of one schema-valid WorkflowTemplate."""
    errs: list[SpecError] = []
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    for i, t in live(spec.get("templates") if isinstance(spec, dict) else None):
        key = "container" if "container" in t else "script" if "script" in t else ""
        c = t.get(key) if key else None
        if not isinstance(c, dict):
            continue
        ptr = f"/spec/templates/{i}/{key}"
        command = [str(x) for x in c.get("command") or []] if isinstance(c.get("command"), list) else []
        args = [str(x) for x in c.get("args") or []] if isinstance(c.get("args"), list) else []
        found: list[tuple[str, str, str, str]] = []  # (pointer, interpreter, placeholder, why)
        if key == "script" and isinstance(c.get("source"), str):
            kind, name = script_code(command)
            found += [(f"{ptr}/source", name, e, w) for e, w in refusal(kind, name, c["source"])]
        else:
            argv = command + args
            code = inline_code(argv)
            if code is not None:
                where = f"{ptr}/command/{code.index}" if code.index < len(command) else \
                    f"{ptr}/args/{code.index - len(command)}"
                found += [(where, code.name, e, w)
                          for e, w in refusal(code.kind, code.name, argv[code.index], code.offset)]
        for where, name, ex, why in found:
            param = ex.split(".")[-1] if ".parameters." in ex else ex
            base = "python" if kind_of(name) == "python" else name
            read = _ENV_HINT.get(base, "the environment").replace("NAME", _env_name(param))
            errs.append(doc.error(where, "security.code-splice",
                                  f"template {t.get('name')!r}: parameter {param!r} ({{{{{ex}}}}}) is spliced "
                                  f"into {why}; a value there would run as code",
                                  f"pass it through env: (- name: {_env_name(param)}, value: \"{{{{{ex}}}}}\") "
                                  f"and read it with {read}"))
    return errs


def _env_name(param: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", param).upper() or "VALUE"

