"""Real-process tests of orchestrator.run.sandbox (user + mount namespaces)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.run import sandbox

REPO = Path(__file__).resolve().parents[3]
_OK, _WHY = sandbox.available()
pytestmark = pytest.mark.skipif(not _OK, reason=f"sandbox unavailable here: {_WHY}")


def run(cmd: list[str], binds: list[tuple[str, str]], workdir: Path,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # orchestrator is not installed in the test venv; the runner must make it importable likewise
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = sandbox.wrap(cmd, binds, str(workdir))
    return subprocess.run(argv, cwd=cwd or workdir, env=env, capture_output=True, text=True,
                          timeout=30)


def fresh_top() -> str:
    """``/app`` if the host has none (the real case), else a unique top dir absent on the host."""
    return "/app" if not os.path.lexists("/app") else f"/orchestrator-test-{uuid.uuid4().hex[:8]}"


def test_available_is_true_and_cached() -> None:
    assert sandbox.available() == (True, "")
    assert sandbox._available == (True, "")


def test_wrap_builds_module_argv() -> None:
    argv = sandbox.wrap(["python", "/app/src/train.py"], [("/s/fs/app/d", "/app/data")], "/s")
    assert argv == [sys.executable, "-P", "-m", "orchestrator.run.sandbox", "--bind", "/s/fs/app/d",
                    "/app/data", "--workdir", "/s", "--", "python", "/app/src/train.py"]


def test_reads_and_writes_declared_container_paths(tmp_path: Path) -> None:
    app = fresh_top()
    (tmp_path / "in_dir").mkdir()
    (tmp_path / "out_dir").mkdir()
    (tmp_path / "in_dir" / "in.txt").write_text("hello sandbox\n")
    binds = [(str(tmp_path / "in_dir"), f"{app}/data"), (str(tmp_path / "out_dir"), f"{app}/model")]
    res = run(["/bin/sh", "-c", f"cat {app}/data/in.txt > {app}/model/out.txt"], binds, tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out_dir" / "out.txt").read_text() == "hello sandbox\n"
    assert not os.path.exists(app)


def test_tmp_is_private(tmp_path: Path) -> None:
    marker = f"/tmp/marker-{uuid.uuid4().hex}"
    res = run(["/bin/sh", "-c", f"echo x > {marker} && test -f {marker}"], [], tmp_path)
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(marker)


def test_workdir_visible_at_own_path_and_is_cwd(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi")
    script = f"pwd; cat {tmp_path}/hello.txt; echo; ls -A {tmp_path}/.sandbox-root | wc -l"
    res = run(["/bin/sh", "-c", script], [], tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == [str(tmp_path), "hi", "0"]  # no root-in-root loop visible
    assert sorted(os.listdir(tmp_path)) == [".sandbox-root", "hello.txt"]
    assert os.listdir(tmp_path / ".sandbox-root") == []


def test_exit_code_propagates_and_pid_is_kept(tmp_path: Path) -> None:
    assert run(["/bin/sh", "-c", "exit 3"], [], tmp_path).returncode == 3
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = sandbox.wrap(["/bin/sh", "-c", "echo $$"], [], str(tmp_path))
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert int(out) == proc.pid  # exec in place, same PID namespace


def test_missing_command_is_127(tmp_path: Path) -> None:
    res = run(["definitely-not-a-command-xyz"], [], tmp_path)
    assert res.returncode == 127
    assert "orchestrator sandbox: command not found: definitely-not-a-command-xyz" in res.stderr


def test_target_inside_existing_host_dir_goes_to_an_overlay(tmp_path: Path) -> None:
    """/usr exists on the host: the path is created in an overlay whose upper layer is in the workdir."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "in.txt").write_text("payload")
    target = "/usr/share/orchestrator-test-nonexistent/x"
    res = run(["/bin/sh", "-c", f"cat {target}/in.txt; ls /usr/bin/env; echo new > /usr/share/ot-written"],
              [(str(tmp_path / "x"), target)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "payload" in res.stdout and "/usr/bin/env" in res.stdout  # host content still visible
    assert not os.path.exists("/usr/share/orchestrator-test-nonexistent")
    assert not os.path.exists("/usr/share/ot-written")
    assert (tmp_path / ".sandbox-overlay" / "usr" / "upper" / "share" / "ot-written").read_text() == "new\n"


def test_file_binds_and_private_mnt(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("a: 1\n")
    script = "cat /mnt/conf/c.yaml && echo b > /mnt/conf/c.yaml && test -d /mnt/conf"
    res = run(["/bin/sh", "-c", script], [(str(tmp_path / "cfg.yaml"), "/mnt/conf/c.yaml")],
              tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "a: 1\n"
    assert (tmp_path / "cfg.yaml").read_text() == "b\n"
    assert not os.path.exists("/mnt/conf")


def test_missing_bind_source_and_bad_workdir_fail_cleanly(tmp_path: Path) -> None:
    res = run(["/bin/true"], [(str(tmp_path / "nope"), "/app/x")], tmp_path)
    assert res.returncode == 126 and "bind source does not exist" in res.stderr
    res = run(["/bin/true"], [], tmp_path / "missing-workdir", cwd=tmp_path)
    assert res.returncode == 126 and not (tmp_path / "missing-workdir").exists()


def test_a_file_at_the_root_not_written_yet_is_created_in_the_step(tmp_path: Path) -> None:
    """Argo's ``/result.txt``: the step's file does not exist before the step writes it."""
    name = f"result-{uuid.uuid4().hex[:8]}.txt"
    (tmp_path / "fs").mkdir()
    binds = [(str(tmp_path / "fs" / name), f"/{name}"), (str(tmp_path / "fs" / "unwritten"), "/unwritten")]
    res = run(["/bin/sh", "-c", f"echo it > /{name} && cat /{name} && test ! -e /unwritten"], binds, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "it\n" and (tmp_path / "fs" / name).read_text() == "it\n"
    assert not (tmp_path / "fs" / "unwritten").exists() and not os.path.exists(f"/{name}")


def test_target_covering_the_workdir_keeps_workdir_visible(tmp_path: Path) -> None:
    (tmp_path / "fs_tmp").mkdir()
    binds = [(str(tmp_path / "fs_tmp"), "/tmp")]
    res = run(["/bin/sh", "-c", "pwd && echo y > /tmp/out.txt"], binds, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{tmp_path}\n"
    assert (tmp_path / "fs_tmp" / "out.txt").read_text() == "y\n"


def test_kind_mismatch_and_symlink_in_target_are_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = run(["/bin/true"], [(str(tmp_path / "f"), "/usr")], tmp_path)
    assert res.returncode == 126 and "differ in kind" in res.stderr
    app = fresh_top()
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "data").symlink_to("/nonexistent-orchestrator-x")
    res = run(["/bin/true"], [(str(tmp_path / "app"), app), (str(tmp_path), f"{app}/data/y")],
              tmp_path)
    assert res.returncode == 126 and "is a symlink" in res.stderr
    assert not os.path.exists("/nonexistent-orchestrator-x")
