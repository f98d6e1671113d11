"""The error of a read command without a store says where a write command would create it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control.home import locate_home


def test_hint_names_the_home_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "h"))
    err = locate_home().missing()
    assert str(tmp_path / "h") in (err.hint or "") and "./.orchestrator" not in (err.hint or "")
    assert "$ORCHESTRATOR_HOME" in (err.hint or "")


def test_hint_names_the_home_given_with_the_option(tmp_path: Path) -> None:
    err = locate_home(tmp_path / "x").missing()
    assert str(tmp_path / "x") in (err.hint or "") and "--home" in (err.hint or "")
