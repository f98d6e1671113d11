"""orchestrator.plan.graph / expand: loops known at run time, recursive calls, exit hooks."""

from __future__ import annotations

import pytest

from orchestrator.plan.expand import expand_deferred, sequence
from orchestrator.plan.graph import ENTER, EXIT, LEAF, LOOP, LOOP_END
from orchestrator.plan.resolve import ResolveError
from tests.unit.plan.test_graph import graph


@pytest.mark.parametrize("fields,want", [
    ({"count": "3"}, ["0", "1", "2"]),
    ({"count": "2", "start": "5"}, ["5", "6"]),
    ({"start": "3", "end": "1"}, ["3", "2", "1"]),
    ({"start": "1", "end": "2", "format": "2020-05-%02X"}, ["2020-05-01", "2020-05-02"]),
    ({"count": "1", "format": "%v%%"}, ["0%"]),
    ({"count": "0"}, []),
])
def test_with_sequence_items(fields: dict[str, str], want: list[str]) -> None:
    assert sequence(fields) == want


@pytest.mark.parametrize("fields", [{"count": "x"}, {"count": "1", "end": "2"}, {"start": "1"},
                                    {"count": "-1"}, {"count": "99999999"}, {"count": "1", "format": "%d %d %"}])
def test_with_sequence_refusals(fields: dict[str, str]) -> None:
    with pytest.raises(ResolveError):
        sequence(fields)


def test_with_param_compiles_to_a_loop_pair_that_successors_wait_for() -> None:
    g = graph("""
    - name: main
      steps:
      - - name: each
          template: leaf
          withParam: "{{workflow.parameters.list}}"
      - - name: after
          template: leaf
    """.replace("{{workflow.parameters.list}}", "{{steps.x.outputs.result}}").replace(
        "      - - name: each", "      - - name: x\n          template: leaf\n      - - name: each"))
    assert g.nodes["each"].kind == LOOP and g.nodes["each/loop"].kind == LOOP_END
    assert g.pred["after"] == ["each/loop"]
    assert g.nodes["each/loop"].partner == "each"


def test_recursive_call_is_compiled_one_level_at_a_time() -> None:
    g = graph("""
    - name: main
      steps:
      - - name: go
          template: rec
    - name: rec
      steps:
      - - name: work
          template: leaf
      - - name: again
          template: rec
          when: "{{steps.work.outputs.result}} == again"
    """)
    assert g.nodes["go"].kind == ENTER and not g.nodes["go"].deferred
    assert g.nodes["go.again"].deferred and g.pred["go.again/end"] == ["go.again"]
    new, tails = expand_deferred(g, g.nodes["go.again"])
    assert {"go.again.work", "go.again.again", "go.again.again/end"} <= set(new)
    assert g.nodes["go.again.again"].deferred
    assert tails == ["go.again.again/end"]


def test_exit_hooks_run_after_the_call_and_what_follows_waits_for_them() -> None:
    g = graph("""
    - name: main
      dag:
        tasks:
        - name: a
          template: leaf
          onExit: leaf
        - name: b
          template: leaf
          depends: a
          hooks:
            exit: {template: leaf}
    """)
    assert g.nodes["a.onExit"].kind == LEAF and g.nodes["a.onExit"].hook_of == "a"
    assert g.pred["a.onExit"] == ["a"]
    assert sorted(g.pred["b"]) == ["a", "a.onExit"]
    assert g.nodes["b"].siblings["a"] == ("a",)  # states and outputs are the call's, not the hook's
    assert g.nodes["b.onExit"].hook_of == "b"
    assert EXIT not in {n.kind for n in g.nodes.values()}
