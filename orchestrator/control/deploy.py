"""Deployment use cases (AI API v2 ``/lm/deployments`` and ``orchestrator deploy``/``deployments``).

Owns: the rules checked before anything is written — the configuration's executable must be a
ServingTemplate of this resource group, ``ttl`` matches ``^[0-9]+[mMhHdD]$``, a configuration swap
keeps the scenario and the executable and applies only to a PENDING, RUNNING or DEAD deployment,
only ``STOPPED`` (single) and ``STOPPED``/``DELETED`` (bulk) are accepted targets — and waking the
deployment manager (:mod:`orchestrator.control.deploy_manager`), which does everything with
processes. Also the local ``deploy`` path: a configuration from a Configuration file, an
executable id with ``-p``/``--artifact``, or ``--model models:/NAME@ALIAS`` (the built-in model
server template, :mod:`orchestrator.control.deploy_builtin`).

Must not import: api, cli.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.control import modelrefs
from orchestrator.control.deploy_manager import ensure_running
from orchestrator.errors import BindingError, Conflict, NotFound, UsageError
from orchestrator.store.deployment_records import DeploymentRecords

TTL_RE = re.compile(r"^([0-9]+)([mMhHdD])$")
UNIT = {"m": 60, "h": 3600, "d": 86400}
TERMINAL = ("STOPPED", "DEAD", "COMPLETED")


def records(svc: Any) -> DeploymentRecords:
    return DeploymentRecords(svc.store)


def parse_ttl(ttl: str | None) -> float | None:
    if ttl in (None, ""):
        return None
    assert ttl is not None
    m = TTL_RE.fullmatch(ttl)
    if m is None or len(ttl) > 12:
        raise UsageError(f"ttl {ttl[:20]!r} is not a number followed by m, h or d",
                         hint="e.g. 30m, 12h or 7d (pattern ^[0-9]+[mMhHdD]$)")
    return int(m.group(1)) * UNIT[m.group(2).lower()]


def _deployable_configuration(svc: Any, configuration_id: str) -> Any:
    cfg = svc.store.get_configuration(svc.rg, configuration_id)
    exe = svc.store.get_executable(svc.rg, cfg.executable_id)
    if not exe.deployable:
        raise UsageError(f"configuration {configuration_id} is for executable {cfg.executable_id!r}, a "
                         "WorkflowTemplate", hint="a deployment needs a ServingTemplate's configuration; "
                         "run WorkflowTemplates as executions")
    modelrefs.resolve_bindings(svc.store, svc.rg, cfg.input_artifact_bindings)  # models:/ must resolve now
    return cfg


def wake(svc: Any) -> None:
    """Make sure a deployment manager supervises this store's open deployments."""
    ensure_running(svc.home, records(svc))


def create(svc: Any, configuration_id: str, ttl: str | None = None) -> dict[str, Any]:
    seconds = parse_ttl(ttl)
    cfg = _deployable_configuration(svc, configuration_id)
    row = records(svc).create(svc.rg, configuration_id=cfg.id, configuration_name=cfg.name,
                              scenario_id=cfg.scenario_id, executable_id=cfg.executable_id, ttl=ttl or None,
                              ttl_seconds=seconds, log_dir=str(svc.home / "deployments" / "logs"))
    (svc.home / "deployments" / "logs").mkdir(parents=True, exist_ok=True)
    wake(svc)
    return row


def get(svc: Any, deployment_id: str) -> dict[str, Any]:
    return records(svc).get(svc.rg, deployment_id)


def stop(svc: Any, deployment_id: str) -> dict[str, Any]:
    row = records(svc).request_stop(svc.rg, deployment_id)
    wake(svc)
    return row


def change_configuration(svc: Any, deployment_id: str, configuration_id: str) -> dict[str, Any]:
    row = records(svc).get(svc.rg, deployment_id)
    cfg = _deployable_configuration(svc, configuration_id)
    if cfg.scenario_id != row["scenario_id"] or cfg.executable_id != row["executable_id"]:
        raise BindingError(f"configuration {configuration_id} is for {cfg.scenario_id}/{cfg.executable_id}; "
                           f"deployment {deployment_id} serves {row['scenario_id']}/{row['executable_id']}",
                           hint="a new configuration must keep the scenario and the executable")
    out = records(svc).change_configuration(svc.rg, deployment_id, configuration_id=cfg.id,
                                            configuration_name=cfg.name)
    wake(svc)
    return out


def modify(svc: Any, deployment_id: str, *, target_status: str | None, configuration_id: str | None) -> None:
    if bool(target_status) == bool(configuration_id):
        raise UsageError("give either targetStatus or configurationId")
    if configuration_id:
        change_configuration(svc, deployment_id, configuration_id)
        return
    if target_status != "STOPPED":
        raise UsageError(f"targetStatus {target_status!r} is not accepted here; only STOPPED",
                         hint="delete a deployment with DELETE (or bulk PATCH targetStatus DELETED)")
    stop(svc, deployment_id)


