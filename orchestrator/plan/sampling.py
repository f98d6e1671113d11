"""Sampling of a sweep's search space: which parameter values trial ``i`` gets.

Owns: the distribution formulas (lifecycle.md §1.3: ``randint`` is ``0 <= x < upper``, log forms
are ``exp`` of the uniform/normal draw, q-forms ``round(x / q) * q``), the three algorithms and
how a sampled value becomes an AI Core parameter string.

- ``random``: trial ``i`` is a pure function of ``(seed, i)`` (its own generator), so a sweep is
  reproducible and a resumed sweep asks for exactly the points it would have asked for;
  ``rule: sobol`` takes point ``i`` of a scrambled Sobol sequence over the top-level dimensions
  (scipy's ``qmc``, imported lazily) and maps it through each distribution's inverse CDF.
- ``grid``: the cartesian product of the ``choice`` values, in declaration order; point ``i``.
- ``bayesian``: Optuna's TPE (extra ``orchestrator[sweeps]``, imported here only, lazily) over
  choice/uniform/quniform; every finished trial is told, so a resumed sweep re-feeds it with the
  completed trials it loads from the store.

A picked ``choice`` entry that is a mapping (nested space) contributes its entries as parameters
of their own (sampled if they are distributions); the parent name itself is not a parameter.
Pure: imports only the spec (and optional libraries at the call that needs them).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, Protocol

from orchestrator.errors import UsageError
from orchestrator.spec.sweep import Distribution, Scalar, SubSpace, SweepSpec, grid_size

Params = dict[str, Scalar]
_NORMAL = NormalDist()


def display(value: Any) -> str:
    """A parameter value or objective for people (CLI tables, the dashboard): a float to 4
    significant digits (``0.5432``, ``2``), anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render(value: Scalar) -> str:
    """A sampled value as an AI Core parameter string (numbers as Python prints them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return repr(value)


def _q(x: float, q: float | None) -> float:
    return x if q is None else round(x / q) * q


def _clip_unit(u: float) -> float:
    return min(max(u, 1e-12), 1 - 1e-12)


def from_unit(d: Distribution, u: float) -> Scalar | SubSpace:
    """The value of ``d`` at quantile ``u`` in [0, 1) (inverse CDF)."""
    t = d.type
    if t == "choice":
        return d.values[min(int(u * len(d.values)), len(d.values) - 1)]
    if t == "randint":
        return min(int(u * int(d.upper or 1)), int(d.upper or 1) - 1)
    if t in ("uniform", "quniform", "loguniform", "qloguniform"):
        lo, hi = float(d.min_value or 0.0), float(d.max_value or 0.0)
        x = lo + u * (hi - lo)
        if t.endswith("loguniform"):
            x = math.exp(x)
        return _q(x, d.q)
    x = float(d.mu or 0.0) + float(d.sigma or 1.0) * _NORMAL.inv_cdf(_clip_unit(u))
    if t.endswith("lognormal"):
        x = math.exp(x)
    return _q(x, d.q)


def _fill(out: Params, name: str, value: Scalar | SubSpace, rng: random.Random) -> None:
    if isinstance(value, SubSpace):
        for key, sub in value.items:
            if isinstance(sub, Distribution):
                _fill(out, key, from_unit(sub, rng.random()), rng)
            else:
                out[key] = sub
    else:
        out[name] = value


class Sampler(Protocol):
    """``ask(i)`` answers trial ``i``'s parameters (None: no more points); ``tell`` feeds results."""

    def ask(self, index: int) -> Params | None: ...

    def tell(self, index: int, params: Params, value: float | None) -> None: ...


class RandomSampler:
    """Seeded random or Sobol sampling; trial ``i`` depends only on ``(seed, i)``."""

    def __init__(self, space: Sequence[tuple[str, Distribution]], seed: int, rule: str = "random") -> None:
        self.space, self.seed, self.rule = list(space), seed, rule
        self._sobol: Any = None

    def _unit(self, index: int) -> list[float]:
        if self.rule != "sobol":
            rng = random.Random(f"{self.seed}:{index}:top")
            return [rng.random() for _ in self.space]
        if self._sobol is None:
            try:
                from scipy.stats import qmc  # optional: imported only for rule sobol
            except ImportError:  # pragma: no cover - depends on the install
                raise UsageError("rule: sobol needs scipy", hint="pip install 'orchestrator[sweeps]'") from None
            self._sobol = qmc.Sobol(d=max(1, len(self.space)), scramble=True, seed=self.seed)
            self._sobol_next = 0
        if index < self._sobol_next:  # asked again (resume): rebuild from the start
            self._sobol.reset()
            self._sobol_next = 0
        if index > self._sobol_next:
            self._sobol.fast_forward(index - self._sobol_next)
        self._sobol_next = index + 1
        return [float(x) for x in self._sobol.random(1)[0]]

    def ask(self, index: int) -> Params | None:
        rng = random.Random(f"{self.seed}:{index}:nested")
        out: Params = {}
        for (name, d), u in zip(self.space, self._unit(index)):
            _fill(out, name, from_unit(d, u), rng)
        return out

    def tell(self, index: int, params: Params, value: float | None) -> None:
        return None


