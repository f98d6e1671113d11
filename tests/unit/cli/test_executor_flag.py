"""``--executor`` / ``--pull``: a missing engine is a usage error before anything is created."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.main import main


def test_a_missing_engine_is_refused_before_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman, no docker
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    assert main(["--executor", "podman", "run", str(tmp_path / "wf.yaml")]) == 2
    assert "podman" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing was created


def test_the_flags_reach_the_runners_through_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    import os

    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "unset")  # restored after the test (main sets them for real)
    monkeypatch.setenv("ORCHESTRATOR_PULL_POLICY", "unset")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    main(["--executor", "local", "--pull", "Never", "validate", str(tmp_path)])
    assert os.environ["ORCHESTRATOR_EXECUTOR"] == "local" and os.environ["ORCHESTRATOR_PULL_POLICY"] == "Never"
