"""The validation-time refusal of user values spliced where they would be code.

Owns: ``is_user_value`` (which placeholders carry a user's value) and ``check_code_splices``: the rule ``security.code-splice``, an error for a user value
(``{{inputs.parameters.*}}``, ``{{workflow.parameters.*}}``) placed where it would be
*code* and cannot be made safe: in Python outside a string literal (or inside an f-string field,
or after a backslash), anywhere in another interpreter's code, or in shell code that is parsed
again (``eval``, ``bash -c "…{{x}}…"`` inside the script). Other shell code is never refused:
:mod:`orchestrator.plan.splice` hoists every value into an environment variable at run time.
Platform values (artifact and output paths, ``{{workflow.name}}`` …) may appear anywhere.
Pure; works on the raw document (positions kept) like :mod:`orchestrator.spec.semantic`.
"""

from __future__ import annotations

import re

from orchestrator.errors import SpecError
from orchestrator.spec.interp import code_words, kind_of, script_code
from orchestrator.spec.placeholders import PLACEHOLDER
from orchestrator.spec.pyctx import CODE, STRING, python_holes
from orchestrator.spec.shape import live
from orchestrator.spec.shellctx import shell_holes
from orchestrator.spec.yamlsafe import Document

_ENV_HINT = {"python": 'os.environ["NAME"]', "node": "process.env.NAME", "perl": "$ENV{NAME}",
             "ruby": 'ENV["NAME"]', "Rscript": 'Sys.getenv("NAME")', "R": 'Sys.getenv("NAME")',
             "php": 'getenv("NAME")', "julia": 'ENV["NAME"]'}


def is_user_value(expr: str) -> bool:
    """A parameter: its value comes from a default, ``-p``, an API binding, a Configuration, a
    schedule slot or another step's output. Not a platform value (paths, ``{{workflow.name}}``)
    nor ``{{item}}``, whose ``withItems`` values are written in the template itself (in shell and
    Python literals they are still hoisted or escaped like any value)."""
    if expr.startswith("="):  # an expression tag: its result is derived from values
        return True
    parts = expr.split(".")
    return len(parts) >= 2 and parts[1] == "parameters" and parts[0] in ("inputs", "workflow")


def refusal(kind: str, name: str, code: str, offset: int = 0) -> list[tuple[str, str]]:
    """(placeholder, why) for every user value in ``code`` that cannot be made safe."""
    text = code[offset:]
    out: list[tuple[str, str]] = []
    if kind == "shell":
        return [(h.expr, h.refused or "shell code that eval or a nested interpreter (bash -c, python -c …) parses again")
                for h in shell_holes(text) if (h.reparsed or h.refused) and is_user_value(h.expr)]
    if kind == "wrapped":
        return [(m.group(1), f"a command string that {name} runs as shell code") for m in PLACEHOLDER.finditer(text)
                if is_user_value(m.group(1))]
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
        elif h.context == STRING and h.reparsed:
            out.append((h.expr, f"a Python string that {h.reparsed}() runs as code"))
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
        argv = command + args
        if key == "script":  # the script's path goes after the command: later words are its arguments
            argv = [*command, "\0script", *args]
        for code in {cw.index: cw for cw in code_words(argv)}.values():
            pos = code.index
            if key == "script":
                if pos == len(command):
                    continue
                pos -= 1 if pos > len(command) else 0
            where = f"{ptr}/command/{pos}" if pos < len(command) else f"{ptr}/args/{pos - len(command)}"
            found += [(where, code.name, e, w) for e, w in refusal(code.kind, code.name, argv[code.index], code.offset)]
        for where, name, ex, why in found:
            param = ex.split(".")[-1] if ".parameters." in ex else ex
            base = "python" if kind_of(name) == "python" else name
            read = _ENV_HINT.get(base, "the environment").replace("NAME", _env_name(param))
            hint = f"pass it through env: (- name: {_env_name(param)}, value: \"{{{{{ex}}}}}\") and read it with {read}"
            if kind_of(name) == "shell":
                hint = (f"pass it as an argument after the code (bash -c 'echo \"$1\"' _ \"{{{{{ex}}}}}\") or read "
                        f"${_env_name(param)} from env:")
            errs.append(doc.error(where, "security.code-splice",
                                  f"template {t.get('name')!r}: parameter {param!r} ({{{{{ex}}}}}) is spliced "
                                  f"into {why}; a value there would run as code", hint))
    return errs


def _env_name(param: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", param).upper() or "VALUE"

