"""orchestrator.spec.expr: Argo ``when`` / ``depends`` expressions, parsed and evaluated without eval."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.spec.expr import MAX_EXPR, ExprError, depends_refs, evaluate, evaluate_when, parse


def _bug(reason: str) -> pytest.MarkDecorator:
    """Regression test for a bug that was found and fixed (the reason says what it was)."""
    return pytest.mark.regression(reason=f"was BUG: {reason}")


def _cases(rows: list[tuple[str, bool]]) -> list[object]:
    return [pytest.param(text, want, id=text) for text, want in rows]


WHEN = [
    # equality on strings (bare words, as after substitution) and numbers
    ("heads == heads", True), ("heads == tails", False), ("heads != tails", True), ("a==a", True),
    ("1.0 == 1", True), ("01 == 1", True), ("'1' == 1", True), ("1e3 == 1000", True),
    # numeric compare when both sides are numbers, string compare otherwise
    ("2 < 10", True), ("10 < 9", False), ("10 > 9", True), ("-1 < 0", True), ("0.5 >= 0.5", True),
    ("3 <= 2", False), ("'10' > '9'", True), ("abc < abd", True), ("b > a", True), ("10 < abc", True),
    # regular expressions
    ("foo =~ '^f'", True), ("foo =~ ^f", True), ("foo =~ 'o$'", True), ("bar =~ '^f'", False),
    ("foo !~ '^f'", False), ("'v1.2.3' =~ '^v[0-9]+\\.'", True),
    # boolean logic and precedence (&& binds tighter than ||)
    ("true", True), ("false", False), ("!true", False), ("!false", True), ("!!true", True),
    ("true && false", False), ("true || false", True), ("false || false", False),
    ("a == b || c == c && d == e", False), ("a == a || c == c && d == e", True),
    ("(a == b || c == c) && d == d", True), ("!(a == b) && c == c", True), ("!(true && false)", True),
    # quoted strings keep spaces and escapes; empty strings
    ('"hello world" == \'hello world\'', True), ("'hello world' == hello", False),
    ("'it\\'s' == \"it's\"", True), ("'' == ''", True), ("a == ''", False),
    ("'a && b' == 'a && b'", True), ("'(' == '('", True),
    # truthiness of a lone value (Argo: false, 0 and empty are false)
    ("x", True), ("0", False), ("no", False), ("FALSE", False), ("True", True), ("''", False),
]


@pytest.mark.parametrize(("text", "want"), _cases(WHEN))
def test_when_expressions(text: str, want: bool) -> None:
    assert evaluate_when(text) is want


BAD = [
    "", "   ", "a ==", "== a", "(a == a", "a == a)", "((a)", "()", "!", "a && ", "&& a", "a || || b",
    "x == y == z", "hello world == x", "a =~ '('", "'unterminated", "a == 'b",
]


@pytest.mark.parametrize("text", BAD)
def test_malformed_expressions_raise_expr_error(text: str) -> None:
    with pytest.raises(ExprError):
        evaluate_when(text)


def test_expr_error_is_a_usage_error_with_its_own_code() -> None:
    with pytest.raises(UsageError) as info:
        parse("a ==")
    assert info.value.code == "INVALID_EXPRESSION"
    assert "a ==" in str(info.value)


def test_too_long_expression_is_refused_before_parsing() -> None:
    text = "a == a && " * (MAX_EXPR // 10 + 1) + "a == a"
    assert len(text) > MAX_EXPR
    with pytest.raises(ExprError, match="longer than"):
        parse(text)
    ok = "a == a" + " && a == a" * ((MAX_EXPR - 6) // 10)
    assert len(ok) <= MAX_EXPR and evaluate_when(ok) is True


@pytest.mark.parametrize("text", [
    pytest.param("!" * 4000 + "true", id="4000-nots"),
    pytest.param("(" * 2000 + "a" + ")" * 2000, id="2000-parens"),
])
@_bug("deep nesting under MAX_EXPR (4096 chars) recurses in _Parser.unary and raises "
      "RecursionError instead of ExprError")
def test_deep_nesting_within_the_length_cap_is_an_expr_error_or_a_value(text: str) -> None:
    try:
        evaluate_when(text)
    except ExprError:
        pass


@_bug("'nan' is parsed as float('nan') by _num, so a value never equals itself: "
      "evaluate_when('nan == nan') is False (also 'NaN == NaN')")
def test_a_value_always_equals_itself() -> None:
    for v in ("nan", "NaN", "inf", "x", "1"):
        assert evaluate_when(f"{v} == {v}") is True, v


@pytest.mark.parametrize("text", [
    "__import__('os').system('touch {marker}')",
    "__import__(\"os\").system(\"touch {marker}\") == 0",
    "'__import__(\"os\").system(\"touch {marker}\")' == x",
    "open('{marker}', 'w')",
    "exec(\"open('{marker}','w')\")",
])
def test_python_is_never_evaluated(text: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    try:
        result = evaluate_when(text.format(marker=marker))
    except ExprError:
        result = None
    assert result in (None, False, True)
    assert not marker.exists()


def test_python_code_in_a_quoted_string_is_just_a_string() -> None:
    code = "__import__('os').system('x')"
    assert evaluate(parse(f'"{code}" == "{code}"')) is True
    assert evaluate(parse(f'"{code}"')) == code


@_bug("=~ uses Python's backtracking re: \"'aaaa...a!' =~ '^(a+)+$'\" runs for hours (ReDoS through a "
      "parameter value); Argo uses Go's linear-time RE2")
def test_regex_match_cannot_hang_the_runner() -> None:
    code = ("from orchestrator.spec.expr import evaluate_when as e, ExprError\n"
            "try:\n    e(\"'\" + 'a' * 40 + \"!' =~ '^(a+)+$'\")\nexcept ExprError:\n    pass\n")
    subprocess.run([sys.executable, "-c", code], timeout=3, check=True)  # TimeoutExpired fails the test


def test_bare_words_resolve_through_the_atom_callback() -> None:
    values = {"x": "5", "y": "heads"}
    assert evaluate(parse("x > 3 && y == heads"), lambda w: values.get(w, w)) is True
    assert evaluate(parse("x > 7 || y != heads"), lambda w: values.get(w, w)) is False


# ------------------------------------------------------------------ depends


@pytest.mark.parametrize(("text", "refs"), [
    ("a", [("a", "")]),
    ("a && b", [("a", ""), ("b", "")]),
    ("a.Succeeded || b.Failed", [("a", "Succeeded"), ("b", "Failed")]),
    ("!a.Failed && (b || c.Skipped)", [("a", "Failed"), ("b", ""), ("c", "Skipped")]),
    ("(a.AnySucceeded || b.AllFailed) && c.Omitted", [("a", "AnySucceeded"), ("b", "AllFailed"),
                                                     ("c", "Omitted")]),
    ("a.Bogus", [("a", "Bogus")]),  # the result name is checked by the semantic layer
])
def test_depends_refs(text: str, refs: list[tuple[str, str]]) -> None:
    assert depends_refs(parse(text)) == refs


@pytest.mark.parametrize("text", ["a == b", "'a'", "a && 'b'", "a.Succeeded != b"])
def test_depends_refuses_comparisons_and_literals(text: str) -> None:
    with pytest.raises(ExprError, match="depends only allows"):
        depends_refs(parse(text))


def test_depends_evaluates_through_task_results() -> None:
    results = {"a.Succeeded": True, "b.Failed": False, "c": True}
    node = parse("a.Succeeded && (b.Failed || c)")
    assert evaluate(node, lambda w: results[w]) is True
    results["c"] = False
    assert evaluate(node, lambda w: results[w]) is False
