"""Executions started in the background (API, scheduler): the runner child owns the execution at
once, so the process that created it may exit right away without the reaper calling it lost."""

from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.control.service import Service
from orchestrator.run import reaper
from tests.conftest import template


def test_a_submitted_execution_belongs_to_its_runner_child_at_once(tmp_path: Path) -> None:
    path = tmp_path / "nap.yaml"
    path.write_text(template("nap-step", """
        - name: main
          container: {image: alpine, command: [python3, -c, "import time; time.sleep(0.5)"]}
        """))
    svc = Service(tmp_path / "home")
    svc.register([str(path)])
    cfg = svc.store.create_configuration("default", "c", "test-scenario", "nap-step", [], [])
    ex = svc.submit(cfg.id)
    pid = svc.store.db.execute("SELECT runner_pid FROM executions WHERE id=?", (ex.id,)).fetchone()[0]
    assert pid != os.getpid() and Path(f"/proc/{pid}").exists()
    # What a CLI started right after a `scheduler --once` exited would do: nothing is reaped.
    reaper.reap(svc.store)
    assert not svc.store.get_execution("default", ex.id).status.terminal
    deadline = time.monotonic() + 60
    while not svc.store.get_execution("default", ex.id).status.terminal and time.monotonic() < deadline:
        time.sleep(0.1)
    final = svc.store.get_execution("default", ex.id)
    assert final.status.value == "COMPLETED", final.status_message
    svc.close()
