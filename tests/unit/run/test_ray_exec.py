"""The Ray executor's pieces that need no cluster: addresses, the resource mapping, input packing,
the node-side unpacking and stale-directory sweep (the cluster tests: tests/integration/ray)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from orchestrator.cli.parser import executor_choice
from orchestrator.errors import UsageError
from orchestrator.run import container_spec, ray_node, ray_task
from orchestrator.run.executor import choose
from orchestrator.run.ray_exec import RayExecutor, custom_resources, pack_input, parse_address, task_options


@pytest.mark.parametrize(("choice", "address"), [
    ("ray", None), ("ray://127.0.0.1:10001", "ray://127.0.0.1:10001"), ("ray:10.0.0.5:6379", "10.0.0.5:6379")])
def test_addresses(choice: str, address: str | None) -> None:
    assert parse_address(choice) == address
    assert executor_choice(choice) == choice
    ex = choose(choice)
    assert isinstance(ex, RayExecutor) and ex.address == address


@pytest.mark.parametrize("bad", ["ray:nohost", "ray://h:port", "ray;1:2", "rayx"])
def test_bad_addresses_are_usage_errors(bad: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        executor_choice(bad)
    with pytest.raises(UsageError):
        choose(bad)


def test_the_executor_flag_does_not_import_ray() -> None:
    code2 = ("import sys\nfrom orchestrator.run.executor import choose, check_ray\n"
             "check_ray('ray:127.0.0.1:1'); choose('ray:127.0.0.1:1')\nprint('ray' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True)
    assert p.stdout.strip() == "False", p.stderr


TEMPLATE = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
spec:
  templates:
  - name: plan
    container:
      image: x
  - name: asks
    container:
      image: x
      resources:
        requests: {cpu: 500m, memory: 1Gi, ray.io/node2: "1"}
        limits: {cpu: "2", memory: 2Gi, nvidia.com/gpu: "1", ray.io/node2: "3", ray.io/ssd: "2"}
"""


def test_resources_map_to_ray_options() -> None:
    starter = container_spec.template_extras(TEMPLATE, 0, "plan", {"ai.sap.com/resourcePlan": "starter"})
    assert task_options(starter, {}) == {"num_cpus": 1, "memory": 3 << 30}
    infer = container_spec.template_extras(TEMPLATE, 0, "plan", {"ai.sap.com/resourcePlan": "infer.s"})
    assert task_options(infer, {}) == {"num_cpus": 3, "num_gpus": 1, "memory": 10 << 30}
    assert task_options(container_spec.template_extras(TEMPLATE, 0, "plan", {}), {}) == {"num_cpus": 1.0}
    asks = container_spec.template_extras(TEMPLATE, 0, "asks", {"ai.sap.com/resourcePlan": "basic"})
    custom = custom_resources(TEMPLATE, 0, "asks")
    assert custom == {"node2": 1.0, "ssd": 2.0}  # requests win over limits
    assert task_options(asks, custom) == {"num_cpus": 0.5, "num_gpus": 1, "memory": 1 << 30,
                                          "resources": {"node2": 1.0, "ssd": 2.0}}


def test_the_same_input_packs_to_the_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "data", tmp_path / "b" / "data"
    for d in (a, b):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "x.txt").write_text("x")
        (d / "y.txt").write_text("y")
        time.sleep(0.01)
    os.utime(b / "y.txt", (1, 1))
    (tmp_path / "target").write_text("secret")
    os.symlink(tmp_path / "target", a / "link")  # never shipped
    pa, pb = pack_input(a), pack_input(b)
    assert pa[0] == pb[0] and pa[1] == str(a)
    dest = tmp_path / "out"
    ray_task.unpack(pa[0], str(dest))
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["sub", "sub/x.txt", "y.txt"]
    data, where = pack_input(a / "y.txt")
    assert where == str(a)


def test_unpack_never_writes_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        ray_task.unpack(buf.getvalue(), str(tmp_path / "in"))
    assert not (tmp_path / "escaped.txt").exists()


