"""Hostile YAML (reliability.md row 13): every case ends as a located SpecError, never an exception,
a hang or a dead interpreter. Cases that could segfault, hang or exhaust memory if a cap broke
(deep nesting, alias bombs, huge files) run in a child process with a timeout and an address-space
limit, so a failure fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import Result, validate_paths, validate_text

CHILD_TIMEOUT = 20
CHILD_MEMORY = 4 << 30  # bytes of address space; a broken alias-bomb cap dies here, not in the OOM killer

# The child validates one file and prints the errors as JSON.
CHILD = """\
import json, sys
from orchestrator.spec import validate_paths
res = validate_paths([sys.argv[1]])
print(json.dumps({"errors": [e.to_dict() for e in res.errors + res.warnings],
                  "workflows": len(res.workflows)}))
"""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def validate_in_child(path: Path) -> dict:
    """``validate_paths([path])`` in a fresh interpreter; fails the test on a crash or a hang."""
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT, preexec_fn=_limit_memory, cwd=path.parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"validation of {path.name} did not finish within {CHILD_TIMEOUT} s")
    assert proc.returncode == 0, f"child died with {proc.returncode}:\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def only_error(res: Result, rule: str) -> SpecError:
    """Exactly one problem, of ``rule``; every problem is a SpecError."""
    problems = res.errors + res.warnings
    assert all(isinstance(e, SpecError) for e in problems)
    assert [e.rule for e in problems] == [rule], [e.format() for e in problems]
    assert not res.ok and res.workflows == []
    return problems[0]


def only_child_error(out: dict, rule: str) -> dict:
    assert [e["rule"] for e in out["errors"]] == [rule], out["errors"]
    assert out["workflows"] == 0
    return out["errors"][0]


def test_duplicate_key_names_both_lines(spec) -> None:
    text = spec.broken(("  name: demo-train\n", "  name: demo-train\n  name: demo-train-2\n"))
    res, path = spec.validate(text)
    err = only_error(res, "yaml.duplicate-key")
    first, again = spec.pos(text, "  name: demo-train\n")[0], spec.pos(text, "  name: demo-train-2")[0]
    assert (first, again) == (4, 5)
    assert f"line {first}" in err.message and f"line {again}" in err.message and "'name'" in err.message
    assert (err.file, err.line, err.col, err.pointer) == (path, again, 3, "/metadata/name")


@pytest.mark.parametrize("where", ["document", "value"])
def test_python_object_apply_is_rejected_and_never_run(spec, tmp_path: Path, where: str) -> None:
    marker = tmp_path / "MARKER"
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    text = payload + "\n" if where == "document" else spec.broken(("  name: demo-train\n", f"  name: {payload}\n"))
    res, _ = spec.validate(text)
    err = only_error(res, "yaml.unsafe-tag")
    assert "python/object/apply" in err.message
    assert (err.line, err.col) == spec.pos(text, "!!python")
    assert not marker.exists()


def test_python_name_tag_is_rejected(spec) -> None:
    text = spec.broken(("        image: python:3.11-slim\n        command: [python3]\n",
                        "        image: !!python/name:os.system\n        command: [python3]\n"))
    res, _ = spec.validate(text)
    err = only_error(res, "yaml.unsafe-tag")
    assert "python/name:os.system" in err.message
    assert (err.line, err.col) == spec.pos(text, "!!python")


def test_billion_laughs_alias_bomb(tmp_path: Path) -> None:
    lines = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")  # 9 levels x 9 aliases
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    err = only_child_error(validate_in_child(path), "yaml.alias-bomb")
    assert 1 <= err["line"] <= len(lines)


@pytest.mark.parametrize(("name", "text"), [
    ("flow-sequence", "[" * 60_000 + "]" * 60_000 + "\n"),
    ("flow-mapping", "{a: " * 60_000 + "1" + "}" * 60_000 + "\n"),
    ("block-mapping", "".join("  " * i + "a:\n" for i in range(150)) + "  " * 150 + "1\n"),
], ids=["flow-sequence", "flow-mapping", "block-mapping"])  # never the text: pytest<9.2 puts it in the id,
def test_deep_nesting(tmp_path: Path, name: str, text: str) -> None:
    """Any clean, located error in bounded time and memory (the child has both limits): our depth
    rule, or the parser's own error when its C core stops first (newer PyYAML caps flow nesting).

    (The ids above: a 300 KB id would be a 300 KB PYTEST_CURRENT_TEST, and spawning the child fails with E2BIG.)"""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    out = validate_in_child(path)
    assert len(out["errors"]) == 1 and out["workflows"] == 0, out["errors"]
    err = out["errors"][0]
    assert err["rule"] in ("yaml.too-deep", "yaml.syntax"), err
    assert err["file"] == str(path) and err["line"] >= 1 and err["col"] >= 1
    if name.startswith("flow"):
        assert err["line"] == 1


def test_file_of_64_mib_is_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    size = 64 * 1024 * 1024
    with open(path, "wb") as fh:
        fh.write(b"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\n")
        fh.truncate(size)  # sparse: the size check must not need the content
    err = only_child_error(validate_in_child(path), "yaml.file-too-large")
    assert (err["file"], err["line"], err["col"]) == (str(path), 1, 1)
    assert str(size) in err["message"]


def test_invalid_utf8(spec) -> None:
    data = b"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata:\n  name: caf\xe9\n"
    path = spec.write("latin1.yaml", data)
    for res in (validate_paths([path]), validate_text(data, path)):
        err = only_error(res, "yaml.encoding")
        assert (err.file, err.line) == (path, 4)


def test_syntax_error_reports_its_line(spec) -> None:
    text = spec.broken(("  name: demo-train\n", "  name: demo: train\n"))
    res, _ = spec.validate(text)
    err = only_error(res, "yaml.syntax")
    assert (err.line, err.col) == spec.pos(text, ": train")
    assert err.line == 4


def test_control_character_reports_its_line(spec) -> None:
    text = spec.broken(("  name: demo-train\n", "  name: demo\x00train\n"))
    res, _ = spec.validate(text)
    err = only_error(res, "yaml.syntax")
    assert err.line == 4


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"], ids=["list", "string", "number"])
def test_document_that_is_not_a_mapping(spec, text: str) -> None:
    res, _ = spec.validate(text)
    err = only_error(res, "schema.type")
    assert (err.line, err.col, err.pointer) == (1, 1, "")
    assert "mapping" in err.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "---\n...\n"],
                         ids=["empty", "blank-lines", "comment", "empty-document", "explicit-end"])
def test_empty_file_gives_no_templates(spec, text: str) -> None:
    res, path = spec.validate(text)
    assert res.files == [path]
    assert res.workflows == [] and res.configurations == []
    assert all(isinstance(e, SpecError) for e in res.errors + res.warnings)


def test_complex_mapping_key(spec) -> None:
    text = "? [a, b]\n: c\n"
    res, _ = spec.validate(text)
    err = only_error(res, "yaml.complex-key")
    assert (err.line, err.col) == spec.pos(text, "[a, b]")


def test_one_hostile_file_does_not_hide_the_others(spec) -> None:
    bad = spec.write("bad.yaml", '!!python/object/apply:os.system ["true"]\n')
    broken = spec.write("broken.yaml", spec.broken(("entrypoint: main", "entrypoint: mian")))
    good = spec.write("good.yaml", spec.named("demo-good"))
    res = validate_paths([bad, broken, good])
    assert sorted((e.file, e.rule) for e in res.errors) == [(bad, "yaml.unsafe-tag"), (broken, "ref.template")]
    assert [w.source for w in res.workflows] == [good]
