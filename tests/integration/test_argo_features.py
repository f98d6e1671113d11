"""Argo features with Argo's semantics: a mutex on a steps template (name with a placeholder), dag
``target``, ``memoize`` (key + maxAge over the step cache), ``initContainers`` and ``podMetadata``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.spec import validate_text
from tests.conftest import template
from tests.integration.test_argo_runtime import run


def test_a_mutex_on_a_steps_template_is_held_while_the_call_runs(tmp_path: Path) -> None:
    order = tmp_path / "order"
    wf = f"""\
- name: main
  dag:
    tasks:
    - {{name: a, template: pair, arguments: {{parameters: [{{name: lock, value: m}}]}}}}
    - {{name: b, template: pair, arguments: {{parameters: [{{name: lock, value: m}}]}}}}
- name: pair
  inputs: {{parameters: [{{name: lock}}]}}
  synchronization:
    mutex: {{name: "held-{{{{inputs.parameters.lock}}}}"}}
  steps:
  - - {{name: first, template: note}}
  - - {{name: second, template: note}}
- name: note
  script:
    image: busybox
    command: [sh]
    source: |
      echo start >> {order}; sleep 0.2; echo end >> {order}
"""
    status, states, _ = run(tmp_path, wf, jobs=4)
    assert status == "COMPLETED" and set(states.values()) == {"SUCCEEDED"}
    # a's two steps run back to back, then b's: the mutex is the call's, not one step's
    assert order.read_text().split() == ["start", "end"] * 4


def test_dag_target_runs_the_targets_and_what_they_depend_on(tmp_path: Path) -> None:
    wf = """\
- name: main
  dag:
    target: "{{workflow.parameters.target}}"
    tasks:
    - {name: A, template: ok}
    - {name: B, template: ok, depends: A}
    - {name: C, template: ok, depends: A}
    - {name: D, template: ok, dependencies: [B, C]}
    - {name: E, template: ok, depends: C}
- name: ok
  container: {image: busybox, command: ["true"]}
"""
    status, states, _ = run(tmp_path, wf, params="- {name: target, value: E}")
    assert status == "COMPLETED"
    assert states == {"A": "SUCCEEDED", "B": "SKIPPED", "C": "SUCCEEDED", "D": "SKIPPED", "E": "SUCCEEDED"}
    status, states, rows = run(tmp_path, wf, params="- {name: target, value: E}", args=["target=B nope"])
    assert status == "DEAD" and any("'nope' is not a task" in r.message for r in rows.values())


def test_memoize_reuses_outputs_for_its_key_within_max_age(tmp_path: Path) -> None:
    wf = """\
- name: main
  inputs: {parameters: [{name: k}]}
  memoize: {key: "k-{{inputs.parameters.k}}", maxAge: AGE, cache: {configMap: {name: c}}}
  outputs: {parameters: [{name: out, valueFrom: {path: /app/out}}]}
  container: {image: busybox, command: [sh, -c, "date +%s%N > /app/out"]}
"""
    def out(result: tuple[str, dict[str, str], dict[str, Any]]) -> str:
        return str(json.loads(result[2]["main"].outputs)["parameters"]["out"])

    first = run(tmp_path, wf.replace("AGE", "1h"), params="- {name: k, value: one}")
    again = run(tmp_path, wf.replace("AGE", "1h"), params="- {name: k, value: one}")
    other = run(tmp_path, wf.replace("AGE", "1h"), params="- {name: k, value: two}")
    assert (first[1], again[1], other[1]) == ({"main": "SUCCEEDED"}, {"main": "CACHED"}, {"main": "SUCCEEDED"})
    assert out(again) == out(first) != out(other)  # the memoized outputs, for the same key only
    expired = run(tmp_path, wf.replace("AGE", "0s"), params="- {name: k, value: one}")
    assert expired[1] == {"main": "SUCCEEDED"} and out(expired) != out(first)


def test_init_containers_run_in_order_before_main(tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = f"""\
- name: main
  initContainers:
  - {{name: one, image: busybox, command: [sh, -c, "echo one >> {log}"]}}
  - {{name: two, image: busybox, command: [sh, -c, "echo two >> {log}"]}}
  container: {{image: busybox, command: [sh, -c, "echo main >> {log}"]}}
