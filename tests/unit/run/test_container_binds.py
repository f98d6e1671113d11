"""A container's binds are re-checked when it starts (finding 3): a directory an earlier container
of the step swapped for a symlink refuses the start before the engine runs."""

from __future__ import annotations

from pathlib import Path

from orchestrator.run.container import ContainerStep
from orchestrator.run.steps import StepSpec


def _step(tmp_path: Path, marker: Path) -> tuple[ContainerStep, Path]:
    step_dir = tmp_path / "work" / "steps" / "s"
    (step_dir / "fs" / "data").mkdir(parents=True)
    step = ContainerStep(StepSpec(["/bin/sh", "-c", f"touch {marker}"], {"PATH": "/usr/bin:/bin"}, str(step_dir),
                                  str(step_dir / "attempt-1.log"), "tok"))
    step.binds = [str(step_dir), str(step_dir / "fs" / "data")]
    return step, step_dir


def test_a_swapped_bind_refuses_the_start(tmp_path: Path) -> None:
    marker = tmp_path / "engine-ran"
    step, step_dir = _step(tmp_path, marker)
    outside = tmp_path / "outside"
    outside.mkdir()
    (step_dir / "fs" / "data").rmdir()
    (step_dir / "fs" / "data").symlink_to(outside)
    res = step.start()
    assert res is not None and res.exit_code == 126 and "symlink" in res.error
    assert not marker.exists()


def test_real_binds_start(tmp_path: Path) -> None:
    marker = tmp_path / "engine-ran"
    step, _ = _step(tmp_path, marker)
    assert step.start() is None
    assert step.proc is not None and step.proc.wait(timeout=30) == 0
    step.finish()
    assert marker.exists()
