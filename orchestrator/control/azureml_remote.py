"""Azure ML job files sent to the server: a command job becomes a background execution, a sweep job a background sweep.

Owns: the REST side of ``orchestrator --server URL run job.yml`` (``POST /v2/lm/azureml/jobs``)
and of an Azure ML sweep job posted to ``/v2/lm/sweeps``. The body is the job document itself
(the CLI v2 YAML read as JSON, or the REST body with ``properties.jobType``), checked by the same
caps, safe loader, schema and semantics as a job file. Local paths in the job (``code``, local
inputs) are read *by the server*, so this works where the server sees the client's files (the same
machine): they resolve relative to ``jobDir`` (the job file's folder, which the remote CLI sends),
which must be absolute and inside the server's allowed file roots, as every ``code`` folder and
input is (:meth:`ObjectStore.local_path`). Without ``jobDir`` a relative local path is refused
with the local alternative; absolute ones still pass the file-root rule. Must not import api or cli.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.control import azureml
from orchestrator.errors import UsageError
from orchestrator.spec.azureml_job import AzureJob, classify

if TYPE_CHECKING:
    from orchestrator.control.service import Service

BODY = "request body"
# The job file's name as the client sends it (``jobFile``): it is stored as the execution's source
# and printed to other users, so only printable name characters, no folders, a job file's suffix.
JOB_FILE = re.compile(r"[\w .()+-]{1,250}\.(?:yml|yaml|json)")


def is_job(body: bytes) -> bool:
    """Whether ``body`` (JSON) is an Azure ML job document rather than one of our kinds."""
    from orchestrator.spec.azureml import job_kind
    from orchestrator.spec.yamlsafe import load_bytes

    docs, errs = load_bytes(body, BODY)
    return not errs and len(docs) == 1 and isinstance(docs[0].data, dict) and job_kind(docs[0].data) is not None


def _source(svc: Service, body: bytes, job_dir: str | None, job_file: str | None = None) -> tuple[str, AzureJob]:
    """The name the job is read under (its local paths resolve in that name's folder) and the job.
    ``job_file`` is the job file's name as the client read it (recorded as its source, and the file
    stem names the executable as a local run does); without it the source is the request body."""
    if job_file is not None and not JOB_FILE.fullmatch(job_file):
        raise UsageError(f"jobFile {job_file[:80]!r} is not a job file's name",
                         hint="a name without folders of letters, digits, spaces and ._()+- ending in .yml, "
                              ".yaml or .json (rename the file)")
    if not is_job(body):
        raise UsageError("the body is not an Azure ML job",
                         hint="a command or sweep job: the CLI v2 YAML as JSON ($schema, type) or the REST body "
                              "({\"properties\": {\"jobType\": \"Command\"|\"Sweep\", ...}})")
    if job_dir:
        if not os.path.isabs(job_dir) or not os.path.isdir(job_dir):
            raise UsageError(f"jobDir {job_dir!r} is not an absolute path of a folder on the server's machine",
                             hint="run the job where its files are: orchestrator run JOB.yml (without --server)")
        _shared(svc, job_dir)
        name = os.path.join(job_dir, job_file or BODY)
    else:
        name = job_file or BODY
    job, _warnings = azureml.load_job(name, body)
    # every local path the job reads (code, inputs) must be in a folder the operator shares, never the
    # home (the database, tokens, other groups' objects) nor merely the server's working directory
    refs = [("code", job.code)] if job.code else []
    refs += [(f"input {i.name!r}", str(i.value)) for i in job.inputs if not i.literal and i.value]
    for _what, text in refs:
        ref = classify(text)
        if ref.kind in ("local", "file"):
            path = os.path.expanduser(ref.path)
            if os.path.isabs(path) or job_dir:  # a relative one without jobDir is refused below
                _shared(svc, path if os.path.isabs(path) else os.path.join(job_dir or "", path))
    if not job_dir:
        refs = [("code", job.code)] if job.code else []
        refs += [(f"input {i.name!r}", str(i.value)) for i in job.inputs if not i.literal and i.value]
        for what, text in refs:
            ref = classify(text)
            if ref.kind in ("local", "file") and not os.path.isabs(os.path.expanduser(ref.path)):
                raise UsageError(f"{what} {text!r} is a relative path, and the server was not told the job's folder",
                                 hint="send jobDir (the remote `run JOB.yml` does), or run it locally: "
                                      "orchestrator run JOB.yml")
    return name, job


def _shared(svc: Service, path: str) -> None:
    """``path`` is under ``ORCHESTRATOR_FILE_ROOTS`` and outside the home (as a ``file://`` artifact
    from an API client must be)."""
    from orchestrator.control.resources import _check_remote_file

    _check_remote_file(svc, path)


def submit_job(svc: Service, body: bytes, job_dir: str | None = None, params: list[str] = (),  # type: ignore[assignment]
               artifacts: list[str] = (), *, kind: str | None = None,  # type: ignore[assignment]
               job_file: str | None = None) -> dict[str, Any]:
    """Check and start an Azure ML job in the background: ``{"kind": "execution"|"sweep", "id", "status"}``;
    ``kind`` ``sweep`` refuses a command job before anything is written (``POST /v2/lm/sweeps``)."""
    name, job = _source(svc, body, job_dir, job_file)
    if kind and job.job_type != kind:
        raise UsageError(f"this is an Azure ML {job.job_type} job, not a {kind} job",
                         hint="POST it to /v2/lm/azureml/jobs (or: orchestrator --server URL run JOB.yml)")
    if job.job_type == "sweep":
        from orchestrator.control.sweep_admin import _spawn
        from orchestrator.control.sweeps import create_sweep

        row = _spawn(svc, create_sweep(svc, azureml.sweep_spec(svc, name, list(artifacts), list(params), body)))
        return {"kind": "sweep", "id": row.id, "status": row.status}
    from orchestrator.control.actions import start_detached

    plan = azureml.plan_job(svc, name, list(params), list(artifacts), body)
    ex = start_detached(svc, svc.create(plan))
    return {"kind": "execution", "id": ex.id, "status": ex.status.value, "executableId": ex.executable_id}
