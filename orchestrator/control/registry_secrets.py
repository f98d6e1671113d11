"""Docker registry secrets: what ``imagePullSecrets`` name (``/v2/admin/dockerRegistrySecrets``).

Owns: the checks of a secret before it is stored — the name (AI Core's pattern, at most 63
characters), the data (exactly one key, ``.dockerconfigjson``, whose value is base64 of a docker
``config.json`` object with an ``auths`` map; at most 64 KiB) — and creating, replacing, listing
and deleting them in the store. Values are never returned: listings and ``get`` give the name only
(the AI API's ``DockerRegistrySecret`` is a name). The container executor reads them at run time
(:mod:`orchestrator.run.container_auth`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from orchestrator.errors import UsageError

NAME = re.compile(r"^[a-z0-9](?:_?[a-z0-9.-]+)*[a-z0-9]\Z")  # \Z: "$" also matches before a final "\n"
KEY = ".dockerconfigjson"
MAX_BYTES = 64 * 1024


def check_name(name: str) -> str:
    if len(name) > 63 or not NAME.match(name):
        raise UsageError(f"invalid docker registry secret name {name[:80]!r}",
                         hint="lowercase letters, digits, '.', '-' (and single '_'), at most 63 characters")
    return name


def check_data(data: Any) -> dict[str, str]:
    """``{".dockerconfigjson": base64(config.json)}``, checked; the same map back."""
    if not isinstance(data, dict) or set(data) != {KEY}:
        raise UsageError(f"data must have exactly the key {KEY!r}",
                         hint="base64 of a docker config.json: {\"auths\": {\"registry\": {\"auth\": ...}}}")
    value = data[KEY]
    if not isinstance(value, str) or len(value) > MAX_BYTES * 4 // 3 + 4:
        raise UsageError(f"{KEY} must be a base64 string of at most {MAX_BYTES // 1024} KiB")
    try:
        config = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise UsageError(f"{KEY} is not base64 of a JSON document") from None
    if not isinstance(config, dict) or not isinstance(config.get("auths"), dict):
        raise UsageError(f"{KEY} must hold a docker config.json object with an \"auths\" map")
    return {KEY: value}


def create(store: Any, name: str, data: Any) -> None:
    store.put_registry_secret(check_name(name), check_data(data), create=True)


def modify(store: Any, name: str, data: Any) -> None:
    store.put_registry_secret(name, check_data(data), create=False)


def names(store: Any) -> list[dict[str, str]]:
    return [{"name": r["name"], "createdAt": r["created_at"], "modifiedAt": r["modified_at"]}
            for r in store.list_registry_secrets()]


def get(store: Any, name: str) -> dict[str, str]:
    store.registry_secret_data(name)  # NotFound when missing; the data stays in the store
    return {"name": name}


def delete(store: Any, name: str) -> None:
    store.delete_registry_secret(name)