def test_the_next_step_sweeps_what_a_killed_worker_left(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    token = "feedfacefeedface-0123456789"
    stale = tmp_path / f"{token}.{dead.pid}.abc"
    (stale / "fs").mkdir(parents=True)
    leftover = subprocess.Popen(["sleep", "60"], start_new_session=True,
                                env={**os.environ, "ORCHESTRATOR_STEP_TOKEN": token})
    alive = tmp_path / f"other-0123456789.{os.getpid()}.abc"
    alive.mkdir()
    dead_records = _rec(tmp_path, dead.pid)  # its watchdog did not run
    dead_records.write_text(f"{token} {leftover.pid} {stale.name}\n")
    live_records = _rec(tmp_path, os.getpid())
    live_records.write_text("")
    ray_task.sweep_stale(str(tmp_path))
    assert leftover.wait(timeout=10) != 0  # killed
    assert not stale.exists() and alive.exists()
    assert not dead_records.exists() and live_records.exists()


def _rec(root: Path, pid: int) -> Path:
    """The path of worker ``pid``'s records in the node root ``root`` (its 0700 directory made)."""
    (root / ray_node.RECORDS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    return root / ray_node.RECORDS_DIR / f"{pid}{ray_task.RECORDS_SUFFIX}"


def _left(root: Path) -> list[str]:
    """What is left in a node root besides the records (this process's must record no step)."""
    mine = _rec(root, os.getpid())
    assert not mine.exists() or mine.read_text() == ""
    return sorted(set(os.listdir(root)) - {ray_node.RECORDS_DIR})


def _token(tmp: Path) -> str:
    """A step token of this test's own: ``find_tagged`` scans every process of the machine, and a
    test on the other xdist worker may be running a step at the same moment."""
    return hashlib.sha256(str(tmp).encode()).hexdigest()[:16] + "-0000000001"


def _payload(tmp: Path, argv: list[str], **extra: object) -> dict[str, object]:
    driver = str(tmp / "driver" / "steps" / "main")
    return {"argv": argv, "env": {"PATH": os.environ["PATH"], "HOME": driver,
                                  "ORCHESTRATOR_TRACKING_FILE": driver + "/tracking-1.jsonl",
                                  "ORCHESTRATOR_STEP_TOKEN": _token(tmp)},
            "cwd": driver, "driver_dir": driver, "token": _token(tmp), "grace": 1.0,
            "log_cap": 1000, "tracking": driver + "/tracking-1.jsonl", "outputs": ["fs/out"], "input_dests": [],
            **extra}


def test_the_task_body_runs_in_a_node_directory_and_packs_its_outputs(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """run_step called as Ray calls it (a generator), without Ray: the driver's directory is
    rewritten to the node's, the log is capped, tracking lines and outputs come back."""
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(tmp_path / "node"))
    script = ('pwd; echo "$HOME"; mkdir -p fs/out; echo result > fs/out/r.txt; '
              'echo \'{"t":"tag","name":"k","value":"v"}\' >> "$ORCHESTRATOR_TRACKING_FILE"; '
              'head -c 5000 /dev/zero | tr "\\0" x')
    items = list(ray_task.run_step(_payload(tmp_path, ["sh", "-c", script])))
    kinds = [i[0] for i in items]
    assert kinds[0] == "start" and kinds[-1] == "end"
    log = b"".join(i[1] for i in items if i[0] == "log").decode()
    work = items[0][1]["workdir"]
    assert work.startswith(str(tmp_path / "node") + "/" + _token(tmp_path) + ".")
    assert log.splitlines()[:2] == [work, work] and len(log) == 1000  # rewritten; capped at log_cap
    info, outputs = items[-1][1], items[-1][2]
    assert info["code"] == 0 and info["dropped"] == 5000 + 2 * (len(work) + 1) - 1000
    assert b"".join(i[1] for i in items if i[0] == "track") == b'{"t":"tag","name":"k","value":"v"}\n'
    back = tmp_path / "back"
    ray_task.unpack(outputs, str(back))
    assert (back / "fs" / "out" / "r.txt").read_text() == "result\n"
    assert _left(tmp_path / "node") == []  # the node directory is removed


def test_a_cancelled_task_kills_the_steps_group_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ray.cancel raises KeyboardInterrupt in the task: SIGTERM to the group, the grace, SIGKILL."""
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(tmp_path / "node"))
    gen = ray_task.run_step(_payload(tmp_path, ["sh", "-c", "echo up; sleep 60 & wait"]))
    assert next(gen)[0] == "start"
    assert next(gen) == ("log", b"up\n")
    from orchestrator.run.steps import find_tagged

    assert find_tagged(_token(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt)
    deadline = time.monotonic() + 10  # a signal is delivered asynchronously: a killed process may
    while time.monotonic() < deadline and find_tagged(_token(tmp_path)):  # linger for a moment
        time.sleep(0.02)
    assert find_tagged(_token(tmp_path)) == []
    assert _left(tmp_path / "node") == []


def _fake_download(target: dict[str, str], key: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "data.txt").write_text(target["bucket"] + ":" + key)


def _fake_upload(target: dict[str, str], src: Path, key: str) -> list[str]:
    return [f"{target['bucket']}/{key}/{p.name}={p.read_text().strip()}" for p in sorted(src.iterdir())]


def test_the_object_store_hook_lets_the_node_fetch_and_push_itself(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 hook's node side: inputs downloaded and outputs uploaded by the node (here by local
    stand-ins with the signatures of objects_s3.download/upload_tree), not shipped through Ray."""
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(tmp_path / "node"))
    target = {"bucket": "b1"}
    payload = _payload(tmp_path, ["sh", "-c", "mkdir -p fs/out && cat fs/in/data.txt > fs/out/copy.txt"],
                       fetch=[(_fake_download, target, "datasets/x", "fs/in")],
                       push=[(_fake_upload, target, "fs/out", "runs/1/out")], outputs=[])
    items = list(ray_task.run_step(payload))
    info, outputs = items[-1][1], items[-1][2]
    assert info["code"] == 0 and outputs == b""
    assert info["pushed"] == {"fs/out": ["b1/runs/1/out/copy.txt=b1:datasets/x"]}
    bad = _payload(tmp_path, ["true"], fetch=[(_fake_download, target, "k", "../../escape")])
    items = list(ray_task.run_step(bad))  # refused before the step starts: the attempt's error
    assert items[-1][0] == "end" and items[-1][1]["code"] == -1 and "leaves" in items[-1][1]["error"]
    assert not any(kind == "start" for kind, *_ in items)
    assert not (tmp_path / "escape").exists()


def test_a_stop_signals_the_group_recorded_for_its_token_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """signal_step (the body of a stop's task on the step's node): the group whose leader carries
    the token is signalled; a directory naming a process of another token is left alone."""
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(tmp_path))
    procs = []
    lines = []
    for token in ("tok-a", "tok-b"):
        p = subprocess.Popen(["sleep", "60"], start_new_session=True, env={**os.environ, ray_task.TOKEN_VAR: token})
        procs.append(p)
        (tmp_path / f"{token}.{os.getpid()}.x").mkdir()
        lines.append(f"{token} {p.pid} {token}.{os.getpid()}.x\n")
    records = _rec(tmp_path, os.getpid())
    records.write_text("".join(lines))
    _rec(tmp_path, 1).write_text(f"tok-c {procs[1].pid} tok-c.1.y\n")  # not tok-c's
    own = tmp_path / f"tok-b.{os.getpid()}.z"
    own.mkdir()  # records a step wrote into its own directory are never read
    (own / f"{os.getpid()}{ray_task.RECORDS_SUFFIX}").write_text(f"tok-b {procs[1].pid} z\n")
    try:
        assert ray_task.signal_step("tok-c", 15) == 0
        assert ray_task.signal_step("tok-a", 15) == 1
        assert procs[0].wait(timeout=10) == -15
        assert procs[1].poll() is None
        assert ray_task.signal_step("tok-missing", 15) == 0
        records.write_text(lines[0])
        assert ray_task.signal_step("tok-b", 15) == 0  # only the records in the step's directory name it
        assert procs[1].poll() is None
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_the_pgid_is_recorded_beside_the_step_directory_not_in_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(tmp_path / "node"))
    gen = ray_task.run_step(_payload(tmp_path, ["sh", "-c", "echo up; sleep 60 & wait"]))
    try:
        work = next(gen)[1]["workdir"]
        assert next(gen) == ("log", b"up\n")
        assert os.listdir(work) == []
        records = _rec(tmp_path / "node", os.getpid())
        token, pgid, name = records.read_text().split()
        assert token == _token(tmp_path) and int(pgid) > 1 and name == os.path.basename(work)
        assert ray_task.signal_step(_token(tmp_path), 15) == 1
        items = list(gen)
        assert items[-1][0] == "end" and items[-1][1]["code"] == -15
    finally:
        gen.close()
    assert _left(tmp_path / "node") == []  # the directory is removed, the records are empty


