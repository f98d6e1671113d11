"""What a container step needs from its template beyond the compiled model: pull policy, resources,
security context, image pull secrets — and the resource-plan table.

Owns: reading ``imagePullPolicy``, ``resources`` (requests/limits), ``securityContext``
(``runAsUser``, ``runAsGroup``, ``readOnlyRootFilesystem``, ``allowPrivilegeEscalation``) of a
template's ``container``/``script`` and the workflow's ``imagePullSecrets`` from the template's
validated source (read again only when the container executor runs; the host executor never
pays for it), the table that maps ``ai.sap.com/resourcePlan`` to CPU / memory / GPU limits, the
Kubernetes quantity parser, and the refusal of a plan this machine cannot satisfy.

Resource plans (SAP AI Core's table for AWS; a local run uses the numbers as upper limits, so a
plan larger than this machine is clamped to it — except a GPU, which cannot be simulated, and a
container ``resources.requests`` above the machine, which Kubernetes would never schedule):

======================  =====  ==========  ====
plan                    CPUs   memory      GPUs
======================  =====  ==========  ====
starter                 1      3 GiB       0
basic                   3      11 GiB      0
basic.8x                31     116 GiB     0
infer.s                 3      10 GiB      1
infer.m                 7      26 GiB      1
infer.l                 15     58 GiB      1
train.l                 7      58 GiB      1
infer2.l                7      26 GiB      1
infer2.4xl              47     176 GiB     4
train2.8xl              95     1100 GiB    8
train2.8xxl             95     1100 GiB    8
======================  =====  ==========  ====

Container ``resources.limits`` win over the plan (they are what Kubernetes enforces).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import OrchestratorError

GiB = 1 << 30
PLANS: dict[str, tuple[float, int, int]] = {  # plan -> (CPUs, memory bytes, GPUs)
    "starter": (1, 3 * GiB, 0), "basic": (3, 11 * GiB, 0), "basic.8x": (31, 116 * GiB, 0),
    "infer.s": (3, 10 * GiB, 1), "infer.m": (7, 26 * GiB, 1), "infer.l": (15, 58 * GiB, 1),
    "train.l": (7, 58 * GiB, 1), "infer2.l": (7, 26 * GiB, 1), "infer2.4xl": (47, 176 * GiB, 4),
    "train2.8xl": (95, 1100 * GiB, 8), "train2.8xxl": (95, 1100 * GiB, 8),
}
PULL_POLICIES = {"ifnotpresent": "missing", "always": "always", "never": "never"}
_QTY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(m|k|Ki|M|Mi|G|Gi|T|Ti|K)?\s*$")
_MULT = {None: 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
         "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


class ResourceRefused(OrchestratorError):
    """A step asks for resources this machine does not have (refused before the run)."""

    code = "RESOURCES"


@dataclass(frozen=True)
class ContainerExtras:
    pull_policy: str = ""  # "missing" | "always" | "never" | "" (the default)
    cpus: float = 0.0  # 0 = no limit
    memory: int = 0  # bytes, 0 = no limit
    gpus: int = 0
    request_cpus: float = 0.0
    request_memory: int = 0
    run_as_user: int | None = None
    run_as_group: int | None = None
    read_only_root: bool = False
    no_new_privileges: bool = False
    plan: str = ""
    run_as_non_root: bool = False


def quantity(text: Any, cpu: bool = False) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``512Mi``, ``1G``) as a number (CPUs or bytes)."""
    m = _QTY.match(str(text))
    if not m:
        raise OrchestratorError(f"resource quantity {str(text)[:40]!r} is not a number with an optional "
                                "suffix (m, Ki, Mi, Gi, k, M, G)")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "m":
        return value / 1000 if cpu else value / 1000
    return value * _MULT[unit]


def template_extras(source: str, doc_index: int, template: str, labels: dict[str, str]) -> ContainerExtras:
    """The container fields of template ``template`` in the (already validated) ``source`` (of a
    containerSet: its container ``main``)."""
    raw = _raw_templates(source, doc_index).get(template, {})
    c = raw.get("container") or raw.get("script") or _others(raw).get("main") or {}
    return _extras(c if isinstance(c, dict) else {}, labels.get("ai.sap.com/resourcePlan", ""))


def companion_extras(source: str, doc_index: int, template: str) -> dict[str, ContainerExtras]:
    """Name -> fields of each sidecar and other containerSet container of ``template``: their own
    pull policy, limits and securityContext (a plan sizes the main container only)."""
    raw = _raw_templates(source, doc_index).get(template, {})
    return {name: _extras(c, "") for name, c in _others(raw).items() if name != "main"}


