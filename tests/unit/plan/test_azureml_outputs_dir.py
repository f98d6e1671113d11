"""An Azure ML command job's step makes ``./outputs`` itself: a script that writes there without
creating it works on an executor that unpacks the code snapshot into a fresh working directory
(a Ray node did, and the job failed with FileNotFoundError there while it ran locally). The
generated step's own argv runs here with real bash, in a code copy without ``outputs``."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orchestrator.plan.azureml import convert
from tests.unit.plan.test_azureml_convert import job_from

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
code: src
command: echo trained > outputs/model.txt && cat outputs/model.txt
"""


def test_the_generated_step_creates_outputs_in_its_working_directory(tmp_path: Path) -> None:
    step = convert(job_from(JOB))
    container = step.document["spec"]["templates"][0]["container"]
    assert container["workingDir"] == "/azureml/code"
    code = tmp_path / "code"  # the snapshot as a node unpacks it: the files, no outputs/
    code.mkdir()
    (code / "train.py").write_text("pass\n")
    p = subprocess.run([*container["command"], *container["args"]], cwd=code, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "trained" and (code / "outputs" / "model.txt").read_text() == "trained\n"
