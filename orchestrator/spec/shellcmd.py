"""What a simple shell command does with its words: the command-level rules of the shell lexer.

Owns: the pure rules :mod:`orchestrator.spec.shellctx` applies to the words of one simple command
(leading keywords dropped, quotes removed) — which words a shell evaluates as arithmetic, which it
may read as a variable *name*, which it parses again as code, and which command runs its standard
input (or a file operand) as code. Pure; imports only :mod:`orchestrator.spec.interp`.

Fail closed: any word of ``let``, an array subscript ``NAME[…`` (also ``NAME["…"]``), an operand of
``declare/typeset/local -i`` and, in a script that uses ``declare/typeset/local -i`` or ``-n``
(nameref) or ``${!name}`` anywhere, *every* word are numeric; a word that may be read as a variable
*name* (operands of ``declare``/``typeset``/``local``/``export``/``readonly`` before ``=``,
``unset``, ``read`` (not ``-p``/``-d``/``-i`` arguments), ``mapfile``/``readarray``, ``getopts``,
``printf -v``, ``[[ -v``/``test -v``), a value assigned to ``PS0``-``PS4``, ``PROMPT_COMMAND``,
``BASH_ENV`` or ``ENV`` and any argument of ``trap``/``alias`` is refused; so is stdin fed to a
second interpreter (``sh``, ``bash -s``, ``python3 -``, ``node``, ``source /dev/stdin``, ``ssh``,
``su``, ``sudo -s``, ``xargs -I{} sh -c`` …) and a file operand of ``source <(…)``/``bash <(…)``.
Must not import: plan, run or anything above spec.
"""

from __future__ import annotations

import os
import re

from orchestrator.spec.interp import OTHER_CODE_FLAGS, code_words, is_shell, kind_of

ARITH_TEST = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
DECLARE = frozenset({"declare", "typeset", "local", "export", "readonly"})
_KEYWORDS = {"do", "then", "else", "elif", "if", "while", "until", "!", "time", "{", "exec", "builtin", "command"}
_STDIN_NAMES = ("-", "/dev/stdin", "/proc/self/fd/0", "/dev/fd/0")
_PROMPT_VARS = re.compile(r"(PS[0-4]|PROMPT_COMMAND|BASH_ENV|ENV)\+?=")
_SUBSCRIPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[")
_INT_VARS = re.compile(r"\b(declare|typeset|local|export|readonly)\s+(-[A-Za-z]+\s+)*-[A-Za-z]*[in]|\$\{!(?![A-Za-z_][A-Za-z0-9_]*(\[[@*]\]|[@*])\})")


def unquote(word: str) -> str:
    """``word`` without its quote and backslash characters (how the shell would name it)."""
    return word.replace("'", "").replace('"', "").replace("\\", "")


def command_words(words: list[str]) -> list[str]:
    """The words of a simple command without leading keywords (``do let …``, ``then read …``)."""
    out = [unquote(w) for w in words]
    while out and out[0] in _KEYWORDS:
        out = out[1:]
    return out


def uses_int_vars(code: str) -> bool:
    """Whether ``code`` declares an integer variable or a nameref, or uses ``${!name}``: then any
    value anywhere may end up evaluated as arithmetic."""
    return bool(_INT_VARS.search(code))


def arithmetic_word(cmd: list[str], word: str) -> bool:
    """Whether the current ``word`` (so far) of command ``cmd`` is an arithmetic expression: every
    word of ``let`` (quoted or not), an operand of ``declare -i`` and an array subscript ``NAME[…``."""
    if cmd and cmd[0] == "let":
        return True
    if cmd and cmd[0] in DECLARE and any(w.startswith("-") and "i" in w for w in cmd[1:]):
        return True
    return bool(_SUBSCRIPT.match(word)) and "]" not in word  # bash evaluates a subscript as arithmetic


def name_role(cmd: list[str], word: str, in_herestr: bool) -> str:
    """Why a hole ending the current ``word`` of command ``cmd`` may be read as a variable *name*
    (bash then evaluates a subscript in it: ``a[$(cmd)]``) or as code again, or ""."""
    m = _PROMPT_VARS.match(word)
    if m and not in_herestr:
        return f"the value of {m.group(1)}, which the shell expands again as code"
    if not cmd or in_herestr:
        return ""
    head, prev = cmd[0], cmd[-1]
    if head in DECLARE and "=" not in word and not word.startswith("-"):
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


def reparses(words: list[str], word: str) -> bool:
    """Whether the current ``word`` after ``words`` (both as written) is parsed again as code: an
    argument of ``eval``, or the code word of an interpreter the command starts (``sudo bash -c "…"``)."""
    plain = [unquote(w) for w in words]
    if plain[0] in ("eval", "builtin", "command") and "eval" in plain[:2]:
        return True
    current = len(plain)
    return any(c.index == current for c in code_words([*plain, unquote(word) or "\0"]))


def reads_code(words: list[str], procsub: bool = False) -> str:
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
