"""A full disk ends an execution DEAD with the reason, never "runner lost" (issue item 24).

The home is a real tmpfs of 2 MiB, mounted in a private user + mount namespace (``unshare -rm``,
no root needed where user namespaces are allowed; skipped where they are not), so every write —
the step's log, its files, the SQLite store — meets a real ENOSPC. Also: the temporary files of
uploads whose process is gone are removed when the next runner starts.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, template

LOUD = """
- name: main
  container: {image: alpine, command: [head, -c, "4194304", /dev/zero]}
"""
# The first step fills the disk with a file of its own, then says so (its log cannot take it).
FILLER = """
- name: main
  steps:
    - - {name: fill, template: fill}
    - - {name: next, template: quiet}
- name: fill
  script:
    image: python:3.11
    command: [python3]
    source: |
      import os
      f = os.open("big", os.O_WRONLY | os.O_CREAT)
      try:
          while True:
              os.write(f, bytes(65536))
      except OSError as exc:
          print("filled the disk:", exc, flush=True)
- name: quiet
  container: {image: alpine, command: ["true"]}
"""
# A reserve is only made while four times its size is free: the tmpfs has 2 MiB (the default is 1 MiB).
SMALL_RESERVE = {"ORCHESTRATOR_DISK_RESERVE": str(256 * 1024)}
QUIET = """
- name: main
  container: {image: alpine, command: ["true"]}
"""


def _namespace_problem(tmp: Path) -> str | None:
    if not shutil.which("unshare"):
        return "unshare is not installed"
    probe = tmp / "probe"
    probe.mkdir()
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                        'mount -t tmpfs -o size=1m tmpfs "$1" && touch "$1/x"', "sh", str(probe)],
                       capture_output=True, text=True, timeout=30, check=False)
    return None if p.returncode == 0 else f"user + mount namespaces not permitted here: {p.stderr.strip()}"


def _on_tmpfs(cli: Cli, commands: list[list[str]], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Mount a 2 MiB tmpfs on the home, run each CLI command in turn (in the namespace); their results."""
    problem = _namespace_problem(cli.tmp)
    if problem:
        pytest.skip(problem)
    cli.home.mkdir(exist_ok=True)
    plan = cli.write("plan.json", json.dumps(commands))
    out = cli.tmp / "results.json"
    driver = cli.write("driver.py", (
        "import json, subprocess, sys\n"
        "res = []\n"
        "for args in json.load(open(sys.argv[1])):\n"
        "    if args[0] == 'rm-big':\n"
        "        import glob, os\n"
        "        for g in glob.glob(sys.argv[3] + '/executions/**/big', recursive=True) + "
        "glob.glob(sys.argv[3] + '/executions/**/attempt-*.log', recursive=True):\n"
        "            os.unlink(g)\n"
        "        continue\n"
        "    p = subprocess.run([sys.executable, '-m', 'orchestrator', *args], capture_output=True, text=True,"
        " timeout=120)\n"
        "    res.append({'rc': p.returncode, 'stdout': p.stdout, 'stderr': p.stderr})\n"
        "json.dump(res, open(sys.argv[2], 'w'))\n"))
    script = f'mount -t tmpfs -o size=2m tmpfs "$H" && exec "$PY" "{driver}" "{plan}" "{out}" "$H"'
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], cwd=cli.tmp,
                       env={**cli.env, "H": str(cli.home), "PY": sys.executable, **(env or {})},
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0 and out.exists(), p.stderr
    return list(json.loads(out.read_text()))


def test_a_log_that_fills_the_disk_ends_dead_with_the_reason(cli: Cli) -> None:
    loud = cli.write("loud.yaml", template("loud-4m", LOUD))
    quiet = cli.write("quiet.yaml", template("quiet", QUIET))
    first, run, listing, later = _on_tmpfs(cli, [["run", "-q", str(quiet)], ["run", "-q", "--json", str(loud)],
                                                 ["rm-big"], ["executions", "--json"],
                                                 ["run", "-q", "--json", str(quiet)]], env=SMALL_RESERVE)
    assert first["rc"] == 0, first["stderr"]
    assert run["rc"] == 1, run["stderr"]
    ex = json.loads(run["stdout"])
    reason = "no space left on device while writing the log of step 'main'"
    assert ex["status"] == "DEAD" and ex["statusMessage"] == reason, ex["statusMessage"]
    assert [(s["state"], s["message"]) for s in ex["steps"]] == [("FAILED", reason)]
    assert "Traceback" not in run["stderr"], run["stderr"]
    # once there is room again, it is still DEAD with that reason (the reaper had nothing to add)
    rows = {e["id"]: e for e in json.loads(listing["stdout"])}
    assert rows[ex["id"]]["statusMessage"] == reason
    assert later["rc"] == 0 and json.loads(later["stdout"])["status"] == "COMPLETED", later["stderr"]


