"""The executor seam's choice and the container executor's template mapping (no engine needed)."""

from __future__ import annotations

import os
import shutil

import pytest

from orchestrator.errors import UsageError
from orchestrator.run import container_spec as cs
from orchestrator.run.executor import LocalExecutor, choose

SRC = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: x}
spec:
  entrypoint: main
  imagePullSecrets:
  - name: my-registry
  templates:
  - name: main
    container:
      image: a
      imagePullPolicy: Never
      resources:
        requests: {cpu: 500m, memory: 64Mi}
        limits: {cpu: "1.5", memory: 1Gi}
      securityContext: {runAsUser: 1000, runAsGroup: 100, readOnlyRootFilesystem: true,
                        allowPrivilegeEscalation: false}
  - name: planned
    container: {image: b}
"""


def test_choice_comes_from_the_name_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR", raising=False)
    assert isinstance(choose(), LocalExecutor)
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "local")
    assert isinstance(choose(), LocalExecutor)
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "kubernetes")
    with pytest.raises(UsageError):
        choose()
    with pytest.raises(UsageError):
        choose("ray-someday")


def test_a_named_engine_that_is_not_installed_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="docker"):
        choose("docker")


@pytest.mark.skipif(not shutil.which("podman"), reason="podman is not installed")
def test_podman_gets_a_containers_conf_of_ours(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ex = choose("podman")
    conf = ex.client_env["CONTAINERS_CONF"]  # type: ignore[attr-defined]
    text = open(conf).read()
    assert 'runtime = "runc"' in text and 'cgroup_manager = "cgroupfs"' in text and "default_ulimits = []" in text


def test_template_fields_map_to_engine_options() -> None:
    x = cs.template_extras(SRC, 0, "main", {})
    assert x.pull_policy == "never"
    assert (x.cpus, x.memory, x.request_cpus, x.request_memory) == (1.5, 1 << 30, 0.5, 64 << 20)
    assert (x.run_as_user, x.run_as_group, x.read_only_root, x.no_new_privileges) == (1000, 100, True, True)
    opts = cs.engine_limits(x)
    assert opts[opts.index("--cpus") + 1] == f"{min(1.5, os.cpu_count() or 1):g}"
    assert cs.pull_secrets(SRC, 0) == ["my-registry"]


def test_resource_plans_map_through_the_table_and_limits_win() -> None:
    x = cs.template_extras(SRC, 0, "planned", {"ai.sap.com/resourcePlan": "starter"})
    assert (x.cpus, x.memory, x.gpus) == (1, 3 * cs.GiB, 0)
    cs.check_machine("planned", x)  # no GPU, no request: fits any machine (limits are clamped)
    x = cs.template_extras(SRC, 0, "main", {"ai.sap.com/resourcePlan": "basic"})
    assert (x.cpus, x.memory) == (1.5, 1 << 30)  # the container's limits over the plan's


def test_a_plan_the_machine_cannot_satisfy_is_refused() -> None:
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has a GPU")
    gpu = cs.template_extras(SRC, 0, "planned", {"ai.sap.com/resourcePlan": "infer.s"})
    with pytest.raises(cs.ResourceRefused, match="GPU"):
        cs.check_machine("planned", gpu)
    with pytest.raises(cs.ResourceRefused, match="CPUs"):
        cs.check_machine("s", cs.ContainerExtras(request_cpus=(os.cpu_count() or 1) + 1))


@pytest.mark.parametrize("text,cpu,value", [("500m", True, 0.5), ("2", True, 2.0), ("512Mi", False, 512 << 20),
                                            ("1G", False, 1e9), ("1.5Gi", False, 1.5 * (1 << 30))])
def test_kubernetes_quantities(text: str, cpu: bool, value: float) -> None:
    assert cs.quantity(text, cpu=cpu) == value


def test_a_bad_quantity_is_an_error() -> None:
    from orchestrator.errors import OrchestratorError

    with pytest.raises(OrchestratorError):
        cs.quantity("lots")


GPU_SRC = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: x}
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: a
      resources:
        limits: {nvidia.com/gpu: 2}
      securityContext: {runAsNonRoot: true}
"""


def test_gpu_limits_become_the_engines_device_options_and_are_refused_without_a_gpu() -> None:
    x = cs.template_extras(GPU_SRC, 0, "main", {})
    assert x.gpus == 2 and x.run_as_non_root
    assert cs.gpu_args("podman", x.gpus) == ["--device", "nvidia.com/gpu=all"]  # CDI
    assert cs.gpu_args("docker", x.gpus) == ["--gpus", "2"]
    assert cs.gpu_args("podman", 0) == []
    if os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(cs.ResourceRefused, match=r"needs 2 GPU\(s\); this machine has none"):
        cs.check_machine("main", x)


def test_user_namespace_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.run import container_pod as cp

    monkeypatch.setattr(cp.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cp, "_has_containers_range", lambda: False)
    monkeypatch.delenv(cp.ENV_VAR, raising=False)
    assert cp.userns_args("podman") == ["--uidmap", f"0:{1 << 30}:65536", "--gidmap", f"0:{1 << 30}:65536"]
    monkeypatch.setattr(cp, "_has_containers_range", lambda: True)
    assert cp.userns_args("podman") == ["--userns=auto"]
    monkeypatch.setenv(cp.ENV_VAR, "host")
    assert cp.userns_args("podman") == []
    monkeypatch.setenv(cp.ENV_VAR, "200000")
    assert cp.userns_args("podman")[1] == "0:200000:65536"
    assert cp.userns_args("docker") == []  # the daemon's userns-remap decides
    monkeypatch.setattr(cp.os, "geteuid", lambda: 1000)
    monkeypatch.delenv(cp.ENV_VAR)
    assert cp.userns_args("podman") == []  # rootless: already the user's namespace


def test_sidecars_and_container_set_containers_have_their_own_fields() -> None:
    src = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: x}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: a, securityContext: {runAsUser: 1}}
    sidecars:
    - {name: web, image: b, imagePullPolicy: Never, securityContext: {runAsUser: 2},
       resources: {limits: {memory: 64Mi}}}
  - name: group
    containerSet:
      containers:
      - {name: main, image: c, securityContext: {readOnlyRootFilesystem: true}}
      - {name: first, image: d, resources: {limits: {nvidia.com/gpu: 1}}}
"""
    assert cs.template_extras(src, 0, "main", {}).run_as_user == 1
    web = cs.companion_extras(src, 0, "main")["web"]
    assert (web.run_as_user, web.pull_policy, web.memory) == (2, "never", 64 << 20)
    assert cs.template_extras(src, 0, "group", {}).read_only_root  # a containerSet's "main"
    assert list(cs.companion_extras(src, 0, "group")) == ["first"]
    assert cs.companion_extras(src, 0, "group")["first"].gpus == 1
