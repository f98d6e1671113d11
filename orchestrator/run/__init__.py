"""One execution, from a compiled graph to recorded step states: the runner and what it drives.

Owns: the runner (:mod:`~orchestrator.run.runner`, the sole writer of execution status), step
preparation (:mod:`~orchestrator.run.prepare`: directories, inputs, sandbox argv), the process
supervisor (:mod:`~orchestrator.run.steps`, :mod:`~orchestrator.run.watch`,
:mod:`~orchestrator.run.supervise`), outcomes and retries (:mod:`~orchestrator.run.outcome`),
the step cache (:mod:`~orchestrator.run.caching`, :mod:`~orchestrator.run.explain`), metric
ingestion (:mod:`~orchestrator.run.ingest`), the reaper, detached background runners and the
user-namespace sandbox (run as ``python -m orchestrator.run.sandbox``).
May import: plan, store, spec, model, errors. Must never import: control, git, api, cli.
"""
