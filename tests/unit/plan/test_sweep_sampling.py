"""Sampling of sweep search spaces: seeded random and Sobol reproducible, grid exhaustive in order,
the distribution formulas (bounds, q rounding, log forms), nested choices, the bayesian sampler
re-fed with finished trials."""

from __future__ import annotations

import math

import pytest

from orchestrator.plan.sampling import BayesianSampler, GridSampler, RandomSampler, render
from orchestrator.spec.sweep import parse_distribution

SPACE = [("lr", parse_distribution({"type": "loguniform", "min_value": -5, "max_value": 0})),
         ("depth", parse_distribution({"type": "randint", "upper": 4})),
         ("units", parse_distribution({"type": "quniform", "min_value": 8, "max_value": 64, "q": 8})),
         ("noise", parse_distribution({"type": "qlognormal", "mu": 0, "sigma": 1, "q": 0.5})),
         ("kind", parse_distribution({"type": "choice", "values": ["a", "b", "c"]}))]


@pytest.mark.parametrize("rule", ["random", "sobol"])
def test_seeded_sampling_is_reproducible_and_seed_dependent(rule: str) -> None:
    first = [RandomSampler(SPACE, 42, rule).ask(i) for i in range(20)]
    again = RandomSampler(SPACE, 42, rule)
    assert [again.ask(i) for i in reversed(range(20))][::-1] == first  # any order: point i is fixed
    assert [RandomSampler(SPACE, 43, rule).ask(i) for i in range(20)] != first
    assert len({p["lr"] for p in first}) == 20


def test_values_follow_the_distribution_formulas() -> None:
    points = [RandomSampler(SPACE, 1).ask(i) for i in range(300)]
    assert all(math.exp(-5) <= p["lr"] <= 1.0 for p in points)  # exp(uniform(min, max))
    assert {p["depth"] for p in points} == {0, 1, 2, 3}  # 0 <= x < upper
    assert all(p["units"] % 8 == 0 and 8 <= p["units"] <= 64 for p in points)
    assert all(p["noise"] >= 0 and (p["noise"] / 0.5).is_integer() for p in points)
    assert {p["kind"] for p in points} == {"a", "b", "c"}
    assert render(0.5) == "0.5" and render(3) == "3" and render(True) == "true" and render("x") == "x"


def test_grid_is_the_cartesian_product_in_declaration_order() -> None:
    g = GridSampler([("a", parse_distribution(["choice", [[1, 2]]])),
                     ("b", parse_distribution(["choice", [["x", "y", "z"]]]))])
    points = [g.ask(i) for i in range(7)]
    assert points[:6] == [{"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]
    assert points[6] is None and g.size == 6


def test_a_nested_choice_samples_the_picked_entries() -> None:
    space = [("model", parse_distribution(["choice", [[{"kernel": "rbf", "C": ["uniform", [1, 2]]},
                                                       {"kernel": "linear"}]]]))]
    points = [RandomSampler(space, 5).ask(i) for i in range(40)]
    rbf = [p for p in points if p["kernel"] == "rbf"]
    assert rbf and all(1 <= p["C"] <= 2 for p in rbf)
    assert all(set(p) == {"kernel"} for p in points if p["kernel"] == "linear")


def test_bayesian_is_reproducible_and_refed_on_resume() -> None:
    pytest.importorskip("optuna")
    space = [("x", parse_distribution({"type": "uniform", "min_value": 0, "max_value": 1})),
             ("q", parse_distribution({"type": "quniform", "min_value": 0, "max_value": 10, "q": 2})),
             ("c", parse_distribution({"type": "choice", "values": ["a", "b"]}))]

    def run(sampler: BayesianSampler, start: int, stop: int) -> list[dict[str, object]]:
        out = []
        for i in range(start, stop):
            p = sampler.ask(i)
            assert p is not None
            sampler.tell(i, p, -abs(float(p["x"]) - 0.3))  # type: ignore[arg-type]
            out.append(p)
        return out

    first = run(BayesianSampler(space, "maximize", 3), 0, 15)
    assert run(BayesianSampler(space, "maximize", 3), 0, 15) == first
    assert all(float(p["q"]) % 2 == 0 for p in first)  # type: ignore[arg-type]
    resumed = BayesianSampler(space, "maximize", 3)
    for i, p in enumerate(first):  # a new process: the finished trials come from the store
        resumed.tell(i, p, -abs(float(p["x"]) - 0.3))  # type: ignore[arg-type]
    assert len(resumed.study.trials) == 15
    run(resumed, 15, 17)
    assert len(resumed.study.trials) == 17
