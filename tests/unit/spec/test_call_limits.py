"""Validation of ``retryStrategy``, ``timeout`` and ``activeDeadlineSeconds`` on steps/dag templates:
Argo retries the whole call (checked as a container's retryStrategy is) and refuses the two limits
there (its validator: they bound container and script templates only)."""

from __future__ import annotations

import pytest

from orchestrator.spec import validate_text
from tests.conftest import template

WORK = "- name: work\n  container: {image: b, command: [\"true\"]}\n"


def check(fields: str, kind: str = "steps") -> list[tuple[str, str]]:
    body = "  steps: [[{name: a, template: work}]]\n" if kind == "steps" else \
        "  dag: {tasks: [{name: a, template: work}]}\n"
    res = validate_text(template("limits", "- name: main\n" + fields + body + WORK).encode(), "x.yaml")
    return sorted((e.rule, e.pointer) for e in res.errors)


@pytest.mark.parametrize(("fields", "kind", "want"), [
    ("  retryStrategy: {limit: 2, retryPolicy: Always, backoff: {duration: 1s, factor: 2, cap: 5s}}\n", "steps", []),
    ("  retryStrategy: {limit: 2, expression: 'lastRetry.status == \"Failed\" && asInt(retries) < 2'}\n", "dag", []),
    ("  retryStrategy: {limit: many}\n", "dag", [("retry.limit", "/spec/templates/0/retryStrategy/limit")]),
    ("  retryStrategy: {expression: 'inputs.parameters.nope == 1'}\n", "steps",
     [("retry.expression", "/spec/templates/0/retryStrategy/expression")]),
    ("  timeout: 10s\n", "steps", [("template.leaf-only", "/spec/templates/0/timeout")]),
    ("  activeDeadlineSeconds: 10\n", "dag", [("template.leaf-only", "/spec/templates/0/activeDeadlineSeconds")]),
], ids=["steps-retry", "dag-expression", "bad-limit", "bad-expression", "steps-timeout", "dag-deadline"])
def test_limits_of_a_steps_or_dag_template(fields: str, kind: str, want: list[tuple[str, str]]) -> None:
    assert check(fields, kind) == want


def test_template_defaults_give_a_steps_template_its_retry_strategy() -> None:
    text = template("limits", "- name: main\n  steps: [[{name: a, template: work}]]\n" + WORK,
                    spec_extra="  templateDefaults:\n    timeout: 30s\n    retryStrategy: {limit: \"2\"}\n")
    res = validate_text(text.encode(), "d.yaml")
    assert res.ok, [e.format() for e in res.errors]
    main, work = res.workflows[0].templates["main"], res.workflows[0].templates["work"]
    assert main.retry is not None and main.retry.limit == 2 and main.timeout is None  # Argo: no timeout on a call
    assert work.retry is not None and work.timeout == 30.0
