"""Findings of a new user's walk through sweeps: a trial whose process completed is never turned
into STOPPED by a stop that lands after it; the early-termination policy judges a trial at the
latest evaluation interval it has reached (on everything it reported up to there) and its message
states the numbers it compared; trials' times in the REST API are ISO 8601. Real SQLite file,
real step subprocesses, real HTTP server."""

from __future__ import annotations

import datetime
import html
import http.cookiejar
import json
import os
import re
import statistics
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from orchestrator.control import sweeps
from orchestrator.control.service import Service
from orchestrator.model import Status, StepState
from orchestrator.plan.binding import RunPlan, bind_parameters
from orchestrator.plan.sampling import display
from orchestrator.run import supervise
from orchestrator.spec.sweep import (
    Distribution,
    EarlyTermination,
    Objective,
    Sampling,
    SweepLimits,
    SweepSpec,
    TrialTarget,
)
from orchestrator.store.sweep_records import SweepRecords
from tests.conftest import Cli, template
from tests.integration.conftest import ApiServer

# "v1,v2,...;hold": logs the whole curve in one write (the engine sees all of it at once, as when a
# script logs its metrics at the end), then holds its process for ``hold`` seconds.
BURST = ("import json, os, sys, time\\n"
         "curve, hold = sys.argv[1].split(';')\\n"
         "vals = [float(v) for v in curve.split(',')]\\n"
         "lines = ''.join(json.dumps({'t': 'metric', 'name': 'acc', 'value': v, 'step': i, 'labels': [],"
         " 'timestamp': '2026-01-01T00:00:00.000000Z'}) + chr(10) for i, v in enumerate(vals))\\n"
         "fd = os.open(os.environ['ORCHESTRATOR_TRACKING_FILE'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\\n"
         "os.write(fd, lines.encode()); os.close(fd); time.sleep(float(hold))")
STEP = """
- name: main
  container:
    image: python
    command: [{python}, -c, "{code}", "{{{{workflow.parameters.curve}}}}"]
"""
NAP = """
- name: main
  container:
    image: python
    command: [{python}, -c, "import time; time.sleep(0.05)"]
"""
MESSAGE = re.compile(r"at interval (\d+): best (\S+) so far is worse than (\S+), the median of the running "
                     r"averages of (\d+) trials")


def _home(tmp_path: Path) -> Path:
    burst = tmp_path / "burst.yaml"
    burst.write_text(template("burst", STEP.format(python=json.dumps(sys.executable), code=BURST),
                              params="- {name: curve}\n- {name: lr, default: '0'}\n- {name: depth, default: '0'}"))
    nap = tmp_path / "nap.yaml"
    nap.write_text(template("napping", NAP.format(python=json.dumps(sys.executable))))
    svc = Service(tmp_path / "home", reap=False, local_files=True)
    svc.register([str(burst), str(nap)])
    svc.close()
    return tmp_path / "home"


def test_a_stop_that_lands_after_the_last_step_succeeded_leaves_the_execution_completed(tmp_path: Path) -> None:
    svc = Service(_home(tmp_path), reap=False)
    wspec, doc = svc.load_executable("napping")
    cfg = svc.store.create_configuration(svc.rg, "nap", wspec.scenario_id, wspec.executable_id, [], [])
    ex = svc.store.create_execution(svc.rg, cfg, str(svc.home / "executions"))
    runner = svc.runner(ex, RunPlan(wspec, bind_parameters(wspec, []), document=doc), {})
    seen: list[bool] = []

    def on_event(nid: str, state: StepState, message: str, t: float) -> None:
        if state == StepState.SUCCEEDED:  # its process exited 0; now the stop request lands
            svc.store.request_stop(svc.rg, ex.id)
            supervise.check_stop(runner)
            seen.append(runner.stopped)

    runner.on_event = on_event
    assert svc.run_runner(runner) == Status.COMPLETED
    assert seen == [False]
    assert svc.store.get_execution(svc.rg, ex.id).status == Status.COMPLETED
    svc.close()


