"""The control plane: the use cases, and the composition root.

Owns: :class:`~orchestrator.control.service.Service` (register, submit, run, stop, resume; the one
place that picks concrete implementations: SQLite store, local object store, local executor),
the AI API resources' rules (:mod:`~orchestrator.control.resources`), git sync of applications
(:mod:`~orchestrator.control.syncing`), schedule ticks (:mod:`~orchestrator.control.scheduling`)
and API tokens (:mod:`~orchestrator.control.tokens`).
May import: run, git, plan, store, spec, model, errors. Must never be imported by: run, git, plan,
store, spec (only cli and api sit above it).
"""
