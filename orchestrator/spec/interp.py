"""Which word of an argv is inline code, and in which language.

Owns: finding the program behind ``env …``/``busybox …`` and its inline code — the ``-c`` word of
``sh|bash|zsh|dash|ash|ksh`` (after their options), ``python -c`` (also ``-uc CODE``,
``-cCODE``), the ``-e``-style word of other interpreters (node, perl, ruby, Rscript, php, julia …)
— and the language of a ``script.source`` (its ``command``; none means python, as run locally).
The WHOLE argv is scanned (:func:`code_words`), so a wrapper (``timeout 600 sh -c``, ``nice -n 5
bash -c``, ``stdbuf``, ``flock F``, ``setsid``, ``xargs``, ``uv run python -c`` …) never hides the
code word; programs whose argument is itself a shell command string (``su -c``, ``runuser -c``,
``script -c``/``-qc``, ``flock -c``, ``ssh HOST CMD…``, ``watch CMD…``, ``sudo -s``/``-i``,
``parallel``) and any code behind a program that drops the environment (``sudo``, ``su``, ``ssh``,
``docker``, ``kubectl``, ``env -i`` …, where hoisted variables would not arrive) are ``"wrapped"``:
a user value there is refused. A plain argv word (``timeout 600 python train.py --lr X``) is not code.
Used at validation (:mod:`orchestrator.spec.splice`), by the shell lexer for nested shells
(:mod:`orchestrator.spec.shellctx`, :mod:`orchestrator.spec.shellcmd`) and at run time (:mod:`orchestrator.plan.splice`). Pure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ash", "ksh", "mksh", "yash"})
_PYTHON = re.compile(r"(python|pypy)(\d+(\.\d+)*)?[mdu]?$")
# Interpreters whose inline code we cannot escape values for: the flag(s) that introduce code.
OTHER_CODE_FLAGS: dict[str, tuple[str, ...]] = {
    "node": ("-e", "--eval", "-p", "--print"), "nodejs": ("-e", "--eval", "-p", "--print"),
    "bun": ("-e", "--eval", "-p", "--print"), "deno": ("eval",), "perl": ("-e", "-E"),
    "ruby": ("-e",), "Rscript": ("-e",), "R": ("-e",), "php": ("-r",), "julia": ("-e", "--eval"),
    "lua": ("-e",), "awk": (), "tclsh": (), "pwsh": ("-c", "-Command"), "powershell": ("-c", "-Command"),
}

@dataclass(frozen=True)
class Code:
    """Inline code found in an argv: its language ("shell", "python", "other"), interpreter name,
    the argv index of the code string and the offset where the code starts inside it."""

    kind: str
    name: str
    index: int
    offset: int = 0


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
    if is_shell(name):
        return "shell"
    if _PYTHON.match(name):
        return "python"
    return "other"


_SHELL_RE = re.compile(r"(ba|z|da|a|k|mk|ya|busybox-|rbash)?sh(\d+(\.\d+)*)?$|rbash$")
# Programs whose argument(s) are a command string run by a shell (user values there are refused).
# Programs that drop the environment (hoisted ORCH_P_* variables would not reach the code).
ENV_BARRIERS = frozenset({"sudo", "su", "ssh", "doas", "runuser", "pkexec", "docker", "podman", "kubectl",
                          "machinectl", "systemd-run", "nsenter", "lxc-attach"})
_SSH_ARG_OPTS = set("BbcDEeFIiJLlmOoPpQRSWw")
# Programs whose first operand is a program text: options that take a word, options that give it.
_AWK = (frozenset({"-F", "-v", "--assign", "--field-separator"}), ("-e", "--source"))
_PROGRAM_OPERAND: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "awk": _AWK, "gawk": _AWK, "mawk": _AWK, "nawk": _AWK, "busybox-awk": _AWK,
    "sed": (frozenset({"-l", "--line-length"}), ("-e", "--expression")),
}


def is_shell(name: str) -> bool:
    return name in SHELLS or bool(_SHELL_RE.match(name))


def code_words(argv: Sequence[str]) -> list[Code]:
    """Every word of ``argv`` that is code, scanning the WHOLE argv (fail closed): behind any
    wrapper (``timeout 600 sh -c``, ``nice -n 5 bash -c``, ``xargs -0 sh -c``, ``uv run python -c``,
    ``flock F sh -c`` …), a shell/python/other interpreter followed by its code flag makes the next
    word code. Command-string wrappers (``su -c``, ``script -qc``, ``flock -c``, ``ssh HOST CMD…``,
    ``watch CMD…``, ``sudo -s CMD``) and any code behind a program that drops the environment
    (``sudo``, ``ssh``, ``env -i`` …) are kind ``"wrapped"``: a user value there is refused."""
    out: dict[int, Code] = {}
    barrier = False
    for k in range(len(argv)):
        name = os.path.basename(argv[k])
        found: list[Code] = []
        if name in ENV_BARRIERS or (name == "env" and any(a in ("-i", "-", "--ignore-environment")
                                                         for a in argv[k + 1:k + 4])):
            barrier = True
        c = _at(argv, k, name)
        if c is not None:
            found.append(Code("wrapped", name, c.index, c.offset) if barrier else c)
        found += _wrapper_code(argv, k, name)
        for c in found:
            old = out.get(c.index)
            if old is None or c.kind in ("wrapped", "other"):
                out[c.index] = c
    return [out[i] for i in sorted(out)]


def _wrapper_code(argv: Sequence[str], k: int, name: str) -> list[Code]:
    n = len(argv)
    if name == "env":  # env -S 'sh -c "…"': a command line that env splits itself
        for j in range(k + 1, n):
            a = argv[j]
            if a in ("-S", "--split-string"):
                return [Code("wrapped", name, j + 1)] if j + 1 < n else []
            if a.startswith("--split-string="):
                return [Code("wrapped", name, j, len("--split-string="))]
            if a.startswith("-S") or (a.startswith("-") and not a.startswith("--") and "S" in a):
                return [Code("wrapped", name, j, a.index("S") + 1)] if a.index("S") + 1 < len(a) else \
                    [Code("wrapped", name, j + 1)] if j + 1 < n else []
            if not a.startswith("-") and "=" not in a:
                break
        return []
    if name in ("su", "runuser", "script", "flock"):
        operands = 0
        for j in range(k + 1, n):
            a = argv[j]
            if not a.startswith("-"):
                operands += 1
                if name == "flock" and operands > 1:
                    return []  # flock FILE CMD ARGS…: CMD is a program (scanned on its own)
                continue
            if a in ("--command", "-c", "--session-command") or (
                    len(a) > 1 and a[0] == "-" and not a.startswith("--") and a.endswith("c")):
                return [Code("wrapped", name, j + 1)] if j + 1 < n else []
            for f in ("--command=", "--session-command="):
                if a.startswith(f):
                    return [Code("wrapped", name, j, len(f))]
            if a.startswith("-c") and len(a) > 2:
                return [Code("wrapped", name, j, 2)]
        return []
    if name in ("ssh", "watch", "sudo", "doas", "parallel"):
        j = k + 1
        shell_flag = False
        while j < n and argv[j].startswith("-") and argv[j] != "--":
            a = argv[j]
            if name == "sudo" and a in ("-s", "-i", "--shell", "--login"):
                shell_flag = True
            takes = (name == "ssh" and len(a) == 2 and a[1] in _SSH_ARG_OPTS) or \
                (name == "watch" and a in ("-n", "--interval", "-d")) or \
                (name in ("sudo", "doas") and a in ("-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"))
            j += 2 if takes else 1
        if j < n and argv[j] == "--":
            j += 1
        if name == "ssh":
            j += 1  # the host
        elif name in ("sudo", "doas") and not shell_flag:
            return []
        return [Code("wrapped", name, i) for i in range(j, n)]
    return []


def inline_code(argv: Sequence[str]) -> Code | None:
    """The first code word of ``argv`` (see :func:`code_words`)."""
    codes = code_words(argv)
    return codes[0] if codes else None


def _at(argv: Sequence[str], k: int, name: str) -> Code | None:
    """The ``-c``/``-e`` code string of the interpreter at ``argv[k]``, if it takes one."""
    if is_shell(name):
        return _shell_code(argv, k, name)
    kind = kind_of(name)
    if kind == "shell":
        return _shell_code(argv, k, name)
    if kind == "python":
        return _python_code(argv, k, name)
    if name in _PROGRAM_OPERAND:  # awk 'PROG' / sed 'SCRIPT': the first operand is code unless -f/-e
        takes, script_flags = _PROGRAM_OPERAND[name]
        j = k + 1
        while j < len(argv):
            a = argv[j]
            if a == "--":
                j += 1
                break
            if a in script_flags or any(a.startswith(f + "=") for f in script_flags if f.startswith("--")):
                if a in script_flags and j + 1 < len(argv):
                    return Code("other", name, j + 1)
                return Code("other", name, j, a.index("=") + 1) if "=" in a else None
            if a.startswith("-e") and len(a) > 2 and "-e" in script_flags:
                return Code("other", name, j, 2)
            if a in ("-f", "--file") or a.startswith("--file=") or (a.startswith("-f") and name != "sed"):
                return None
            if not a.startswith("-") or a == "-":
                break
            j += 2 if a in takes else 1
        return Code("other", name, j) if j < len(argv) else None
    flags = OTHER_CODE_FLAGS.get(name, ())
    for j in range(k + 1, len(argv)):
        a = argv[j]
        if name in ("perl", "ruby") and len(a) > 1 and a[0] == "-" and a[1] != "-":
            pos = max(a.find("e"), a.find("E"))
            if pos > 0 and a[1:pos].isalnum() or pos == 1:  # -ne / -lane CODE, -e'CODE'
                if pos + 1 < len(a):
                    return Code("other", name, j, pos + 1)
                if j + 1 < len(argv):
                    return Code("other", name, j + 1)
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
