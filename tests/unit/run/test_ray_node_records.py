"""The Ray node's records against a step that forges them (steps run as the worker's user): a
forged line never gets an unrelated process group signalled (watchdog, sweep), a planted link is
never written through, and replacing the records' path hides no step from the watchdog."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.run import ray_node
from orchestrator.run.steps import find_tagged


def _token(tmp: Path, n: int) -> str:
    """A token of this test's own: ``find_tagged`` scans the machine (the other xdist worker too)."""
    return hashlib.sha256(str(tmp).encode()).hexdigest()[:16] + f"-{n:010d}"


def _records(root: Path, pid: int) -> Path:
    (root / ray_node.RECORDS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    return root / ray_node.RECORDS_DIR / f"{pid}{ray_node.RECORDS_SUFFIX}"


def _visible(token: str) -> None:
    """Wait until a process carrying ``token`` shows it in ``/proc/PID/environ``: ``Popen`` can
    return while the kernel is still inside ``execve`` (the parent wakes when the old memory is
    released, before the new stack with the environment is set up), and then the environment reads
    empty for a moment."""
    deadline = time.monotonic() + 10
    while not find_tagged(token) and time.monotonic() < deadline:
        time.sleep(0.01)


def _bystander(token: str | None = None) -> subprocess.Popen[bytes]:
    """A ``sleep`` leading its own process group, carrying ``token`` (or no token at all)."""
    env = {k: v for k, v in os.environ.items() if k != ray_node.TOKEN_VAR}
    if token:
        env[ray_node.TOKEN_VAR] = token
    p = subprocess.Popen(["sleep", "60"], start_new_session=True, env=env)
    if token:
        _visible(token)
    return p


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


_WORKER = """
import os, subprocess, sys
from orchestrator.run import ray_node
root, token = sys.argv[1], sys.argv[2]
padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(12)]  # as in a Ray worker: descriptors above 9
ray_node.ensure_watchdog(root, 0.5)
step = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, ray_node.TOKEN_VAR: token})
rec = ray_node.Records.of(root)
rec.add(os.path.join(root, f"{token}.{os.getpid()}.x"), token, step.pid)
print(rec.path, flush=True)
sys.stdin.read()
"""


def test_the_watchdog_signals_only_recorded_groups_carrying_their_token(tmp_path: Path) -> None:
    """A step forges a line naming an unrelated group, then replaces the records' path with a
    symlink to /dev/null: when the worker dies, the watchdog (reading the descriptor it inherited)
    still takes the real step down and leaves the unrelated group alive."""
    root = tmp_path / "node"
    root.mkdir(mode=0o700)
    token, forged = _token(tmp_path, 1), _token(tmp_path, 2)
    victim = _bystander()
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(root), token], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        path = Path(worker.stdout.readline().strip())
        _visible(token)
        assert find_tagged(token)
        with open(path, "a", encoding="ascii") as f:  # the same file the worker and its watchdog hold
            f.write(f"{forged} {victim.pid} {forged}.{worker.pid}.y\n")
        path.unlink()
        path.symlink_to(os.devnull)
        worker.kill()  # SIGKILL: no finally; the watchdog sees its pipe's end
        worker.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and find_tagged(token):
            time.sleep(0.05)
        assert find_tagged(token) == []  # the real step's group: TERMed
        time.sleep(0.6)  # past the watchdog's grace: its KILL would have been sent by now
        assert victim.poll() is None  # the forged line's group: left alone
    finally:
        worker.kill()
        victim.kill()
        victim.wait()