def test_the_default_node_root_is_private_to_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.delenv("ORCHESTRATOR_RAY_WORKDIR", raising=False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    root = ray_task.node_root()
    assert root == str(tmp_path / f"orchestrator-ray-{os.getuid()}")
    st = os.stat(root)
    assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700


def test_a_shared_or_foreign_node_root_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o1777)  # a world-writable /tmp-like directory
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(root))
    with pytest.raises(ray_task.NodeRootError, match="writable"):
        ray_task.node_root()
    items = list(ray_task.run_step(_payload(tmp_path, ["true"])))  # the attempt fails before the step starts
    assert items[-1][0] == "end" and items[-1][1]["code"] == -1 and not any(k == "start" for k, *_ in items)
    os.chmod(root, 0o700)
    assert ray_task.node_root() == str(root)
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 4242)  # as another user would see it
    with pytest.raises(ray_task.NodeRootError, match="belongs to uid"):
        ray_task.node_root()
    monkeypatch.undo()
    link = tmp_path / "link"
    link.symlink_to(root)
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(link))
    with pytest.raises(ray_task.NodeRootError, match="not a directory"):
        ray_task.node_root()


def test_host_files_never_become_outputs_of_a_ray_step(tmp_path: Path) -> None:
    """Finding 9: as the container executor does, the Ray executor drops the "image" outputs
    prepare found on the driver host (e.g. /etc/hostname), so the runner never collects them."""
    from types import SimpleNamespace

    from orchestrator.run.prepare import Prepared
    from orchestrator.run.steps import StepSpec

    step_dir = tmp_path / "steps" / "main"
    step_dir.mkdir(parents=True)
    spec = StepSpec(["true"], {}, str(step_dir), str(step_dir / "log"), "feedfacefeedface-0000000002")
    out = str(step_dir / "fs" / "etc" / "hostname")
    prep = Prepared(spec, step_dir, str(step_dir / "log"), str(step_dir / "tracking.jsonl"),
                    {"outputs.artifacts.host": out}, image={"host": "/etc/hostname"})
    node = SimpleNamespace(template=SimpleNamespace(name="main", output_artifacts=[]))
    step = RayExecutor().submit(SimpleNamespace(), node, prep, 1)
    assert prep.image == {}
    assert step.payload["outputs"] == ["fs/etc/hostname"]  # collected from the node, or missing


