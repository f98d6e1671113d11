"""Finding a step's processes by the token in their environment (``/proc/PID/environ``): exact
and prefix matches, a look-alike variable that must not match, an environment larger than one read,
and ``kill_tagged`` ending exactly the matching processes (real processes)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest

from orchestrator.run.steps import ENVIRON_CHUNK, TOKEN_VAR, find_tagged, kill_tagged

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")


def _sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                            stdin=subprocess.DEVNULL)


def test_exact_prefix_lookalike_and_large_environments() -> None:
    tok = "t" + secrets.token_hex(6)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    procs = {
        "exact": _sleeper({**base, TOKEN_VAR: f"{tok}-main"}),
        "longer": _sleeper({**base, TOKEN_VAR: f"{tok}-mainly"}),  # same prefix, another step
        "lookalike": _sleeper({**base, "X" + TOKEN_VAR: f"{tok}-main", "OTHER": f"{TOKEN_VAR}={tok}-main"}),
        # the token after more than one read's worth of environment
        "large": _sleeper({"A" * 10: "x" * (ENVIRON_CHUNK + 5000), **base, TOKEN_VAR: f"{tok}-main"}),
    }
    try:
        time.sleep(0.2)  # exec'd: /proc/PID/environ is the new program's
        pid = {k: p.pid for k, p in procs.items()}
        assert set(find_tagged(f"{tok}-main")) == {pid["exact"], pid["large"]}
        assert set(find_tagged(f"{tok}-", prefix=True)) == {pid["exact"], pid["longer"], pid["large"]}
        assert find_tagged(f"{tok}-mai") == []  # exact means the whole value
        assert kill_tagged(f"{tok}-mainly") == 1
        assert procs["longer"].wait(10) < 0 and procs["exact"].poll() is None
        assert kill_tagged(f"{tok}-", prefix=True) == 2
        assert procs["exact"].wait(10) < 0 and procs["large"].wait(10) < 0
        assert procs["lookalike"].poll() is None  # never matched
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_since_a_mark_reads_the_processes_created_after_it_and_every_one_when_unsure() -> None:
    from orchestrator.run import steps

    tok = "t" + secrets.token_hex(6)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    older = _sleeper({**base, TOKEN_VAR: f"{tok}-old"})
    mark = steps.pid_mark()
    assert mark is not None
    newer = [_sleeper({**base, TOKEN_VAR: f"{tok}-new{k}"}) for k in range(3)]
    try:
        time.sleep(0.2)
        window = steps._window(mark)
        assert window is not None and window[0] == mark.last  # a few processes since: certain
        found = set(find_tagged(f"{tok}-", prefix=True, since=mark))
        assert found == {p.pid for p in newer}  # the one started before the mark is not even read
        # A mark whose PID count cannot tell (as many creations since as PIDs): every process is read.
        unsure = steps.PidMark(mark.last, mark.forks - 10**7, mark.tasks)
        assert steps._window(unsure) is None
        assert set(find_tagged(f"{tok}-", prefix=True, since=unsure)) == {older.pid} | {p.pid for p in newer}
        assert kill_tagged(f"{tok}-new", prefix=True, since=mark) == 3
        assert all(p.wait(10) < 0 for p in newer) and older.poll() is None
    finally:
        for p in [older, *newer]:
            p.kill()
            p.wait()
