"""``executions explain`` wording: every difference reads ``NAME: OLD → NEW`` (run/caching.diff)."""

from __future__ import annotations

from orchestrator.run.caching import diff


def test_an_input_artifact_reads_like_a_parameter() -> None:
    old = {"inputs": {"model": "93e999a36560" + "0" * 52}, "parameters": {"n": "1"}}
    new = {"inputs": {"model": "0e46e9ecd113" + "1" * 52}, "parameters": {"n": "2"}}
    assert diff(old, new) == ["inputs.model: 93e999a36560… → 0e46e9ecd113…", "parameters.n: '1' → '2'"]


def test_an_input_that_appeared_and_an_edited_script() -> None:
    out = diff({"inputs": {}, "source": "print(1)"}, {"inputs": {"data": "abcdefabcdef99"}, "source": "print(2)"})
    assert out == ["inputs.data: none → abcdefabcdef…", "source: edited"]
