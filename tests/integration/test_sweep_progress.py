"""The CLI's live progress of ``orchestrator sweep``: each trial's start and end printed in the order
they happen (an end before the start of the trial that takes its slot), the ``N/M done`` counts
matching the lines printed so far, never more running than ``maxConcurrentTrials``, and no
early-termination line for a trial that ended COMPLETED (the stop came too late)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.test_sweeps import (
    TEMPLATE,  # trial: sleep {{nap}} s, log score {{x}}, exit
)

# bandit with no slack: a trial below the best so far is stopped as soon as it reports, which is
# also when it exits: the stop races its COMPLETED end
SWEEP = {"apiVersion": "orchestrator/v1", "kind": "Sweep", "metadata": {"name": "dozes"},
         "spec": {"trial": {"executableId": "napping", "parameterBindings": [{"key": "nap", "value": "0.2"}]},
                  "searchSpace": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
                  "samplingAlgorithm": {"type": "random", "seed": 5},
                  "objective": {"primaryMetric": "score", "goal": "maximize"},
                  "earlyTermination": {"type": "bandit", "slackAmount": 0},
                  "limits": {"maxTotalTrials": 6, "maxConcurrentTrials": 2}}}
STARTED = re.compile(r"^\s*[\d.]+s  trial +(\d+) started ")
ENDED = re.compile(r"^\s*[\d.]+s  trial +(\d+) (COMPLETED|STOPPED|DEAD) +objective ")
EARLY = re.compile(r"^\s*[\d.]+s  trial +(\d+) early termination ")
DONE = re.compile(r"^\s*[\d.]+s  (\d+)/(\d+) done: (\d+) completed, (\d+) stopped, (\d+) failed, (\d+) running;")


def test_progress_lines_come_in_order_with_matching_counts(tmp_path: Path) -> None:
    (tmp_path / "napping.yaml").write_text(TEMPLATE)
    (tmp_path / "sweep.yaml").write_text(json.dumps(SWEEP))
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-m", "orchestrator", "sweep", "napping.yaml", "sweep.yaml"], cwd=tmp_path,
                       env=env, text=True, capture_output=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stderr.splitlines()
    started: list[int] = []
    ended: dict[int, str] = {}
    early: set[int] = set()
    done_seen = -1
    for line in lines:
        if m := STARTED.match(line):
            trial = int(m[1])
            assert trial not in started, p.stderr
            running = len(started) - len(ended)
            assert running < 2, f"trial {trial} started while {running} were running (an end printed late):\n{p.stderr}"
            started.append(trial)
        elif m := EARLY.match(line):
            trial = int(m[1])
            assert trial in started and trial not in ended, p.stderr
            early.add(trial)
        elif m := ENDED.match(line):
            trial = int(m[1])
            assert trial in started, f"trial {trial} ended before its start was printed:\n{p.stderr}"
            assert trial not in ended, p.stderr
            ended[trial] = m[2]
            if m[2] == "COMPLETED":
                assert trial not in early, f"an early-termination line for COMPLETED trial {trial}:\n{p.stderr}"
        elif m := DONE.match(line):
            done, total, completed, stopped, failed, running = (int(g) for g in m.groups())
            assert total == 6
            assert done == completed + stopped + failed == len(ended), p.stderr
            assert done > done_seen, f"the done count did not grow:\n{p.stderr}"
            done_seen = done
            assert completed == sum(s == "COMPLETED" for s in ended.values()), p.stderr
            assert stopped == sum(s == "STOPPED" for s in ended.values()), p.stderr
            assert running == len(started) - len(ended) <= 2, p.stderr
    assert sorted(started) == list(range(6)) and sorted(ended) == list(range(6)), p.stderr
    assert done_seen == 6, p.stderr
    assert early <= {t for t, s in ended.items() if s == "STOPPED"}, p.stderr
