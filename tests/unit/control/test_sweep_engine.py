"""The sweep engine over real executions (SQLite file, step subprocesses logging through
orchestrator.tracking): each early-termination policy stops exactly the trials it should on
scripted metric curves (one trial at a time, so the order is fixed), limits hold (never more than
max_concurrent_trials running, from the recorded start/end times), failures, the best model."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.control import sweeps
from orchestrator.control.service import Service
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

HEAD = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: {name}
  annotations: {{scenarios.ai.sap.com/name: sweeps, executables.ai.sap.com/name: {name}}}
  labels: {{scenarios.ai.sap.com/id: sweeps, ai.sap.com/version: "1"}}
spec:
  entrypoint: main
  arguments:
    parameters: [{params}]
  templates:
  - name: main
    container:
      image: python
      command: [python, -c, "{code}", {args}]
"""
# logs each value of the comma-separated curve, 0.2 s apart (a policy's stop lands in between)
CURVE = ("import sys, time; from orchestrator import tracking as t\\n"
         "for v in sys.argv[1].split(','): t.log_metric('acc', float(v)); time.sleep(0.2)")
SLEEP = "import sys, time; from orchestrator import tracking as t; time.sleep(0.15); t.log_metric('acc', float(sys.argv[1]))"
FAIL = "import sys; from orchestrator import tracking as t; t.log_metric('acc', float(sys.argv[1])); sys.exit(int(sys.argv[2]))"
SLOW_FAIL = "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(3)"


