"""A step that swaps its ``fs/`` for a symlink (finding 3): the retry's preparation must remove the
link, never write through it (real CLI, real subprocesses, the local executor)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, template

SWAP = """
- name: main
  steps:
    - - {name: swap, template: swap}
- name: swap
  retryStrategy: {limit: 1, retryPolicy: Always}
  inputs:
    artifacts:
      - {name: cfg, path: /data/in.txt, raw: {data: "from the runner"}}
  outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out.txt}}]}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {name: OUTSIDE, value: "{{workflow.parameters.outside}}"}
      - {name: IN, value: "{{inputs.artifacts.cfg.path}}"}
      - {name: OUT, value: "{{outputs.parameters.out.path}}"}
    source: |
      import os, sys
      home = os.environ["HOME"]
      fs = os.path.join(home, "fs")
      if not os.path.exists(os.path.join(home, "tried")):
          open(os.path.join(home, "tried"), "w").close()
          os.rename(fs, fs + ".old")
          os.symlink(os.environ["OUTSIDE"], fs)
          sys.exit(1)
      print("fs is a link:", os.path.islink(fs))
      data = open(os.environ["IN"]).read()
      print("read:", data)
      open(os.environ["OUT"], "w").write(data)
"""


def test_a_retry_never_writes_through_a_symlinked_fs(cli: Cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    f = cli.write("swap.yaml", template("swap-fs", SWAP, params="- name: outside\n  value: x"))
    out = cli.run_json(str(f), "-p", f"outside={outside}")
    assert list(outside.iterdir()) == []  # nothing written (inputs, chmods) through the link
    assert out["status"] == "COMPLETED", out
    logs = cli("logs", out["id"], "--step", "swap", check=0).stdout
    assert "fs is a link: False" in logs and "read: from the runner" in logs  # a fresh, real fs/
    assert "attempt-2.log" in str(cli.json("executions", "show", out["id"]))  # it was the retry


LINKED_PARAM = """
- name: main
  steps:
    - - {name: a, template: a}
    - - name: b
        template: b
        arguments: {parameters: [{name: got, value: "{{steps.a.outputs.parameters.out}}"}]}
- name: b
  inputs: {parameters: [{name: got}]}
  container: {image: python:3.11, command: [sh, -c, "echo 'b got: {{inputs.parameters.got}}'"]}
- name: a
  outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out.txt}}]}
  script:
    image: python:3.11
    command: [python3]
    env:
      - {name: TARGET, value: "{{workflow.parameters.target}}"}
      - {name: OUT, value: "{{outputs.parameters.out.path}}"}
    source: |
      import os
      target = os.environ["TARGET"]
      if target == "inside":  # a link to a file of its own: followed, as in a container
          open(os.environ["OUT"] + ".real", "w").write("mine")
          target = os.environ["OUT"] + ".real"
      elif target == "fifo":
          os.mkfifo(os.environ["OUT"])
          raise SystemExit(0)
      os.symlink(target, os.environ["OUT"])
"""


def test_an_output_parameter_link_is_followed_only_inside_the_step_directory(cli: Cli, tmp_path: Path) -> None:
    """A step whose ``valueFrom.path`` is a symlink to a host file (or a FIFO): the runner never
    reads the host file into the parameter (nor hangs on the FIFO); a link to its own file works."""
    host = tmp_path / "host-secret.txt"
    host.write_text("HOST SECRET")
    f = cli.write("linked.yaml", template("linked-param", LINKED_PARAM, params="- name: target\n  value: x"))
    outside = cli.run_json(str(f), "-p", f"target={host}", "--no-cache", check=None)
    assert outside["status"] != "COMPLETED"
    assert "HOST SECRET" not in str(outside) and "outside its directory" in str(outside)
    fifo = cli.run_json(str(f), "-p", "target=fifo", "--no-cache", check=None)
    assert fifo["status"] != "COMPLETED" and "not a regular file" in str(fifo)
    inside = cli.run_json(str(f), "-p", "target=inside", "--no-cache")
    assert inside["status"] == "COMPLETED", inside
    assert "b got: mine" in cli("logs", inside["id"], "--step", "b", check=0).stdout
