"""The Ray executor's pieces that need no cluster: addresses, the resource mapping, input packing,
the node-side unpacking and stale-directory sweep (the cluster tests: tests/integration/ray)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from orchestrator.cli.parser import executor_choice
from orchestrator.errors import UsageError
from orchestrator.run import container_spec, ray_task
from orchestrator.run.executor import choose
from orchestrator.run.ray_exec import RayExecutor, custom_resources, pack_input, parse_address, task_options


@pytest.mark.parametrize(("choice", "address"), [
    ("ray", None), ("ray://127.0.0.1:10001", "ray://127.0.0.1:10001"), ("ray:10.0.0.5:6379", "10.0.0.5:6379")])
def test_addresses(choice: str, address: str | None) -> None:
    assert parse_address(choice) == address
    assert executor_choice(choice) == choice
    ex = choose(choice)
    assert isinstance(ex, RayExecutor) and ex.address == address


@pytest.mark.parametrize("bad", ["ray:nohost", "ray://h:port", "ray;1:2", "rayx"])
def test_bad_addresses_are_usage_errors(bad: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        executor_choice(bad)
    with pytest.raises(UsageError):
        choose(bad)


def test_the_executor_flag_does_not_import_ray() -> None:
    code2 = ("import sys\nfrom orchestrator.run.executor import choose, check_ray\n"
             "check_ray('ray:127.0.0.1:1'); choose('ray:127.0.0.1:1')\nprint('ray' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True)
    assert p.stdout.strip() == "False", p.stderr


TEMPLATE = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
spec:
  templates:
  - name: plan
    container:
      image: x
  - name: asks
    container:
      image: x
      resources:
        requests: {cpu: 500m, memory: 1Gi, ray.io/node2: "1"}
        limits: {cpu: "2", memory: 2Gi, nvidia.com/gpu: "1", ray.io/node2: "3", ray.io/ssd: "2"}
"""


def test_resources_map_to_ray_options() -> None:
    starter = container_spec.template_extras(TEMPLATE, 0, "plan", {"ai.sap.com/resourcePlan": "starter"})
    assert task_options(starter, {}) == {"num_cpus": 1, "memory": 3 << 30}
    infer = container_spec.template_extras(TEMPLATE, 0, "plan", {"ai.sap.com/resourcePlan": "infer.s"})
    assert task_options(infer, {}) == {"num_cpus": 3, "num_gpus": 1, "memory": 10 << 30}
    assert task_options(container_spec.template_extras(TEMPLATE, 0, "plan", {}), {}) == {"num_cpus": 1.0}
    asks = container_spec.template_extras(TEMPLATE, 0, "asks", {"ai.sap.com/resourcePlan": "basic"})
    custom = custom_resources(TEMPLATE, 0, "asks")
    assert custom == {"node2": 1.0, "ssd": 2.0}  # requests win over limits
    assert task_options(asks, custom) == {"num_cpus": 0.5, "num_gpus": 1, "memory": 1 << 30,
                                          "resources": {"node2": 1.0, "ssd": 2.0}}


def test_the_same_input_packs_to_the_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "data", tmp_path / "b" / "data"
    for d in (a, b):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "x.txt").write_text("x")
        (d / "y.txt").write_text("y")
        time.sleep(0.01)
    os.utime(b / "y.txt", (1, 1))
    (tmp_path / "target").write_text("secret")
    os.symlink(tmp_path / "target", a / "link")  # never shipped
    pa, pb = pack_input(a), pack_input(b)
    assert pa[0] == pb[0] and pa[1] == str(a)
    dest = tmp_path / "out"
    ray_task.unpack(pa[0], str(dest))
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["sub", "sub/x.txt", "y.txt"]
    data, where = pack_input(a / "y.txt")
    assert where == str(a)


def test_unpack_never_writes_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        ray_task.unpack(buf.getvalue(), str(tmp_path / "in"))
    assert not (tmp_path / "escaped.txt").exists()


def test_the_next_step_sweeps_what_a_killed_worker_left(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    token = "feedfacefeedface-0123456789"
    stale = tmp_path / f"{token}.{dead.pid}.abc"
    (stale / "fs").mkdir(parents=True)
    leftover = subprocess.Popen(["sleep", "60"], env={**os.environ, "ORCHESTRATOR_STEP_TOKEN": token})
    alive = tmp_path / f"other-0123456789.{os.getpid()}.abc"
    alive.mkdir()
    ray_task.sweep_stale(str(tmp_path))
    assert leftover.wait(timeout=10) != 0  # killed
    assert not stale.exists() and alive.exists()
