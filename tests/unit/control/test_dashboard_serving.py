"""The sweep and deployment pages' reads (control/dashboard_serving) and the executions page's
sweep filter, over a real store: trial counts, the best so far (COMPLETED trials first, per goal),
trials a policy stopped, the chart series, and scoping to the service's resource group."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.control import dashboard, dashboard_serving
from orchestrator.control.service import Service
from orchestrator.errors import NotFound
from orchestrator.spec.sweep import Distribution, Objective, SweepSpec, TrialTarget
from orchestrator.spec.sweep_kind import to_document
from orchestrator.store.sweep_records import SweepRecords
from tests.unit.control.test_dashboard import _seed

POLICY_MSG = ("early termination (bandit, slack_factor 0.2) at interval 1: best 0.2 so far is below 0.416667, "
              "the allowed slack from the best trial (0.5, maximize)")


def _sweep(svc: Service, ids: list[str], goal: str) -> str:
    spec = SweepSpec("s", TrialTarget("dash-exe"), (("x", Distribution("choice", values=("1", "2"))),),
                     Objective("acc", goal))
    cfg = svc.store.get_execution(svc.rg, ids[0]).configuration_id
    records = SweepRecords(svc.store)
    row = records.create(svc.rg, "s", to_document(spec), 1, cfg)
    # trial 0 COMPLETED 0.5, trial 1 STOPPED by the policy 0.9 (better, but not completed), trial 2 COMPLETED 0.7,
    # trial 3 still RUNNING
    for trial, (eid, status, value, msg) in enumerate(((ids[0], "COMPLETED", 0.5, ""), (ids[1], "STOPPED", 0.9, POLICY_MSG),
                                                      (ids[2], "COMPLETED", 0.7, ""), (ids[3], "RUNNING", None, ""))):
        records.add_trial(row.id, trial, eid, {"x": str(trial)})
        with svc.store.transaction() as db:
            db.execute("UPDATE executions SET status=?, status_message=? WHERE id=?", (status, msg, eid))
        if status != "RUNNING":
            records.trial_ended(eid, [value], value)
    return row.id


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_sweep_summary_best_policy_and_chart(tmp_path: Path, goal: str) -> None:
    svc = Service(tmp_path / "home", reap=False)
    try:
        ids = _seed(svc, 6, tmp_path)
        assert not dashboard_serving.has_sweeps(svc)
        sid = _sweep(svc, ids, goal)
        assert dashboard_serving.has_sweeps(svc) and not dashboard_serving.has_deployments(svc)
        [row] = dashboard_serving.list_sweeps(svc)
        assert row["counts"] == {"done": 2, "running": 1, "stopped": 1, "failed": 0, "interrupted": 0, "total": 4}
        best_value = 0.7 if goal == "maximize" else 0.5  # the policy-stopped 0.9 does not count: 2 completed
        assert row["best"]["value"] == best_value
        data = dashboard_serving.sweep(svc, sid)
        assert [t["best"] for t in data["trials"]] == [goal == "minimize", False, goal == "maximize", False]
        assert [t["policy"] for t in data["trials"]] == [None, "bandit", None, None]
        chart = dashboard_serving.sweep_chart(svc, sid)
        assert chart["bestSoFar"] == ([0.5, 0.5, 0.7, 0.7] if goal == "maximize" else [0.5, 0.5, 0.5, 0.5])
        assert chart["rows"] == [["0", 0.5], ["1", 0.9], ["2", 0.7]] and chart["rowStatus"][1] == "STOPPED"
        assert chart["policy"] == [None, "bandit", None, None] and chart["trial"] == [0, 1, 2, 3]
        assert chart["rowBest"] == (2 if goal == "maximize" else 0) and chart["best"]["value"] == best_value
        paged = dashboard_serving.sweep(svc, sid, page=2, per_page=3)
        assert [t["trial"] for t in paged["trials"]] == [3] and paged["pages"] == 2
        assert dashboard_serving.sweep(svc, sid, page=99, per_page=3)["page"] == 2
        # the executions page's sweep filter: only the trial executions
        page = dashboard.list_executions(svc, sweep=sid)
        assert sorted(r["id"] for r in page["rows"]) == sorted(ids[:4])
        assert dashboard.list_executions(svc, sweep=sid, status="STOPPED")["count"] == 1
        assert (sid, "s") in dashboard.facets(svc)["sweeps"]
        other = svc.scoped("team-b")
        other.store.ensure_resource_group("team-b")
        for read in (dashboard_serving.sweep, dashboard_serving.sweep_chart):
            with pytest.raises(NotFound):
                read(other, sid)
        with pytest.raises(NotFound):
            dashboard.list_executions(other, sweep=sid)
        with pytest.raises(NotFound):
            dashboard_serving.deployment_log_chunk(svc, "nope", 0)
        assert dashboard_serving.list_sweeps(other) == []
    finally:
        svc.close()


def test_attempts_a_crash_interrupted_and_resume_ran_again_are_not_counted_as_failed(tmp_path: Path) -> None:
    """After kill -9 and ``sweeps resume`` every trial index has a DEAD (or STOPPED) attempt marked
    interrupted and a newer execution: the list and the page count those as interrupted, not failed."""
    svc = Service(tmp_path / "home", reap=False)
    try:
        ids = _seed(svc, 6, tmp_path)
        spec = SweepSpec("s", TrialTarget("dash-exe"), (("x", Distribution("choice", values=("1", "2"))),),
                         Objective("acc", "maximize"))
        records = SweepRecords(svc.store)
        row = records.create(svc.rg, "s", to_document(spec), 1, svc.store.get_execution(svc.rg, ids[0]).configuration_id)
        # trial 0 completed; trial 1 lost to a crash (DEAD, interrupted) then completed; trial 2 stopped by a
        # sweep stop (STOPPED, interrupted) then completed; trial 3 failed on its own
        for trial, eid, status, msg in ((0, ids[0], "COMPLETED", ""), (1, ids[1], "DEAD", "interrupted"),
                                        (1, ids[2], "COMPLETED", ""), (2, ids[3], "STOPPED", "interrupted"),
                                        (2, ids[4], "COMPLETED", ""), (3, ids[5], "DEAD", "")):
            records.add_trial(row.id, trial, eid, {"x": "1"})
            with svc.store.transaction() as db:
                db.execute("UPDATE executions SET status=? WHERE id=?", (status, eid))
            records.trial_ended(eid, [0.5], 0.5 if status == "COMPLETED" else None, msg)
        [listed] = dashboard_serving.list_sweeps(svc)
        assert listed["counts"] == {"done": 3, "running": 0, "stopped": 0, "failed": 1, "interrupted": 2, "total": 6}
        page = dashboard_serving.sweep(svc, row.id)
        assert page["counts"] == listed["counts"]
        assert [t["interrupted"] for t in page["trials"]] == [False, True, False, True, False, False]
    finally:
        svc.close()
