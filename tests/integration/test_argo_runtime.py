"""Argo semantics at run time: real runs (real step processes, a real SQLite store in tmp_path)
of small workflows, each checking one place where a local run must end as Argo ends it.

Runs go through ``control.Service`` in this process (plan -> create -> execute), which is what
``orchestrator run`` does minus the argument parsing, to keep the many small runs fast.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from orchestrator.control.service import Service
from orchestrator.spec import validate_text
from tests.conftest import template


def run(tmp_path: Path, templates: str, *, jobs: int = 1, params: str = "", spec_extra: str = "",
        args: list[str] | None = None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Run a workflow; returns (status, {step: state}, {step: record})."""
    path = tmp_path / f"wf{len(list(tmp_path.glob('wf*.yaml')))}.yaml"
    path.write_text(template("argo-rt", templates, params=params, spec_extra=spec_extra))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), args or [], [])
        ex = svc.create(plan)
        status = svc.execute(ex, plan, jobs=jobs)
        rows = {s.node_id: s for s in svc.store.list_steps(svc.rg, ex.id)}
        return status.value, {k: v.state.value for k, v in rows.items() if v.kind == "leaf"}, rows
    finally:
        svc.close()


SH = """\
- name: sh
  inputs:
    parameters: [{name: code, default: "true"}]
  script:
    image: busybox
    command: [sh]
    source: |
      {{inputs.parameters.code}}
"""
ECHO = """\
- name: echo
  inputs:
    parameters: [{name: msg}]
  container:
    image: busybox
    command: [echo, "{{inputs.parameters.msg}}"]
"""


def call(name: str, code: str, extra: str = "") -> str:
    return (f"- name: {name}\n  template: sh\n  arguments:\n    parameters: [{{name: code, value: {code!r}}}]\n"
            + textwrap.indent(extra, "  "))


# ---------------------------------------------------------------------- item 1: semantics
def test_sibling_queued_behind_a_failing_step_still_runs_with_j1(tmp_path: Path) -> None:
    """Argo starts every step of a group at once: -j 1 must not omit the second one."""
    steps = "- name: main\n  steps:\n  - " + textwrap.indent(call("bad", "exit 3"), "    ").lstrip() \
        + textwrap.indent(call("good", "true"), "    ") \
        + "  - " + textwrap.indent(call("after", "true"), "    ").lstrip()
    status, states, _ = run(tmp_path, steps + SH, jobs=1)
    assert status == "DEAD"
    assert states == {"bad": "FAILED", "good": "SUCCEEDED", "after": "OMITTED"}


def _dag(fail_fast: str) -> str:
    tasks = call("a", "exit 1") + call("b", "sleep 0.3") + call("c", "true", "depends: b\n") \
        + call("d", "true", "depends: a\n")
    return f"- name: main\n  dag:\n{fail_fast}    tasks:\n" + textwrap.indent(tasks, "    ") + SH


def test_dag_fail_fast_false_runs_every_branch(tmp_path: Path) -> None:
    status, states, _ = run(tmp_path, _dag("    failFast: false\n"), jobs=1)
    assert status == "DEAD"
    assert states == {"a": "FAILED", "b": "SUCCEEDED", "c": "SUCCEEDED", "d": "OMITTED"}


def test_dag_fail_fast_default_starts_no_new_task(tmp_path: Path) -> None:
    """a fails (its target d is omitted) while b runs: c, ready only after that, never starts."""
    status, states, _ = run(tmp_path, _dag(""), jobs=4)
    assert status == "DEAD"
    assert states == {"a": "FAILED", "b": "SUCCEEDED", "c": "OMITTED", "d": "OMITTED"}