MODELLED = """apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: modelled
  annotations: {scenarios.ai.sap.com/name: sweeps, executables.ai.sap.com/name: modelled,
                artifacts.ai.sap.com/tiny-model.kind: model}
  labels: {scenarios.ai.sap.com/id: sweeps, ai.sap.com/version: "1"}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: x}]
  templates:
  - name: main
    outputs:
      artifacts: [{name: model, globalName: tiny-model, path: /app/model/, archive: {none: {}}}]
    container:
      image: python
      command: [python, -c, "import os, sys; from orchestrator import tracking as t; os.makedirs(sys.argv[2], exist_ok=True); open(os.path.join(sys.argv[2], 'm.txt'), 'w').write(sys.argv[1]); t.log_metric('acc', float(sys.argv[1]))", "{{workflow.parameters.x}}", "{{outputs.artifacts.model.path}}"]
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweeps")
    files = []
    for name, params, code, args in (
            ("curve", "{name: curve}", CURVE, '"{{workflow.parameters.curve}}"'),
            ("napping", "{name: x}", SLEEP, '"{{workflow.parameters.x}}"'),
            ("flaky", "{name: x}, {name: code, default: '0'}", FAIL,
             '"{{workflow.parameters.x}}", "{{workflow.parameters.code}}"'),
            ("slow-fail", "{name: x}", SLOW_FAIL, '"{{workflow.parameters.x}}"')):
        path = root / f"{name}.yaml"
        path.write_text(HEAD.format(name=name, params=params, code=code, args=args))
        files.append(str(path))
    (root / "modelled.yaml").write_text(MODELLED)
    files.append(str(root / "modelled.yaml"))
    svc = Service(root / "home", local_files=True)
    svc.register(files)
    svc.close()
    return root / "home"


def curves(*series: list[float]) -> Distribution:
    return Distribution("choice", values=tuple(",".join(str(v) for v in s) for s in series))


def spec(name: str, exe: str, space: dict[str, Distribution], *, policy: EarlyTermination | None = None,
         algorithm: str = "grid", limits: SweepLimits = SweepLimits(max_concurrent_trials=1),
         **kw: Any) -> SweepSpec:
    return SweepSpec(name, TrialTarget(exe), tuple(space.items()), Objective("acc", "maximize"),
                     Sampling(algorithm, seed=1 if algorithm == "random" else None), policy, limits, **kw)


POLICIES = {
    # trial 1 is below 0.5/1.2 at interval 1; trial 3's best 0.46 is below 0.6/1.2 at interval 2
    "bandit": (EarlyTermination("bandit", slack_factor=0.2),
               curves([.5, .6, .7, .8, .9], [.2] * 5, [.45, .55, .65, .75, .85], [.42, .46, .46, .46, .46]),
               {1: "interval 1", 3: "interval 2"}),
    # from interval 2 on: the constant low trials fall below the median of the running averages
    "median_stopping": (EarlyTermination("median_stopping", delay_evaluation=2),
                        curves([.5, .6, .7, .8, .9], [.1] * 5, [.6, .7, .8, .9, 1.0], [.3] * 5, [.6] * 5),
                        {1: "interval 2", 3: "interval 2"}),
    # the lowest 50 % at interval 1: trial 1 (2nd of 2), trial 3 (4th of 4)
    "truncation_selection": (EarlyTermination("truncation_selection", truncation_percentage=50),
                             curves([.5] * 5, [.1] * 5, [.9] * 5, [.3] * 5), {1: "interval 1", 3: "interval 1"}),
}


@pytest.fixture(scope="module")
def policy_runs(home: Path) -> dict[str, tuple[Any, list[Any], list[dict[str, Any]]]]:
    """The three policy sweeps, run side by side (each runs one trial at a time), with their events."""
    out: dict[str, tuple[Any, list[Any], list[dict[str, Any]]]] = {}

    def one(policy_name: str) -> None:
        svc = Service(home, reap=False)
        policy, space, _ = POLICIES[policy_name]
        events: list[dict[str, Any]] = []
        row = sweeps.run_sweep(svc, spec(policy_name, "curve", {"curve": space}, policy=policy), on_event=events.append)
        out[policy_name] = (row, SweepRecords(svc.store).trials("default", row.id), events)
        svc.close()

    threads = [threading.Thread(target=one, args=(p,)) for p in POLICIES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("policy_name", list(POLICIES))
def test_each_policy_stops_exactly_the_right_trials(policy_runs: dict[str, Any], policy_name: str) -> None:
    row, trials, _ = policy_runs[policy_name]
    expected = POLICIES[policy_name][2]
    assert row.status == "COMPLETED"
    stopped = {t.trial: t.status_message for t in trials if t.status == "STOPPED"}
    assert set(stopped) == set(expected), [(t.trial, t.status, t.status_message) for t in trials]
    for index, where in expected.items():
        assert f"early termination ({policy_name}" in stopped[index] and where in stopped[index]
    assert all(t.status == "COMPLETED" for t in trials if t.trial not in expected)
    assert row.best_execution_id == max((t for t in trials if t.status == "COMPLETED"),
                                        key=lambda t: t.objective).execution_id


def _overlap(svc: Service, ids: list[str]) -> int:
    events = []
    for eid in ids:
        ex = svc.store.get_execution("default", eid)
        assert ex.start_time and ex.completion_time
        events += [(datetime.fromisoformat(ex.start_time.replace("Z", "+00:00")), 1),
                   (datetime.fromisoformat(ex.completion_time.replace("Z", "+00:00")), -1)]
    most = now = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        now += delta
        most = max(most, now)
    return most


def test_limits_hold_and_random_sampling_is_reproducible(home: Path) -> None:
    svc = Service(home, reap=False)
    space = {"x": Distribution("uniform", min_value=0.0, max_value=1.0)}
    limits = SweepLimits(max_total_trials=7, max_concurrent_trials=3)
    first = sweeps.run_sweep(svc, spec("limits", "napping", space, algorithm="random", limits=limits))
    trials = SweepRecords(svc.store).trials("default", first.id)
    assert [t.trial for t in trials] == list(range(7)) and all(t.status == "COMPLETED" for t in trials)
    assert _overlap(svc, [t.execution_id for t in trials]) == 3
    again = sweeps.run_sweep(svc, spec("limits", "napping", space, algorithm="random", limits=limits))
    assert [t.parameters for t in SweepRecords(svc.store).trials("default", again.id)] == \
        [t.parameters for t in trials]
    assert svc.store.get_execution("default", trials[0].execution_id).extra_parameters == \
        (("x", repr(trials[0].parameters["x"])),)


def test_one_failing_trial_does_not_stop_the_sweep_all_failing_does(home: Path) -> None:
    svc = Service(home, reap=False)
    some = sweeps.run_sweep(svc, spec("some-fail", "flaky", {"x": Distribution("choice", values=(1, 2, 3)),
                                                              "code": Distribution("choice", values=(0, 1))},
                                      limits=SweepLimits(max_concurrent_trials=2)))
    statuses = [t.status for t in SweepRecords(svc.store).trials("default", some.id)]
    assert some.status == "COMPLETED" and statuses.count("DEAD") == 3 and statuses.count("COMPLETED") == 3
    assert some.best_value == 3.0
    every = sweeps.run_sweep(svc, spec("all-fail", "flaky", {"x": Distribution("choice", values=(1, 2, 3, 4, 5, 6, 7)),
                                                              "code": Distribution("choice", values=(3,))},
                                       limits=SweepLimits(max_concurrent_trials=1)))
    assert every.status == "DEAD" and every.status_message.startswith("all 5 trials failed")
    assert len(SweepRecords(svc.store).trials("default", every.id)) == 5  # no sixth trial started


def test_a_failing_sweeps_message_counts_how_its_trials_really_ended(home: Path) -> None:
    """Two at a time, failing after x seconds: the sixth trial (20 s) runs when the fifth failure
    ends the sweep, and is stopped; the message says so instead of "all 5 trials failed"."""
    svc = Service(home, reap=False)
    row = sweeps.run_sweep(svc, spec("fail-and-stop", "slow-fail",
                                     {"x": Distribution("choice", values=(0, 0.3, 0.6, 0.9, 1.2, 20, 0))},
                                     limits=SweepLimits(max_concurrent_trials=2)))
    statuses = [t.status for t in SweepRecords(svc.store).trials("default", row.id)]
    assert row.status == "DEAD" and sorted(statuses) == ["DEAD"] * 5 + ["STOPPED"]
    assert row.status_message.startswith("5 trials failed; 1 more was stopped; last: ")
    svc.close()


def test_the_stored_best_follows_the_completed_trials_while_the_sweep_runs(home: Path) -> None:
    """Read by another connection whenever a trial starts (one at a time: every earlier trial has
    ended), the sweep's best is the best of the trials ended so far, not only once the sweep ends."""
    svc, reader = Service(home, reap=False), SweepRecords(Service(home, reap=False).store)
    seen: dict[int, tuple[str | None, float | None]] = {}

    def on(event: dict[str, Any]) -> None:
        if event["event"] == "trial-started":
            (sid,) = [r.id for r in reader.list("default") if r.name == "best-so-far"]
            row = reader.get("default", sid)
            seen[event["trial"]] = (row.best_execution_id, row.best_value)

    row = sweeps.run_sweep(svc, spec("best-so-far", "napping", {"x": Distribution("choice", values=(0.3, 0.9, 0.5))}),
                           on_event=on)
    trials = SweepRecords(svc.store).trials("default", row.id)
    assert seen == {0: (None, None), 1: (trials[0].execution_id, 0.3), 2: (trials[1].execution_id, 0.9)}
    assert (row.best_execution_id, row.best_value) == (trials[1].execution_id, 0.9)
    reader.store.close()
    svc.close()


