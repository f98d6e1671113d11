"""Git sync of ``Sweep`` documents (issue 15 item 2): a synced Sweep is recorded with its source file
and started once per content digest (an unchanged re-sync starts nothing, a changed file starts a
new sweep); broken references and problems only starting can find are located ``file:line:col``
errors of the file, like the other synced kinds'. Real repository, real store, real background
sweep processes running real trials."""

from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.control import sweep_admin
from orchestrator.control.service import Service
from tests.conftest import Cli
from tests.integration.test_sync import commit
from tests.integration.test_sweeps import TEMPLATE
from tests.unit.git.test_gitsync import new_repo


def sweep(name: str, exe: str = "napping", trials: int = 2, param: str = "x") -> str:
    return (f"apiVersion: orchestrator/v1\nkind: Sweep\nmetadata:\n  name: {name}\nspec:\n  trial:\n"
            f"    executableId: {exe}\n    parameterBindings:\n      - key: nap\n        value: \"0\"\n"
            f"  searchSpace:\n    {param}: {{type: uniform, min_value: 0, max_value: 1}}\n"
            f"  samplingAlgorithm: {{type: random, seed: 3}}\n"
            f"  objective: {{primaryMetric: score, goal: maximize}}\n"
            f"  limits: {{maxTotalTrials: {trials}, maxConcurrentTrials: 2}}\n")


def _wait_all_done(svc: Service) -> list[dict]:
    deadline = time.monotonic() + 90
    rows = sweep_admin.list_sweeps(svc)
    while time.monotonic() < deadline and any(r["status"] in ("PENDING", "RUNNING") for r in rows):
        time.sleep(0.2)
        rows = sweep_admin.list_sweeps(svc)
    assert all(r["status"] == "COMPLETED" for r in rows), rows
    return rows


def test_synced_sweep_starts_once_per_digest_with_located_errors(tmp_path: Path, cli: Cli) -> None:
    repo = new_repo(tmp_path / "repo", {
        "wf/napping.yaml": TEMPLATE,
        "wf/sweep.yaml": sweep("naps"),
        "wf/ghost.yaml": sweep("ghost", exe="no-such-exe"),
        "wf/badparam.yaml": sweep("badparam", param="y"),
    })
    svc = Service(cli.home, reap=False)
    try:
        svc.add_repository("repo", str(repo))
        svc.add_application("app", repository="repo", path="wf", revision="main")
        report = svc.sync("app")[0]
        assert report.status == "SYNCED_WITH_ERRORS" and len(report.sweeps) == 1
        assert "1 sweep(s) started" in report.message
        files = {f["path"]: f for f in report.files}
        assert files["wf/sweep.yaml"]["status"] == "valid"
        assert files["wf/sweep.yaml"]["objects"] == [{"kind": "sweep", "name": "naps", "id": report.sweeps[0]}]
        ghost = files["wf/ghost.yaml"]
        assert ghost["status"] == "invalid" and ghost["errors"][0].startswith("wf/ghost.yaml:7:19:")
        assert "ref.executable" in ghost["errors"][0]
        bad = files["wf/badparam.yaml"]  # only starting finds it: still located at the search-space entry
        assert bad["status"] == "invalid" and bad["errors"][0].startswith("wf/badparam.yaml:12:")
        assert "sweep.unknown-parameter" in bad["errors"][0]

        first = _wait_all_done(svc)
        assert [(r["id"], r["name"], r["source"], r["trialCount"]) for r in first] == [
            (report.sweeps[0], "naps", "app:wf/sweep.yaml", 2)]

        again = svc.sync("app", force=True)[0]  # unchanged content: nothing starts again
        assert again.sweeps == [] and len(sweep_admin.list_sweeps(svc)) == 1 and "started" not in again.message
        assert [o["id"] for f in again.files for o in f["objects"] if o["name"] == "naps"] == report.sweeps
        assert "sweep.unknown-parameter" in {f["path"]: f for f in again.files}["wf/badparam.yaml"]["errors"][0]

        commit(repo, {"wf/sweep.yaml": sweep("naps", trials=1)})
        changed = svc.sync("app")[0]
        assert len(changed.sweeps) == 1 and changed.sweeps != report.sweeps
        rows = _wait_all_done(svc)
        assert sorted(r["trialCount"] for r in rows) == [1, 2]
        assert {r["source"] for r in rows} == {"app:wf/sweep.yaml"}
    finally:
        svc.close()
    listed = json.loads(cli("sweeps", "list", "--json", check=0).stdout)
    assert {r["source"] for r in listed} == {"app:wf/sweep.yaml"}


COMMAND_JOB = ("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
               "command: echo hi ${{inputs.n}}\ninputs:\n  n: 3\n")


def test_synced_azure_job_files_are_checked_per_file_and_never_run(tmp_path: Path, cli: Cli) -> None:
    """Azure ML job files in a synced folder: each is validated like the other kinds (errors located
    file:line:col, the file invalid), a valid one is noted as checked and not run, and nothing starts
    (a job file is a run request; `orchestrator run FILE` runs it), on a re-sync from the cache too."""
    sweep_job = (Path(__file__).resolve().parents[1] / "fixtures" / "azureml" / "basics" / "hello-sweep.yml")
    repo = new_repo(tmp_path / "repo", {
        "wf/job.yml": COMMAND_JOB,
        "wf/broken-job.yml": COMMAND_JOB.replace("inputs.n}}", "inputs.m}}"),
        "wf/sweep-job.yml": sweep_job.read_text(),
    })
    svc = Service(cli.home, reap=False)
    try:
        svc.add_repository("repo", str(repo))
        svc.add_application("app", repository="repo", path="wf", revision="main")
        for force in (False, True):  # the second sync reads the valid files from the validation cache
            report = svc.sync("app", force=force)[0]
            files = {f["path"]: f for f in report.files}
            assert report.status == "SYNCED_WITH_ERRORS" and report.sweeps == []
            broken = files["wf/broken-job.yml"]
            assert broken["status"] == "invalid" and broken["errors"][0].startswith("wf/broken-job.yml:2:18: error")
            assert "azureml.placeholder" in broken["errors"][0]
            for path, kind in (("wf/job.yml", "command"), ("wf/sweep-job.yml", "sweep")):
                assert files[path]["status"] == "valid" and files[path]["objects"] == []
                assert f"Azure ML {kind} job: checked, not run" in files[path]["note"]
                assert f"orchestrator run {path}" in files[path]["note"]
        assert svc.store.list_executions("default") == [] and sweep_admin.list_sweeps(svc) == []
    finally:
        svc.close()