def test_median_stopping_judges_the_latest_interval_and_states_what_it_compared(tmp_path: Path) -> None:
    # one trial at a time, each curve seen all at once: trial 1 was below the median at interval 1
    # but its best at interval 5 (0.9) is not (it completes); trial 2's best 0.2 is (it is stopped
    # while its process still holds: STOPPED, at interval 5, with the numbers compared there)
    curves = ("0.5,0.5,0.5,0.5,0.5;0", "0.1,0.1,0.1,0.1,0.9;1", "0.2,0.2,0.2,0.2,0.2;20")
    svc = Service(_home(tmp_path), reap=False)
    space = (("curve", Distribution("choice", values=curves)),  # and two floats, as the dashboard shows them
             ("lr", Distribution("choice", values=(0.5431886921209772,))), ("depth", Distribution("choice", values=(2.0,))))
    spec = SweepSpec("findings", TrialTarget("burst"), space,
                     Objective("acc", "maximize"), Sampling("grid"),
                     EarlyTermination("median_stopping", evaluation_interval=1, delay_evaluation=1),
                     SweepLimits(max_concurrent_trials=1))
    row = sweeps.run_sweep(svc, spec)
    trials = sorted(SweepRecords(svc.store).trials(svc.rg, row.id), key=lambda t: t.trial)
    assert [t.status for t in trials] == ["COMPLETED", "COMPLETED", "STOPPED"], [(t.status, t.message) for t in trials]
    assert trials[1].message == "" and trials[1].objective == 0.9
    stopped = trials[2]
    m = MESSAGE.search(stopped.message)
    assert m, stopped.message
    interval, best, median, count = int(m[1]), float(m[2]), float(m[3]), int(m[4])
    assert interval == 5 and count == 3
    assert best == max(stopped.reports[:interval]) == stopped.objective
    averages = [statistics.fmean(t.reports[:interval]) for t in trials]
    assert abs(median - statistics.median(averages)) < 1e-6 and best < median
    svc.close()

    # the REST API's trial times are ISO 8601 (UTC), as every other timestamp; the CLI reads them
    server = ApiServer(tmp_path)
    try:
        status, _, body = server.call("GET", f"/v2/lm/sweeps/{row.id}/trials")
        assert status == 200 and body["count"] == 3
        for t, wire in zip(trials, sorted(body["resources"], key=lambda r: r["trial"])):
            for key, epoch in (("startedAt", t.started_at), ("finishedAt", t.finished_at)):
                assert isinstance(wire[key], str) and wire[key].endswith("Z"), wire
                moment = datetime.datetime.fromisoformat(wire[key])
                assert moment.tzinfo is not None and abs(moment.timestamp() - float(epoch or 0)) < 1e-3
        server.env["ORCHESTRATOR_TOKEN"] = server.token
        shown = server.cli("--server", server.base, "sweeps", "show", row.id)
        assert "STOPPED" in shown.stdout and "COMPLETED" in shown.stdout
        _dashboard_shows_values_as_the_cli(server, row.id, shown.stdout)
    finally:
        server.stop()



def _dashboard_shows_values_as_the_cli(server: ApiServer, sweep_id: str, cli_table: str) -> None:
    """The sweep page's parameter cells read as the CLI's table (0.5432, 2), the full value in
    their title; objectives as the CLI's (%.6g), full in their title."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login = opener.open(server.base + "/ui/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf
    form = urllib.parse.urlencode({"csrf": csrf[1], "token": server.token, "next": "/ui/sweeps"}).encode()
    opener.open(server.base + "/ui/login", data=form, timeout=30).read()
    page = opener.open(f"{server.base}/ui/sweeps/{sweep_id}", timeout=30).read().decode()
    cells = [(html.unescape(t), html.unescape(v)) for t, v in
             re.findall(r'<td class="mono param-value" title="([^"]*)">([^<]*)</td>', page)]
    assert len(cells) == 6 and {shown for _, shown in cells} == {"0.5432", "2"}, page
    for full, shown in cells:
        assert shown == display(float(full)) and shown in cli_table and full != shown
    objectives = re.findall(r'<td class="objective" title="([^"]*)">([^<]*)</td>', page)
    assert sorted(shown for _, shown in objectives) == ["0.2", "0.5", "0.9"]


JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  code: src
  command: python t.py ${{search_space.x}}
  environment: azureml:AzureML-sklearn-1.5@latest
compute: azureml:cpu-cluster
sampling_algorithm: grid
search_space:
  x: {type: choice, values: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 6, max_concurrent_trials: 1}
experiment_name: handover-inputs
"""


def test_trials_with_an_input_artifact_handed_over_a_slot_all_run(cli: Cli) -> None:
    # an Azure ML job's code is an input artifact of every trial: a trial started by the slot
    # hand-over prepared its step (reading the execution's input records) before its start was
    # committed, and died "execution not found"
    (cli.tmp / "src").mkdir()
    (cli.tmp / "src" / "t.py").write_text("import sys\nfrom orchestrator import tracking\n"
                                          "tracking.log_metric('acc', float(sys.argv[1]))\n")
    (cli.tmp / "job.yml").write_text(JOB)
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    out = cli.json("run", "job.yml", env=env)
    sweep_id = out["id"] if isinstance(out, dict) and "id" in out else None
    assert sweep_id, out
    shown = cli.json("sweeps", "show", sweep_id)
    assert [t["status"] for t in shown["trials"]] == ["COMPLETED"] * 6, [t["statusMessage"] for t in shown["trials"]]
