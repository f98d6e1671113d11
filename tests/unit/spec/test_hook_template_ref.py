"""Lifecycle hooks naming their template by ``templateRef`` (Argo's LifecycleHook): linked like a
call's reference (a warning: AI Core support unconfirmed), every mistake a located error."""

from __future__ import annotations

from pathlib import Path

from orchestrator.spec import validate_paths
from tests.conftest import template

LIB = template("hook-lib", "- name: note\n  container: {image: b, command: [\"true\"]}\n").replace(
    "spec:\n  entrypoint: main\n", "spec:\n")
STEP = ("- name: main\n  steps:\n  - - name: a\n      template: work\n      hooks:\n        {hook}\n"
        "- name: work\n  container: {{image: b, command: [\"true\"]}}\n")


def check(tmp_path: Path, hook: str, spec_extra: str = "") -> tuple[list[tuple[str, str]], list[str]]:
    (tmp_path / "lib.yaml").write_text(LIB)
    (tmp_path / "wf.yaml").write_text(template("hook-user", STEP.format(hook=hook), spec_extra=spec_extra))
    res = validate_paths([str(tmp_path / "wf.yaml")])
    return sorted((e.rule, e.pointer) for e in res.errors), [w.rule for w in res.warnings]


def test_hooks_by_template_ref_are_linked_with_the_warning(tmp_path: Path) -> None:
    errors, warnings = check(tmp_path, "r: {expression: steps.a.status == \"Running\", "
                             "templateRef: {name: hook-lib, template: note}}",
                             "  hooks:\n    exit: {templateRef: {name: hook-lib, template: note}}\n")
    assert errors == [] and warnings.count("templateref.unconfirmed") == 1


def test_mistakes_are_located(tmp_path: Path) -> None:
    hooks = "/spec/templates/0/steps/0/0/hooks"
    errors, _w = check(tmp_path, "exit: {templateRef: {name: hook-lib, template: nope}}",
                       "  hooks:\n    exit: {templateRef: {name: no-such-lib, template: note}}\n")
    assert errors == [("templateref.unknown", "/spec/hooks/exit/templateRef/name"),
                      ("templateref.unknown", f"{hooks}/exit/templateRef/template")]
    errors, _w = check(tmp_path, "r: {expression: steps.a.status == \"Running\", "
                       "templateRef: {name: hook-lib, template: note, clusterScope: true}}")
    assert errors == [("aicore.unsupported", f"{hooks}/r/templateRef/clusterScope")]