def test_an_unknown_search_parameter_is_a_located_error(home: Path) -> None:
    from orchestrator.errors import ValidationFailed

    svc = Service(home, reap=False)
    with pytest.raises(ValidationFailed) as exc:
        sweeps.create_sweep(svc, spec("bad", "napping", {"y": Distribution("choice", values=(1,))}))
    (err,) = exc.value.errors
    assert (err.pointer, err.rule) == ("/spec/searchSpace/y", "sweep.unknown-parameter")


def test_the_best_trials_model_is_registered_with_the_sweep_as_lineage(home: Path) -> None:
    svc = Service(home, reap=False)
    row = sweeps.run_sweep(svc, spec("best-model", "modelled", {"x": Distribution("choice", values=(0.2, 0.9, 0.5))},
                                     limits=SweepLimits(max_concurrent_trials=3), register_model="sweep-best"))
    best = svc.store.get_model_version("default", "sweep-best")
    assert row.model_version == f"sweep-best/{best.version}" and best.execution_id == row.best_execution_id
    assert dict(best.tags)["orchestrator/sweep"] == row.id
    trial = [t for t in SweepRecords(svc.store).trials("default", row.id) if t.execution_id == best.execution_id]
    assert trial[0].parameters == {"x": 0.9}


def test_trial_timeout_and_sweep_timeout_stop_with_their_reason(home: Path) -> None:
    svc = Service(home, reap=False)
    long = curves([.5] * 30)  # 30 reports, 0.2 s apart: 6 s unless stopped
    row = sweeps.run_sweep(svc, spec("trial-timeout", "curve", {"curve": long},
                                     limits=SweepLimits(max_concurrent_trials=1, trial_timeout=0.6)))
    (trial,) = SweepRecords(svc.store).trials("default", row.id)
    assert trial.status == "STOPPED" and trial.status_message == "trial_timeout (0.6 s) exceeded"
    assert row.status == "COMPLETED" and len(trial.reports) < 30
    row = sweeps.run_sweep(svc, spec("sweep-timeout", "curve", {"curve": curves([.5] * 30, [.6] * 30)},
                                     limits=SweepLimits(max_concurrent_trials=1, timeout=0.6)))
    trials = SweepRecords(svc.store).trials("default", row.id)
    assert row.status == "STOPPED" and row.status_message == "sweep timeout (0.6 s) reached"
    assert [t.status for t in trials] == ["STOPPED"]  # the second trial never started
    assert trials[0].status_message == "sweep timeout (0.6 s) reached"


