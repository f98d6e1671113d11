"""Model attestation: which artifacts the platform vouches for, for predictors and for steps.

Owns: the one rule for "may this model be loaded": the artifact exists in THIS resource group, was
recorded as an output of an execution of this store (``execution_id``) with a sha256, that
execution is COMPLETED (registered model versions are always such artifacts: the registry only
registers outputs of COMPLETED executions), and the bytes on disk still hash to the recorded
digest. :func:`attest_artifact` applies it for a deployment (the control layer calls it before it
starts ``python -m orchestrator.serve --sha256 <digest>``); :func:`write_step_attestations` tells a
step which of its materialised input artifacts are attested, as a JSON file named by
``ORCHESTRATOR_ATTESTED_INPUTS`` (schema below); the shipped scoring script refuses a model that is
not listed there or whose bytes do not match.

Attestation file (``version`` 1)::

    {"version": 1, "resourceGroup": "default", "executionId": "<this execution>",
     "inputs": {"model": {"path": "<host path of the step's copy>", "sha256": "<hex>",
                          "artifactId": "<id>", "producedBy": "<execution id>",
                          "sameExecution": false}}}

Only attested inputs are listed. An input produced earlier in the same execution by a step that
succeeded is listed with ``sameExecution: true`` (the runner hashed it when storing it). The
digest is the store's: a file's sha256, or for a directory the sha256 of its sorted
``relpath\\0filesha256\\n`` manifest; a file output is stored as a directory holding that one file
whose digest is the file's.

Callers: deployments (``orchestrator.control.deploy_launch.attest_model`` → :func:`attest_artifact`),
the step preparation (``orchestrator.run.prepare.prepare_leaf`` → :func:`write_step_attestations`).

Must not import: control, api, cli, serve.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import ArtifactError, NotFound
from orchestrator.model import Artifact, Configuration, Execution, Status
from orchestrator.store.artifacts import ObjectStore, tree_digest

ENV_VAR = "ORCHESTRATOR_ATTESTED_INPUTS"
FILE_NAME = "attested-inputs.json"
_HEX = frozenset("0123456789abcdef")


class NotAttested(ArtifactError):
    """A model the platform does not vouch for: foreign, tampered, unfinished or of another group."""

    http_status = 403
    code = "MODEL_NOT_ATTESTED"


class _Records(Protocol):
    def get_artifact(self, rg: str, artifact_id: str) -> Artifact: ...
    def get_execution(self, rg: str, execution_id: str) -> Execution: ...
    def get_configuration(self, rg: str, configuration_id: str) -> Configuration: ...
    def execution_inputs(self, rg: str, execution_id: str) -> list[dict[str, Any]] | None: ...


@dataclass(frozen=True)
class Attested:
    """An artifact the platform vouches for, and where its verified bytes are."""

    artifact_id: str
    execution_id: str
    sha256: str
    path: Path  # the file or directory whose digest is ``sha256`` (pass it to --model)


def _is_digest(value: str) -> bool:
    return len(value) == 64 and set(value) <= _HEX


def _model_path(local: Path, digest: str) -> Path | None:
    """``local`` (or the one file in it, for a stored file output) when its bytes hash to ``digest``."""
    if tree_digest(local) == digest:
        return local
    if local.is_dir():
        files = [p for p in local.iterdir() if not p.is_symlink()]
        if len(files) == 1 and files[0].is_file() and tree_digest(files[0]) == digest:
            return files[0]
    return None


def _check_record(store: _Records, rg: str, artifact_id: str) -> tuple[Artifact, Execution]:
    """The record half of the rule (no hashing): group, producing execution, digest, COMPLETED."""
    try:
        art = store.get_artifact(rg, artifact_id)
    except NotFound:
        raise NotAttested(f"artifact {artifact_id!r} is not an artifact of resource group {rg!r}; "
                          "a model is served only from this group's own executions") from None
    if not art.execution_id:
        raise NotAttested(f"artifact {art.id} ({art.name}) was registered by URL, not produced by an "
                          "execution of this store; it is not loaded",
                          hint="use the model output of a COMPLETED training run (or a registered version)")
    if not _is_digest(art.digest):
        raise NotAttested(f"artifact {art.id} ({art.name}) has no recorded sha256; it is not loaded")
    try:
        ex = store.get_execution(rg, art.execution_id)
    except NotFound:
        raise NotAttested(f"artifact {art.id}: its execution {art.execution_id} is not in resource group "
                          f"{rg!r}") from None
    if ex.status != Status.COMPLETED:
        raise NotAttested(f"artifact {art.id} comes from execution {ex.id}, which is {ex.status.value}; "
                          "only outputs of COMPLETED executions are loaded")
    return art, ex


def attest_artifact(store: _Records, objects: ObjectStore, rg: str, artifact_id: str) -> Attested:
    """Check that ``artifact_id`` may be served in ``rg``; returns its path and digest.

    Call it before starting a predictor with ``--model <path> --sha256 <sha256>`` (the predictor
    checks the digest again on the bytes it loads).

    Raises:
        NotAttested: the artifact is of another resource group (or unknown), was not produced by a
            COMPLETED execution of this store, has no recorded sha256, or its bytes changed.
    """
    art, ex = _check_record(store, rg, artifact_id)
    local = objects.local_path(rg, art.url)
    path = _model_path(local, art.digest)
    if path is None:
        raise NotAttested(f"artifact {art.id} ({art.name}): its bytes no longer match the sha256 recorded "
                          f"when execution {ex.id} stored it; it is not loaded")
    return Attested(art.id, ex.id, art.digest, path)


# ---------------------------------------------------------------- steps (batch scoring)


class _RunnerView(Protocol):
    store: Any
    objects: ObjectStore
    rg: str
    ex: Execution


_BOUND: dict[tuple[str, str], dict[str, tuple[str, str, str]]] = {}  # (rg, execution) -> path -> attestation


def _bound_inputs(r: _RunnerView) -> dict[str, tuple[str, str, str]]:
    """Real path of each attested artifact the execution is bound to -> (artifactId, execution, sha256)."""
    key = (r.rg, r.ex.id)
    if key in _BOUND:
        return _BOUND[key]
    items = r.store.execution_inputs(r.rg, r.ex.id)
    if items is None:  # executions recorded before input records existed: the configuration's bindings
        cfg = r.store.get_configuration(r.rg, r.ex.configuration_id)
        items = [{"key": k, "artifactId": v} for k, v in cfg.input_artifact_bindings]
    out: dict[str, tuple[str, str, str]] = {}
    for item in items:
        try:  # records only: the step hashes the copy it loads (a changed object fails there)
            art, ex = _check_record(r.store, r.rg, str(item["artifactId"]))
            copies = _copies(r, art.url)
        except (ArtifactError, NotFound, OSError):
            continue
        for local in copies:
            out[local] = (art.id, ex.id, art.digest)
    if len(_BOUND) > 64:
        _BOUND.clear()
    _BOUND[key] = out
    return out


def _copies(r: _RunnerView, url: str) -> list[str]:
    """Real paths the execution reads artifact ``url`` from: a bucket artifact's deferred download
    paths (where :meth:`~orchestrator.store.objects_remote.BucketObjects.fetch` puts this
    execution's copy; nothing is downloaded for the check), else its own path in the object store."""
    if r.objects.remote_of(r.rg, url) is not None:
        return [os.path.realpath(p) for p, (rg, u) in list(r.objects.deferred.items()) if rg == r.rg and u == url]
    return [os.path.realpath(r.objects.local_path(r.rg, url))]


def _produced(r: _RunnerView) -> dict[str, tuple[str, str]]:
    """Real path of each output this execution stored so far -> (step id, sha256)."""
    data = getattr(getattr(r, "ctx", None), "data", {})
    return {os.path.realpath(p): (nid, nd.out_digests[n]) for nid, nd in data.items()
            for n, p in nd.out_artifacts.items() if n in nd.out_digests}


def write_step_attestations(r: _RunnerView, inputs: list[tuple[str, Path, Path]], step_dir: Path) -> str:
    """Write the step's attestation file; returns its path (for ``ORCHESTRATOR_ATTESTED_INPUTS``).

    ``inputs``: ``(name, source, materialised copy)`` of each input artifact of the step.
    """
    listed: dict[str, dict[str, Any]] = {}
    bound: dict[str, tuple[str, str, str]] | None = None
    produced = _produced(r)
    for name, src, dest in inputs:
        real = os.path.realpath(src)
        if real in produced:
            step, digest = produced[real]
            listed[name] = {"path": str(dest), "sha256": digest, "producedBy": r.ex.id, "step": step,
                            "sameExecution": True}
            continue
        if bound is None:
            bound = _bound_inputs(r)
        if real in bound:
            aid, ex_id, digest = bound[real]
            listed[name] = {"path": str(dest), "sha256": digest, "artifactId": aid, "producedBy": ex_id,
                            "sameExecution": False}
    path = step_dir / FILE_NAME
    tmp = step_dir / f".{FILE_NAME}.tmp"
    tmp.unlink(missing_ok=True)  # a crashed earlier attempt's (read-only) leftover
    tmp.write_text(json.dumps({"version": 1, "resourceGroup": r.rg, "executionId": r.ex.id,
                               "inputs": listed}, indent=1), encoding="utf-8")
    os.chmod(tmp, 0o444)
    os.replace(tmp, path)
    return str(path)
