"""spec.exprholes: placeholders compiled as reserved names, values bound, never lexed."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.spec import exprholes, exprlang


def value(text: str, vals: dict[str, str], names: dict[str, Any] | None = None) -> Any:
    c = exprholes.compile_text(text)
    bound = {**exprholes.bind(c, lambda ex: vals[ex]), **(names or {})}
    return exprlang.evaluate(c.tree, lambda p: bound[p])


@pytest.mark.parametrize("v", ["' == '' || true || '", "` == '' || true || `", '" || true || "', "\\", "{{x}}"])
def test_a_value_never_changes_the_expression(v: str) -> None:
    for text in ("'a-{{x}}' == 'a-b'", "`a-{{x}}` == 'a-b'", '"a-{{x}}" == "a-b"', "{{x}} == 'b'"):
        assert value(text, {"x": v}) is False
        assert value(text.replace("'a-b'", "'a-' + v").replace('"a-b"', '"a-" + v').replace("'b'", "v"),
                     {"x": v}, {"v": v}) is True


def test_values_are_typed_as_argo_reads_them() -> None:
    assert value("{{x}} > 2 && '{{x}}' == '3'", {"x": "3"}) is True
    assert value("{{x}} == true", {"x": "true"}) is True
    assert value("'{{x}}' == 'café' && '{{x}}{{x}}' == 'cafécafé'", {"x": "café"}) is True
    assert value("{{=asInt(inputs.parameters.n) + 1}} == 3", {"=asInt(inputs.parameters.n) + 1": "3"}) is True


def test_names_read_include_the_placeholders() -> None:
    c = exprholes.compile_text("steps.a.status == 'x-{{inputs.parameters.p}}' || {{=tasks.b.outputs.result}}")
    assert set(c.names) == {"steps.a.status", "inputs.parameters.p", "tasks.b.outputs.result"}


@pytest.mark.parametrize("text", ["$__ph0 == 'a'", "'a\\{{x}}' == 'b'", "'{{x}}' ==", "'{{x}}"])
def test_bad_texts_are_refused(text: str) -> None:
    with pytest.raises(exprlang.ExprLangError):
        exprholes.compile_text(text)
