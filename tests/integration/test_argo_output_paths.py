"""Output artifact paths as Argo treats them: nothing is made at the path before the step runs
(Argo's executor saves whatever the step left there), so a step may write a *file* at a path
without an extension (Argo's ``artifact-path-placeholders``) or make a directory there; only a
path ending in ``/`` is a directory from the start. Real runs (real processes, real SQLite store).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.control.service import Service
from tests.conftest import template

TEMPLATES = """\
- name: main
  steps:
  - - name: produce
      template: produce
  - - name: consume
      template: consume
      arguments:
        artifacts:
        - {name: text, from: "{{steps.produce.outputs.artifacts.text}}"}
        - {name: model, from: "{{steps.produce.outputs.artifacts.model}}"}
        - {name: ready, from: "{{steps.produce.outputs.artifacts.ready}}"}
- name: produce
  outputs:
    artifacts:
    - {name: text, path: /outputs/text/data}
    - {name: model, path: /outputs/model}
    - {name: ready, path: /outputs/ready/}
  script:
    image: busybox
    command: [sh]
    source: |
      set -e
      printf 'one\\ntwo\\n' > "{{outputs.artifacts.text.path}}"
      mkdir "{{outputs.artifacts.model.path}}"
      echo weights > "{{outputs.artifacts.model.path}}/w.txt"
      echo yes > "{{outputs.artifacts.ready.path}}/flag"
- name: consume
  inputs:
    artifacts:
    - {name: text, path: /in/text}
    - {name: model, path: /in/model}
    - {name: ready, path: /in/ready}
  script:
    image: busybox
    command: [sh]
    source: |
      set -e
      test -f "{{inputs.artifacts.text.path}}"
      test "$(wc -l < "{{inputs.artifacts.text.path}}")" -eq 2
      test "$(cat "{{inputs.artifacts.model.path}}/w.txt")" = weights
      test "$(cat "{{inputs.artifacts.ready.path}}/flag")" = yes
"""


def test_file_and_directory_at_extensionless_output_paths(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(template("out-paths", TEMPLATES))
    svc = Service(tmp_path / "home")
    try:
        plan = svc.plan(str(path), [], [])
        ex = svc.create(plan)
        status = svc.execute(ex, plan, jobs=1).value
        message = svc.store.get_execution(svc.rg, ex.id).status_message
        steps = {s.node_id: s.state.value for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"}
    finally:
        svc.close()
    assert status == "COMPLETED", message
    assert steps == {"produce": "SUCCEEDED", "consume": "SUCCEEDED"}
