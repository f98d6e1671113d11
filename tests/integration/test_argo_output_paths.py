"""Output artifact paths as Argo treats them: nothing is made at the path before the step runs
(Argo's executor saves whatever the step left there), so a step may write a *file* at a path
without an extension (Argo's ``artifact-path-placeholders``) or make a directory there; only a
path ending in ``/`` is a directory from the start. Real runs (real processes, real SQLite store).
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_argo_runtime import run

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
    status, steps, rows = run(tmp_path, TEMPLATES)
    assert status == "COMPLETED", {k: r.message for k, r in rows.items()}
    assert steps == {"produce": "SUCCEEDED", "consume": "SUCCEEDED"}
