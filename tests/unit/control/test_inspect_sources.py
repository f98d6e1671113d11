"""Where ``executions show`` (and the dashboard's execution page) say a parameter value came from:
a sweep trial's sampled values name the sweep and the trial, a scheduled run's the schedule slot,
a configuration's binding the configuration; over a real store."""

from __future__ import annotations

from pathlib import Path

from orchestrator.control.inspect import run_inputs
from orchestrator.control.service import Service
from orchestrator.spec.sweep import Distribution, Objective, SweepSpec, TrialTarget
from orchestrator.spec.sweep_kind import to_document
from orchestrator.store.sweep_records import SweepRecords
from tests.conftest import template

TEMPLATE = template("src-exe", """
- name: main
  container:
    image: python:3.11
    command: [python3, -c, pass]
""", params="""
- name: lr
  value: "0.1"
- name: depth
  value: "3"
- name: seed
  value: "1"
""")


def _sources(svc: Service, execution_id: str) -> dict[str, tuple[str, str]]:
    params, _ = run_inputs(svc, svc.store.get_execution(svc.rg, execution_id))
    return {p["name"]: (p["value"], p["source"]) for p in params}


def test_sampled_values_name_their_sweep_and_trial_and_slot_values_their_schedule(tmp_path: Path) -> None:
    svc = Service(tmp_path / "home", reap=False)
    try:
        (tmp_path / "t.yaml").write_text(TEMPLATE)
        svc.store.ensure_resource_group(svc.rg)
        svc.register([str(tmp_path / "t.yaml")])
        cfg = svc.store.create_configuration(svc.rg, "cfg", "test-scenario", "src-exe", [("depth", "5")], [])
        trial = svc.store.create_execution(svc.rg, cfg, str(svc.home), extra_parameters=[("lr", "0.03")])
        spec = SweepSpec("s", TrialTarget("src-exe"), (("lr", Distribution("choice", values=("0.03", "0.3"))),),
                         Objective("acc", "maximize"))
        records = SweepRecords(svc.store)
        sweep = records.create(svc.rg, "s", to_document(spec), 1, cfg.id)
        records.add_trial(sweep.id, 4, trial.id, {"lr": "0.03"})
        assert _sources(svc, trial.id) == {"lr": ("0.03", f"sweep {sweep.id} trial 4"),
                                           "depth": ("5", "configuration"), "seed": ("1", "template default")}

        slot = svc.store.create_execution(svc.rg, cfg, str(svc.home), slot="2026-12-05T12:00:00Z",
                                          extra_parameters=[("lr", "0.5")])
        assert _sources(svc, slot.id)["lr"] == ("0.5", "schedule slot")
        plain = svc.store.create_execution(svc.rg, cfg, str(svc.home))
        assert _sources(svc, plain.id)["depth"] == ("5", "configuration")
    finally:
        svc.close()
