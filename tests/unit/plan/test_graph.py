"""orchestrator.plan.graph: compile validated templates into execution DAGs, and select for rerun."""

from __future__ import annotations

import textwrap

import networkx as nx
import pytest

from orchestrator.errors import UsageError
from orchestrator.plan.graph import ENTER, EXIT, LEAF, Graph, compile_workflow, select
from orchestrator.spec import validate_text

HEAD = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: graph-test
  annotations:
    scenarios.ai.sap.com/name: Graph test
    executables.ai.sap.com/name: graph-test
  labels:
    scenarios.ai.sap.com/id: graph-scenario
    ai.sap.com/version: "1.0"
spec:
  entrypoint: main
  templates:
"""
LEAF_TEMPLATE = """\
- name: leaf
  container:
    image: python:3.11-slim
    command: [python3, -c, "print(1)"]
"""


def graph(templates: str) -> Graph:
    """Compile a workflow whose ``templates:`` are ``templates`` plus a leaf template ``leaf``."""
    body = textwrap.dedent(templates).strip("\n") + "\n" + LEAF_TEMPLATE
    res = validate_text((HEAD + textwrap.indent(body, "    ")).encode(), "g.yaml")
    assert res.ok, "\n".join(e.format() for e in res.errors)
    return compile_workflow(res.workflows[0])


def edges(g: Graph) -> set[tuple[str, str]]:
    return set(g.dag.edges)


def kinds(g: Graph) -> dict[str, str]:
    return {nid: n.kind for nid, n in g.nodes.items()}


def assert_valid_order(g: Graph) -> list[str]:
    order = g.topo()
    assert sorted(order) == sorted(g.nodes)
    pos = {n: i for i, n in enumerate(order)}
    assert all(pos[a] < pos[b] for a, b in g.dag.edges)
    assert nx.is_directed_acyclic_graph(g.dag)
    return order


STEPS = """
- name: main
  steps:
    - - {name: a, template: leaf}
    - - {name: b, template: leaf}
      - {name: c, template: leaf}
    - - {name: d, template: leaf}
"""


def test_steps_groups_are_sequential_and_parallel_inside_a_group() -> None:
    g = graph(STEPS)
    assert edges(g) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert kinds(g) == dict.fromkeys("abcd", LEAF)
    assert assert_valid_order(g) == ["a", "b", "c", "d"]
    assert all(n.scope == "" for n in g.nodes.values())


DAG = """
- name: main
  dag:
    tasks:
      - {name: a, template: leaf}
      - {name: b, template: leaf, dependencies: [a]}
      - {name: c, template: leaf, depends: "a && b.Succeeded"}
      - {name: d, template: leaf}
      - {name: e, template: leaf, depends: "c.Failed || d"}
"""


def test_dag_dependencies_and_depends_become_edges() -> None:
    g = graph(DAG)
    assert edges(g) == {("a", "b"), ("a", "c"), ("b", "c"), ("c", "e"), ("d", "e")}
    assert g.dag.in_degree("a") == 0 and g.dag.in_degree("d") == 0
    assert_valid_order(g)


def test_dag_tasks_declared_before_their_dependencies_still_compile() -> None:
    g = graph("""
        - name: main
          dag:
            tasks:
              - {name: late, template: leaf, dependencies: [early]}
              - {name: early, template: leaf}
        """)
    assert edges(g) == {("early", "late")}
    assert assert_valid_order(g) == ["early", "late"]


NESTED = """
- name: main
  dag:
    tasks:
      - {name: prep, template: leaf}
      - {name: train, template: inner, dependencies: [prep]}
      - {name: report, template: leaf, dependencies: [train]}
- name: inner
  steps:
    - - {name: x, template: leaf}
      - {name: y, template: leaf}
    - - {name: z, template: deeper}
- name: deeper
  dag:
    tasks:
      - {name: p, template: leaf}
      - {name: q, template: leaf, dependencies: [p]}
