"""The Ray executor's S3 wiring: which artifacts a node moves between its step and a bucket itself.

Owns: :func:`remote_store_target` (the bucket of the resource group's ``default`` object store
secret, for a step with ``globalName`` outputs), :func:`remote_transfers` (the node's ``fetch``
and ``push`` entries of one attempt: the S3 inputs :func:`~orchestrator.run.prepare.prepare_leaf`
left to the node, the ``globalName`` outputs it uploads) and :data:`NODE_MODULES`, the modules
shipped to the nodes by value so that the transfers run there with Python, Ray and boto3 only.
Called by :mod:`orchestrator.run.ray_exec` (which imports Ray; this module does not).
"""

from __future__ import annotations

import os
from typing import Any

from orchestrator.plan.graph import Node
from orchestrator.run.prepare import Prepared

NODE_MODULES = ("orchestrator.errors", "orchestrator.store.paths", "orchestrator.store.s3_endpoints",
                "orchestrator.store.objects_s3")


def remote_store_target(r: Any, node: Node) -> Any:
    """The bucket the node writes the step's ``globalName`` outputs to: the resource group's
    ``default`` object store secret when it is of type S3, else None (outputs come back as tar)."""
    if not any(a.global_name for a in node.template.output_artifacts):
        return None
    return r.objects.remote(r.rg, "default")


def remote_transfers(r: Any, node: Node, prep: Prepared, target: Any) -> tuple[list[Any], list[Any]]:
    """What the node fetches from / pushes to buckets itself: ``fetch`` entries ``(download,
    target, key, rel)`` for the inputs :func:`~orchestrator.run.prepare.prepare_leaf` left in
    ``prep.remote`` (the driver never downloads them), ``push`` entries ``(put_tree, target, rel,
    key)`` for the ``globalName`` outputs when ``target`` (the ``default`` bucket) is given: key
    ``<execution id>/<globalName>``, as :meth:`ObjectStore.store_output` would write it here. ``rel``
    is relative to the step directory. The functions and targets (with the credentials of that
    secret: only in this step's task payload) travel pickled by value (:data:`NODE_MODULES`)."""
    from orchestrator.store import objects_s3

    step_dir = str(prep.step_dir)
    fetch = [(_fetcher(prep, str(dest)), t, key, os.path.relpath(dest, step_dir)) for t, key, dest in prep.remote.values()]
    push: list[Any] = []
    if target is not None:
        for a in node.template.output_artifacts:
            if a.global_name and a.name not in prep.image:
                rel = os.path.relpath(prep.paths[f"outputs.artifacts.{a.name}"], step_dir)
                push.append((objects_s3.put_tree, target, rel, f"{r.ex.id}/{a.global_name}"))
    return fetch, push


def _fetcher(prep: Prepared, dest: str) -> Any:
    """The node's download of the input at ``dest``: :func:`~orchestrator.store.objects_s3.download`,
    or when output folders (or an output file's folder) were declared inside that input folder,
    ``download_keeping`` them (the download replaces the folder the driver's step directory had)."""
    from functools import partial

    from orchestrator.store import objects_s3

    keep = []
    dest = os.path.normpath(dest)
    for k, p in prep.paths.items():
        if k.startswith("outputs."):
            where = os.path.normpath(p if os.path.isdir(p) else os.path.dirname(p))
            if where != dest and os.path.commonpath([where, dest]) == dest:
                keep.append(os.path.relpath(where, dest))
    return partial(objects_s3.download_keeping, keep=tuple(sorted(keep))) if keep else objects_s3.download