@pytest.mark.parametrize("reserve", ["reserve", "no-reserve"])
def test_a_step_that_fills_the_disk_of_the_store(cli: Cli, reserve: str) -> None:
    """The step fills the filesystem the store is on. With the home's reserve file (made by the first
    runner), the runner frees it and the DEAD row fits; without one the store cannot take the row,
    and the runner says so on stderr instead of leaving only "runner lost" behind."""
    filler = cli.write("filler.yaml", template("filler", FILLER))
    quiet = cli.write("quiet.yaml", template("quiet", QUIET))
    env = SMALL_RESERVE if reserve == "reserve" else {"ORCHESTRATOR_DISK_RESERVE": "0"}
    first, run, listing = _on_tmpfs(cli, [["run", "-q", str(quiet)], ["run", "-q", "--json", str(filler)],
                                          ["rm-big"], ["executions", "--json"]], env=env)
    assert first["rc"] == 0, first["stderr"]
    reason = "no space left on device while writing the log of step 'fill'"
    assert "Traceback" not in run["stderr"], run["stderr"]
    if reserve == "reserve":
        assert run["rc"] == 1, run["stderr"]
        ex = json.loads(run["stdout"])
        assert ex["status"] == "DEAD" and ex["statusMessage"] == reason, ex["statusMessage"]
        states = {s["name"]: s["state"] for s in ex["steps"]}
        assert states == {"fill": "FAILED", "next": "OMITTED"}, states
    else:
        assert run["rc"] == 3, (run["stdout"], run["stderr"])
        head = run["stderr"].splitlines()[0]
        assert head.startswith("error: " + reason) and "could not be recorded as DEAD" in head, run["stderr"]
    # afterwards every execution is terminal with a reason
    execs = json.loads(listing["stdout"])
    assert all(e["status"] in ("COMPLETED", "DEAD") for e in execs), execs


def _dead_process() -> tuple[int, str]:
    """The pid and start time of a process that really ran and is gone."""
    p = subprocess.Popen(["sleep", "5"])
    with open(f"/proc/{p.pid}/stat", "rb") as f:
        start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    p.kill()
    p.wait()
    return p.pid, start


def test_temp_files_of_interrupted_uploads_are_removed_when_their_owner_is_gone(cli: Cli) -> None:
    quiet = cli.write("quiet.yaml", template("quiet", QUIET))
    cli("run", "-q", str(quiet), check=0)  # creates the home's layout
    cas, objects = cli.home / "cas" / "sha256", cli.home / "objects"
    cas.mkdir(parents=True, exist_ok=True)
    objects.mkdir(parents=True, exist_ok=True)
    dead_pid, dead_start = _dead_process()
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        my_start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    stale_blob = cas / f".in-{dead_pid}.{dead_start}-abc123"
    stale_blob.write_bytes(b"x" * 4096)
    stale_out = objects / f".out-{dead_pid}.{dead_start}-def456"
    (stale_out / "sub").mkdir(parents=True)
    (stale_out / "sub" / "model.bin").write_bytes(b"y")
    reused = cas / f".in-{os.getpid()}.{int(my_start) + 1}-pidreuse"  # same pid, another process
    reused.write_bytes(b"z")
    live = cas / f".in-{os.getpid()}.{my_start}-live"  # this test process is its (live) owner
    live.write_bytes(b"l")
    old_legacy = objects / ".out-legacy1"  # no owner in the name: age decides
    old_legacy.mkdir()
    two_days = time.time() - 2 * 86400
    os.utime(old_legacy, (two_days, two_days))
    new_legacy = cas / ".in-legacy2"
    new_legacy.write_bytes(b"n")
    cli("run", "-q", str(quiet), check=0)  # the next start sweeps (on the runner's helper thread)
    deadline = time.monotonic() + 10
    while stale_blob.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stale_blob.exists() and not stale_out.exists() and not reused.exists()
    assert not old_legacy.exists()
    assert live.exists() and new_legacy.exists()
    con = sqlite3.connect(cli.home / "orchestrator.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
