"""Review findings on orchestrator.plan.splice: wrappers, here-strings, bash name/arithmetic
contexts and values handed to a second interpreter. Every case runs real bash (and dash where it
applies) with the payload and checks that the marker file never appears."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.plan.splice import SpliceError, render
from orchestrator.spec.shellctx import shell_holes

V = "{{inputs.parameters.v}}"


def evil(tmp: Path) -> list[str]:
    m = tmp / "MARKER"
    return [f"$(touch {m})", f"a[$(touch {m})]", f"x; touch {m}", f"`touch {m}`"]


def execute(argv: list[str], value: str, tmp: Path, source: str | None = None) -> subprocess.CompletedProcess[str] | None:
    """Render and run; None when the splice is refused (SpliceError)."""
    try:
        r = render(argv, [], source, lambda ex: value, set(os.environ), "tpl")
    except SpliceError as e:
        assert "'tpl'" in str(e) and "inputs.parameters.v" in str(e)
        return None
    run = r.argv
    if source is not None:
        script = tmp / "script"
        script.write_text(r.script or "")
        run = [*r.argv[:len(argv) or 1], str(script)]
    return subprocess.run(run, env={**os.environ, **r.env}, cwd=tmp, capture_output=True, text=True, timeout=20,
                          check=False, stdin=subprocess.DEVNULL)


def assert_safe(argv: list[str], tmp: Path, source: str | None = None, *, refused: bool | None = None) -> None:
    for value in evil(tmp):
        p = execute(argv, value, tmp, source)
        if refused is not None:
            assert (p is None) == refused, (argv, source, value, p and p.stdout)
        assert not (tmp / "MARKER").exists(), (argv, source, value)


# ------------------------------------------------------------------ 1. wrappers hide the code word

@pytest.mark.parametrize("argv", [
    ["timeout", "600", "sh", "-c", f'echo "v={V}"'], ["nice", "-n", "5", "bash", "-c", f'echo "v={V}"'],
    ["stdbuf", "-oL", "sh", "-c", f"echo {V}"], ["flock", "LOCK", "sh", "-c", f'echo "{V}"'],
    ["setsid", "-w", "sh", "-c", f"echo '{V}'"], ["env", "X=1", "timeout", "5", "bash", "-lc", f'echo "{V}"'],
    ["timeout", "5", "/bin/bash", "-ec", f'echo "{V}"'], ["xargs", "-0", "sh", "-c", f'echo "{V}"'], ["timeout", "5", "dash", "-xc", f'echo "{V}"'],
])
def test_shell_code_behind_a_wrapper_is_hoisted(argv: list[str], tmp_path: Path) -> None:
    if not shutil.which(argv[argv.index(next(a for a in argv if a.endswith(("sh", "bash"))))]):
        pytest.skip("shell missing")
    for value in evil(tmp_path):
        p = execute(argv, value, tmp_path)
        assert p is not None and value in p.stdout, (argv, p)
        assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("argv", [
    ["script", "-qc", f"echo {V}", "/dev/null"], ["script", "-q", "-c", f"echo {V}", "/dev/null"],
    ["su", "-c", f"echo {V}"], ["su", "-", "root", "-c", f"echo {V}"], ["sudo", "-E", "sh", "-c", f"echo {V}"],
    ["sudo", "-s", f"echo {V}"], ["ssh", "host", "echo", V], ["ssh", "-p", "22", "host", f"echo {V}"],
    ["watch", "-n", "1", f"echo {V}"], ["flock", "-c", f"echo {V}", "F"], ["env", "-i", "sh", "-c", f"echo {V}"],
    ["uv", "run", "python", "-c", f"print({V})"],
    ["timeout", "5", "node", "-e", f"console.log('{V}')"],
])
def test_command_strings_of_wrappers_refuse_user_values(argv: list[str], tmp_path: Path) -> None:
    with pytest.raises(SpliceError, match=r"inputs\.parameters\.v.*'tpl'"):
        render(argv, [], None, lambda ex: "$(touch M)", set(), "tpl")
    platform = [a.replace(V, "{{workflow.name}}") for a in argv]
    render(platform, [], None, lambda ex: "wf", set(), "tpl")  # platform values are not refused


def test_validation_names_template_and_parameter_for_wrapped_code() -> None:
    from orchestrator.spec.interp import code_words
    from orchestrator.spec.splice import refusal
    argv = ["timeout", "600", "su", "-c", f"echo {V}"]
    (c,) = code_words(argv)
    assert c.kind == "wrapped" and refusal(c.kind, c.name, argv[c.index]) != []


@pytest.mark.parametrize("argv", [["python3", "train.py", "--lr", V], ["timeout", "600", "python3", "train.py", "--lr", V],
                                  ["nice", "-n", "5", "bash", "run.sh", V], ["xargs", "-0", "echo", V]])
def test_plain_argv_words_after_wrappers_get_the_value(argv: list[str]) -> None:
    r = render(argv, [], None, lambda ex: "$(touch M); x", set(), "t")
    assert r.argv[-1] == "$(touch M); x" and r.env == {}


# ------------------------------------------------------------------ 2. here-strings

@pytest.mark.parametrize("first", ['read -r first <<< "$HOME"', "read -r first <<<$HOME", "read -r first <<< '$HOME'",
                                   "cat <<<x", 'cat <<< "a b"'])
def test_here_string_does_not_hide_later_holes(first: str, tmp_path: Path) -> None:
    code = f'{first}\necho "value: {V}"\necho {V}\n'
    assert all(h.context != "literal" for h in shell_holes(code))
    for value in evil(tmp_path):
        p = execute(["bash", "-c", code], value, tmp_path)
        assert p is not None and f"value: {value}" in p.stdout
    assert not (tmp_path / "MARKER").exists()


def test_here_string_with_a_value_is_hoisted(tmp_path: Path) -> None:
    for word in (f'"{V}"', f"'{V}'", V):
        code = f"read -r x <<< {word}; printf '[%s]' \"$x\""
        for value in evil(tmp_path):
            p = execute(["bash", "-c", code], value, tmp_path)
            assert p is not None and p.stdout == f"[{value}]", (word, p)
    assert not (tmp_path / "MARKER").exists()


# ------------------------------------------------------------------ 3. bash arithmetic / name contexts

@pytest.mark.parametrize("code", [
    f'let "n={V}+1"; echo $n', f"declare -i n; n=\"{V}\"; echo $n", f"a[{V}]=1; echo ${{a[@]}}",
    f'a["{V}"]=1', f"declare -i n\nn={V}\necho $n", f'typeset -i n; read n <<< "{V}"; echo $n',
    f'n="{V}"; echo "${{!n}}"', f"local_f() {{ local -i z; z={V}; }}; local_f",
])
def test_arithmetic_contexts_need_a_number(code: str, tmp_path: Path) -> None:
    assert_safe(["bash", "-c", code], tmp_path, refused=True)
    p = execute(["bash", "-c", code], "3", tmp_path)
    assert p is not None


@pytest.mark.parametrize("code", [f'printf -v "{V}" %s x', f'declare "{V}=1"', f'unset "{V}"', f'[[ -v "{V}" ]]',
                                  f'read "{V}" <<< x', f"mapfile {V} < /dev/null", f'export "{V}"',
                                  f"test -v {V}", f'while true; do read -r "{V}"; break; done <<< x'])
def test_variable_name_contexts_refuse_user_values(code: str, tmp_path: Path) -> None:
    assert_safe(["bash", "-c", code], tmp_path, refused=True)
    assert [bool(h.refused) for h in shell_holes(code)] == [True]


@pytest.mark.parametrize("code", [f'echo "lr={V}"', f'export LR="{V}"; echo "$LR"', f'declare x="{V}"; echo "$x"',
                                  f'read -p "{V}" x <<< y; echo "$x {V}"', f'printf "%s\\n" "{V}"',
                                  f'for k in "${{!arr[@]}}"; do :; done; echo "{V}"'])
def test_legit_value_contexts_still_print_the_value(code: str, tmp_path: Path) -> None:
    for value in evil(tmp_path):
        p = execute(["bash", "-c", code], value, tmp_path)
        assert p is not None and value in p.stdout + p.stderr, (code, value)
    assert not (tmp_path / "MARKER").exists()


# ------------------------------------------------------------------ 4. second interpreters

@pytest.mark.parametrize("code", [
    f"python3 - <<EOF\nprint(\"{V}\")\nEOF", f"python3 - <<'EOF'\nprint(\"{V}\")\nEOF", f"bash <<EOF\necho {V}\nEOF",
    f"sh <<'EOF'\necho {V}\nEOF", f'echo "{V}" | sh', f'echo "{V}" | bash -s', f'echo "print(\'{V}\')" | python3 -',
    f"echo '{V}' |\n  sh", f'trap "echo {V}" EXIT', f'alias x="echo {V}"', f'source <(echo "{V}")',
    f'. <(echo "{V}")', f'bash <(echo "{V}")', f'bash <<< "{V}"', f'python3 <<< "{V}"',
    f'echo "{V}" | xargs -I{{}} sh -c "echo {{}}"', f'echo "$(echo {V})" | sh',
])
def test_values_fed_to_a_second_interpreter_are_refused(code: str, tmp_path: Path) -> None:
    assert_safe(["bash", "-c", code], tmp_path, refused=True)
    with pytest.raises(SpliceError, match="'tpl'"):
        render(["bash"], [], code, lambda ex: "x", set(), "tpl")


@pytest.mark.parametrize("code", [f'echo "{V}" | cat', f'echo "{V}" | python3 -c "import sys; print(sys.stdin.read())"',
                                  f"cat <<EOF\n{V}\nEOF", f'echo "{V}" | grep -F x || true; echo "{V}"',
                                  f'diff <(echo "{V}") <(echo "{V}") && echo same',
                                  f'python3 -c "import sys; print(sys.stdin.read())" <<< "{V}"'])
def test_data_fed_to_ordinary_commands_is_still_fine(code: str, tmp_path: Path) -> None:
    for value in evil(tmp_path):
        p = execute(["bash", "-c", code], value, tmp_path)
        assert p is not None, code
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("code", [f"cat <<EOF | sh\necho {V}\nEOF", f"cat <<'EOF' | bash\necho {V}\nEOF",
                                  f'echo "{V}" |& sh'])
def test_here_documents_and_pipes_into_a_later_interpreter_are_refused(code: str, tmp_path: Path) -> None:
    assert_safe(["bash", "-c", code], tmp_path, refused=True)


def test_xargs_without_a_replace_string_passes_arguments(tmp_path: Path) -> None:
    code = f'printf "%s\\0" "{V}" | xargs -0 sh -c \'printf "[%s]" "$@"\' _'
    for value in evil(tmp_path):
        p = execute(["bash", "-c", code], value, tmp_path)
        assert p is not None and p.stdout == f"[{value}]"
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("code", [f'{{ echo "{V}"; }} | sh', f'(echo "{V}") | bash', f'for x in 1; do echo "{V}"; done | sh',
                                  f'printf "%s" "{V}" | tee >(sh) >/dev/null'])
def test_compound_commands_piped_into_an_interpreter_are_refused(code: str, tmp_path: Path) -> None:
    assert_safe(["bash", "-c", code], tmp_path, refused=True)


@pytest.mark.parametrize("argv", [["perl", "-ne", f"print '{V}'"], ["perl", "-lane", f"print '{V}'"],
                                  ["awk", f'BEGIN {{ print "{V}" }}'], ["timeout", "5", "awk", "-F", ":", f'{{print "{V}"}}'],
                                  ["sed", "-n", f"s/a/{V}/p"], ["sed", "-e", f"s/a/{V}/"]])
def test_program_texts_of_awk_sed_perl_refuse_user_values(argv: list[str], tmp_path: Path) -> None:
    with pytest.raises(SpliceError, match=r"inputs\.parameters\.v.*'tpl'"):
        render(argv, [], None, lambda ex: "x", set(), "tpl")
    r = render(["awk", "-f", "prog.awk", V], [], None, lambda ex: "$(x)", set(), "tpl")
    assert r.argv[-1] == "$(x)"  # a data operand, not the program


def test_env_split_string_and_namerefs(tmp_path: Path) -> None:
    for argv in (["env", "-S", f"sh -c 'echo {V}'"], ["env", f"-Ssh -c 'echo {V}'"], ["env", "-iS", f"sh -c '{V}'"]):
        with pytest.raises(SpliceError, match="'tpl'"):
            render(argv, [], None, lambda ex: "x", set(), "tpl")
    assert_safe(["bash", "-c", f'declare -n r="{V}"; echo "$r"'], tmp_path, refused=True)
    assert_safe(["bash", "-c", f'f() {{ local -n r="$1"; echo "$r"; }}; f "{V}"'], tmp_path, refused=True)


@pytest.mark.parametrize("code", [f'echo "{V}" | su -', f'echo "{V}" | sudo -s', f'echo "{V}" | sudo -u root -i', f"su root <<EOF\necho {V}\nEOF",
                                  f'echo "{V}" | xargs -n1 sh -c'])
def test_login_shells_reading_stdin_are_interpreters(code: str) -> None:
    assert [bool(h.refused) for h in shell_holes(code)] == [True]


def test_script_command_words_are_checked_too() -> None:
    with pytest.raises(SpliceError, match="'tpl'"):
        render(["timeout", "5", "su", "-c", f"echo {V}"], [], "echo hi\n", lambda ex: "x", set(), "tpl")
    r = render(["python3"], ["-c", V], "print(1)\n", lambda ex: "$(x)", set(), "tpl")
    assert r.argv == ["python3", "-c", "$(x)"]  # after the script's path: a script argument, not code


@pytest.mark.parametrize("body, pointer", [
    ("container:\n  image: a\n  command: [timeout, '600', su, -c, 'echo {{inputs.parameters.p}}']\n",
     "/spec/templates/0/container/command/4"),
    ("container:\n  image: a\n  command: [sh, -c]\n  args: ['read -r x <<< y\n    echo {{inputs.parameters.p}} | sh']\n",
     "/spec/templates/0/container/args/0"),
    ("script:\n  image: a\n  command: [nice, su, -c, 'echo {{inputs.parameters.p}}']\n  source: 'echo hi'\n",
     "/spec/templates/0/script/command/3"),
    ("container:\n  image: a\n  command: [bash, -c, 'unset \"{{inputs.parameters.p}}\"']\n", "/spec/templates/0/container/command/2"),
])
def test_validation_refuses_naming_template_and_parameter(body: str, pointer: str) -> None:
    from orchestrator.spec.splice import check_code_splices
    from tests.unit.spec.test_splice_check import doc_of, leaf
    _, doc = doc_of(leaf(body))
    errs = check_code_splices(doc)
    assert [e.pointer for e in errs] == [pointer], errs
    assert "template 'main'" in errs[0].message and "parameter 'p'" in errs[0].message


def test_validation_accepts_plain_argv_behind_wrappers() -> None:
    from orchestrator.spec.splice import check_code_splices
    from tests.unit.spec.test_splice_check import doc_of, leaf
    _, doc = doc_of(leaf("container:\n  image: a\n  command: [timeout, '600', python, train.py, --lr, "
                         "'{{inputs.parameters.p}}']\n"))
    assert check_code_splices(doc) == []
    _, doc = doc_of(leaf("container:\n  image: a\n  command: [timeout, '600', sh, -c, 'echo \"{{inputs.parameters.p}}\"']\n"))
    assert check_code_splices(doc) == []


@pytest.mark.parametrize("code", [f'PS4="{V}"; set -x; true', f"export PS4={V}; set -x; true",
                                  f'BASH_ENV="{V}" bash -c true'])
def test_prompt_and_startup_variables_refuse_user_values(code: str, tmp_path: Path) -> None:
    assert_safe(["bash", "-c", code], tmp_path, refused=True)
