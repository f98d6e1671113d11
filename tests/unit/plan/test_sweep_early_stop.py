"""Early-termination policies on explicit series (Azure ML semantics): which trial stops at which
interval, and the numbers in the message."""

from __future__ import annotations

from orchestrator.plan.early_stop import due, evaluate
from orchestrator.spec.sweep import EarlyTermination


def test_evaluation_intervals_respect_interval_and_delay() -> None:
    p = EarlyTermination("bandit", evaluation_interval=2, delay_evaluation=5, slack_factor=0.1)
    assert [n for n in range(1, 13) if due(p, n)] == [6, 8, 10, 12]
    assert [n for n in range(1, 4) if due(EarlyTermination("median_stopping"), n)] == [1, 2, 3]


def test_bandit_slack_factor_maximize_and_minimize() -> None:
    p = EarlyTermination("bandit", slack_factor=0.2)
    series = {"best": [0.8], "ok": [0.67], "bad": [0.65]}  # limit 0.8 / 1.2 = 0.667
    assert evaluate(p, "maximize", series, "ok", 1) is None
    why = evaluate(p, "maximize", series, "bad", 1)
    assert why is not None and "0.65" in why and "0.666667" in why and "bandit" in why
    low = {"best": [1.0], "ok": [1.19], "bad": [1.21]}  # minimize: limit 1.0 * 1.2
    assert evaluate(p, "minimize", low, "ok", 1) is None
    assert evaluate(p, "minimize", low, "bad", 1) is not None


def test_bandit_slack_amount_compares_best_so_far_at_the_interval() -> None:
    p = EarlyTermination("bandit", slack_amount=0.1)
    series = {"a": [0.5, 0.9], "b": [0.45, 0.7]}
    assert evaluate(p, "maximize", series, "b", 1) is None  # 0.45 >= 0.5 - 0.1
    why = evaluate(p, "maximize", series, "b", 2)  # 0.7 < 0.9 - 0.1
    assert why is not None and "interval 2" in why and "slack_amount 0.1" in why
    assert evaluate(p, "maximize", {"a": [0.5], "b": [0.45, 0.1]}, "b", 2) is None  # nobody else reached 2


def test_median_stopping_uses_running_averages_of_all_trials() -> None:
    p = EarlyTermination("median_stopping")
    series = {"a": [0.2, 0.8], "b": [0.4, 0.6], "c": [0.45, 0.46]}
    # interval 2: running averages 0.5, 0.5, 0.455 -> median 0.5; c's best 0.46 is worse
    why = evaluate(p, "maximize", series, "c", 2)
    assert why is not None and "0.46" in why and "median" in why and "0.5" in why
    assert evaluate(p, "maximize", series, "b", 2) is None  # best 0.6
    assert evaluate(p, "maximize", {"a": [0.3]}, "a", 1) is None


def test_truncation_selection_cuts_the_lowest_percentage() -> None:
    p = EarlyTermination("truncation_selection", truncation_percentage=50)
    series = {"a": [0.5], "b": [0.9], "c": [0.3], "d": [0.7]}
    assert evaluate(p, "maximize", series, "c", 1) is not None  # rank 4 of 4, cut 2
    assert evaluate(p, "maximize", series, "a", 1) is not None  # rank 3 of 4
    assert evaluate(p, "maximize", series, "d", 1) is None
    assert evaluate(p, "minimize", series, "b", 1) is not None
    assert evaluate(p, "maximize", {"a": [0.5], "c": [0.3]}, "c", 1) is not None  # floor(2 * 0.5) = 1
    assert evaluate(EarlyTermination("truncation_selection", truncation_percentage=20), "maximize",
                    {"a": [0.5], "c": [0.3]}, "c", 1) is None  # floor(2 * 0.2) = 0
    finished = EarlyTermination("truncation_selection", truncation_percentage=50, exclude_finished_jobs=True)
    assert evaluate(finished, "maximize", {"a": [0.5], "c": [0.3]}, "c", 1, frozenset({"a"})) is None
