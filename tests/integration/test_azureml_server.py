"""Azure ML job files through a server on the same machine (issue 15 items 1 and 7): the remote CLI
``--server URL run job.yml`` of a command job and of a sweep job (and of our ``Sweep`` kind), an Azure ML sweep job posted to
``/v2/lm/sweeps``, and the refusals (a command job posted as a sweep, a relative ``code`` without
the job's folder, a job folder outside the server's file roots). A real server process, real
background runners and sweep processes, Azure's public example jobs (local stand-in scripts)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from orchestrator.spec.yamlsafe import load_file
from tests.integration.conftest import ApiServer
from tests.integration.test_sweeps import TEMPLATE
from tests.integration.test_sync_sweeps import sweep as sweep_doc

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "azureml" / "basics"


def _wait_sweep(server: ApiServer, sid: str) -> dict:
    deadline = time.monotonic() + 90
    while True:
        status, _, body = server.call("GET", f"/v2/lm/sweeps/{sid}")
        assert status == 200, body
        if body["status"] not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_azure_jobs_run_through_the_server(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"  # under the server's working directory: inside its file roots
    shutil.copytree(FIX / "src", jobs / "src")
    shutil.copy(FIX / "hello-code.yml", jobs)
    (jobs / "hello-sweep.yml").write_text((FIX / "hello-sweep.yml").read_text()
                                          .replace("max_total_trials: 4", "max_total_trials: 2"))
    server = ApiServer(tmp_path, env={"ORCHESTRATOR_FILE_ROOTS": str(jobs)})  # the folder the operator shares
    server.env["ORCHESTRATOR_TOKEN"] = server.token
    try:
        remote = ("--server", server.base)
        # a command job: the server snapshots code/ from the job's folder; the step lists it
        p = server.cli(*remote, "run", "-q", "--json", "jobs/hello-code.yml")
        ex = json.loads(p.stdout)
        assert ex["status"] == "COMPLETED" and ex["executableId"].startswith("azureml-")
        assert "hello-sweep.py" in server.cli(*remote, "logs", ex["id"]).stdout
        # a sweep job: trials are executions of the registered trial executable
        p = server.cli(*remote, "run", "-q", "--json", "jobs/hello-sweep.yml")
        sweep = json.loads(p.stdout)
        assert sweep["status"] == "COMPLETED" and sweep["trialCount"] == 2 and sweep["bestValue"] is not None

        # our own Sweep kind through the server too (its executable registered there first)
        (jobs / "napping.yaml").write_text(TEMPLATE)
        (jobs / "naps.yaml").write_text(sweep_doc("naps"))
        server.cli("register", "jobs/napping.yaml")
        ours = json.loads(server.cli(*remote, "run", "-q", "--json", "jobs/naps.yaml").stdout)
        assert ours["status"] == "COMPLETED" and ours["name"] == "naps" and ours["trialCount"] == 2

        # POST /v2/lm/sweeps takes an Azure ML sweep job (the YAML read as JSON) as well as our kind
        doc = load_file(str(jobs / "hello-sweep.yml"))[0][0].data
        status, _, body = server.call("POST", "/v2/lm/sweeps", doc)
        assert status == 400 and "relative path" in body["error"]["message"], body  # code: src, no folder given
        status, _, body = server.call("POST", f"/v2/lm/sweeps?jobDir={jobs}", doc)
        assert status == 202, body
        done = _wait_sweep(server, body["id"])
        assert done["status"] == "COMPLETED" and done["trialCount"] == 2

        # a command job is not a sweep: refused before anything is written
        before = server.call("GET", "/v2/lm/executions")[2]["count"]
        cmd = load_file(str(jobs / "hello-code.yml"))[0][0].data
        status, _, body = server.call("POST", f"/v2/lm/sweeps?jobDir={jobs}", cmd)
        assert status == 400 and "not a sweep job" in body["error"]["message"], body
        assert server.call("GET", "/v2/lm/executions")[2]["count"] == before
        # the job's folder must be inside the server's file roots (the fixtures' folder is not)
        p = server.cli(*remote, "run", "-q", str(FIX / "hello-code.yml"), check=None)
        assert p.returncode != 0 and "ORCHESTRATOR_FILE_ROOTS" in p.stderr
        assert "does not upload" in p.stderr and "orchestrator run JOB.yml" in p.stderr  # the limit, and the way out
        assert server.call("GET", "/v2/lm/executions")[2]["count"] == before
        # a job brings its own command: only an admin token not limited to a group may start one
        for name, role, extra in (("reader", "read", ()), ("runner", "run", ()),
                                  ("group-admin", "admin", ("--resource-group", "default"))):
            tok = json.loads(server.cli("tokens", "create", "--name", name, "--role", role, *extra, "--json").stdout)
            for path in (f"/v2/lm/azureml/jobs?jobDir={jobs}", f"/v2/lm/sweeps?jobDir={jobs}"):
                status, _, body = server.call("POST", path, cmd if "azureml" in path else doc, token=tok["token"])
                assert status == 403, (name, path, body)
        assert server.call("GET", "/v2/lm/executions")[2]["count"] == before
        # nothing is read from the server's home (its database, tokens, other groups' objects)
        steal = {**cmd, "code": str(server.home)}
        status, _, body = server.call("POST", f"/v2/lm/azureml/jobs?jobDir={jobs}", steal)
        assert status == 400 and "ORCHESTRATOR_FILE_ROOTS" in json.dumps(body), body
        status, _, body = server.call("POST", f"/v2/lm/azureml/jobs?jobDir={server.home}", cmd)
        assert status == 400 and "ORCHESTRATOR_FILE_ROOTS" in json.dumps(body), body
        assert server.call("GET", "/v2/lm/executions")[2]["count"] == before
    finally:
        server.stop()
