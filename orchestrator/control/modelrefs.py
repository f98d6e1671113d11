"""``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` as input artifact bindings.

Owns: recognising and parsing a model reference, resolving it through the registry to one
version's ``model`` artifact (checked to exist in the resource group with its recorded sha256),
and the per-execution record of what every input key was bound to (``[{key, artifactId}]``, plus
``reference, model, version, sha256`` for a reference). A configuration keeps the reference as
written; it is resolved each time an execution is created (:class:`~orchestrator.control.service.Service`
``create``/``submit``), so moving ``champion`` changes what the *next* run uses, and each execution
records the version it got. ``latest`` (``models:/NAME@latest``) names the newest version.

A reference that does not resolve is a :class:`BindingError` (CLI exit 2, HTTP 400) for a bad
shape and :class:`NotFound` (exit 2, HTTP 404) for a missing model, alias or version; either is
raised before anything is written.

Must not import: api, cli, service (the service calls this module).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import ArtifactError, BindingError, NotFound
from orchestrator.store.experiment_records import ModelVersion
from orchestrator.store.sqlite import SqliteStore

PREFIX = "models:/"
_REF_RE = re.compile(r"models:/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
                     r"(?:@(?P<alias>[A-Za-z_][A-Za-z0-9_-]{0,63})|/(?P<version>[1-9][0-9]{0,9}))")
SYNTAX = "models:/NAME@ALIAS (e.g. models:/churn@champion) or models:/NAME/VERSION (e.g. models:/churn/3)"


def is_reference(value: str) -> bool:
    """True when a binding's value is meant as a model reference (``models:/…``, any case)."""
    return value[:len(PREFIX)].lower() == PREFIX


def parse(value: str) -> tuple[str, str | None, int | None]:
    """``(name, alias, version)`` of a reference (exactly one of alias and version set)."""
    m = _REF_RE.fullmatch(value.strip())
    if m is None:
        raise BindingError(f"bad model reference {value[:120]!r}", hint=f"use {SYNTAX}")
    version = m.group("version")
    return m.group("name"), m.group("alias"), int(version) if version else None


def resolve(store: SqliteStore, rg: str, value: str, *, key: str = "") -> ModelVersion:
    """The version ``value`` names now; its artifact must still exist in ``rg``."""
    name, alias, version = parse(value)
    what = f"input artifact {key!r}: " if key else ""
    try:
        model = store.get_model(rg, name)
    except NotFound:
        known = [m["name"] for m in store.list_models(rg, limit=20)]
        raise NotFound(f"{what}{value}: no registered model {name!r} in resource group {rg!r}",
                       hint=("registered: " + ", ".join(known)) if known else
                       "register one first: orchestrator models register NAME --execution ID") from None
    try:
        if alias is not None:
            mv = store.get_model_version(rg, name) if alias == "latest" else store.model_alias(rg, name, alias)
        else:
            mv = store.get_model_version(rg, name, version)
    except NotFound:
        aliases = ", ".join(f"{a}->v{v}" for a, v in sorted(model["aliases"].items())) or "none"
        missing = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise NotFound(f"{what}{value}: model {name!r} has no {missing}",
                       hint=f"versions 1..{model['latestVersion'] or 0}, aliases: {aliases}"
                       + (f"; point it with: orchestrator models alias {name} {alias} VERSION" if alias else "")) from None
    try:
        art = store.get_artifact(rg, mv.artifact_id)
    except NotFound:
        raise ArtifactError(f"{what}{value} is version {mv.version}, whose artifact {mv.artifact_id} "
                            "no longer exists") from None
    if art.digest and mv.sha256 and art.digest != mv.sha256:
        raise ArtifactError(f"{what}{value} is version {mv.version}, but artifact {art.id}'s sha256 no longer "
                            "matches the one recorded at registration")
    return mv


def resolve_bindings(store: SqliteStore, rg: str,
                     bindings: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One record per binding: ``{key, artifactId}``, with ``reference, model, version, sha256``
    for a ``models:/`` binding (resolved now). Artifact ids are taken as they are (checked by the caller)."""
    out: list[dict[str, Any]] = []
    for key, value in bindings:
        if is_reference(value):
            mv = resolve(store, rg, value, key=key)
            out.append({"key": key, "artifactId": mv.artifact_id, "reference": value, "model": mv.model,
                        "version": mv.version, "sha256": mv.sha256})
        else:
            out.append({"key": key, "artifactId": value})
    return out


def execution_inputs(store: SqliteStore, rg: str, execution_id: str,
                     bindings: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """What an execution is bound to: its record, or (created before records existed) its
    configuration's ``bindings`` as they are."""
    recorded = store.execution_inputs(rg, execution_id)
    if recorded is not None:
        return recorded
    return [{"key": k, "artifactId": v} for k, v in bindings]


def wire(item: dict[str, Any]) -> dict[str, Any]:
    """The REST shape of one record (camelCase; ``modelVersion`` only for a reference)."""
    out: dict[str, Any] = {"key": item["key"], "artifactId": item["artifactId"]}
    if item.get("reference"):
        out.update(reference=item["reference"], model=item["model"], modelVersion=item["version"],
                   sha256=item.get("sha256", ""))
    return out