"""
    status, _, _ = run(tmp_path, wf)
    assert status == "COMPLETED" and log.read_text().split() == ["one", "two", "main"]
    failing = wf.replace('"echo two >> ', '"exit 3; echo two >> ')
    status, states, _ = run(tmp_path, failing)
    assert (status, states["main"]) == ("DEAD", "FAILED")  # an init container that fails fails the pod


def test_pod_metadata_and_template_annotations_are_recorded() -> None:
    text = template("pod-meta", """
- name: main
  metadata: {labels: {own: "1"}}
  annotations: {workflows.argoproj.io/display-name: "main-{{workflow.name}}"}
  container: {image: busybox, command: ["true"]}
""", spec_extra="  podMetadata:\n    labels: {app: demo, own: '0'}\n    annotations: {team: ml}\n")
    res = validate_text(text.encode(), "m.yaml")
    assert res.errors == [], [e.format() for e in res.errors]
    t = res.workflows[0].templates["main"]
    assert dict(t.labels) == {"app": "demo", "own": "1"}  # the template's own metadata wins
    assert dict(t.annotations) == {"team": "ml", "workflows.argoproj.io/display-name": "main-{{workflow.name}}"}


def test_a_daemon_serves_its_siblings_once_ready_and_stops_with_its_caller(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wf = f"""\
- name: main
  steps:
  - - {{name: inner, template: inner}}
  - - {{name: after, template: closed}}
- name: inner
  steps:
  - - {{name: server, template: server}}
  - - {{name: client, template: client, arguments: {{parameters: [{{name: ip, value: "{{{{steps.server.ip}}}}"}}]}}}}
- name: server
  daemon: true
  container:
    image: python
    command: [python3, -m, http.server, "{port}", --bind, 127.0.0.1, --directory, {tmp_path}]
    readinessProbe: {{httpGet: {{path: /, port: {port}}}, initialDelaySeconds: 0, timeoutSeconds: 1}}
- name: client
  inputs: {{parameters: [{{name: ip}}]}}
  container:
    image: python
    command: [python3, -c, "import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()",
              "http://{{{{inputs.parameters.ip}}}}:{port}/"]
- name: closed
  container:
    image: python
    command: [python3, -c, "import socket, time; time.sleep(0.5); socket.create_connection(('127.0.0.1', {port}), 1)"]
"""
    status, states, rows = run(tmp_path, wf, jobs=1)  # -j 1: a ready daemon holds no slot
    assert states["inner.server"] == "SUCCEEDED" and states["inner.client"] == "SUCCEEDED"
    assert "daemoned" in rows["inner.server"].message
    # the daemon was killed when `inner` ended: nothing listens any more
    assert (status, states["after"]) == ("DEAD", "FAILED")


def test_memoize_on_a_steps_template_skips_its_steps_on_a_hit(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - {name: pair, template: pair}
  - - {name: show, template: show, arguments: {parameters: [{name: v, value: "{{steps.pair.outputs.parameters.out}}"}]}}
- name: pair
  memoize: {key: same, maxAge: 1h, cache: {configMap: {name: c}}}
  outputs: {parameters: [{name: out, valueFrom: {parameter: "{{steps.stamp.outputs.result}}"}}]}
  steps:
  - - {name: stamp, template: stamp}
- name: stamp
  container: {image: busybox, command: [sh, -c, "date +%s%N"]}
- name: show
  metadata: {annotations: {orchestrator/cache: "false"}}
  inputs: {parameters: [{name: v}]}
  container: {image: busybox, command: [echo, "{{inputs.parameters.v}}"]}
"""
    first = run(tmp_path, wf)
    second = run(tmp_path, wf)
    assert first[1]["pair.stamp"] == "SUCCEEDED" and second[1]["pair.stamp"] == "SKIPPED"
    assert second[0] == "COMPLETED" and second[1]["show"] == "SUCCEEDED"
    logs = [Path(r[2]["show"].log_path).read_text().strip() for r in (first, second)]
    assert logs[0] == logs[1] != ""  # the second run's caller got the memoized output
