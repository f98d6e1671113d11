"""Removing the containers an execution left behind: after its runner ended, or was killed (-9).

Owns: ``remove_labelled`` (every container labelled ``orchestrator.execution=ID``, running or
exited, is removed with ``ENGINE rm -f``) and ``reap_execution``, which the reaper calls for an
execution whose runner is gone: when the execution's workdir holds the marker the container
executor wrote (``containers.engine``: the engine that ran its steps), its containers are removed.
Executions of the host executor cost one ``stat``. Imports only the stdlib.
"""

from __future__ import annotations

import os
import subprocess

MARKER = "containers.engine"
LABEL_EXECUTION = "orchestrator.execution"


def remove_labelled(engine: str, execution_id: str, env: dict[str, str] | None = None) -> int:
    """Remove every container of ``execution_id``; returns how many were found."""
    try:
        res = subprocess.run([engine, "ps", "-aq", "--filter", f"label={LABEL_EXECUTION}={execution_id}"],
                             env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        ids = res.stdout.decode().split()
        if ids:
            subprocess.run([engine, "rm", "-f", *ids], env=env, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        return len(ids)
    except (OSError, subprocess.TimeoutExpired):
        return 0


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
