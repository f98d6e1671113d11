"""A Sweep document with a search-space entry that is not a distribution (a missing argument)
still gets every other problem reported in the same ``validate`` run, each located, as the other
kinds do; an all-broken search space is not also called empty."""

from __future__ import annotations

from orchestrator.spec import validate_text
from tests.unit.spec.test_sweep_kind import DOC


def test_a_broken_entry_does_not_hide_the_other_problems() -> None:
    text = DOC.format(lr="{type: quniform, min_value: 1, max_value: 5}", algo="grid",
                      extra="  earlyTermination: {type: bandit}\n"
                            "  limits: {maxTotalTrials: 3}\n").replace(
        "boosting: {type: choice, values: [gbdt, dart]}", "depth: {type: randint, upper: 0}")
    found = sorted((e.line, e.pointer, e.rule) for e in validate_text(text.encode(), "s.yaml").errors)
    assert found == [(11, "/spec/searchSpace/lr", "sweep.distribution"),
                     (12, "/spec/searchSpace/depth", "sweep.sampling-distribution"),
                     (12, "/spec/searchSpace/depth/upper", "sweep.range"),
                     (15, "/spec/earlyTermination", "sweep.bandit-slack")]


def test_a_search_space_of_broken_entries_is_not_also_reported_empty() -> None:
    text = DOC.format(lr="{type: normal, mu: 0}", algo="random", extra="").replace(
        "boosting: {type: choice, values: [gbdt, dart]}", "depth: {type: qnormal, mu: 0, sigma: 1}")
    found = sorted((e.pointer, e.rule) for e in validate_text(text.encode(), "s.yaml").errors)
    assert found == [("/spec/searchSpace/depth", "sweep.distribution"), ("/spec/searchSpace/lr", "sweep.distribution")]
