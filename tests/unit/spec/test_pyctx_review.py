"""orchestrator.spec.pyctx with PEP 701 f-strings: a value never leaves its string literal.

Each case renders a Python script with :func:`orchestrator.plan.splice.render` and runs it with
real interpreters (this venv's Python and, when installed, 3.12 where an f-string's field may reuse
its own quote): hostile values are printed verbatim or refused, and no marker file appears.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.plan.splice import SpliceError, render
from orchestrator.spec.pyctx import CODE, STRING, python_holes

V = "{{inputs.parameters.v}}"
PY312 = Path("/root/.pyenv/versions/3.12.1/bin/python3")
PYTHONS = [pytest.param(Path(sys.executable), id="venv")] + [
    pytest.param(PY312, id="py312", marks=pytest.mark.skipif(not PY312.exists(), reason="no python 3.12"))]


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [f"{{__import__('os').system('touch {m}')}}", f"'+__import__('os').system('touch {m}')+'",
            f'"+__import__("os").system("touch {m}")+"', "\\", '"""', "'''", "}", "{", "{{x}}", "a\nb",
            f"}}{{__import__('os').system('touch {m}')}}{{", "\\N{DIGIT ONE}", "plain value"]


def run(python: Path, code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "s.py"
    script.write_text(code)
    return subprocess.run([str(python), str(script)], capture_output=True, text=True, timeout=20,
                          check=False, cwd=tmp_path)


def contexts(code: str) -> list[str]:
    return [h.context for h in python_holes(code)]


# Code where the hole is in a replacement field (directly, in a nested literal, in a format spec)
# or the lexer cannot be sure: every one must be refused.
REFUSED = [
    'd = {"k": 1}\nprint(f"{d["k"] + {{inputs.parameters.v}}}")\n',  # PEP 701 field reusing its quote
    "print(f\"{'}' + {{inputs.parameters.v}}}\")\n",  # a brace in a nested literal
    "print(f\"{'{{inputs.parameters.v}}'}\")\n",  # a nested literal inside a field
    'print(f"{1:>{{inputs.parameters.v}}}")\n',  # a format spec
    'print(f"{1:{2}{{inputs.parameters.v}}}")\n',
    'print(f"{1!r:{{inputs.parameters.v}}}")\n',
    "print(f\"{f'{1}{{inputs.parameters.v}}'}\")\n",  # a nested f-string
    'print(f"\\{ {{inputs.parameters.v}} }")\n',  # \\{ does not escape an f-string brace
    'print(rf"\\{ {{inputs.parameters.v}} }")\n',
    'print(f"{ {{inputs.parameters.v}} }")\n',
    # fail closed: whatever the lexer cannot classify refuses every hole of the code
    'print("{{inputs.parameters.v}}")\nprint("unterminated\n',
    'print("{{inputs.parameters.v}}", f"{1 \\\n}")\n',  # a backslash in a field
    "print('{{inputs.parameters.v}}', f'{\"\\\\\"}')\n",  # a backslash in a nested literal
    'print("{{inputs.parameters.v}}", f"{(1]}")\n',  # odd nesting
    'print("{{inputs.parameters.v}}", f"{1 # c\n}")\n',
    'print("{{inputs.parameters.v}}", f"\\N{DIGIT {ONE}")\n',
    'print(f"\\N{{inputs.parameters.v}}")\n',
    'print("{{inputs.parameters.v}}", f"}")\n',
    'print("{{inputs.parameters.v}}", f"{1:{{x}")\n',
    'print(f"{{{inputs.parameters.v}}}")\n',  # the lexer sees other holes than the substitution
    'print("{{inputs.parameters.v}}", ' + 'f"{' * 40 + '1' + '}"' * 40 + ')\n',  # too deep
]


@pytest.mark.parametrize("code", REFUSED)
def test_holes_in_fields_or_unclear_code_are_refused(code: str) -> None:
    assert CODE in contexts(code), code
    with pytest.raises(SpliceError, match="inputs.parameters.v"):
        render(["python3"], [], code, lambda ex: "1", set(), "t")


# Code where every hole is inside a literal outside any field: each value prints verbatim.
PRINTED = [
    'd = {"k": 1}\nprint(f"{d["k"]}: {{inputs.parameters.v}}")\n',
    "print(f\"{'}'}[{{inputs.parameters.v}}]\")\n",
    "print(f'{1:>3}|{{inputs.parameters.v}}|{2!r}')\n",
    'print(f"{1:{2}}|{{inputs.parameters.v}}|")\n',
    "print(f\"{f'{1}'}<{{inputs.parameters.v}}>\", '{{inputs.parameters.v}}')\n",
    'print(f"\\N{DIGIT ONE}{{inputs.parameters.v}}")\n',
    'print(rf"\\{1}{{inputs.parameters.v}}")\n',
    'print(f"""{1\n}""" f"{{inputs.parameters.v}}")\n',
    "print(f'{\"a\" if 1 != 2 else \"b\"}{{inputs.parameters.v}}')\n",
    'print(b"{{inputs.parameters.v}}".decode(), r"{{inputs.parameters.v}}", """{{inputs.parameters.v}}""")\n',
]
WANT = ["1: {v}", "}[{v}]", "  1|{v}|2", " 1|{v}|", "1<{v}> {v}", "1{v}", "\\1{v}", "1{v}", "a{v}",
        "{v} {v} {v}"]


def needs_312(code: str) -> bool:
    return '{d["k"]}' in code or "{f'{1}'}" in code


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize(("code", "want"), list(zip(PRINTED, WANT, strict=True)))
def test_values_in_literals_print_verbatim_and_never_run(code: str, want: str, python: Path,
                                                         tmp_path: Path) -> None:
    assert set(contexts(code)) == {STRING}, code
    if needs_312(code) and python == Path(sys.executable) and sys.version_info < (3, 12):
        pytest.skip("PEP 701 syntax")
    marker = tmp_path / "M"
    for value in payloads(marker):
        if "b\"" in code and not value.isascii():
            continue
        rendered = render(["python3"], [], code, lambda ex, v=value: v, set(), "t").script or ""
        out = run(python, rendered, tmp_path)
        assert out.returncode == 0, (value, rendered, out.stderr)
        assert out.stdout == want.replace("{v}", value) + "\n", (value, rendered)
        assert not marker.exists(), (value, rendered)


def test_the_reviewers_reproducers_are_classified() -> None:
    code = 'd = {"k": 1}\nprint(f"{d["k"]}: {{inputs.parameters.v}}")\n'
    (h,) = python_holes(code)
    assert (h.context, h.prefix, h.quote, h.formatted) == (STRING, "f", '"', True)
    assert contexts("print(f\"{'}' + {{inputs.parameters.v}}}\")") == [CODE]
    assert contexts("x = '{{a}}'  # {{b}}\ny = {{c}} + f\"{ {{d}} }{{e}}\"\n") == [STRING, "comment", CODE, CODE,
                                                                                     STRING]
