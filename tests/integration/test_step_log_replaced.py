"""A step that swaps its log or tracking file for a symlink (to a host file) or a FIFO: nothing of
the link's target reaches the next step, the stored execution, ``orchestrator logs`` or the API's
logs route, nothing is appended through the link, and a FIFO hangs neither the run, the CLI nor
the API server (every wait here is bounded by a subprocess or HTTP timeout)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import ApiServer

SECRET = "TOP SECRET FROM HOST"

HEAD = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  {name: NAME, labels: {scenarios.ai.sap.com/id: log-replaced, ai.sap.com/version: "1.0.0"},
   annotations: {scenarios.ai.sap.com/name: log-replaced, executables.ai.sap.com/name: NAME}}
spec:
  entrypoint: main
  templates:
"""

LINK = HEAD.replace("NAME", "loglink") + """\
    - name: main
      steps:
        - - name: a
            template: a
        - - name: b
            template: b
            arguments:
              parameters:
                - name: got
                  value: "{{steps.a.outputs.result}}"
    - name: a
      script:
        image: python:3.11
        command: [sh]
        source: |
          rm -f "$HOME"/attempt-*.log "$HOME"/tracking-*.jsonl
          ln -s VICTIM "$HOME/attempt-1.log"
          ln -s VICTIM "$HOME/tracking-1.jsonl"
          echo done
    - name: b
      inputs:
        parameters:
          - name: got
      container:
        image: python:3.11
        command: [sh, -c, "echo 'b got: {{inputs.parameters.got}}'"]
"""

FIFO = HEAD.replace("NAME", "logfifo") + """\
    - name: main
      script:
        image: python:3.11
        command: [sh]
        source: |
          rm -f "$HOME"/attempt-*.log "$HOME"/tracking-*.jsonl
          mkfifo "$HOME/attempt-1.log" "$HOME/tracking-1.jsonl"
          echo after
          exit 3
"""


def _run(srv: ApiServer, name: str, text: str) -> dict[str, object]:
    (srv.tmp / f"{name}.yaml").write_text(text)
    res = srv.cli("run", f"{name}.yaml", "--no-cache", "--json", check=None)  # 120 s timeout
    assert res.stdout.strip().startswith("{"), res.stderr
    out: dict[str, object] = json.loads(res.stdout)
    return out


def test_replaced_log_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(SECRET + '\n{"t": "tag", "name": "secret", "value": "' + SECRET + '"}\n')
    before = victim.read_bytes()
    (tmp_path / "srv").mkdir()
    srv = ApiServer(tmp_path / "srv")
    try:
        link = _run(srv, "loglink", LINK.replace("VICTIM", str(victim)))
        fifo = _run(srv, "logfifo", FIFO)
        steps = {s["name"]: s for s in link["steps"]}  # type: ignore[attr-defined]
        # the step's result cannot be read: it fails with a clear note, and b never gets the host file
        assert steps["a"]["state"] == "FAILED" and "replaced by the step" in steps["a"]["message"]
        assert steps["b"]["state"] == "OMITTED"
        assert "replaced by the step" in next(iter(fifo["steps"]))["message"]  # type: ignore[call-overload]
        for ex in (link, fifo):
            assert ex["status"] in ("DEAD", "FAILED")
            shown = srv.cli("executions", "show", str(ex["id"]), "--json", check=None)
            assert SECRET not in shown.stdout + shown.stderr
            logs = srv.cli("logs", str(ex["id"]), check=None)  # a FIFO would block: 120 s timeout
            assert logs.returncode == 0 and SECRET not in logs.stdout + logs.stderr
            assert "replaced by the step" in logs.stderr
            status, _, body = srv.call("GET", f"/v2/lm/executions/{ex['id']}/logs", timeout=30)
            assert status == 200 and SECRET not in json.dumps(body)
            assert any("replaced by the step" in line["msg"] for line in body["data"]["result"])
            status, _, body = srv.call("GET", f"/v2/lm/executions/{ex['id']}/metrics", timeout=30)
            assert SECRET not in json.dumps(body)
        assert srv.call("GET", "/v2/lm/executions", timeout=30)[0] == 200  # the event loop still answers
    finally:
        srv.stop()
    assert victim.read_bytes() == before  # nothing appended through the link
