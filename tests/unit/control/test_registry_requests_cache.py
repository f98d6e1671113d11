"""``register_requests`` parses a template's register-model annotations once per template text
(issue 15 item 3: a sweep's trials are executions of one template): a re-registered template with
other annotations is read anew, the same text is not parsed again."""

from __future__ import annotations

from pathlib import Path

from orchestrator.control import registry
from orchestrator.spec import validate_text
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import template


def _register(store: SqliteStore, model: str) -> None:
    text = template("train", """
    - name: main
      container: {image: x, command: ["true"]}
    """, annotations=f"orchestrator/register-model.the-model: {model}\n")
    res = validate_text(text.encode(), "train.yaml")
    assert not res.errors, res.errors
    store.register_executable("default", res.workflows[0], {"text": text, "index": 0, "file": "train.yaml"})


def test_requests_follow_the_stored_text_and_parse_it_once(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "o.db"))
    registry._requests_in.cache_clear()
    _register(store, "first")
    assert registry.register_requests(store, "default", "train") == {"the-model": "first"}
    assert registry.register_requests(store, "default", "train") == {"the-model": "first"}
    info = registry._requests_in.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    _register(store, "second")  # the template changed: its new annotations count
    assert registry.register_requests(store, "default", "train") == {"the-model": "second"}
    assert registry.register_requests(store, "default", "missing") == {}
    store.close()
