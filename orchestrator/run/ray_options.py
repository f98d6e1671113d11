"""The Ray options of a step, and what a Ray task cannot run (refused before the run).

Owns :func:`task_options` (scheduling options from a template's ``resources`` and AI Core's
``ai.sap.com/resourcePlan``), :func:`custom_resources` (``ray.io/NAME`` keys) and
:func:`refuse_companions` (sidecars, initContainers, containerSets). Used by
:mod:`orchestrator.run.ray_exec`; imports no Ray.

Resource mapping (Kubernetes ``requests`` are what a scheduler reserves, ``limits`` what it
enforces; Ray only reserves):

* ``num_cpus`` = ``resources.requests.cpu``, else ``limits.cpu``, else the plan's CPUs, else 1
* ``memory`` = ``requests.memory``, else ``limits.memory``, else the plan's memory, else none
* ``num_gpus`` = ``limits.nvidia.com/gpu`` (or ``amd.com/gpu``), else the plan's GPUs
* a custom Ray resource: a ``requests``/``limits`` key ``ray.io/NAME`` (e.g. ``ray.io/node2: 1``
  pins the step to nodes started with ``--resources '{"node2": ...}'``)
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.run import container_spec

CUSTOM_PREFIX = "ray.io/"


def task_options(x: container_spec.ContainerExtras, custom: dict[str, float]) -> dict[str, Any]:
    """Ray scheduling options of a step (the mapping in the module docstring)."""
    cpus = x.request_cpus or x.cpus or 1.0
    memory = x.request_memory or x.memory
    opts: dict[str, Any] = {"num_cpus": cpus}
    if x.gpus:
        opts["num_gpus"] = x.gpus
    if memory:
        opts["memory"] = int(memory)
    if custom:
        opts["resources"] = dict(custom)
    return opts


def custom_resources(source: str, doc_index: int, template: str) -> dict[str, float]:
    """``ray.io/NAME`` keys of the template's ``resources.requests``/``limits`` (requests win)."""
    raw = container_spec._raw_templates(source, doc_index).get(template, {})
    c = raw.get("container") or raw.get("script") or {}
    res = c.get("resources") if isinstance(c, dict) and isinstance(c.get("resources"), dict) else {}
    out: dict[str, float] = {}
    for part in ("limits", "requests"):
        block = res.get(part) if isinstance(res.get(part), dict) else {}
        for key, value in block.items():
            if str(key).startswith(CUSTOM_PREFIX) and len(str(key)) > len(CUSTOM_PREFIX):
                out[str(key)[len(CUSTOM_PREFIX):]] = container_spec.quantity(value)
    return out


class CompanionRefused(OrchestratorError):
    """A template needs containers beside or before its main one, which the Ray executor does not run."""

    code = "UNSUPPORTED"


def refuse_companions(spec: Any, text: str) -> None:
    """Refuse, before anything runs, a template reachable from the entrypoint or an exit handler
    that has ``sidecars``, ``initContainers`` or a ``containerSet`` (a Ray task runs one process
    tree: a sidecar would need a second task on the same node alive exactly as long)."""
    raw = container_spec._raw_templates(text, spec.doc_index)
    todo, seen = [spec.entrypoint, spec.on_exit], set()
    while todo:
        name = todo.pop()
        t = spec.templates.get(name) if name and name not in seen else None
        if t is None:
            continue
        seen.add(name)
        calls = [c for group in (t.steps or ()) for c in group] + list(t.dag or ())
        todo += [c.template for c in calls] + [c.on_exit for c in calls]
        if t.sidecars or t.before_main:
            body = raw.get(name, {}) if isinstance(raw.get(name), dict) else {}
            kinds = [k for k in ("sidecars", "initContainers", "containerSet") if body.get(k)]
            raise CompanionRefused(f"template {name!r} has {' and '.join(kinds) or 'extra containers'}: the Ray "
                                   "executor runs one container (process tree) per step",
                                   hint="run it with --executor local (or podman), or move the extra "
                                   "containers' work into the main one")
