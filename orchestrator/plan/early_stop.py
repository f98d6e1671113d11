"""Early-termination policies of a sweep, Azure ML's semantics (lifecycle.md §1.6), pure.

Owns: deciding, when trial ``t`` reports the primary metric for the ``n``-th time (its interval
``n``), whether the policy stops it, and the message that says why with the numbers.

- A policy is evaluated at interval ``n`` when ``n % evaluation_interval == 0`` and
  ``n >= delay_evaluation`` ("every multiple of evaluation_interval that is greater than or equal
  to delay_evaluation", azureml.train.hyperdrive docs).
- ``bandit``: every trial that reached interval ``n`` scores its best value over intervals 1..n;
  the best score over them is the reference. Maximize: ``t`` is stopped when its score is below
  ``best / (1 + slack_factor)`` or ``best - slack_amount``; minimize: above ``best * (1 +
  slack_factor)`` or ``best + slack_amount``.
- ``median_stopping``: ``t`` is stopped when its best value over 1..n is worse than the median,
  across all trials with reports (``t`` included), of their running averages over intervals
  1..n (a trial with fewer reports averages all of them).
- ``truncation_selection``: the trials that reached interval ``n`` (finished ones too unless
  ``exclude_finished_jobs``) are ranked by their value at interval ``n``; ``t`` is stopped when it
  is among the lowest ``floor(count * truncation_percentage / 100)`` (ties rank in ``t``'s favour).

Nothing here reads a clock or a store: the engine feeds the series it has seen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from orchestrator.spec.sweep import EarlyTermination

Series = Sequence[float]


def due(policy: EarlyTermination, interval: int) -> bool:
    """Is the policy evaluated at (1-based) interval ``interval``?"""
    return interval >= max(1, policy.delay_evaluation) and interval % max(1, policy.evaluation_interval) == 0


def _best(values: Series, maximize: bool) -> float:
    return max(values) if maximize else min(values)


def _worse(a: float, b: float, maximize: bool) -> bool:
    """``a`` is strictly worse than ``b``."""
    return a < b if maximize else a > b


def evaluate(policy: EarlyTermination, goal: str, series: Mapping[str, Series], trial: str, interval: int,
             finished: frozenset[str] = frozenset()) -> str | None:
    """The reason to stop ``trial`` at ``interval`` (None: keep it running).

    ``series`` maps every trial of the sweep to the primary-metric values it reported so far, in
    order; ``finished`` names trials that have ended.
    """
    own = list(series.get(trial, ()))[:interval]
    if len(own) < interval or not due(policy, interval):
        return None
    maximize = goal != "minimize"
    word = "maximize" if maximize else "minimize"
    if policy.policy == "bandit":
        reached = {k: _best(list(v)[:interval], maximize) for k, v in series.items() if len(v) >= interval}
        best_trial = max(reached, key=lambda k: reached[k]) if maximize else min(reached, key=lambda k: reached[k])
        best = reached[best_trial]
        score = reached[trial]
        if policy.slack_factor is not None:
            limit = best / (1 + policy.slack_factor) if maximize else best * (1 + policy.slack_factor)
            how = f"slack_factor {policy.slack_factor:g}"
        else:
            amount = float(policy.slack_amount or 0.0)
            limit = best - amount if maximize else best + amount
            how = f"slack_amount {amount:g}"
        if _worse(score, limit, maximize):
            return (f"early termination (bandit, {how}) at interval {interval}: best {score:.6g} so far is "
                    f"{'below' if maximize else 'above'} {limit:.6g}, the allowed slack from the best trial "
                    f"({best:.6g}, {word})")
        return None
    if policy.policy == "median_stopping":
        averages = [statistics.fmean(list(v)[:interval]) for v in series.values() if len(v)]
        median = statistics.median(averages)
        score = _best(own, maximize)
        if _worse(score, median, maximize):
            return (f"early termination (median_stopping) at interval {interval}: best {score:.6g} so far is "
                    f"worse than {median:.6g}, the median of the running averages of {len(averages)} trials "
                    f"({word})")
        return None
    if policy.policy == "truncation_selection":
        pct = int(policy.truncation_percentage or 0)
        pool = {k: list(v)[interval - 1] for k, v in series.items()
                if len(v) >= interval and (k == trial or not (policy.exclude_finished_jobs and k in finished))}
        cut = math.floor(len(pool) * pct / 100)
        value = pool[trial]
        better = sum(1 for k, v in pool.items() if k != trial and _worse(value, v, maximize))
        if cut and better >= len(pool) - cut:
            return (f"early termination (truncation_selection {pct}%) at interval {interval}: value {value:.6g} "
                    f"ranks {better + 1} of {len(pool)} trials, in the lowest {cut} ({word})")
        return None
    return None
