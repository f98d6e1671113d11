"""orchestrator.spec.exprlang / jsonpath: the expr-lang subset of Argo's ``{{=…}}`` tags, evaluated
safely (closed grammar, names only through the resolver, functions only from the table)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.spec import exprlang, jsonpath

VARS: dict[str, Any] = {
    "inputs.parameters.foo": "3",
    "inputs.parameters.should-print": "true",
    "steps.flip-coin.outputs.result": "heads",
    "steps.heads.outputs.result": "H",
    "steps.tails.outputs.result": "T",
    "workflow.parameters.config": '{"employees": [{"name": "Baris", "age": 43}, {"name": "Ana", "age": 30}], "a": 1}',
    "workflow.creationTimestamp": "2026-12-05T03:00:00Z",
    "lastRetry.exitCode": "2",
    "lastRetry.status": "Failed",
    "lastRetry.message": "pod deleted",
    "item": {"n": 2, "name": "x"},
}


def resolve(path: str) -> Any:
    if path in VARS:
        return VARS[path]
    raise exprlang.Missing(f"{path} has no value")


def ev(text: str) -> str:
    return exprlang.to_text(exprlang.run(text, resolve))


@pytest.mark.parametrize("text,want", [
    ("asInt(inputs.parameters.foo) * 10", "30"),
    ("asFloat(inputs.parameters.foo) / 2", "1.5"),
    ("string(asInt(inputs.parameters.foo) + 1) + 'x'", "4x"),
    ("inputs.parameters['should-print'] == 'true'", "true"),
    ("steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : steps.tails.outputs.result", "H"),
    ("sprig.date('2006', workflow.creationTimestamp)", "2026"),
    ("jsonpath(workflow.parameters.config, '$.employees[?(@.name==\"Baris\")].age')", "[43]"),
    ("jsonpath(workflow.parameters.config, '$.employees[?(@.age>42 && @.age<44)].age')", "[43]"),
    ("jsonpath(workflow.parameters.config, '$.employees[0:1]')", '[{"name":"Baris","age":43}]'),
    ("jsonpath(workflow.parameters.config, '$.employees[*].name')", '["Baris","Ana"]'),
    ("jsonpath(workflow.parameters.config, '$.a')", "1"),
    ("toJson(filter([1, 3], {# > 1}))", "[3]"),
    ("tasks.producer.outputs.parameters.msg ?? 'expr-fallback'", "expr-fallback"),
    ("asInt(lastRetry.exitCode) > 1 && lastRetry.status != 'Error' && lastRetry.message matches 'node shutdown|pod deleted'",
     "true"),
    ("item.n + 1", "3"),
    ("'a' in ['a', 'b'] and not ('c' in ['a'])", "true"),
    ("sprig.trim('  pad ') + sprig.upper('x')", "padX"),
    ("len(split('a,b,c', ','))", "3"),
    ("max(1, 5, 2) - min([4, 3])", "2"),
])
def test_argo_expressions(text: str, want: str) -> None:
    assert ev(text) == want


@pytest.mark.parametrize("text,why", [
    ("os.system('id')", "not supported"),
    ("__import__('os')", "not supported"),
    ("open('/etc/passwd')", "not supported"),
    ("a +", "end of expression"),
    ("(" * 100 + "1" + ")" * 100, "nested"),
    ("1 " * 3000, "longer than"),
])
def test_refused_at_parse_time(text: str, why: str) -> None:
    problem = exprlang.check(text)
    assert problem is not None and why in problem


@pytest.mark.parametrize("text,why", [
    ("inputs.parameters.foo * 2", "expected a number"),  # parameters are strings, as in Argo
    ("1 / 0", "division by zero"),
    ("unknown.name", "has no value"),
    ("[1, 2][5]", "out of range"),
    ("2 ** 100000", "too large"),
    ("asInt('x')", "cannot convert"),
])
def test_evaluation_errors_are_expression_errors(text: str, why: str) -> None:
    with pytest.raises(exprlang.ExprLangError) as err:
        ev(text)
    assert why in err.value.message


def test_names_are_the_static_paths_read() -> None:
    tree = exprlang.parse("steps['a-b'].outputs.result == x.y ? asInt(inputs.parameters.n) : item")
    assert exprlang.names(tree) == ["steps.a-b.outputs.result", "x.y", "inputs.parameters.n", "item"]


def test_a_value_is_data_never_code() -> None:
    VARS["inputs.parameters.evil"] = "1) || true || (1"
    try:
        assert ev("inputs.parameters.evil == '1'") == "false"
    finally:
        del VARS["inputs.parameters.evil"]


def test_jsonpath_definite_and_indefinite() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}], "c": {"d": "e"}}
    assert jsonpath.query("$.c.d", doc) == "e"
    assert jsonpath.query("$['c']['d']", doc) == "e"
    assert jsonpath.query("$.a[-1].b", doc) == 2
    assert jsonpath.query("$.a[*].b", doc) == [1, 2]
    assert jsonpath.query("$..b", doc) == [1, 2]
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.query("$.missing", doc)
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.query("a.b", doc)


def test_map_literals_and_predicates_as_in_argos_verbose_snippets_example() -> None:
    VARS["workflow.parameters.weather"] = '{"weekWeather": "eyJ0ZW1wcyI6IFszNCwgMjcsIDE1LCA1NywgNDZdfQo="}'
    try:
        text = ("map([jsonpath(sprig.b64dec(jsonpath(workflow.parameters.weather, '$.weekWeather')), '$.temps')], "
                "{toJson({avg: sprig.add(#[0], #[1], #[2], #[3], #[4]) / 5, min: sprig.min(#[0], #[1], #[2], #[3], "
                "#[4]), max: sprig.max(#[0], #[1], #[2], #[3], #[4])})})[0]")
        assert ev(text) == '{"avg":35.8,"min":15,"max":57}'
    finally:
        del VARS["workflow.parameters.weather"]