def delete(svc: Any, deployment_id: str) -> None:
    records(svc).delete(svc.rg, deployment_id)
    wake(svc)


def bulk_modify(svc: Any, items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per item ``{id, message}`` or ``{id, error{code, message, requestId, target}}``."""
    out: list[dict[str, Any]] = []
    for dep_id, target in items:
        try:
            if target == "STOPPED":
                records(svc).request_stop(svc.rg, dep_id)
                out.append({"id": dep_id, "message": "Deployment modification scheduled"})
            elif target == "DELETED":
                records(svc).delete(svc.rg, dep_id)
                out.append({"id": dep_id, "message": "Deletion scheduled"})
            else:
                raise UsageError(f"targetStatus {target!r} is not STOPPED or DELETED")
        except (NotFound, Conflict, UsageError) as exc:
            out.append({"id": dep_id, "error": {"code": exc.code, "message": exc.message,
                                                "requestId": secrets.token_hex(8), "target": f"/deployments/{dep_id}"}})
    wake(svc)
    return out


HEADER = re.compile(r"^\[orchestrator\] (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) starting ")


def log_lines(svc: Any, deployment_id: str, *, limit: int = 10000, max_bytes: int = 10 * 1024 * 1024,
              tail: bool = False, start: str | None = None, end: str | None = None) -> list[tuple[str, str]]:
    """``(timestamp, line)`` of the predictor log, every predictor the deployment had in order. A
    line's timestamp is its predictor's start (the header line the manager writes), or the file's
    modification time before the first header; ``start``/``end`` (``%Y-%m-%dT%H:%M:%SZ``) filter."""
    import datetime
    import os

    row = records(svc).get(svc.rg, deployment_id)
    try:
        with open(row["log_path"] or "", "rb") as f:
            if tail:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - max_bytes))
            data = f.read(max_bytes)
            stamp = datetime.datetime.fromtimestamp(os.fstat(f.fileno()).st_mtime,
                                                    datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OSError:
        return []
    out: list[tuple[str, str]] = []
    for line in data.decode("utf-8", "replace").splitlines():
        m = HEADER.match(line)
        if m:
            stamp = m.group(1)
        if (start and stamp < start) or (end and stamp > end):
            continue
        out.append((stamp, line))
    return out[-limit:] if tail else out[:limit]


def wait(svc: Any, deployment_id: str, until: Sequence[str], timeout: float) -> dict[str, Any]:
    """Poll until the deployment's status is one of ``until`` (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    row = records(svc).get(svc.rg, deployment_id)
    while row["status"] not in until and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            row = records(svc).get(svc.rg, deployment_id)
        except NotFound:  # deleted meanwhile
            break
    return row


def deployment_json(r: Any, deployment_url: str) -> dict[str, Any]:
    """A stored deployment as the AI API shows it (``GET /v2/lm/deployments/{id}``), with our
    ``predictorUrl`` extension (the predictor itself on loopback) while it runs. ``deployment_url``
    is where it is scored: the server's inference route, or locally the predictor."""
    import json

    out: dict[str, Any] = {
        "id": r["id"], "deploymentUrl": deployment_url, "configurationId": r["configuration_id"],
        "configurationName": r["configuration_name"] or "", "executableId": r["executable_id"],
        "scenarioId": r["scenario_id"], "status": r["status"], "targetStatus": r["target_status"],
        "statusMessage": r["status_message"] or "", "lastOperation": r["last_operation"],
        "latestRunningConfigurationId": r["latest_running_configuration_id"], "ttl": r["ttl"],
        "createdAt": r["created_at"], "modifiedAt": r["modified_at"], "submissionTime": r["submission_time"],
        "startTime": r["start_time"], "completionTime": r["completion_time"],
    }
    if r["status_details"]:
        out["statusDetails"] = json.loads(r["status_details"])
    if r["details"]:
        out["details"] = json.loads(r["details"])
    if r["status"] == "RUNNING" and r["port"]:  # extension: the predictor itself, for local use
        out["predictorUrl"] = f"http://127.0.0.1:{r['port']}"
    return out


def resolve_id(svc: Any, text: str) -> str:
    """A deployment id or its unique prefix."""
    ids = records(svc).ids_with_prefix(svc.rg, text) if text else []
    if text in ids:
        return text
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise NotFound(f"deployment {text!r} not found in resource group {svc.rg!r}",
                       hint="orchestrator deployments list")
    raise UsageError(f"deployment prefix {text!r} is ambiguous: {', '.join(ids[:5])}")
