"""Start the runner of an already-created execution as a detached background process.

Owns: the command line of the hidden ``orchestrator _execute`` command, its environment and its
log file. The child runs in its own session, so it survives the server that started it (a
restarted server finds it through its heartbeat, and the reaper handles one that died). Imports
nothing from the package but :mod:`orchestrator.errors`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.errors import StoreError


def spawn_runner(home: Path, rg: str, execution_id: str, env: dict[str, str] | None = None,
                 jobs: int | None = None) -> int:
    """Start ``python -m orchestrator --home HOME _execute --rg RG ID``; returns its pid."""
    args = ["_execute", "--rg", rg, execution_id] + (["-j", str(jobs)] if jobs else [])
    return spawn_detached(home, args, home / "runners" / f"{execution_id}.log",
                          f"the runner of execution {execution_id}", env)


def spawn_detached(home: Path, args: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> int:
    """Start ``python -m orchestrator --home HOME ARGS...`` in a session of its own (it outlives its
    parent), output appended to ``log``; returns its pid. The one way the package starts its hidden
    background commands (runners, sweeps, the deployment manager). ``what`` names it in the error."""
    argv = [sys.executable, "-m", "orchestrator", "--home", str(home), *args]
    child_env = dict(os.environ)
    child_env.update(env or {})
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, env=child_env)
    except OSError as exc:
        raise StoreError(f"cannot start {what}: {exc.strerror or exc}") from None
    _reap_later(proc)
    return proc.pid


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Collect the child's exit status when it ends, so no zombie stays behind a long-lived server."""
    import threading

    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