_WORKER = """
import json, sys
from orchestrator.run import ray_task
gen = ray_task.run_step(json.loads(sys.argv[1]))
next(gen)  # start
next(gen)  # the step's first line: it runs
print("running", flush=True)
sys.stdin.read()  # until killed
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except (OSError, ValueError, IndexError):
            pass
    return out


def test_a_worker_killed_outright_still_takes_its_step_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray kills the workers of a dead driver's job, possibly without their ``finally``: the step's
    group (here a shell and a background sleep) must not outlive the worker."""
    from orchestrator.run.steps import find_tagged

    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(tmp_path / "node"))
    token = "feedfacefeedface-0000000002"  # its own: tests on other workers look for theirs
    payload = _payload(tmp_path, ["sh", "-c", "echo up; sleep 60 & wait"], token=token)
    payload["env"] = {**payload["env"], "ORCHESTRATOR_STEP_TOKEN": token}  # type: ignore[dict-item]
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(payload)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "running\n"
        assert find_tagged(token)
        for child in _children(worker.pid):  # as Ray does: the worker's direct children die with it
            os.kill(child, signal.SIGKILL)
        worker.kill()  # SIGKILL: no finally, no KeyboardInterrupt
        worker.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and find_tagged(token):
            time.sleep(0.1)
        assert find_tagged(token) == []
    finally:
        worker.kill()


def _watchdogs(root: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if entry.isdigit() and {b"watchdog", b"orchestrator-watchdog"} & set(args) and str(root / ray_node.RECORDS_DIR).encode() in args:
            found.append(int(entry))
    return found


_TWO_STEPS = """
import json, os, sys
from orchestrator.run import ray_task
padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(12)]  # as in a Ray worker: descriptors above 9
for n in range(2):
    items = list(ray_task.run_step(json.loads(sys.argv[1])))
    assert items[-1][1]["code"] == 0, items
print("done", flush=True)
sys.stdin.read()
"""


def test_one_watchdog_per_worker_process_outlives_it_only_briefly(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Two steps in one worker start one watchdog (not one per step); it ends with its worker,
    and signals only groups recorded for that worker's PID (here: none left, another PID's kept).
    The worker's records descriptor is above 9, as in a Ray worker (``dash`` refused ``4<&40``)."""
    root = tmp_path / "node"
    monkeypatch.setenv("ORCHESTRATOR_RAY_WORKDIR", str(root))
    root.mkdir(mode=0o700)
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    _rec(root, os.getpid()).write_text(f"tok-x {other.pid} x\n")  # not the worker's
    worker = subprocess.Popen([sys.executable, "-c", _TWO_STEPS, json.dumps(_payload(tmp_path, ["true"]))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "done\n"
        assert len(_watchdogs(root)) == 1
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _watchdogs(root):
            time.sleep(0.05)
        assert _watchdogs(root) == [] and other.poll() is None
        assert not _rec(root, worker.pid).exists()  # it removed the worker's records
        assert _rec(root, os.getpid()).exists()  # another PID's are kept
    finally:
        worker.kill()
        other.kill()
        other.wait()


def test_this_ray_lets_the_runners_loop_read_the_streams_itself() -> None:
    """The installed Ray has what :meth:`RayStep.read` needs (a callback when an object exists, a
    non-blocking look at a stream); without it every running step would need a relay thread."""
    ray = pytest.importorskip("ray")
    from orchestrator.run.ray_exec import _can_pump

    assert _can_pump(ray)
