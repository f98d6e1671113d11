"""Ids and names with a trailing newline are refused: Python's ``$`` also matches before a final
``\\n``, so ``^[\\w.-]{4,64}$`` accepted ``"demo-train\\n"`` (the JSON schema's patterns keep
ECMA-262's ``$``, as jsonschema applies them; the semantic checks here decide)."""

from __future__ import annotations

import pytest

from orchestrator.spec.azureml_job import ASSET, NAME


@pytest.mark.parametrize("line", ['  name: "demo-train\\n"\n', '    scenarios.ai.sap.com/id: "demo-scenario\\n"\n'],
                         ids=["executable-id", "scenario-id"])
def test_an_id_with_a_trailing_newline_is_an_error(spec, line: str) -> None:
    key = line.split(":")[0] + ":"
    old = next(x for x in spec.edit(spec.named("demo-train")).splitlines(keepends=True) if x.startswith(key))
    res, _ = spec.validate(spec.broken((old, line)))
    assert "id.pattern" in spec.rules(res)
    assert res.workflows == []


def test_azure_ml_names_and_references_end_where_the_text_ends() -> None:
    assert NAME.match("learning_rate") and not NAME.match("learning_rate\n")
    assert ASSET.match("azureml:train-data:3") and not ASSET.match("azureml:train-data:3\n")