def _others(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cs = raw.get("containerSet") if isinstance(raw.get("containerSet"), dict) else {}
    items = list(raw.get("sidecars") or []) + list(cs.get("containers") or [])
    return {str(c.get("name")): c for c in items if isinstance(c, dict)}


def _extras(c: dict[str, Any], plan: str) -> ContainerExtras:
    cpus, memory, gpus = PLANS.get(plan, (0.0, 0, 0))
    res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
    limits = res.get("limits") if isinstance(res.get("limits"), dict) else {}
    requests = res.get("requests") if isinstance(res.get("requests"), dict) else {}
    if "cpu" in limits:
        cpus = quantity(limits["cpu"], cpu=True)
    if "memory" in limits:
        memory = int(quantity(limits["memory"]))
    for key in ("nvidia.com/gpu", "amd.com/gpu"):
        if key in limits:
            gpus = int(quantity(limits[key]))
    sc = c.get("securityContext") if isinstance(c.get("securityContext"), dict) else {}
    policy = str(c.get("imagePullPolicy") or "")
    return ContainerExtras(
        pull_policy=PULL_POLICIES.get(policy.lower(), ""), cpus=float(cpus), memory=int(memory), gpus=int(gpus),
        request_cpus=quantity(requests["cpu"], cpu=True) if "cpu" in requests else 0.0,
        request_memory=int(quantity(requests["memory"])) if "memory" in requests else 0,
        run_as_user=_int(sc.get("runAsUser")), run_as_group=_int(sc.get("runAsGroup")),
        read_only_root=sc.get("readOnlyRootFilesystem") is True,
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False, plan=plan,
        run_as_non_root=sc.get("runAsNonRoot") is True)


def pull_secrets(source: str, doc_index: int) -> list[str]:
    """Names in the workflow's ``spec.imagePullSecrets`` (AI Core: docker registry secrets)."""
    spec = _raw_spec(source, doc_index)
    out = []
    for item in spec.get("imagePullSecrets") or []:
        if isinstance(item, dict) and item.get("name"):
            out.append(str(item["name"]))
    return out


def check_machine(step: str, x: ContainerExtras) -> None:
    """Refuse, before the run, what no local container can honour."""
    if x.gpus and not _gpus_here():
        raise ResourceRefused(f"step {step!r} needs {x.gpus} GPU(s)"
                              + (f" (resource plan {x.plan!r})" if x.plan else "") + "; this machine has none",
                              hint="run it on AI Core, or choose a CPU plan (starter, basic) for a local run")
    ncpu = os.cpu_count() or 1
    if x.request_cpus > ncpu:
        raise ResourceRefused(f"step {step!r} requests {x.request_cpus:g} CPUs; this machine has {ncpu}")
    total = _mem_total()
    if total and x.request_memory > total:
        raise ResourceRefused(f"step {step!r} requests {x.request_memory / GiB:.1f} GiB of memory; this machine "
                              f"has {total / GiB:.1f} GiB")


def engine_limits(x: ContainerExtras) -> list[str]:
    """``--cpus`` / ``--memory`` options (clamped to this machine: they are upper limits)."""
    out: list[str] = []
    if x.cpus:
        out += ["--cpus", f"{min(x.cpus, float(os.cpu_count() or 1)):g}"]
    if x.memory:
        total = _mem_total()
        out += ["--memory", str(min(x.memory, total) if total else x.memory)]
    return out


def gpu_args(engine: str, gpus: int) -> list[str]:
    """The GPUs of a step: podman through CDI (``nvidia.com/gpu=all``, made by
    ``nvidia-ctk cdi generate``), docker through its ``--gpus`` (the NVIDIA container toolkit)."""
    if not gpus:
        return []
    if engine == "docker":
        return ["--gpus", str(gpus)]
    return ["--device", "nvidia.com/gpu=all"]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _gpus_here() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/kfd")


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


_cache: dict[tuple[int, int], dict[str, Any]] = {}


def _raw_spec(source: str, doc_index: int) -> dict[str, Any]:
    key = (hash(source), doc_index)
    if key not in _cache:
        from orchestrator.spec.yamlsafe import load_text

        docs, _errs = load_text(source, "<template>")
        data = docs[doc_index].data if 0 <= doc_index < len(docs) else {}
        spec = data.get("spec") if isinstance(data, dict) else None
        _cache[key] = spec if isinstance(spec, dict) else {}
    return _cache[key]


def _raw_templates(source: str, doc_index: int) -> dict[str, dict[str, Any]]:
    spec = _raw_spec(source, doc_index)
    return {str(t.get("name")): t for t in spec.get("templates") or [] if isinstance(t, dict)}
