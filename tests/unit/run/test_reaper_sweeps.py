"""The reaper ends a sweep whose process is gone (kill -9, a crash): DEAD with the lost pid and the
``sweeps resume`` command in its message (STOPPED when a stop had been asked for), instead of a
RUNNING sweep for ever; a sweep whose process lives, or that another process claimed meanwhile,
is left alone. Over a real store, with the pid of a real process that has exited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.control.service import Service
from orchestrator.run import reaper
from orchestrator.spec.sweep import Distribution, Objective, SweepSpec, TrialTarget
from orchestrator.spec.sweep_kind import to_document
from orchestrator.store.sweep_records import SweepRecords
from tests.unit.control.test_dashboard import _seed


def _gone_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _owned_by(records: SweepRecords, rg: str, sweep_id: str, pid: int) -> None:
    records.claim(rg, sweep_id)  # RUNNING, owned by this process ...
    with records.store.transaction() as db:  # ... then by ``pid``, as another process would have claimed it
        db.execute("UPDATE sweeps SET owner_pid=? WHERE id=?", (pid, sweep_id))


def test_a_sweep_whose_process_is_gone_ends_dead_or_stopped_and_a_live_one_is_left(tmp_path: Path) -> None:
    svc = Service(tmp_path / "home", reap=False)
    try:
        ids = _seed(svc, 1, tmp_path)
        cfg = svc.store.get_execution(svc.rg, ids[0]).configuration_id
        spec = SweepSpec("s", TrialTarget("dash-exe"), (("x", Distribution("choice", values=("1", "2"))),),
                         Objective("acc", "maximize"))
        records = SweepRecords(svc.store)
        lost, stopping, alive, pending = (records.create(svc.rg, n, to_document(spec), 1, cfg).id
                                          for n in ("lost", "stopping", "alive", "pending"))
        gone = _gone_pid()
        _owned_by(records, svc.rg, lost, gone)
        _owned_by(records, svc.rg, stopping, gone)
        records.request_stop(svc.rg, stopping)
        _owned_by(records, svc.rg, alive, os.getppid())  # a live process that is not this one
        # ``pending``: created, no process has claimed it yet (a REST sweep before its process starts)

        reaper.reap(svc.store)

        row = records.get(svc.rg, lost)
        assert row.status == "DEAD" and row.owner_pid is None and row.completion_time
        assert f"pid {gone}" in row.status_message and f"orchestrator sweeps resume {lost}" in row.status_message
        assert records.get(svc.rg, stopping).status == "STOPPED"
        assert records.get(svc.rg, alive).status == "RUNNING"
        assert records.get(svc.rg, pending).status == "PENDING"
        # a process that claimed the sweep after the reaper read it keeps it
        _owned_by(records, svc.rg, lost, gone)
        assert not records.end_lost(svc.rg, lost, gone + 1, "DEAD", "x")
        assert records.get(svc.rg, lost).status == "RUNNING"
    finally:
        svc.close()
