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
    logs = home / "runners"
    argv = [sys.executable, "-m", "orchestrator", "--home", str(home), "_execute", "--rg", rg, execution_id]
    if jobs:
        argv += ["-j", str(jobs)]
    child_env = dict(os.environ)
    child_env.update(env or {})
    try:
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{execution_id}.log", "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, env=child_env)
    except OSError as exc:
        raise StoreError(f"cannot start the runner of execution {execution_id}: {exc.strerror or exc}") from None
    _reap_later(proc)
    return proc.pid


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Collect the child's exit status when it ends, so no zombie stays behind a long-lived server."""
    import threading

    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
