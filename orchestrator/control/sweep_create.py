"""Creating a sweep: its document checked against the trial executable, then stored.

Owns: the semantic checks of a :class:`~orchestrator.spec.sweep.SweepSpec` that need the store
(the trial's executable or configuration, every search-space parameter a template parameter of it,
the fixed bindings), located like validation errors, and :func:`create_sweep`: the sweep row
(PENDING) with its configuration (the executable plus the fixed bindings and input artifacts) and
its seed. Running it is :mod:`orchestrator.control.sweeps`.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from orchestrator.errors import SpecError, ValidationFailed
from orchestrator.plan.binding import bind_parameters
from orchestrator.spec.sweep import SweepSpec, problems
from orchestrator.spec.sweep_kind import to_document
from orchestrator.store.sweep_records import SweepRecords, SweepRow

if TYPE_CHECKING:
    from orchestrator.control.service import Service


def _located(spec: SweepSpec, errs: list[tuple[str, str, str, str]]) -> ValidationFailed:
    return ValidationFailed([SpecError(spec.source or spec.name, 1, 1, p, r, m, h) for p, r, m, h in errs])


def check_spec(service: Service, spec: SweepSpec) -> tuple[Any, dict[str, object], list[tuple[str, str]]]:
    """Semantic problems and the trial target against its registered executable; returns the
    executable's spec, its stored document and the fixed parameter bindings."""
    found = [("/spec/" + "/".join(p.path), p.rule, p.message, p.hint) for p in problems(spec)]
    if found:
        raise _located(spec, found)
    fixed = list(spec.trial.parameter_bindings)
    exe = spec.trial.executable_id
    if spec.trial.configuration_id:
        cfg = service.store.get_configuration(service.rg, spec.trial.configuration_id)
        exe = exe or cfg.executable_id
        fixed = [*cfg.parameter_bindings, *fixed]
    wspec, doc = service.load_executable(exe)
    declared = {p.name: p for p in wspec.parameters}
    for name, pointer in _set_names(spec):
        mapped = spec.trial.template_parameter(name)
        if mapped not in declared:
            raise _located(spec, [(pointer, "sweep.unknown-parameter",
                                   f"search-space parameter {mapped!r} is not a parameter of executable {exe!r}",
                                   "declared: " + (", ".join(sorted(declared)) or "none"))])
    sampled = {spec.trial.template_parameter(n) for n, _ in _set_names(spec)}
    bind_parameters(wspec, [*fixed, *((n, (declared[n].enum or ("0",))[0]) for n in sorted(sampled))])
    return wspec, doc, fixed


def _set_names(spec: SweepSpec) -> list[tuple[str, str]]:
    """(parameter name, pointer) of every parameter the search space may set (nested ones too)."""
    from orchestrator.spec.sweep import SubSpace

    out: list[tuple[str, str]] = []
    for name, d in spec.search_space:
        subs = [(i, v) for i, v in enumerate(d.values) if isinstance(v, SubSpace)]
        if len(subs) < len(d.values) or not subs:
            out.append((name, f"/spec/searchSpace/{name}"))
        for i, sub in subs:
            out.extend((k, f"/spec/searchSpace/{name}/values/{i}/{k}") for k, _ in sub.items)
    return out


def create_sweep(service: Service, spec: SweepSpec, *, source: str = "") -> SweepRow:
    """Check ``spec`` against its executable and store the sweep (PENDING); nothing runs yet.
    ``source`` names the application file of a git-synced Sweep (``app:path``)."""
    wspec, _doc, fixed = check_spec(service, spec)
    artifact_ids: list[tuple[str, str]] = []
    if spec.trial.configuration_id:  # the configuration's input artifacts, unless the sweep rebinds them
        rebound = {k for k, _ in spec.trial.artifact_bindings}
        cfg_in = service.store.get_configuration(service.rg, spec.trial.configuration_id).input_artifact_bindings
        artifact_ids = [(k, v) for k, v in cfg_in if k not in rebound]
    with service.store.transaction():
        for key, ref in spec.trial.artifact_bindings:
            url = service._artifact_url(ref)  # the same rules as `run --artifact`: a URL, a path or an id
            if url:
                service.objects.check(service.rg, url)  # inside the allowed roots (or in its bucket), or ArtifactError
                ref = service.store.create_artifact(service.rg, name=key, kind="other", url=url,
                                                    scenario_id=wspec.scenario_id).id
            else:
                service.store.get_artifact(service.rg, ref)
            artifact_ids.append((key, ref))
        cfg = service.store.create_configuration(service.rg, f"sweep-{spec.name}"[:256], wspec.scenario_id,
                                                 wspec.executable_id, sorted(fixed), sorted(artifact_ids))
        seed = spec.sampling.seed if spec.sampling.seed is not None else secrets.randbits(31)
        return SweepRecords(service.store).create(service.rg, spec.name, to_document(spec), int(seed), cfg.id,
                                                  source)
