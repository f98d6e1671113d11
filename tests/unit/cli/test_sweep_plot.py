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


def test_best_so_far_follows_the_sweeps_rule_completed_trials_first() -> None:
    from orchestrator.cli.sweep_plot import best_so_far

    trials = [_trial(0, "COMPLETED", 0.5), _trial(1, "STOPPED", 0.9), _trial(2, "COMPLETED", 0.7),
              _trial(3, "DEAD", None), _trial(4, "COMPLETED", 0.6)]
    # a trial stopped early never is the best while completed ones exist (the sweep's best is 0.7)
    assert best_so_far(trials, "maximize") == ([0, 2, 4], [0.5, 0.7, 0.7])
    assert best_so_far(trials, "minimize") == ([0, 2, 4], [0.5, 0.5, 0.5])
    assert best_so_far([_trial(0, "STOPPED", 0.4), _trial(1, "STOPPED", 0.2)], "minimize") == ([0, 1], [0.4, 0.2])


def test_the_trial_axis_has_whole_number_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    saved: list[matplotlib.figure.Figure] = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: saved.append(self))
    data = {"name": "s", "objective": {"primaryMetric": "acc", "goal": "maximize"},
            "trials": [_trial(i, "COMPLETED", 0.1 * i, lr=0.1 * i) for i in range(4)]}
    plot(data, str(tmp_path / "s.png"))
    ticks = saved[0].axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def _figure(data: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    import matplotlib.figure

    saved: list[matplotlib.figure.Figure] = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: saved.append(self))
    plot(data, str(tmp_path / "s.png"))
    return saved[0]


def test_trials_without_the_metric_are_marked_and_an_empty_sweep_says_why(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dead = [_trial(i, "DEAD", None, lr=0.1) for i in range(6)]
    fig = _figure({"name": "s", "status": "DEAD", "objective": {"primaryMetric": "acc", "goal": "maximize"},
                   "trials": dead}, tmp_path, monkeypatch)
    left, right = fig.axes  # type: ignore[attr-defined]
    assert any("no trial reported acc" in t.get_text() and "6 DEAD" in t.get_text() for t in left.texts)
    assert left.get_xlim() == (-0.5, 5.5)  # every trial in view
    [marks] = [c for c in left.collections if c.get_label() == "ended without acc"]
    assert len(marks.get_offsets()) == 6
    # an interrupted attempt (run again by resume) is not an outcome: no mark for it
    trials = [_trial(0, "COMPLETED", 0.5, lr=0.1), {**_trial(1, "DEAD", None, lr=0.2), "interrupted": True},
              _trial(1, "COMPLETED", 0.6, lr=0.2), _trial(2, "DEAD", None, lr=0.3)]
    fig = _figure({"name": "s", "objective": {"primaryMetric": "acc", "goal": "maximize"}, "trials": trials},
                  tmp_path, monkeypatch)
    [marks] = [c for c in fig.axes[0].collections if c.get_label() == "ended without acc"]  # type: ignore[attr-defined]
    assert [float(x) for x, _ in marks.get_offsets()] == [2.0]
    assert not fig.axes[0].texts  # type: ignore[attr-defined]
