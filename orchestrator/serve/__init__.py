"""The serve layer: the predictor runtime a deployment runs, as a process of its own.

``python -m orchestrator.serve`` (contract in :mod:`orchestrator.serve.__main__`) verifies a model's
sha256, loads it safely (:mod:`~orchestrator.serve.loading`), and serves KServe V1, the Open
Inference Protocol V2 and MLflow's scoring protocol (:mod:`~orchestrator.serve.protocols`) on a
lean asyncio HTTP server (:mod:`~orchestrator.serve.httpserver`). May import: plan, store, spec,
model, errors (in practice: errors only, to start fast). Must never import: run, git, control,
api, cli. This module imports nothing.
"""
