"""The bounds of an unlimited retry (run.retrybound): a floor delay without a backoff, a safety cap
on attempts named in the message; a ``limit`` given keeps Argo's decision untouched."""

from __future__ import annotations

import pytest

from orchestrator.model import RetryStrategy
from orchestrator.run import retrybound


@pytest.fixture(autouse=True)
def _small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_RETRIES", "3")
    monkeypatch.setenv("ORCHESTRATOR_RETRY_MIN_DELAY", "0.5")


def test_unlimited_without_backoff_waits_a_doubling_floor_then_stops_at_the_cap() -> None:
    s = RetryStrategy(limit=None)
    delays = [retrybound.next_delay(s, a, "failure", 0.0) for a in (1, 2, 3, 4)]
    assert [d for d, _ in delays[:3]] == [0.5, 1.0, 2.0]
    assert "ORCHESTRATOR_RETRY_MIN_DELAY" in delays[0][1]
    final, note = delays[3]
    assert final is None and "ORCHESTRATOR_MAX_RETRIES" in note and "3" in note


def test_the_floor_is_capped_at_a_minute() -> None:
    assert retrybound.floor(40) == 60.0


def test_a_backoff_given_is_kept_and_the_cap_still_holds() -> None:
    s = RetryStrategy(limit=None, backoff_duration=0.2, backoff_factor=1.0)
    assert retrybound.next_delay(s, 2, "failure", 0.0)[0] == 0.2
    assert retrybound.next_delay(s, 4, "failure", 0.0)[0] is None


def test_an_explicit_limit_keeps_argos_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_RETRY_MIN_DELAY", "30")
    s = RetryStrategy(limit=5)
    assert retrybound.next_delay(s, 4, "failure", 0.0) == (0.0, "")  # no floor, beyond the cap of 3
    assert retrybound.next_delay(s, 6, "failure", 0.0) == (None, "")


def test_the_policy_still_decides_for_unlimited() -> None:
    assert retrybound.next_delay(RetryStrategy(limit=None), 1, "error", 0.0) == (None, "")


@pytest.mark.parametrize("bad", ["x", "-1", "nan", "inf"])
def test_an_unparsable_setting_takes_the_default(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("ORCHESTRATOR_MAX_RETRIES", bad)
    monkeypatch.setenv("ORCHESTRATOR_RETRY_MIN_DELAY", bad)
    assert (retrybound.max_retries(), retrybound.min_delay()) == (10000, 1.0)