def test_timeout_from_a_parameter_is_applied_and_a_bad_one_fails(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - name: slow
      template: slow
      arguments:
        parameters: [{name: t, value: "{{workflow.parameters.t}}"}]
- name: slow
  inputs:
    parameters: [{name: t}]
  timeout: "{{inputs.parameters.t}}"
  container:
    image: busybox
    command: [sleep, "30"]
"""
    status, states, rows = run(tmp_path, wf, params="- {name: t, value: '1s'}")
    assert (status, states["slow"]) == ("DEAD", "FAILED")
    assert "timeout (1 s) exceeded" in rows["slow"].message
    status, states, rows = run(tmp_path, wf, params="- {name: t, value: 'soon'}")
    assert (status, states["slow"]) == ("DEAD", "FAILED")
    assert "'soon'" in rows["slow"].message and "not a duration" in rows["slow"].message


def test_retry_strategy_without_limit_retries_until_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_RETRY_MIN_DELAY", "0.01")  # the floor between unlimited attempts, small here
    wf = """\
- name: main
  retryStrategy: {}
  script:
    image: busybox
    command: [sh]
    source: |
      n=$(cat "$ORCHESTRATOR_EXECUTION_ID.n" 2>/dev/null || echo 0)
      echo $((n + 1)) > "$ORCHESTRATOR_EXECUTION_ID.n"
      echo "retries={{retries}}"
      [ "$n" -ge 3 ]
"""
    (tmp_path / "home").mkdir()
    status, states, rows = run(tmp_path, wf.replace('"$ORCHESTRATOR_EXECUTION_ID.n"', f'"{tmp_path}/count"'))
    assert (status, states["main"]) == ("COMPLETED", "SUCCEEDED")
    assert rows["main"].attempt == 4
    log = Path(rows["main"].log_path).read_text()
    assert "retries=3" in log


def test_script_run_through_sh_c_is_executable(tmp_path: Path) -> None:
    wf = """\
- name: main
  script:
    image: busybox
    command: [sh, -c]
    source: |
      #!/bin/sh
      echo ran-as-a-file
"""
    status, _, rows = run(tmp_path, wf)
    assert status == "COMPLETED"
    assert "ran-as-a-file" in Path(rows["main"].log_path).read_text()


# ---------------------------------------------------------------------- item 2: features
def test_with_param_from_a_step_output_and_aggregated_outputs(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - name: gen
      template: gen
  - - name: each
      template: double
      arguments:
        parameters: [{name: n, value: "{{item.n}}"}]
      withParam: "{{steps.gen.outputs.result}}"
  - - name: show
      template: echo
      arguments:
        parameters: [{name: msg, value: "{{steps.each.outputs.parameters.out}}"}]
- name: gen
  script:
    image: python
    command: [python3]
    source: |
      import json; print(json.dumps([{"n": 1}, {"n": 2}, {"n": 5}]))
- name: double
  inputs:
    parameters: [{name: n}]
  script:
    image: python
    command: [python3]
    source: |
      open("{{outputs.parameters.out.path}}", "w").write("{{=asInt(inputs.parameters.n) * 2}}")
  outputs:
    parameters:
    - name: out
      valueFrom: {path: /tmp/out}
""" + ECHO
    status, states, rows = run(tmp_path, wf)
    assert status == "COMPLETED", rows
    assert sorted(k for k in states if k.startswith("each(")) == ["each(0:{'n': 1})", "each(1:{'n': 2})",
                                                                  "each(2:{'n': 5})"]
    assert Path(rows["show"].log_path).read_text().strip().endswith("[2, 4, 10]")


def test_with_sequence_and_recursion_and_step_template_outputs(tmp_path: Path) -> None:
    """countdown calls itself until n reaches 0; its output comes from the last level."""
    wf = """\
- name: main
  steps:
  - - name: loop
      template: echo
      arguments:
        parameters: [{name: msg, value: "n={{item}}"}]
      withSequence: {start: "3", end: "1", format: "%02d"}
  - - name: down
      template: countdown
      arguments:
        parameters: [{name: n, value: "3"}]
  - - name: show
      template: echo
      arguments:
        parameters: [{name: msg, value: "got {{steps.down.outputs.parameters.last}}"}]
- name: countdown
  inputs:
    parameters: [{name: n}]
  steps:
  - - name: tick
      template: echo
      arguments:
        parameters: [{name: msg, value: "{{inputs.parameters.n}}"}]
  - - name: again
      template: countdown
      when: "{{inputs.parameters.n}} > 1"
      arguments:
        parameters: [{name: n, value: "{{=asInt(inputs.parameters.n) - 1}}"}]
  outputs:
    parameters:
    - name: last
      valueFrom:
        expression: "steps.again.status == 'Skipped' ? steps.tick.outputs.result : steps.again.outputs.parameters.last"
""" + ECHO
    status, states, rows = run(tmp_path, wf)
    assert status == "COMPLETED", {k: (v.state.value, v.message) for k, v in rows.items()}
    assert {k for k in states if k.startswith("loop(")} == {"loop(0:03)", "loop(1:02)", "loop(2:01)"}
    assert {"down.tick", "down.again.tick", "down.again.again.tick"} <= set(states)
    assert rows["down.again.again.again"].state.value == "SKIPPED"
    assert Path(rows["show"].log_path).read_text().strip().endswith("got 1")


def test_continue_on_failed_lets_the_workflow_succeed(tmp_path: Path) -> None:
    steps = "- name: main\n  steps:\n  - " + textwrap.indent(
        call("flaky", "exit 2", "continueOn: {failed: true}\n"), "    ").lstrip() \
        + "  - " + textwrap.indent(call("next", "true"), "    ").lstrip()
    status, states, _ = run(tmp_path, steps + SH)
    assert status == "COMPLETED"
    assert states == {"flaky": "FAILED", "next": "SUCCEEDED"}


@pytest.mark.parametrize("expression,ok", [("{{=asInt(workflow.parameters.n) * 10}}", "30"),
                                           ("{{=jsonpath(workflow.parameters.j, '$.a[1]')}}", "y")])
def test_expression_tags_in_arguments(tmp_path: Path, expression: str, ok: str) -> None:
    wf = ("- name: main\n  steps:\n  - - name: e\n      template: echo\n      arguments:\n"
          f"        parameters: [{{name: msg, value: \"{expression}\"}}]\n") + ECHO
    status, _, rows = run(tmp_path, wf, params="- {name: n, value: '3'}\n- {name: j, value: '{\"a\": [\"x\", \"y\"]}'}")
    assert status == "COMPLETED"
    assert Path(rows["e"].log_path).read_text().strip().endswith(ok)


def test_unsupported_expression_is_refused_at_validation() -> None:
    text = template("expr-refused", "- name: main\n  container:\n    image: b\n    command: [echo, \"{{=os.system('id')}}\"]\n")
    res = validate_text(text.encode(), "x.yaml")
    assert [e.rule for e in res.errors] == ["placeholder.expression"]
    assert "os.system" in res.errors[0].message


def test_raw_artifacts_sub_path_and_global_outputs(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - name: make
      template: make
  - - name: part
      template: show
      arguments:
        artifacts: [{name: f, from: "{{steps.make.outputs.artifacts.dir}}", subPath: b.txt}]
    - name: global
      template: show
      arguments:
        artifacts: [{name: f, from: "{{workflow.outputs.artifacts.the-dir}}", subPath: a.txt}]
    - name: raw
      template: raw
    - name: param
      template: echo
      arguments:
        parameters: [{name: msg, value: "{{workflow.outputs.parameters.the-param}}"}]
- name: make
  script:
    image: busybox
    command: [sh]
    source: |
      mkdir -p "{{outputs.artifacts.dir.path}}"
      echo A > "{{outputs.artifacts.dir.path}}/a.txt"; echo B > "{{outputs.artifacts.dir.path}}/b.txt"
      echo P > "{{outputs.parameters.p.path}}"
  outputs:
    artifacts: [{name: dir, path: /tmp/out, globalName: the-dir}]
    parameters: [{name: p, globalName: the-param, valueFrom: {path: /tmp/p.txt}}]
- name: show
  inputs:
    artifacts: [{name: f, path: /tmp/f.txt}]
  container:
    image: busybox
    command: [cat, "{{inputs.artifacts.f.path}}"]
- name: raw
  inputs:
    artifacts: [{name: r, path: /tmp/r.sh, mode: 0755, raw: {data: "#!/bin/sh\\necho raw-ok\\n"}}]
  container:
    image: busybox
    command: ["{{inputs.artifacts.r.path}}"]
""" + ECHO
    status, _, rows = run(tmp_path, wf)
    assert status == "COMPLETED", {k: (v.state.value, v.message) for k, v in rows.items()}
    logs = {k: Path(rows[k].log_path).read_text().strip().splitlines()[-1] for k in ("part", "global", "raw", "param")}
    assert logs == {"part": "B", "global": "A", "raw": "raw-ok", "param": "P"}


def test_suspend_with_a_duration_waits_then_succeeds(tmp_path: Path) -> None:
    wf = ("- name: main\n  steps:\n  - - {name: wait, template: wait}\n  - - name: after\n      template: echo\n"
          "      arguments:\n        parameters: [{name: msg, value: done}]\n"
          "- name: wait\n  suspend: {duration: \"1\"}\n") + ECHO
    status, states, rows = run(tmp_path, wf)
    assert (status, states) == ("COMPLETED", {"wait": "SUCCEEDED", "after": "SUCCEEDED"})
    assert rows["after"].started_at - rows["wait"].started_at >= 1.0


def test_volumes_empty_dir_and_generic_secret_files(tmp_path: Path) -> None:
    import base64

    from orchestrator.run import sandbox

    if not sandbox.available()[0]:
        pytest.skip(f"volumes need the sandbox: {sandbox.available()[1]}")
    svc = Service(tmp_path / "home")
    svc.store.put_secret(svc.rg, "creds", {"user": base64.b64encode(b"alice").decode()}, create=True)
    svc.close()
    wf = """\
- name: main
  script:
    image: busybox
    command: [sh]
    source: |
      grep -q " /scratch " /proc/mounts && echo mounted
      echo x > /scratch/f && cat /etc/creds/user && echo && stat -c %a /etc/creds/user
  volumeMounts-placeholder: x
"""
    wf = wf.replace("  volumeMounts-placeholder: x\n", "    volumeMounts: [{name: tmp, mountPath: /scratch}, "
                    "{name: creds, mountPath: /etc/creds}]\n")
    spec_extra = "  volumes:\n  - {name: tmp, emptyDir: {}}\n  - {name: creds, secret: {secretName: creds, defaultMode: 0400}}\n"
    status, _, rows = run(tmp_path, wf, spec_extra=spec_extra)
    assert status == "COMPLETED", {k: (v.state.value, v.message) for k, v in rows.items()}
    assert Path(rows["main"].log_path).read_text().split()[-3:] == ["mounted", "alice", "400"]


def test_inline_templates_in_steps_and_dags(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - name: a
      inline:
        container: {image: busybox, command: [echo, from-a]}
  - - name: b
      inline:
        dag:
          tasks:
          - name: c
            inline:
              inputs:
                parameters: [{name: m, value: from-c}]
              container: {image: busybox, command: [echo, "{{inputs.parameters.m}}"]}
"""
    status, states, rows = run(tmp_path, wf)
    assert (status, states) == ("COMPLETED", {"a": "SUCCEEDED", "b.c": "SUCCEEDED"})
    assert Path(rows["b.c"].log_path).read_text().strip().endswith("from-c")


def test_a_workflow_mutex_serialises_executions_of_one_store(tmp_path: Path) -> None:
    import threading

    wf = ("- name: main\n  script:\n    image: busybox\n    command: [sh]\n    source: |\n"
          f"      echo start >> {tmp_path}/order; sleep 0.5; echo end >> {tmp_path}/order\n")
    path = tmp_path / "mutex.yaml"
    path.write_text(template("argo-mutex", wf, spec_extra="  synchronization:\n    mutexes: [{name: only-one}]\n"))
    results: list[str] = []

    def one() -> None:
        svc = Service(tmp_path / "home")
        try:
            plan = svc.plan(str(path), [], [])
            results.append(svc.execute(svc.create(plan), plan, cache=False).value)
        finally:
            svc.close()

    Service(tmp_path / "home").close()  # the store exists before both start
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == ["COMPLETED", "COMPLETED"]
    assert (tmp_path / "order").read_text().split() == ["start", "end", "start", "end"]


def test_a_template_mutex_serialises_parallel_steps(tmp_path: Path) -> None:
    wf = ("- name: main\n  steps:\n  - - {name: a, template: locked}\n    - {name: b, template: locked}\n"
          "- name: locked\n  synchronization:\n    mutex: {name: m}\n  script:\n    image: busybox\n"
          f"    command: [sh]\n    source: |\n      echo start >> {tmp_path}/order; sleep 0.3; echo end >> {tmp_path}/order\n")
    status, states, _ = run(tmp_path, wf, jobs=4)
    assert (status, states) == ("COMPLETED", {"a": "SUCCEEDED", "b": "SUCCEEDED"})
    assert (tmp_path / "order").read_text().split() == ["start", "end", "start", "end"]


def test_a_sidecar_runs_with_the_step_and_is_stopped_when_it_ends(tmp_path: Path) -> None:
    wf = f"""\
- name: main
  container:
    image: busybox
    command: [sh, -c, "for i in 1 2 3 4 5 6 7 8 9 10; do [ -f {tmp_path}/ready ] && break; sleep 0.1; done; cat {tmp_path}/ready"]
  sidecars:
  - name: helper
    image: busybox
    command: [sh, -c, "echo up > {tmp_path}/ready; exec sleep 60"]
"""
    status, _, rows = run(tmp_path, wf)
    assert status == "COMPLETED"
    assert Path(rows["main"].log_path).read_text().strip().endswith("up")
    from tests.integration.test_semantics import procs_with

    assert procs_with(f"ORCHESTRATOR_STEP_TOKEN={rows['main'].execution_id}-") == []


def test_container_set_runs_the_others_first_and_main_decides(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - {name: ok, template: group}
  - - name: show
      template: echo
      arguments:
        parameters: [{name: msg, value: "{{steps.ok.outputs.result}}"}]
- name: group
  volumes: [{name: ws, emptyDir: {}}]
  containerSet:
    volumeMounts: [{name: ws, mountPath: /workspace}]
    containers:
    - {name: main, image: busybox, command: [sh, -c, "cat /workspace/a /workspace/b"], dependencies: [b]}
    - {name: a, image: busybox, command: [sh, -c, "echo A > /workspace/a"]}
    - {name: b, image: busybox, command: [sh, -c, "echo B > /workspace/b"], dependencies: [a]}
""" + ECHO
    from orchestrator.run import sandbox

    if not sandbox.available()[0]:
        pytest.skip(f"volumes need the sandbox: {sandbox.available()[1]}")
    status, states, rows = run(tmp_path, wf)
    assert status == "COMPLETED", {k: (v.state.value, v.message) for k, v in rows.items()}
    assert Path(rows["show"].log_path).read_text().split()[-2:] == ["A", "B"]
    status, states, rows = run(tmp_path, wf.replace('echo B > /workspace/b', 'exit 7'))
    assert (status, states["ok"]) == ("DEAD", "FAILED")
    assert "'b' ended with exit code 7" in rows["ok"].message


def test_workflow_level_exit_hook_runs_like_on_exit(tmp_path: Path) -> None:
    wf = ("- name: main\n  container: {image: busybox, command: [sh, -c, \"exit 1\"]}\n"
          "- name: bye\n  container: {image: busybox, command: [echo, \"{{workflow.status}}\"]}\n")
    status, states, rows = run(tmp_path, wf, spec_extra="  hooks:\n    exit: {template: bye}\n")
    assert (status, states) == ("DEAD", {"main": "FAILED", "onExit": "SUCCEEDED"})
    assert Path(rows["onExit"].log_path).read_text().strip().endswith("Failed")


def test_a_failed_with_param_loop_handled_by_depends(tmp_path: Path) -> None:
    wf = """\
- name: main
  dag:
    tasks:
    - name: each
      template: sh
      arguments:
        parameters: [{name: code, value: "exit {{item}}"}]
      withParam: "{{workflow.parameters.codes}}"
    - name: cleanup
      template: sh
      depends: each.Failed
""" + SH
    status, states, _ = run(tmp_path, wf, params="- {name: codes, value: '[0, 3]'}")
    assert status == "COMPLETED"
    assert states == {"each(0:0)": "SUCCEEDED", "each(1:3)": "FAILED", "cleanup": "SUCCEEDED"}


def test_exit_hook_gets_artifacts_of_its_step(tmp_path: Path) -> None:
    wf = """\
- name: main
  steps:
  - - name: make
      template: make
      hooks:
        exit:
          template: show
          arguments:
            artifacts: [{name: f, from: "{{steps.make.outputs.artifacts.out}}"}]
- name: make
  script:
    image: busybox
    command: [sh]
    source: echo hooked > "{{outputs.artifacts.out.path}}"
  outputs:
    artifacts: [{name: out, path: /tmp/out.txt}]
- name: show
  inputs:
    artifacts: [{name: f, path: /tmp/f.txt}]
  container:
    image: busybox
    command: [cat, "{{inputs.artifacts.f.path}}"]
"""
    status, states, rows = run(tmp_path, wf)
    assert (status, states) == ("COMPLETED", {"make": "SUCCEEDED", "make.onExit": "SUCCEEDED"})
    assert Path(rows["make.onExit"].log_path).read_text().strip().endswith("hooked")


@pytest.mark.parametrize("fail_fast,third", [("true", "OMITTED"), ("false", "SUCCEEDED")])
def test_steps_fail_fast_with_parallelism_one(tmp_path: Path, fail_fast: str, third: str) -> None:
    wf = f"""\
- name: main
  parallelism: 1
  failFast: {fail_fast}
  steps:
  - - name: each
      template: sh
      arguments:
        parameters: [{{name: code, value: "exit {{{{item}}}}"}}]
      withParam: "[0, 3, 0]"
""" + SH
    status, states, _ = run(tmp_path, wf, jobs=4)
    assert status == "DEAD"
    assert states == {"each(0:0)": "SUCCEEDED", "each(1:3)": "FAILED", "each(2:0)": third}
