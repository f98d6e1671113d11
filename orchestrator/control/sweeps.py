"""The durable sweep engine: create a sweep, run its trials, resume it after a crash.

Owns: turning a :class:`~orchestrator.spec.sweep.SweepSpec` into stored sweep + trial executions,
the scheduling loop (``max_concurrent_trials``, ``max_total_trials``, ``timeout``,
``trial_timeout``), feeding metric reports to the early-termination policy and stopping the trials
it names (STOPPED with the policy and numbers in the message), the end reasons, ``resume`` (no
completed trial runs twice; the bayesian sampler is re-fed) and registering the best trial's model.

Entry points (front ends: our ``Sweep`` kind, Azure ML sweep jobs, the CLI and the REST API):

- ``create_sweep(service, spec) -> SweepRecord``: validate against the registered executable and
  store the sweep (status PENDING); nothing runs.
- ``run_sweep(service, spec, *, sweep_id=None, on_event=None) -> SweepRecord``: create (unless
  ``sweep_id`` names a stored one) and run to the end in this process.
- ``resume_sweep(service, sweep_id, *, on_event=None) -> SweepRecord``
- ``stop_sweep(service, sweep_id) -> SweepRecord``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.control.service import Service
    from orchestrator.spec.sweep import SweepSpec

SweepEvent = Callable[[dict[str, Any]], None]


def run_sweep(service: Service, spec: SweepSpec, *, sweep_id: str | None = None,
              on_event: SweepEvent | None = None) -> Any:
    """Create (or continue ``sweep_id``) and run the sweep in this process until it ends."""
    raise NotImplementedError("sweep engine: in progress")
