"""``sweeps show ID --plot FILE.png``: the picture is drawn from a sweep's JSON (objective per trial
with the best-so-far curve, parallel coordinates) whatever its trials' statuses and parameter types."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UsageError

pytest.importorskip("matplotlib")

from orchestrator.cli.sweep_plot import plot  # noqa: E402


def _trial(i: int, status: str, objective: float | None, **params: object) -> dict[str, object]:
    return {"trial": i, "status": status, "objective": objective, "parameters": params}


def test_plot_writes_a_png_for_mixed_trials(tmp_path: Path) -> None:
    data = {"name": "s", "objective": {"primaryMetric": "acc", "goal": "minimize"}, "trials": [
        _trial(0, "COMPLETED", 0.5, lr=0.1, kind="rbf"), _trial(1, "STOPPED", 0.9, lr=0.01, kind="linear"),
        _trial(2, "DEAD", None, lr=0.2, kind="rbf"), _trial(3, "COMPLETED", 0.3, lr=0.05, kind="poly", depth=3)]}
    out = tmp_path / "s.png"
    plot(data, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_an_unwritable_target_is_a_usage_error(tmp_path: Path) -> None:
    data = {"name": "s", "objective": {"primaryMetric": "acc", "goal": "maximize"}, "trials": []}
    with pytest.raises(UsageError):
        plot(data, str(tmp_path / "missing" / "s.png"))
