"""What the containers of one step share, and what isolates them from this machine.

Owns: the pod of a step with sidecars or a ``containerSet`` (podman: ``ENGINE pod create`` with the
execution's labels and the executor's network, so the main container reaches a sidecar on
``localhost`` as in a Kubernetes pod; its infra container is podman's own pause image, built
locally), the pod's removal after the step, and the user namespace of a container
(:func:`userns_args`): rootful podman maps the container's users to unprivileged host ids —
``--userns=auto`` when ``/etc/subuid`` has a range for the ``containers`` user, else a fixed
range ``--uidmap 0:1073741824:65536`` (``$ORCHESTRATOR_CONTAINER_USERNS``: ``auto``, ``host``
to turn it off, or ``BASE`` for another start of that range); rootless podman already runs in the
user's namespace; docker's mapping is its daemon's ``userns-remap`` (never per container).
Imports only the stdlib.
"""

from __future__ import annotations

import os
import subprocess

LABEL_EXECUTION = "orchestrator.execution"
LABEL_TOKEN = "orchestrator.token"
USERNS_BASE = 1 << 30  # far above any login's subordinate ids (100000 + 65536·n)
USERNS_SIZE = 65536
ENV_VAR = "ORCHESTRATOR_CONTAINER_USERNS"


class PodError(Exception):
    """The engine could not create the pod (its message)."""


def userns_args(engine_name: str) -> list[str]:
    """The options that put a container (or a pod) in its own user namespace, when needed here."""
    if engine_name != "podman" or os.geteuid() != 0:
        return []  # rootless podman: already the user's namespace; docker: the daemon decides
    choice = (os.environ.get(ENV_VAR) or "").strip().lower()
    if choice == "host":
        return []
    if choice == "auto" or (not choice and _has_containers_range()):
        return ["--userns=auto"]
    base = int(choice) if choice.isdigit() and 0 < int(choice) < (1 << 32) - USERNS_SIZE else USERNS_BASE
    return ["--uidmap", f"0:{base}:{USERNS_SIZE}", "--gidmap", f"0:{base}:{USERNS_SIZE}"]


def _has_containers_range() -> bool:
    try:
        with open("/etc/subuid") as f:
            return any(line.split(":", 1)[0] == "containers" for line in f)
    except OSError:
        return False


def create(engine: str, env: dict[str, str], name: str, network: str, execution_id: str, token: str,
           userns: list[str]) -> None:
    """Create the pod ``name`` (raises :class:`PodError` with the engine's reason)."""
    argv = [engine, "pod", "create", "--name", name, "--label", f"{LABEL_EXECUTION}={execution_id}",
            "--label", f"{LABEL_TOKEN}={token}", "--network", network, *userns]
    try:
        res = subprocess.run(argv, env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PodError(str(exc)) from None
    if res.returncode != 0:
        raise PodError(res.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit code {res.returncode}")


def remove(engine: str, env: dict[str, str] | None, name: str) -> None:
    try:
        subprocess.run([engine, "pod", "rm", "-f", "-t", "0", name], env=env, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        pass


def remove_labelled(engine: str, execution_id: str, env: dict[str, str] | None) -> int:
    """Remove every pod of ``execution_id`` (and so its containers); returns how many were found."""
    if os.path.basename(engine) != "podman":
        return 0
    try:
        res = subprocess.run([engine, "pod", "ps", "-q", "--filter", f"label={LABEL_EXECUTION}={execution_id}"],
                             env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    ids = res.stdout.decode().split()
    for pod in ids:
        remove(engine, env, pod)
    return len(ids)
