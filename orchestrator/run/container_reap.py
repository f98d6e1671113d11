"""Removing the containers an execution left behind: after its runner ended, or was killed (-9).

Owns: ``remove_labelled`` (every container labelled ``orchestrator.execution=ID``, running or
exited, is removed with ``ENGINE rm -f``, and so is every pod so labelled) and
``reap_execution``, which the reaper calls for an
execution whose runner is gone: when the execution's workdir holds the marker the container
executor wrote (``containers.engine``: the engine that ran its steps), its containers are removed.
Executions of the host executor cost one ``stat``. ``remove_deployment``: the predictor
containers a killed deployment manager left (the next manager calls it before it starts the
deployment again, or when it finishes the stop of one).
"""

from __future__ import annotations

import os
import subprocess

MARKER = "containers.engine"
LABEL_EXECUTION = "orchestrator.execution"
LABEL_DEPLOYMENT = "orchestrator.deployment"


def remove_labelled(engine: str, execution_id: str, env: dict[str, str] | None = None, pods: bool = True) -> int:
    """Remove every container (and pod) of ``execution_id``; returns how many were found."""
    from orchestrator.run.container_pod import remove_labelled as remove_pods

    found = remove_pods(engine, execution_id, env) if pods else 0
    return found + _remove(engine, f"{LABEL_EXECUTION}={execution_id}", env)


def _remove(engine: str, label: str, env: dict[str, str] | None) -> int:
    """``ENGINE rm -f`` of every container labelled ``label`` (``key=value``); how many there were."""
    try:
        res = subprocess.run([engine, "ps", "-aq", "--filter", f"label={label}"],
                             env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        ids = res.stdout.decode().split() if res.returncode == 0 else []
        if ids:  # no stop grace for what is left over (podman's rm -f would wait 10 s on a PID 1 ignoring SIGTERM)
            now = ["-t", "0"] if os.path.basename(engine) == "podman" else []
            subprocess.run([engine, "rm", "-f", *now, *ids], env=env, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        return len(ids)
    except (OSError, subprocess.TimeoutExpired):
        return 0


def remove_deployment(deployment_id: str) -> int:
    """Remove the predictor containers of ``deployment_id`` a previous deployment manager left
    running (it was killed): every engine on PATH is asked for the label
    ``orchestrator.deployment=ID``. Returns how many were found."""
    import shutil

    from orchestrator.run.container import engine_env

    found = 0
    for name in ("podman", "docker"):
        engine = shutil.which(name)
        if engine:
            found += _remove(engine, f"{LABEL_DEPLOYMENT}={deployment_id}", engine_env(engine))
    return found


def reap_execution(workdir: str, execution_id: str) -> int:
    """After the runner of ``execution_id`` is gone: remove its containers, if it ran any."""
    try:
        with open(os.path.join(workdir, MARKER)) as f:
            engine = f.read().strip()
    except OSError:
        return 0
    if not engine or not os.path.isabs(engine) or not os.access(engine, os.X_OK):
        return 0
    from orchestrator.run.container import engine_env

    return remove_labelled(engine, execution_id, engine_env(engine))