"""


def test_nested_call_gets_enter_and_exit_nodes_around_its_children() -> None:
    g = graph(NESTED)
    assert kinds(g) == {
        "prep": LEAF, "train": ENTER, "train.x": LEAF, "train.y": LEAF, "train.z": ENTER,
        "train.z.p": LEAF, "train.z.q": LEAF, "train.z/end": EXIT, "train/end": EXIT, "report": LEAF,
    }
    assert edges(g) == {
        ("prep", "train"), ("train", "train.x"), ("train", "train.y"),
        ("train.x", "train.z"), ("train.y", "train.z"),
        ("train.z", "train.z.p"), ("train.z.p", "train.z.q"), ("train.z.q", "train.z/end"),
        ("train.z/end", "train/end"), ("train/end", "report"),
    }
    assert (g.nodes["train"].partner, g.nodes["train/end"].partner) == ("train/end", "train")
    assert g.nodes["train.x"].scope == "train" and g.nodes["train.z.p"].scope == "train.z"
    assert g.nodes["train"].template.name == "inner" and g.nodes["train.z.q"].template.name == "leaf"
    assert [n.id for n in g.leaves()] == ["prep", "train.x", "train.y", "train.z.p", "train.z.q", "report"]
    assert_valid_order(g)


def test_leaf_entrypoint_is_a_single_node() -> None:
    g = graph("""
        - name: main
          container:
            image: python:3.11-slim
            command: [python3, -c, "print(0)"]
        """)
    assert kinds(g) == {"main": LEAF} and edges(g) == set()


FAN_OUT = """
- name: main
  dag:
    tasks:
      - {name: prep, template: leaf}
      - name: fit
        template: leaf
        dependencies: [prep]
        withItems: [1, "two", {k: v}, "a-very-long-item-label-that-is-cut"]
      - {name: pick, template: leaf, depends: "fit"}
"""


def test_with_items_fans_out_and_downstream_waits_for_every_item() -> None:
    g = graph(FAN_OUT)
    fits = ["fit(0:1)", "fit(1:two)", "fit(2:{'k': 'v'})", "fit(3:a-very-long-item-labe...)"]
    assert set(g.nodes) == {"prep", "pick", *fits}
    assert edges(g) == {("prep", f) for f in fits} | {(f, "pick") for f in fits}
    assert [g.nodes[f].item for f in fits] == [1, "two", {"k": "v"}, "a-very-long-item-label-that-is-cut"]
    assert all(g.nodes[f].has_item for f in fits) and not g.nodes["pick"].has_item
    assert assert_valid_order(g) == ["prep", *fits, "pick"]


def test_with_items_on_a_composite_call_repeats_the_whole_subgraph() -> None:
    g = graph("""
        - name: main
          steps:
            - - {name: sweep, template: inner, withItems: [a, b]}
            - - {name: after, template: leaf}
        - name: inner
          steps:
            - - {name: x, template: leaf}
        """)
    assert edges(g) == {
        ("sweep(0:a)", "sweep(0:a).x"), ("sweep(0:a).x", "sweep(0:a)/end"), ("sweep(0:a)/end", "after"),
        ("sweep(1:b)", "sweep(1:b).x"), ("sweep(1:b).x", "sweep(1:b)/end"), ("sweep(1:b)/end", "after"),
    }
    assert kinds(g)["sweep(1:b)"] == ENTER and kinds(g)["sweep(1:b)/end"] == EXIT


def test_select_returns_the_node_and_everything_downstream() -> None:
    g = graph(NESTED)
    assert select(g, "train.z") == {"train.z", "train.z.p", "train.z.q", "train.z/end", "train/end", "report"}
    assert select(g, "report") == {"report"}
    assert select(g, "prep") == set(g.nodes)
    d = graph(DAG)
    assert select(d, "d") == {"d", "e"}  # siblings upstream are not rerun


def test_select_unknown_node_is_a_usage_error_listing_the_steps() -> None:
    g = graph(STEPS)
    with pytest.raises(UsageError, match="no step 'zzz'") as info:
        select(g, "zzz")
    assert info.value.hint == "steps: a, b, c, d"


def test_two_steps_compiling_to_the_same_id_are_refused() -> None:
    """A task literally named like a nested child (``t.x``) passes validation but not compile."""
    with pytest.raises(UsageError, match="same id 't.x'"):
        graph("""
            - name: main
              dag:
                tasks:
                  - {name: t, template: inner}
                  - {name: t.x, template: leaf}
            - name: inner
              steps:
                - - {name: x, template: leaf}
            """)


def test_too_many_nodes_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.plan import graph as graph_module

    monkeypatch.setattr(graph_module, "MAX_NODES", 5)
    with pytest.raises(UsageError, match="more than 5 steps"):
        graph("""
            - name: main
              dag:
                tasks:
                  - {name: many, template: leaf, withItems: [1, 2, 3, 4, 5, 6]}
            """)
