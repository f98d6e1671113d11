"""``when``: the template's expression is parsed first, values are bound as literals afterwards."""

from __future__ import annotations

import pytest

from orchestrator.spec.expr import (
    ExprError,
    check_when,
    evaluate_when,
    evaluate_when_template,
    parse_when,
)

INJECTIONS = ["x' == 'x' || 'a", 'x" == "x" || "a', "x == x || a", "true", "1 == 1", ") || (true",
              "' || true || '", "a\\' == 'a"]


def when(text: str, *values: str) -> bool:
    return evaluate_when_template(parse_when(text), list(values))


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_value_cannot_rewrite_the_condition(value: str) -> None:
    # The old way (substitute, then parse) lets the value add operators: the condition turns true.
    assert when("'{{workflow.parameters.cond}}' == 'yes'", value) is False
    assert when('"{{workflow.parameters.cond}}" == yes', value) is False
    assert when("{{workflow.parameters.cond}} == yes", value) is False
    assert when("{{workflow.parameters.cond}} == '{{workflow.parameters.cond}}'", value, value) is True


def test_the_old_textual_way_was_injectable() -> None:
    text = "'{{workflow.parameters.cond}}' == 'yes'".replace("{{workflow.parameters.cond}}", "x' == 'x' || 'a")
    assert evaluate_when(text) is True  # what parse-after-substitute gave; the holes above give False


@pytest.mark.parametrize("text, values, want", [
    ("{{steps.flip.outputs.result}} == heads", ["heads"], True),
    ("{{steps.flip.outputs.result}} == heads", ["tails"], False),
    ("{{inputs.parameters.n}} > 5", ["10"], True),  # numbers still compare as numbers
    ("{{inputs.parameters.n}} > 5", ["4"], False),
    ("{{inputs.parameters.run}}", ["true"], True),
    ("{{inputs.parameters.run}}", ["false"], False),
    ("!{{inputs.parameters.run}}", ["false"], True),
    ("'{{a}}-{{b}}' == 'x-y'", ["x", "y"], True),
    ("{{a}}{{b}} == xy", ["x", "y"], True),
    ("{{a}} =~ '^v[0-9]'", ["v1.2"], True),
    ("{{a}} == 'hello world'", ["hello world"], True),  # a value with spaces stays one literal
    ("{{tasks.a.status}} == Succeeded && {{tasks.b.status}} != Failed", ["Succeeded", "Skipped"], True),
])
def test_values_bind_as_literals(text: str, values: list[str], want: bool) -> None:
    assert when(text, *values) is want


def test_an_expression_that_does_not_parse_is_reported_with_its_placeholders() -> None:
    for text in ("{{a}} == ", "({{a}} == b", "{{a}} === b", "'{{a}}", "&& {{a}}"):
        reason = check_when(text)
        assert reason is not None, text
        assert "\ue000" not in reason and "\ue001" not in reason
    assert "{{a}}" in (check_when("({{a}} == b") or "")
    assert check_when("{{a}} == b") is None
    with pytest.raises(ExprError, match="reserved"):
        parse_when("\ue000 == b")
    with pytest.raises(ExprError):
        evaluate_when_template(parse_when("{{a}} == b"), [])
