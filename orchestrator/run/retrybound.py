"""The one retry decision of leaves and steps/dag calls, with the bounds of an unlimited retry.

Owns: :func:`next_delay`, which every retry (a leaf's attempt, a steps/dag call, the entrypoint)
asks after a failed attempt. It takes Argo's decision (:meth:`RetryStrategy.delay`: ``limit``,
``retryPolicy``, ``backoff``) and, only when ``limit`` is absent (Argo: unlimited), bounds it as
Argo is bounded by pod creation: without a ``backoff.duration`` the attempts are at least
``ORCHESTRATOR_RETRY_MIN_DELAY`` seconds apart (default 1), doubling per attempt up to 60 s; and
after ``ORCHESTRATOR_MAX_RETRIES`` retries (default 10000) the failure is final, with a message
naming the variable. A ``limit`` given keeps Argo's semantics exactly. Called by
:mod:`orchestrator.run.outcome` and :mod:`orchestrator.run.callretry`.
"""

from __future__ import annotations

import math
import os

from orchestrator.model import RetryStrategy

MIN_DELAY_VAR = "ORCHESTRATOR_RETRY_MIN_DELAY"
MAX_RETRIES_VAR = "ORCHESTRATOR_MAX_RETRIES"
DEFAULT_MIN_DELAY = 1.0
DEFAULT_MAX_RETRIES = 10000
FLOOR_CAP = 60.0  # the floor doubles per attempt up to this (unless the minimum itself is higher)


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def min_delay() -> float:
    """``ORCHESTRATOR_RETRY_MIN_DELAY`` seconds (default 1; an unparsable value: the default)."""
    return _env_number(MIN_DELAY_VAR, DEFAULT_MIN_DELAY)


def max_retries() -> int:
    """``ORCHESTRATOR_MAX_RETRIES`` (default 10000; an unparsable value: the default)."""
    return int(min(_env_number(MAX_RETRIES_VAR, DEFAULT_MAX_RETRIES), 10**9))


def floor(attempt: int) -> float:
    """The least wait after attempt ``attempt`` of an unlimited retry without a backoff."""
    low = min_delay()
    return min(low * 2.0 ** min(attempt - 1, 64), max(FLOOR_CAP, low))


def next_delay(strategy: RetryStrategy, attempt: int, kind: str, elapsed: float) -> tuple[float | None, str]:
    """Seconds before attempt ``attempt + 1`` (None: the failure is final) and a note for the
    log: for an unlimited retry, what bounds it (or that the safety cap was reached)."""
    delay = strategy.delay(attempt, kind, elapsed)
    if strategy.limit is not None:
        return delay, ""
    cap = max_retries()
    if delay is None:
        return None, ""
    if attempt > cap:
        return None, (f"retryStrategy has no limit: stopped after {cap} retries, the safety cap "
                      f"{MAX_RETRIES_VAR} ({cap}); set a limit or raise {MAX_RETRIES_VAR}")
    note = "retryStrategy has no limit: retried until it succeeds (Argo's semantics)"
    if not strategy.backoff_duration:
        delay = max(delay, floor(attempt))
        note += (f", at least {min_delay():g} s apart doubling to {max(FLOOR_CAP, min_delay()):g} s "
                 f"({MIN_DELAY_VAR}), at most {cap} retries ({MAX_RETRIES_VAR})")
    else:
        note += f", at most {cap} retries ({MAX_RETRIES_VAR})"
    return delay, note
