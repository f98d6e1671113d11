"""Registry credentials of a container run: the template's ``imagePullSecrets`` as an auth file.

Owns: resolving the names in ``spec.imagePullSecrets`` to the store's docker registry secrets
(``/v2/admin/dockerRegistrySecrets``), merging their ``auths`` into one docker ``config.json``
written with mode 0600 in the execution's workdir (podman: ``--authfile``; docker: the
``DOCKER_CONFIG`` directory of the engine client), and removing it when the run ends. A name with
no secret refuses the run before any step starts. Values never reach a log, a message or argv.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFound, OrchestratorError

DIR = "registry-auth"


def write_auth(store: Any, names: list[str], workdir: Path) -> Path | None:
    """The directory holding ``config.json`` for ``names`` (None when there are none)."""
    if not names:
        return None
    auths: dict[str, Any] = {}
    for name in names:
        try:
            data = store.registry_secret_data(name)
        except NotFound:
            raise OrchestratorError(f"imagePullSecrets: docker registry secret {name!r} does not exist",
                                    hint=f"create it: orchestrator registry-secrets create {name} --from-file "
                                    "~/.docker/config.json") from None
        try:
            config = json.loads(base64.b64decode(data[".dockerconfigjson"]))
            auths.update(config.get("auths") or {})
        except (KeyError, ValueError, AttributeError):
            raise OrchestratorError(f"docker registry secret {name!r} is not a docker config.json") from None
    d = workdir / DIR
    d.mkdir(mode=0o700, exist_ok=True)
    path = d / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"auths": auths}, f)
    return d


def remove_auth(d: Path | None) -> None:
    if d is None:
        return
    try:
        (d / "config.json").unlink()
        d.rmdir()
    except OSError:
        pass
