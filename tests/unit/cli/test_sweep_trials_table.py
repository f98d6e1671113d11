"""``sweeps show``: an attempt a crash or stop interrupted (``resume`` runs its trial again) says so
in the status column, so a resumed sweep's DEAD rows are not read as failed trials."""

from __future__ import annotations

import pytest

from orchestrator.cli.commands_sweeps import print_trials


def test_interrupted_attempts_are_marked(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    row = {"parameters": {"x": 1}, "duration": None, "objective": None, "best": False, "statusMessage": ""}
    data = {"id": "s1", "name": "s", "status": "COMPLETED", "statusMessage": "", "bestExecutionId": None,
            "objective": {"primaryMetric": "acc", "goal": "maximize"},
            "trials": [{**row, "trial": 0, "executionId": "e0", "status": "DEAD", "interrupted": True},
                       {**row, "trial": 0, "executionId": "e1", "status": "COMPLETED", "interrupted": False,
                        "objective": 0.5, "duration": 1.0},
                       {**row, "trial": 1, "executionId": "e2", "status": "DEAD", "interrupted": False}]}
    print_trials(data)
    lines = {line.split("│")[2].strip(): line for line in capsys.readouterr().out.splitlines() if line.count("│") > 3}
    assert "DEAD (interrupted)" in lines["e0"]
    assert "interrupted" not in lines["e1"] and "interrupted" not in lines["e2"] and "DEAD" in lines["e2"]