class GridSampler:
    """Every combination of the choice values, in declaration order (first name varies slowest)."""

    def __init__(self, space: Sequence[tuple[str, Distribution]]) -> None:
        self.space = list(space)
        self.size = grid_size(tuple(self.space))

    def ask(self, index: int) -> Params | None:
        if index >= self.size:
            return None
        out: Params = {}
        rest = index
        picks: list[Scalar | SubSpace] = []
        for _, d in reversed(self.space):
            rest, k = divmod(rest, len(d.values))
            picks.append(d.values[k])
        for (name, _), value in zip(self.space, reversed(picks)):
            _fill(out, name, value, random.Random(0))
        return out

    def tell(self, index: int, params: Params, value: float | None) -> None:
        return None


class BayesianSampler:
    """Optuna TPE over choice/uniform/quniform; ``tell`` with every finished trial (also on resume)."""

    def __init__(self, space: Sequence[tuple[str, Distribution]], goal: str, seed: int) -> None:
        try:
            import optuna  # optional extra orchestrator[sweeps]; imported only for bayesian sweeps
        except ImportError:
            raise UsageError("bayesian sampling needs Optuna", hint="pip install 'orchestrator[sweeps]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.space = list(space)
        self.dists: dict[str, Any] = {}
        for name, d in self.space:
            if d.type == "choice":
                self.dists[name] = optuna.distributions.CategoricalDistribution(list(d.values))  # type: ignore[arg-type]
            else:
                self.dists[name] = optuna.distributions.FloatDistribution(float(d.min_value or 0.0),
                                                                          float(d.max_value or 0.0))
        self.study = optuna.create_study(direction="maximize" if goal == "maximize" else "minimize",
                                         sampler=optuna.samplers.TPESampler(seed=seed))
        self.pending: dict[int, Any] = {}
        self.told: set[int] = set()

    def ask(self, index: int) -> Params | None:
        trial = self.study.ask(self.dists)
        self.pending[index] = trial
        out: Params = {}
        for name, d in self.space:
            v = trial.params[name]
            out[name] = _q(float(v), d.q) if d.type == "quniform" else v
        return out

    def tell(self, index: int, params: Params, value: float | None) -> None:
        if index in self.told:
            return
        self.told.add(index)
        state = self.optuna.trial.TrialState
        trial = self.pending.pop(index, None)
        if trial is not None:
            if value is None:
                self.study.tell(trial, state=state.FAIL)
            else:
                self.study.tell(trial, value)
            return
        if value is None:
            return
        try:  # a trial of an earlier process (resume): re-feed it as a finished trial
            fixed = {n: (min(max(float(params[n]), self.dists[n].low), self.dists[n].high)
                         if n in params and not isinstance(self.dists[n], self.optuna.distributions.CategoricalDistribution)
                         else params.get(n)) for n in self.dists}
            self.study.add_trial(self.optuna.trial.create_trial(params=fixed, distributions=self.dists, value=value))
        except (ValueError, TypeError):
            return  # a value outside today's space (the document changed): not informative


def make_sampler(spec: SweepSpec, seed: int) -> Sampler:
    """The sampler of ``spec`` (``seed`` is the sweep's stored seed when the spec has none)."""
    algo = spec.sampling.algorithm
    if algo == "grid":
        return GridSampler(spec.search_space)
    if algo == "bayesian":
        return BayesianSampler(spec.search_space, spec.objective.goal, seed)
    return RandomSampler(spec.search_space, seed, spec.sampling.rule)


def total_points(spec: SweepSpec) -> int:
    """How many trials the sweep may start at most (grid: its size, capped by the limit)."""
    n = spec.limits.max_total_trials
    return min(n, grid_size(spec.search_space)) if spec.sampling.algorithm == "grid" else n


__all__ = ["Params", "Sampler", "RandomSampler", "GridSampler", "BayesianSampler", "make_sampler",
           "total_points", "render", "from_unit"]
