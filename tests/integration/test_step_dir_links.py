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
