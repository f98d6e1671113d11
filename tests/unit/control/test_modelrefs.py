"""Parsing of ``models:/`` references (resolution is covered end to end in
tests/integration/test_models_binding.py)."""

from __future__ import annotations

import pytest

from orchestrator.control import modelrefs
from orchestrator.errors import BindingError


@pytest.mark.parametrize(("text", "want"), [
    ("models:/m@champion", ("m", "champion", None)),
    ("models:/breast-cancer/12", ("breast-cancer", None, 12)),
    ("models:/a.b_c-d@_staging-2", ("a.b_c-d", "_staging-2", None)),
    ("models:/m@latest", ("m", "latest", None)),
])
def test_parse(text: str, want: tuple[str, str | None, int | None]) -> None:
    assert modelrefs.is_reference(text)
    assert modelrefs.parse(text) == want


@pytest.mark.parametrize("text", ["models:/m", "models:/m@", "models:/m/0", "models:/m/1x", "models:/m@9",
                                  "models:/@x", "models://m@x", "models:/m@x/1", "models:/-m@x"])
def test_malformed_is_a_binding_error(text: str) -> None:
    assert modelrefs.is_reference(text)
    with pytest.raises(BindingError, match="bad model reference"):
        modelrefs.parse(text)


def test_other_values_are_not_references() -> None:
    for text in ("0123abcd", "ai://default/x", "file:///tmp/m", "./models/m", "models/m@x"):
        assert not modelrefs.is_reference(text)


def test_record_shapes() -> None:
    item = {"key": "model", "artifactId": "A", "reference": "models:/m@c", "model": "m", "version": 3,
            "sha256": "s"}
    assert modelrefs.wire(item) == {"key": "model", "artifactId": "A", "reference": "models:/m@c", "model": "m",
                                    "modelVersion": 3, "sha256": "s"}
    assert modelrefs.wire({"key": "d", "artifactId": "B"}) == {"key": "d", "artifactId": "B"}
