"""Control-plane use cases the REST API (and CLI) call: artifacts, configurations, executions,
schedules, object stores, secrets — each check done before anything is written.

Owns: the rules AI Core applies silently or late, applied at once with a clear error: a
configuration must name an executable of its scenario, only declared parameter and artifact keys,
and artifacts of its own resource group (or a ``models:/`` reference that resolves now) (another group's id is "not found", never used); a
schedule's cron and zone are validated; an object store secret of type S3 is its bucket (checked
when registered), any other a local directory, so ``ai://<name>/…`` resolves. Works on a
:class:`~orchestrator.control.service.Service` scoped to a group.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.control import modelrefs
from orchestrator.control.service import Service
from orchestrator.errors import ArtifactError, BindingError, Conflict, NotFound, UsageError
from orchestrator.model import ARTIFACT_KINDS, Execution, Status
from orchestrator.plan.binding import hint as _hint
from orchestrator.store import parse_time
from orchestrator.store.artifacts import parse_url, resolve_inside


def create_artifact(svc: Service, *, name: str, kind: str, url: str, scenario_id: str, description: str = "",
                    labels: Sequence[tuple[str, str]] = ()) -> Any:
    if kind not in ARTIFACT_KINDS:
        raise UsageError(f"artifact kind {kind!r} is not one of {', '.join(ARTIFACT_KINDS)}")
    parsed = parse_url(url)
    if parsed.scheme == "file":
        _check_remote_file(svc, parsed.path)
        svc.objects.local_path(svc.rg, url)  # and it must exist
    elif parsed.secret != "default":
        svc.store.get_object_store(svc.rg, parsed.secret)
    svc.store.get_scenario(svc.rg, scenario_id)
    return svc.store.create_artifact(svc.rg, name=name, kind=kind, url=url, scenario_id=scenario_id,
                                     description=description, labels=labels)


def _check_remote_file(svc: Service, path: str) -> None:
    """A ``file://`` URL from an API client: only under the roots the server's operator listed in
    ``ORCHESTRATOR_FILE_ROOTS`` (never the server's working directory), never inside the home
    (tokens, database, other groups' objects). The answer does not say whether the file exists."""
    real = os.path.realpath(path)
    home = os.path.realpath(svc.home)
    roots = [os.path.realpath(r) for r in os.environ.get("ORCHESTRATOR_FILE_ROOTS", "").split(os.pathsep) if r]
    inside = lambda root: os.path.commonpath([root, real]) == root  # noqa: E731
    if inside(home) or not any(inside(r) for r in roots):
        raise ArtifactError(f"file URL {'file://' + path!r} is not under a directory this server shares",
                            hint="the server's operator lists shared directories in ORCHESTRATOR_FILE_ROOTS; "
                            "or upload the data to ai://default/...")


def create_configuration(svc: Service, *, name: str, scenario_id: str, executable_id: str,
                         parameters: Sequence[tuple[str, str]], artifacts: Sequence[tuple[str, str]]) -> Any:
    """A configuration whose bindings match the executable's declaration (AI Core accepts a wrong
    key and the execution goes DEAD or stays PENDING later; we refuse it now)."""
    exe = svc.store.get_executable(svc.rg, executable_id)
    if exe.scenario_id != scenario_id:
        raise BindingError(f"executable {executable_id!r} belongs to scenario {exe.scenario_id!r}, "
                           f"not {scenario_id!r}")
    declared = {p.name for p in exe.parameters}
    seen: set[str] = set()
    for key, _ in parameters:
        if key not in declared:
            raise BindingError(f"unknown parameter {key!r} for executable {executable_id!r}",
                               hint=_hint(key, sorted(declared)) + " (names are case-sensitive)")
        if key in seen:
            raise BindingError(f"parameter {key!r} is bound twice")
        seen.add(key)
    inputs = {n for n, _ in exe.input_artifacts}
    seen = set()
    for key, artifact_id in artifacts:
        if key not in inputs:
            raise BindingError(f"unknown input artifact {key!r} for executable {executable_id!r}",
                               hint=_hint(key, sorted(inputs)))
        if key in seen:
            raise BindingError(f"input artifact {key!r} is bound twice")
        seen.add(key)
        if modelrefs.is_reference(artifact_id):  # kept as written, resolved per execution
            modelrefs.resolve(svc.store, svc.rg, artifact_id, key=key)
        else:
            svc.store.get_artifact(svc.rg, artifact_id)  # NotFound for an id of another group
    return svc.store.create_configuration(svc.rg, name, scenario_id, executable_id, list(parameters),
                                          list(artifacts))


def submit(svc: Service, configuration_id: str) -> Execution:
    return svc.submit(configuration_id)


def stop(svc: Service, execution_id: str) -> Execution:
    ex = svc.store.request_stop(svc.rg, execution_id)
    from orchestrator.run import reaper

    reaper.reap(svc.store)  # a runner that is already gone cannot honour the request
    return ex


def delete_execution(svc: Service, execution_id: str) -> None:
    """Stop it if it still runs, then hide it from every read."""
    status = Status(svc.store.execution_row(svc.rg, execution_id)["status"])
    if status in (Status.PENDING, Status.RUNNING):
        stop(svc, execution_id)
    svc.store.delete_execution(svc.rg, execution_id)


def bulk_modify(svc: Service, items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per-item results ``{id, message}`` or ``{id, error{code, message}}`` (never all-or-nothing)."""
    out: list[dict[str, Any]] = []
    for execution_id, target in items:
        try:
            if target == "STOPPED":
                stop(svc, execution_id)
                out.append({"id": execution_id, "message": "Execution modification scheduled"})
            else:
                delete_execution(svc, execution_id)
                out.append({"id": execution_id, "message": "Deletion scheduled"})
        except (NotFound, Conflict) as exc:  # SAP's client needs requestId and target in each item error
            out.append({"id": execution_id, "error": {"code": exc.code, "message": exc.message,
                                                      "requestId": secrets.token_hex(8),
                                                      "target": f"/executions/{execution_id}"}})
    return out


# ---------------------------------------------------------------------- schedules
def _check_schedule(svc: Service, cron: str, timezone: str, configuration_id: str,
                    start: str | None, end: str | None) -> None:
    from orchestrator.plan.cron import validate_schedule

    validate_schedule(cron, timezone)
    svc.store.get_configuration(svc.rg, configuration_id)
    if start and end and end <= start:
        raise UsageError(f"end {end} is not after start {start}")


def create_schedule(svc: Service, *, name: str, cron: str, configuration_id: str, start: str | None = None,
                    end: str | None = None, status: str | None = None) -> dict[str, Any]:
    begin = parse_time(start, "start") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    finish = parse_time(end, "end")
    _check_schedule(svc, cron, "UTC", configuration_id, begin, finish)
    return svc.store.create_schedule(svc.rg, name=name, cron=cron, configuration_id=configuration_id,
                                     start=begin, end=finish, status=status or "ACTIVE")


def modify_schedule(svc: Service, schedule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    row = svc.store.get_schedule(svc.rg, schedule_id)
    fields: dict[str, Any] = {}
    for key, col in (("cron", "cron"), ("configurationId", "configuration_id"), ("status", "status")):
        if changes.get(key) is not None:
            fields[col] = changes[key]
    for key in ("start", "end"):
        if key in changes and changes[key] is not None:
            fields[key] = parse_time(changes[key], key)
    merged = {**row, **fields}
    _check_schedule(svc, merged["cron"], merged["timezone"], merged["configuration_id"], merged["start"],
                    merged["end"])
    return svc.store.update_schedule(svc.rg, schedule_id, **fields)


# ---------------------------------------------------------------------- object stores / secrets
def put_object_store(svc: Service, body: dict[str, Any], *, create: bool) -> None:
    """Register ``ai://<name>/…``. Type ``S3``: that bucket (``bucket``, ``endpoint``, ``region``,
    ``pathPrefix``, ``usehttps``, ``verifyssl``; ``data`` holds AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY as plain values, as in AI Core), checked now; the credentials are
    stored for the transfers and never shown again. Any other type: a directory under the home.
    A secret named ``default`` of type S3 also receives the group's execution outputs."""
    name = str(body["name"])
    meta = {"storage.ai.sap.com/type": str(body.get("type") or "local")}
    for key, label in (("bucket", "bucket"), ("endpoint", "endpoint"), ("region", "region"),
                       ("pathPrefix", "pathPrefix")):
        if body.get(key):
            meta[f"storage.ai.sap.com/{label}"] = str(body[key])
    data = dict(body.get("data") or {})
    root = resolve_inside(svc.objects.objects, f"{svc.rg}/{name}")
    bucket = meta["storage.ai.sap.com/type"].lower() == "s3"
    if bucket:
        for key in ("usehttps", "verifyssl"):  # AI Core keeps these as KServe's annotations
            if body.get(key) not in (None, ""):
                meta[f"serving.kubeflow.org/s3-{key}"] = str(body[key])
        from orchestrator.store.objects_s3 import target_from_secret

        try:
            target_from_secret(name, meta, data)
        except ArtifactError as exc:
            raise UsageError(exc.message, hint=exc.hint) from None
    svc.store.put_object_store(svc.rg, name, type=meta["storage.ai.sap.com/type"], path=str(root), metadata=meta,
                               data=data, create=create)
    if not bucket:
        root.mkdir(parents=True, exist_ok=True)


def delete_object_store(svc: Service, name: str) -> None:
    """Forget the secret; the objects stay (as in AI Core, where deleting a secret removes only the
    credentials): re-creating it, e.g. to rotate credentials, finds every ``ai://<name>/…`` again."""
    if name == "default":
        raise Conflict("the object store 'default' cannot be deleted")
    svc.store.delete_object_store(svc.rg, name)


def check_secret_data(data: dict[str, str]) -> dict[str, str]:
    """Secret values are base64 (as in AI Core); refuse anything else with the key named."""
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"value of secret key {key!r} is not base64") from None
    return data