def test_resume_records_a_trial_that_ended_after_the_sweeps_last_write(home: Path) -> None:
    """The sweep process died after a trial's execution ended (the runner committed it) and before
    the sweep recorded the trial: resume takes its objective from the stored metrics, runs nothing again."""
    svc = Service(home, reap=False)
    row = sweeps.run_sweep(svc, spec("crash-window", "napping", {"x": Distribution("choice", values=(0.3, 0.7))},
                                     limits=SweepLimits(max_concurrent_trials=2)))
    records = SweepRecords(svc.store)
    first = records.trials("default", row.id)
    late = next(t for t in first if t.parameters == {"x": 0.7})
    with svc.store.transaction() as db:  # as the store was at the crash
        db.execute("UPDATE sweep_trials SET finished_at=NULL, objective=NULL, reports='[]' WHERE execution_id=?",
                   (late.execution_id,))
        db.execute("UPDATE sweeps SET status='RUNNING', owner_pid=NULL, best_execution_id=NULL, best_value=NULL "
                   "WHERE id=?", (row.id,))
    again = sweeps.resume_sweep(svc, row.id)
    after = records.trials("default", row.id)
    assert [t.execution_id for t in after] == [t.execution_id for t in first]  # nothing ran again
    assert again.status == "COMPLETED" and again.best_value == 0.7 and again.best_execution_id == late.execution_id
    assert next(t for t in after if t.execution_id == late.execution_id).reports == [0.7]
    svc.close()


def test_a_finished_trial_hands_its_slot_over_after_the_sampler_was_told(home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One slot: every trial after the first is started by the previous trial's own thread, in
    that trial's end transaction (the hand-over), and its point is drawn only after the sampler
    was told the previous result (what a bayesian sampler needs); never two running at once."""
    calls: list[tuple[str, int]] = []
    handed: list[int] = []

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def ask(self, index: int) -> Any:
            calls.append(("ask", index))
            return self.inner.ask(index)

        def tell(self, index: int, params: Any, value: float | None) -> None:
            calls.append(("tell", index))
            self.inner.tell(index, params, value)

    make, handed_over = sweeps.make_sampler, sweeps.Engine._handed_over

    def count(engine: Any, trial: Any) -> None:
        if trial.successor is not None:
            handed.append(trial.successor.index)
        handed_over(engine, trial)

    monkeypatch.setattr(sweeps, "make_sampler", lambda s, seed: Recording(make(s, seed)))
    monkeypatch.setattr(sweeps.Engine, "_handed_over", count)
    svc = Service(home, reap=False)
    space = {"x": Distribution("uniform", min_value=0.0, max_value=1.0)}
    row = sweeps.run_sweep(svc, spec("handover", "napping", space, algorithm="random",
                                     limits=SweepLimits(max_total_trials=4, max_concurrent_trials=1)))
    trials = SweepRecords(svc.store).trials("default", row.id)
    assert row.status == "COMPLETED" and [t.status for t in trials] == ["COMPLETED"] * 4
    assert calls == [("ask", 0), ("tell", 0), ("ask", 1), ("tell", 1), ("ask", 2), ("tell", 2), ("ask", 3),
                     ("tell", 3)]
    assert handed == [1, 2, 3]
    assert _overlap(svc, [t.execution_id for t in trials]) == 1
    svc.close()


@pytest.mark.parametrize("policy_name", list(POLICIES))
def test_a_policy_stop_is_told_right_before_the_stopped_end(policy_runs: dict[str, Any], policy_name: str) -> None:
    """The trial-terminated event comes with the trial's end, only when it ended STOPPED."""
    _, _, events = policy_runs[policy_name]
    told = [e for e in events if e["event"] != "progress"]
    terminated = [i for i, e in enumerate(told) if e["event"] == "trial-terminated"]
    assert {told[i]["trial"] for i in terminated} == set(POLICIES[policy_name][2]), told
    for i in terminated:
        after = told[i + 1]
        assert (after["event"], after["trial"], after["status"]) == ("trial-ended", told[i]["trial"], "STOPPED"), told