def test_the_sweep_signals_no_forged_group(tmp_path: Path) -> None:
    """A dead worker's records naming a group without the token, and a directory (with forged
    records) naming the token of a step a live worker records: the sweep kills neither, and
    still removes the dead workers' directories and records."""
    dead, me = _dead_pid(), os.getpid()
    forged, victim_token = _token(tmp_path, 3), _token(tmp_path, 4)
    plain, victim = _bystander(), _bystander(victim_token)
    real = _bystander(_token(tmp_path, 5))  # a genuine leftover: killed
    try:
        _records(tmp_path, me).write_text(f"{victim_token} {victim.pid} {victim_token}.{me}.a\n")
        (tmp_path / f"{victim_token}.{me}.a").mkdir()
        _records(tmp_path, dead).write_text(
            f"{forged} {plain.pid} {forged}.{dead}.x\n"  # its group does not carry the token
            f"{victim_token} {victim.pid} {victim_token}.{dead}.x\n"  # a live worker records the token
            f"{_token(tmp_path, 5)} {real.pid} {_token(tmp_path, 5)}.{dead}.z\n")
        for name in (f"{forged}.{dead}.x", f"{victim_token}.{dead}.x", f"{victim_token}.{dead}.y"):
            (tmp_path / name).mkdir()
        ray_node.sweep_stale(str(tmp_path))
        assert real.wait(timeout=10) != 0
        assert plain.poll() is None and victim.poll() is None
        assert sorted(os.listdir(tmp_path)) == sorted([ray_node.RECORDS_DIR, f"{victim_token}.{me}.a"])
        assert os.listdir(tmp_path / ray_node.RECORDS_DIR) == [f"{me}{ray_node.RECORDS_SUFFIX}"]
    finally:
        for p in (plain, victim, real):
            p.kill()
            p.wait()


def test_signal_step_checks_the_recorded_directory_and_the_group(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ray_node.WORKDIR_VAR, str(tmp_path))
    token, me = _token(tmp_path, 6), os.getpid()
    plain, step = _bystander(), _bystander(token)
    try:
        _records(tmp_path, me).write_text(f"{token} {plain.pid} {token}.{me}.x\n"  # no token in its env
                                          f"{token} {step.pid} other.{me}.x\n")  # not the token's directory
        assert ray_node.signal_step(token, 15) == 0
        _records(tmp_path, me).write_text(f"{token} {step.pid} {token}.{me}.x\n")
        assert ray_node.signal_step(token, 15) == 1
        assert step.wait(timeout=10) == -15 and plain.poll() is None
    finally:
        for p in (plain, step):
            p.kill()
            p.wait()


@pytest.mark.parametrize("plant", ["hardlink", "symlink"])
def test_a_planted_records_path_is_replaced_never_written_through(tmp_path: Path, plant: str) -> None:
    root = tmp_path / "node"
    root.mkdir(mode=0o700)
    precious = tmp_path / "precious"
    precious.write_text("keep\n")
    path = _records(root, os.getpid())
    if plant == "hardlink":
        os.link(precious, path)
    else:
        path.symlink_to(precious)
    rec = ray_node.Records(str(root))
    try:
        rec.add(str(root / "tok.1.x"), "tok", 12345)
        assert precious.read_text() == "keep\n" and os.stat(precious).st_nlink == 1
        st = os.lstat(path)
        assert st.st_nlink == 1 and (st.st_mode & 0o777) == 0o600 and path.read_text() == "tok 12345 tok.1.x\n"
    finally:
        os.close(rec.fd)


def test_records_in_a_shared_directory_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "node"
    root.mkdir(mode=0o700)
    (root / ray_node.RECORDS_DIR).mkdir(mode=0o700)
    os.chmod(root / ray_node.RECORDS_DIR, 0o777)
    with pytest.raises(ray_node.NodeRootError):
        ray_node.Records(str(root))


def test_a_watchdog_that_failed_to_start_is_tried_again_after_the_back_off(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """One failed start (a shell that exits non-zero, e.g. a fork refused under pressure) must not
    leave the worker unwatched for its lifetime: not retried at every step, but after the back-off."""
    root = str(tmp_path / "node")
    os.mkdir(root, 0o700)
    real_run, calls = subprocess.run, []

    def failing_once(*args: object, **kw: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            return subprocess.CompletedProcess(args, 2)
        return real_run(*args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(ray_node.subprocess, "run", failing_once)
    try:
        ray_node.ensure_watchdog(root, 0.5)
        ray_node.ensure_watchdog(root, 0.5)  # within the back-off: no second shell
        assert len(calls) == 1 and root not in ray_node._watching
        monkeypatch.setitem(ray_node._unstartable, root, time.monotonic() - 1)  # the back-off is over
        ray_node.ensure_watchdog(root, 0.5)
        assert len(calls) == 2 and root in ray_node._watching  # started this time
    finally:
        w = ray_node._watching.pop(root, None)
        if w is not None:
            os.close(w)  # the watchdog sees its pipe's end and exits
        ray_node._unstartable.pop(root, None)
        rec = ray_node._records.pop(root, None)
        if rec is not None:
            os.close(rec.fd)
