"""Secrets a step reads through its environment (``env[].valueFrom.secretKeyRef``, ``envFrom[].secretRef``).

Owns: resolving a container's :class:`~orchestrator.model.SecretEnv` and
:class:`~orchestrator.model.SecretEnvFrom` at run time from the store's secrets of the
execution's resource group (``/v2/admin/secrets``; values stored base64, as AI Core keeps them)
into environment variables of that one step.

Rules (reference/reliability.md, secrets never echoed):

- A missing secret, or a missing key, that is not ``optional`` fails the step with a message that
  names the secret and the key — never a value. A value that is not base64 or holds a NUL byte
  fails the same way. ``envFrom`` keys that are not valid variable names are skipped (Kubernetes
  skips them too).
- Values exist only in the step's environment: never in a log line, a step message, a step record,
  the cache key or its components (so not in ``executions explain``).
- **Caching**: a step that reads a secret is never served from, nor written to, the step cache
  (:func:`orchestrator.run.caching.cacheable`). Its key cannot contain the value, a hash of a
  short secret can be reversed by guessing, and a key on the references alone would serve
  outputs made with a secret that has changed since. The references (variable, secret, key) are
  still a component of the key, so resuming an execution reuses such a step only while they are
  unchanged.

Imports store (through a narrow protocol), model and errors.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from typing import Protocol

from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.model import Container, Mount

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")

# How a missing secret's hint begins: the CLI reads it to tell a failure of the store's state (create
# the secret, then resume) from one of the parameter values (resume would repeat it).
CREATE_SECRET = "orchestrator secrets create"


class SecretError(OrchestratorError):
    """A secret a step needs is missing or unusable (the step fails; the message has no value)."""

    code = "SECRET_UNAVAILABLE"


class SecretReader(Protocol):
    def secret_data(self, rg: str, name: str) -> dict[str, str]: ...


def uses_secrets(container: Container | None) -> bool:
    return container is not None and bool(container.env_secrets or container.env_from_secrets
                                          or any(m.kind == "secret" for m in container.mounts))


def references(container: Container) -> list[str]:
    """What the step reads, without values (for the cache key's components)."""
    refs = [f"{s.name}<-{s.secret}/{s.key}{'?' if s.optional else ''}" for s in container.env_secrets]
    refs += [f"{f.prefix}*<-{f.secret}/*{'?' if f.optional else ''}" for f in container.env_from_secrets]
    refs += [f"{m.path}<-{m.secret}/*{'?' if m.optional else ''}" for m in container.mounts if m.kind == "secret"]
    return refs


def secret_files(store: object, rg: str, mount: Mount, dest: str) -> None:
    """A secret volume: each key (or each ``items`` entry) as a file under ``dest``, mode ``mount.mode``.
    Keys that are not plain file names are refused (they would leave ``dest``)."""
    reader = getattr(store, "secret_data", None)
    got: dict[str, str] | None = None
    if reader is not None:
        try:
            got = dict(reader(rg, mount.secret))
        except NotFound:
            got = None
    if got is None:
        if mount.optional:
            return
        raise SecretError(f"volume {mount.name!r}: secret {mount.secret!r} does not exist in resource group {rg!r}",
                          hint=f"create it: {CREATE_SECRET} {mount.secret} --key KEY, or POST /v2/admin/secrets; "
                          "or mark the volume optional")
    pairs = list(mount.items) or [(k, k) for k in sorted(got)]
    for key, rel in pairs:
        if key not in got:
            raise SecretError(f"volume {mount.name!r}: secret {mount.secret!r} has no key {key!r}")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if not parts or ".." in parts or rel.startswith("/"):
            raise SecretError(f"volume {mount.name!r}: {rel!r} is not a relative file name")
        try:
            raw = base64.b64decode(got[key], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise SecretError(f"key {key!r} of secret {mount.secret!r} is not valid base64") from None
        path = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(path, mount.mode & 0o777)


def _decode(secret: str, key: str, value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise SecretError(f"key {key!r} of secret {secret!r} is not valid base64") from None
    if b"\0" in raw:
        raise SecretError(f"key {key!r} of secret {secret!r} contains a NUL byte, which an environment "
                          "variable cannot hold")
    return os.fsdecode(raw)  # undecodable bytes pass through unchanged (surrogateescape)


def secret_env(store: object, rg: str, container: Container,
               sub: Callable[[str], str] = str) -> tuple[dict[str, str], dict[str, str]]:
    """The environment variables a container takes from secrets: ``(from envFrom, from env)``.

    ``sub`` substitutes placeholders in secret names and keys (Argo allows them there). The caller
    applies the first dict before the container's plain ``env`` and the second after it.
    Raises :class:`SecretError` naming the secret and key of anything missing that is not optional.
    """
    if not uses_secrets(container):
        return {}, {}
    reader = getattr(store, "secret_data", None)
    if reader is None:
        raise SecretError("this store keeps no secrets, so the step's secret references cannot be resolved")
    loaded: dict[str, dict[str, str] | None] = {}

    def data(name: str) -> dict[str, str] | None:
        if name not in loaded:
            try:
                loaded[name] = dict(reader(rg, name))
            except NotFound:
                loaded[name] = None
        return loaded[name]

    env_from: dict[str, str] = {}
    env: dict[str, str] = {}
    for ref in container.env_from_secrets:
        name = sub(ref.secret)
        got = data(name)
        if got is None:
            if ref.optional:
                continue
            raise SecretError(f"envFrom: secret {name!r} does not exist in resource group {rg!r}",
                              hint=f"create it: {CREATE_SECRET} {name} --key KEY, or POST /v2/admin/secrets; "
                              "or mark the reference optional")
        for key in sorted(got):
            if _ENV_NAME.fullmatch(ref.prefix + key):
                env_from[ref.prefix + key] = _decode(name, key, got[key])
    for s in container.env_secrets:
        name, key = sub(s.secret), sub(s.key)
        got = data(name)
        if got is None or key not in got:
            if s.optional:
                continue
            what = f"secret {name!r} does not exist in resource group {rg!r}" if got is None else \
                f"secret {name!r} has no key {key!r}"
            raise SecretError(f"env {s.name}: {what} (secretKeyRef {name}/{key})",
                              hint=(f"create it: {CREATE_SECRET} {name} --key {key}, or POST /v2/admin/secrets"
                                    if got is None else f"add the key: {CREATE_SECRET} {name} --replace --key "
                                    f"{key} and every other key it keeps") + "; or mark the reference optional")
        env[s.name] = _decode(name, key, got[key])
    return env_from, env
