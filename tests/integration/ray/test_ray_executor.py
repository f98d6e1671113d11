"""The Ray executor on a real two-node Ray cluster on this machine (issue 18).

One cluster for the whole module (``ray.cluster_utils.Cluster``: a head with ``node1`` and a
worker with ``node2`` custom resources, 80 MB object stores, everything on 127.0.0.1). Each
node has its own working root (``ORCHESTRATOR_RAY_WORKDIR`` in its raylet's environment); steps
are pinned with ``resources.requests: {ray.io/node2: 1}``. The runner is a real ``orchestrator
run`` process (the Ray driver). The scenarios run in ONE test item, in order: pytest-xdist
distributes items, and two clusters on two cores would starve each other (``--dist loadgroup``
would group them, but it does not work with pytest 9.2: xdist 3.8 renames ``item._nodeid``,
which pytest no longer reads). The node-death scenario adds and removes nodes of its own and
runs last.

Covered: steps on both nodes exchanging an artifact without a shared directory (each step sees
only its node's root), S3 inputs and outputs moved by the nodes themselves (the driver downloads
nothing, no credential in a log, file or record), a resume that finds a step's outputs in the
bucket (the step does not run again), one step through Ray Client (``ray://``) with S3
artifacts, metrics and log lines arriving while the step
runs, a stop as locally (SIGTERM through a task on the step's node, the step's output after it
logged, STOPPED once the process exited), kill -9 of
the driver (DEAD "runner lost", the step's processes on the node gone), a deadline, a retried
failure, a resource no node has refused before the run, the runner's SIGTERM handler kept, and a
node killed under a step (an error retried by ``OnError`` on another node).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.run.steps import find_tagged
from tests.conftest import Cli, template

pytestmark = pytest.mark.slow
MB = 1 << 20


class RayCluster:
    def __init__(self, root: Path) -> None:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # 127.0.0.1 stays 127.0.0.1
        # Token authentication, as `ray start --head` of Ray 2.60 turns it on when ~/.ray/auth_token
        # exists: the nodes (started from this process) run with RAY_AUTH_MODE=token; the drivers
        # (`orchestrator run`, see ``driver_env``) have the token but not the mode.
        self.saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()})
        from ray._raylet import Config
        from ray.cluster_utils import Cluster

        Config.initialize("")  # Ray read its config when imported: this process is in token mode too

        self.root = root
        self.cluster = Cluster(initialize_head=True, head_node_args=self.node_args("node1"))
        self.node2 = self.cluster.add_node(**self.node_args("node2"))
        self.address = self.cluster.address
        self.env = {"ORCHESTRATOR_EXECUTOR": f"ray:{self.address}", "ORCHESTRATOR_KILL_GRACE": "1",
                    "ORCHESTRATOR_RAY_PENDING_CHECK": "1"}
        self.node4: Any = None

    def node_args(self, name: str, **extra: float) -> dict[str, Any]:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        return {"num_cpus": 1, "resources": {name: 100, **extra}, "object_store_memory": 80 * MB,
                "node_ip_address": "127.0.0.1", "include_dashboard": False,
                "env_vars": {"ORCHESTRATOR_RAY_WORKDIR": str(self.root / name)}}


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    c = RayCluster(tmp_path_factory.mktemp("ray-nodes"))
    try:
        yield c
    finally:
        c.cluster.shutdown()
        for k, v in c.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def driver_env(cli: Cli) -> Cli:
    """A driver as a user's shell has it: the cluster's token, no RAY_AUTH_MODE."""
    cli.env.pop("RAY_AUTH_MODE", None)
    return cli


def test_the_ray_executor_on_a_two_node_cluster(tmp_path: Path, ray_cluster: RayCluster,
                                                request: pytest.FixtureRequest) -> None:
    scenarios = [steps_run_on_both_nodes_and_exchange_data_without_a_shared_directory,
                 lambda cli, c: nodes_read_and_write_s3_buckets_themselves(cli, c, request),
                 lambda cli, c: resume_finds_the_outputs_a_node_already_uploaded(cli, c, request),
                 lambda cli, c: one_step_through_ray_client_with_s3_artifacts(cli, c, request),
                 lambda cli, c: an_output_folder_inside_a_bucket_input_folder(cli, c, request),
                 stop_of_a_remote_step_with_its_log_and_metrics_streamed_while_it_runs,
                 kill_9_of_the_driver_ends_dead_and_its_step_on_the_node_is_killed,
                 deadline_and_retry_behave_as_locally,
                 a_resource_no_node_has_is_refused_before_the_run,
                 a_driver_without_the_clusters_token_is_refused_at_once,
                 connecting_keeps_the_processes_sigterm_handler,
                 a_node_that_dies_under_a_step_is_an_error_retried_elsewhere,  # these change the nodes: last
                 a_step_whose_only_node_died_before_it_started_fails_instead_of_waiting]
    for n, scenario in enumerate(scenarios):
        home = tmp_path / (scenario.__name__ if scenario.__name__ != "<lambda>" else f"s3-{n}")[:40]
        home.mkdir()
        scenario(driver_env(Cli(home)), ray_cluster)


def _pinned(name: str, node: str, script: str, extra: str = "", inputs: str = "", outputs: str = "") -> str:
    return f"""
- name: {name}
{extra}{inputs}{outputs}  container:
    image: python:3.11
    command: [sh, -c]
    args:
    - |
{_indent(script, 6)}
    resources:
      requests:
        ray.io/{node}: "1"
"""


def _cleaned(root: str | Path) -> bool:
    """No step directory is left in a node root, and no worker records a step (a worker's own
    records, ``.records/PID.steps``, stay while it lives; its watchdog removes them when it exits)."""
    rdir = Path(root) / ".records"
    records = [rdir / e for e in os.listdir(rdir)] if rdir.is_dir() else []
    return not set(os.listdir(root)) - {".records"} and all(not r.read_text() for r in records if r.exists())


def _a_then_b(a: str, b: str, name: str, output: str) -> str:
    """A dag ``main``: task ``a`` (template ``a``), then ``b`` whose input ``name`` is a's ``output``."""
    return textwrap.dedent(f"""
        - name: main
          dag:
            tasks:
            - name: a
              template: {a}
            - name: b
              template: {b}
              dependencies: [a]
              arguments:
                artifacts:
                - name: {name}
                  from: "{{{{tasks.a.outputs.artifacts.{output}}}}}"
    """)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.strip("\n").splitlines())


METRIC = """printf '{"t":"metric","name":"loss","value":0.25,"step":1,"timestamp":"2026-01-01T00:00:00Z"}\\n' >> "$ORCHESTRATOR_TRACKING_FILE"\n"""


def steps_run_on_both_nodes_and_exchange_data_without_a_shared_directory(cli: Cli, ray_cluster: RayCluster) -> None:
    produce = _pinned("produce", "node1", "pwd\necho hello from node1 > {{outputs.artifacts.out.path}}\n" + METRIC,
                      outputs="  outputs:\n    artifacts:\n    - name: out\n      path: /tmp/out.txt\n      globalName: out\n")
    consume = _pinned("consume", "node2", "pwd\necho {{inputs.artifacts.data.path}}\ncat {{inputs.artifacts.data.path}}"
                      '\necho ATTESTED\ncat "$ORCHESTRATOR_ATTESTED_INPUTS"',
                      inputs="  inputs:\n    artifacts:\n    - name: data\n      path: /tmp/in.txt\n")
    wf = cli.write("two.yaml", template("two-nodes", _a_then_b("produce", "consume", "data", "out") + produce + consume))
    out = cli.run_json(str(wf), env=ray_cluster.env)
    assert out["status"] == "COMPLETED", out
    eid = out["id"]
    steps = cli.home / "executions" / eid / "steps"
    log_a = (steps / "a" / "attempt-1.log").read_text()
    log_b = (steps / "b" / "attempt-1.log").read_text()
    n1, n2 = str(ray_cluster.root / "node1"), str(ray_cluster.root / "node2")
    assert f"\n{n1}/{eid}-" in log_a  # a's working directory: under node1's root
    lines_b = log_b.splitlines()
    work_b = lines_b[1].removesuffix("/fs")  # pwd: the step's directory on node2 (or its fs/)
    assert work_b.startswith(f"{n2}/{eid}-") and lines_b[2] == work_b + "/fs/tmp/in.txt"
    assert "hello from node1" in log_b  # shipped from node1's step through the driver
    attested = json.loads(log_b.split("ATTESTED\n", 1)[1])["inputs"]["data"]  # a's output, this execution
    assert attested["path"] == lines_b[2]  # the node's copy: what a scoring step compares and hashes
    assert attested["sha256"] == hashlib.sha256(b"hello from node1\n").hexdigest()
    assert str(cli.home) not in log_a + log_b  # no step saw the driver's paths
    where = [json.loads((steps / s / "ray-1.json").read_text()) for s in ("a", "b")]
    assert where[0]["node"] and where[1]["node"] and where[0]["node"] != where[1]["node"]
    assert not where[0]["orchestrator_imported"] and not where[1]["orchestrator_imported"]  # nodes need Ray only
    art = [a for a in cli.json("artifacts", "list") if a["name"] == "out"][0]
    stored = Path(cli.json("artifacts", "show", art["id"])["localPath"])
    files = [stored] if stored.is_file() else [f for f in stored.rglob("*") if f.is_file()]
    assert [f.read_text() for f in files] == ["hello from node1\n"]
    assert '"loss"' in json.dumps(cli.json("metrics", eid))
    assert _cleaned(n1) and _cleaned(n2)  # the nodes' working directories are removed


S3_STEP = """\
import os, pathlib, shutil
src, out = pathlib.Path("{{inputs.artifacts.data.path}}"), pathlib.Path("{{outputs.artifacts.model.path}}")
shutil.copytree(src, out / "copy", dirs_exist_ok=True)
(out / "result.txt").write_text("trained on " + ",".join(sorted(p.name for p in src.rglob("*"))) + "\\n")
print("aws variables in the step:", sorted(k for k in os.environ if k.startswith("AWS")), os.getcwd())
"""


def nodes_read_and_write_s3_buckets_themselves(cli: Cli, ray_cluster: RayCluster, request: pytest.FixtureRequest) -> None:
    """A step pinned to node2 reads an input from one bucket and writes its globalName output to the
    ``default`` bucket, a step on node1 reads that output back: the driver downloads nothing and
    receives no output bytes; the digest is a local output's; no credential in a log or record."""
    import sqlite3

    from orchestrator.store.artifacts import tree_digest
    from orchestrator.store.objects_s3 import download

    try:
        s3 = request.getfixturevalue("s3")
    except pytest.skip.Exception:
        return  # moto is not installed: the S3 scenario alone is left out
    inputs, outputs = s3.bucket("in"), s3.bucket("out")
    c = s3.client()
    c.put_object(Bucket=inputs, Key="team/ds/train.csv", Body=b"x,y\n1,2\n")
    c.put_object(Bucket=inputs, Key="team/ds/more/notes.txt", Body=b"notes\n")
    for name, bucket, prefix in (("indata", inputs, ["--path-prefix", "team"]), ("default", outputs, [])):
        cli("object-stores", "create", name, "--bucket", bucket, "--endpoint", s3.host_port, "--usehttps", "0",
            "--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET", *prefix, check=0,
            env={"KEY_ID": s3.access_key_id, "KEY_SECRET": s3.secret_access_key})
    train = f"""
- name: train
  inputs:
    artifacts:
    - {{name: data, path: /app/data/}}
  outputs:
    artifacts:
    - {{name: model, path: /app/model/, globalName: model, archive: {{none: {{}}}}}}
  script:
    image: python:3.11-slim
    command: [python3]
    source: |
{_indent(S3_STEP, 6)}
    resources:
      requests:
        ray.io/node2: "1"
"""
    use = _pinned("use", "node1", "cat {{inputs.artifacts.m.path}}/result.txt",
                  inputs="  inputs:\n    artifacts:\n    - name: m\n      path: /tmp/m/\n")
    wf = cli.write("s3.yaml", template("s3-on-ray", _a_then_b("train", "use", "m", "model") + train + use))
    out = cli.run_json(str(wf), "--artifact", "data=ai://indata/ds", env=ray_cluster.env)
    assert out["status"] == "COMPLETED", out
    eid = out["id"]
    steps = cli.home / "executions" / eid / "steps"
    log_a, log_b = (steps / "a" / "attempt-1.log").read_text(), (steps / "b" / "attempt-1.log").read_text()
    assert "aws variables in the step: []" in log_a and str(ray_cluster.root / "node2") in log_a, log_a
    assert "trained on more,notes.txt,train.csv" in log_b  # node1 read a's output from the bucket
    art = [a for a in cli.json("artifacts", "list") if a["name"] == "model"][0]
    shown = cli.json("artifacts", "show", art["id"])
    assert shown["url"] == f"ai://default/{eid}/model" and shown["localPath"] is None
    got = cli.tmp / "got"
    download(s3.target(outputs), f"{eid}/model", got)
    local = cli.tmp / "local"
    (local / "copy" / "more").mkdir(parents=True)
    (local / "copy" / "train.csv").write_bytes(b"x,y\n1,2\n")
    (local / "copy" / "more" / "notes.txt").write_bytes(b"notes\n")
    (local / "result.txt").write_text("trained on more,notes.txt,train.csv\n")
    assert shown["digest"] == tree_digest(local) == tree_digest(got)  # as a local run stores it
    # the driver neither downloaded the input nor received the output's bytes
    names = {p.name for p in cli.home.rglob("*")}
    assert not names & {"train.csv", "notes.txt", "result.txt"}, sorted(names)
    assert not (cli.home / "cache" / "s3").exists()
    secret = s3.secret_access_key
    for root in (cli.home, ray_cluster.root):
        for path in root.rglob("*"):
            if path.is_file() and path.suffix not in (".db", ".db-wal", ".db-shm"):
                assert secret.encode() not in path.read_bytes(), path
    db = sqlite3.connect(cli.home / "orchestrator.db")
    try:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            if table != "object_stores":  # the one place credentials are kept
                for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - names from sqlite_master
                    assert secret not in repr(row), (table, row)
    finally:
        db.close()
    assert _cleaned(ray_cluster.root / "node1") and _cleaned(ray_cluster.root / "node2")


def _s3_default(cli: Cli, request: pytest.FixtureRequest, name: str) -> tuple[Any, str] | None:
    """The moto server and a fresh bucket ``name``, the store's ``default`` object store; None without moto."""
    try:
        s3 = request.getfixturevalue("s3")
    except pytest.skip.Exception:
        return None
    bucket = s3.bucket(name)
    cli("object-stores", "create", "default", "--bucket", bucket, "--endpoint", s3.host_port, "--usehttps", "0",
        "--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET", check=0,
        env={"KEY_ID": s3.access_key_id, "KEY_SECRET": s3.secret_access_key})
    return s3, bucket


def resume_finds_the_outputs_a_node_already_uploaded(cli: Cli, ray_cluster: RayCluster,
                                                     request: pytest.FixtureRequest) -> None:
    """``a`` (node2) uploads its globalName output to the bucket, ``b`` fails; the resumed
    execution does not run ``a`` again: its output is found in the bucket (not downloaded by the
    driver) and read there by ``b``'s node."""
    if _s3_default(cli, request, "resume") is None:
        return
    flag = cli.tmp / "fail-b"
    flag.write_text("x")
    a = _pinned("make", "node2", 'echo made by a > {{outputs.artifacts.out.path}}/result.txt\necho a ran',
                outputs="  outputs:\n    artifacts:\n    - {name: out, path: /tmp/out/, globalName: made, "
                        "archive: {none: {}}}\n")
    b = _pinned("use", "node1", f'[ ! -e {flag} ] || exit 4\ncat {{{{inputs.artifacts.m.path}}}}/result.txt',
                inputs="  inputs:\n    artifacts:\n    - name: m\n      path: /tmp/m/\n")
    wf = cli.write("resume.yaml", template("resume-on-ray", _a_then_b("make", "use", "m", "out") + a + b))
    first = cli.run_json(str(wf), check=None, env=ray_cluster.env)
    assert first["status"] == "DEAD", first
    flag.unlink()
    resumed = cli.json("executions", "resume", first["id"], "-q", env=ray_cluster.env)
    assert resumed["status"] == "COMPLETED" and resumed["parentExecutionId"] == first["id"], resumed
    steps = {s["name"]: s for s in cli.json("executions", "show", resumed["id"])["steps"] if s["kind"] == "leaf"}
    assert steps["a"]["state"] == "CACHED" and steps["a"]["cache"] == f"reused from execution {first['id']}"
    assert steps["a"]["attempts"] == 0  # a did not run again: no task, no log
    assert not list((cli.home / "executions" / resumed["id"]).glob("steps/a/*-1.*"))
    log_b = (cli.home / "executions" / resumed["id"] / "steps" / "b" / "attempt-1.log").read_text()
    assert "made by a" in log_b
    placed = json.loads((cli.home / "executions" / resumed["id"] / "steps" / "b" / "ray-1.json").read_text())
    assert "/node1/" in placed["workdir"]
    assert not (cli.home / "cache" / "s3").exists()  # the driver downloaded nothing: b's node read the bucket
    assert "result.txt" not in {p.name for p in cli.home.rglob("*")}


def one_step_through_ray_client_with_s3_artifacts(cli: Cli, ray_cluster: RayCluster,
                                                   request: pytest.FixtureRequest) -> None:
    """``--executor ray://HOST:PORT``: a Ray Client server (``ray.util.client.server``, one process
    connected to the cluster) in front of the same cluster; the step on node2 reads its input from
    the bucket and writes its globalName output there, the driver downloads nothing."""
    import socket

    got = _s3_default(cli, request, "client")
    if got is None:
        return
    s3, bucket = got
    s3.client().put_object(Bucket=bucket, Key="in/rows.csv", Body=b"a,b\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ray.util.client.server", f"--address={ray_cluster.address}",
                               "--host=127.0.0.1", f"--port={port}", "--mode=legacy"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    try:
        step = _pinned("main", "node2", "cat {{inputs.artifacts.data.path}}/rows.csv\n"
                       "cp {{inputs.artifacts.data.path}}/rows.csv {{outputs.artifacts.out.path}}/copy.csv",
                       inputs="  inputs:\n    artifacts:\n    - {name: data, path: /tmp/in/}\n",
                       outputs="  outputs:\n    artifacts:\n    - {name: out, path: /tmp/out/, globalName: "
                               "copied, archive: {none: {}}}\n")
        wf = cli.write("client.yaml", template("through-ray-client", step))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        env = {**ray_cluster.env, "ORCHESTRATOR_EXECUTOR": f"ray://127.0.0.1:{port}"}
        out = cli.run_json(str(wf), "--artifact", "data=ai://default/in", env=env)
        assert out["status"] == "COMPLETED", out
    finally:
        server.terminate()
        server.wait(timeout=30)
    eid = out["id"]
    log = (cli.home / "executions" / eid / "steps" / "main" / "attempt-1.log").read_text()
    assert "a,b" in log and str(ray_cluster.root / "node2") in json.dumps(
        json.loads((cli.home / "executions" / eid / "steps" / "main" / "ray-1.json").read_text()))
    art = [a for a in cli.json("artifacts", "list") if a["name"] == "copied"][0]
    shown = cli.json("artifacts", "show", art["id"])
    assert shown["url"] == f"ai://default/{eid}/copied" and shown["localPath"] is None
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix=eid).get("Contents", [])]
    assert keys == [f"{eid}/copied/copy.csv"], keys
    assert not (cli.home / "cache" / "s3").exists() and "rows.csv" not in {p.name for p in cli.home.rglob("*")}


def an_output_folder_inside_a_bucket_input_folder(cli: Cli, ray_cluster: RayCluster,
                                                  request: pytest.FixtureRequest) -> None:
    """The output folder ``/tmp/code/out/`` lies inside the input folder ``/tmp/code/``, which
    node2 downloads from a bucket: the folder is there for the step, as locally."""
    got = _s3_default(cli, request, "nested")
    if got is None:
        return
    s3, bucket = got
    s3.client().put_object(Bucket=bucket, Key="indir/main.py", Body=b"print(1)\n")
    step = _pinned("main", "node2", "ls {{inputs.artifacts.code.path}}\necho made > {{outputs.artifacts.res.path}}/x.txt",
                   inputs="  inputs:\n    artifacts:\n    - {name: code, path: /tmp/code/}\n",
                   outputs="  outputs:\n    artifacts:\n    - {name: res, path: /tmp/code/out/}\n")
    wf = cli.write("nested.yaml", template("nested-output", step))
    out = cli.run_json(str(wf), "--artifact", "code=ai://default/indir/", check=None, env=ray_cluster.env)
    assert out["status"] == "COMPLETED", out  # the step's last command wrote into the output folder
    made = list((cli.home / "executions" / out["id"]).rglob("x.txt"))  # shipped back from node2
    assert [p.read_text() for p in made] == ["made\n"], made


def _start(cli: Cli, wf: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, Path]:
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "-q", str(wf)], cwd=cli.tmp, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**cli.env, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for log in (cli.home / "executions").glob("*/steps/main/attempt-1.log"):  # no CLI call per poll
            if "tick" in log.read_text():
                return proc, log.parts[-4], log
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the step did not start")


def _sleeper(cli: Cli, name: str) -> Path:
    script = "trap 'echo got TERM; echo bye after TERM; exit 3' TERM\necho tick\n" + METRIC + "sleep 300 &\nwait\n"
    return cli.write(f"{name}.yaml", template(name, _pinned("main", "node2", script)))


def _gone(eid: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and find_tagged(eid + "-", prefix=True):
        time.sleep(0.1)
    return not find_tagged(eid + "-", prefix=True)


def stop_of_a_remote_step_with_its_log_and_metrics_streamed_while_it_runs(cli: Cli,
                                                                             ray_cluster: RayCluster) -> None:
    proc, eid, log = _start(cli, _sleeper(cli, "stopme"), ray_cluster.env)
    try:
        assert find_tagged(eid + "-", prefix=True)  # the step runs (on node2, a process of this machine)
        tracking = log.parent / "tracking-1.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "loss" not in (tracking.read_text() if tracking.exists() else ""):
            time.sleep(0.1)
        assert '"loss"' in tracking.read_text()  # streamed back while the step still runs
        assert cli.json("executions", "show", eid)["status"] == "RUNNING"
        cli("executions", "stop", eid, check=0)
        assert proc.wait(timeout=60) != 0
        assert not find_tagged(eid + "-", prefix=True)  # the runner ended after the step's processes did
    finally:
        proc.kill()
    shown = cli.json("executions", "show", eid)
    assert shown["status"] == "STOPPED", shown
    text = log.read_text()  # streamed until the step exited: what it printed after SIGTERM is there
    assert "got TERM" in text and "bye after TERM" in text, text
    assert _cleaned(ray_cluster.root / "node2")


def kill_9_of_the_driver_ends_dead_and_its_step_on_the_node_is_killed(cli: Cli, ray_cluster: RayCluster) -> None:
    proc, eid, _log = _start(cli, _sleeper(cli, "killme"), ray_cluster.env)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert _gone(eid)  # Ray cancelled the dead driver's task; the task killed the step's group
    cli("executions", "list", check=0)  # every CLI start reaps
    shown = cli.json("executions", "show", eid)
    assert shown["status"] == "DEAD" and "runner lost" in shown["statusMessage"], shown


def deadline_and_retry_behave_as_locally(cli: Cli, ray_cluster: RayCluster) -> None:
    flaky = _pinned("flaky", "node1", 'echo attempt {{retries}}\n[ "{{retries}}" = 1 ]',
                    extra="  retryStrategy:\n    limit: 2\n    retryPolicy: Always\n")
    wf = cli.write("retry.yaml", template("retry", flaky, entrypoint="flaky"))
    out = cli.run_json(str(wf), env=ray_cluster.env)
    assert out["status"] == "COMPLETED", out
    steps = cli.home / "executions" / out["id"] / "steps" / "flaky"
    assert "attempt 0" in (steps / "attempt-1.log").read_text()
    assert "attempt 1" in (steps / "attempt-2.log").read_text()
    slow = _pinned("slow", "node2", "sleep 300", extra="  activeDeadlineSeconds: 1\n")
    wf = cli.write("deadline.yaml", template("deadline", slow, entrypoint="slow"))
    out = cli.run_json(str(wf), check=None, env=ray_cluster.env)
    assert out["status"] == "DEAD", out
    assert "activeDeadlineSeconds" in json.dumps(cli.json("executions", "show", out["id"]))
    assert _gone(out["id"])


def a_resource_no_node_has_is_refused_before_the_run(cli: Cli, ray_cluster: RayCluster) -> None:
    big = _pinned("big", "node3", "true")
    wf = cli.write("big.yaml", template("too-big", big, entrypoint="big"))
    p = cli("run", str(wf), env=ray_cluster.env)
    assert p.returncode == 2 and "node3" in p.stderr and "no node of the Ray cluster" in p.stderr
    cpus = _pinned("cpus", "node1", "true").replace('ray.io/node1: "1"', 'cpu: "64"')
    wf = cli.write("cpus.yaml", template("too-many-cpus", cpus, entrypoint="cpus"))
    p = cli("run", str(wf), env=ray_cluster.env)
    assert p.returncode == 2 and "CPU=64" in p.stderr, p.stderr
    assert cli.json("executions", "list") == []  # exit 2: nothing is written


def a_driver_without_the_clusters_token_is_refused_at_once(cli: Cli, ray_cluster: RayCluster) -> None:
    """The cluster uses token authentication; a driver with no token anywhere (no RAY_AUTH_TOKEN,
    no ~/.ray/auth_token) is refused naming the cause, before anything is written."""
    cli.env.pop("RAY_AUTH_TOKEN", None)
    empty = cli.tmp / "no-token-home"
    empty.mkdir()
    wf = cli.write("hello.yaml", template("hello", _pinned("main", "node1", "echo hi"), entrypoint="main"))
    p = cli("run", str(wf), env={**ray_cluster.env, "HOME": str(empty)})
    assert p.returncode == 2 and "token authentication" in p.stderr and "RAY_AUTH_TOKEN" in p.stderr, p.stderr
    assert "InvalidAuthToken" not in p.stderr
    assert cli.json("executions", "list") == []


def connecting_keeps_the_processes_sigterm_handler(cli: Cli, ray_cluster: RayCluster) -> None:
    code = ("import signal, sys\n"
            "def mine(*a): pass\n"
            "signal.signal(signal.SIGTERM, mine)\n"
            "from orchestrator.run.ray_exec import connect\n"
            f"connect({ray_cluster.address!r})\n"
            "import ray; assert ray.is_initialized()\n"
            "print(signal.getsignal(signal.SIGTERM) is mine)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "True", p.stderr


def a_node_that_dies_under_a_step_is_an_error_retried_elsewhere(cli: Cli, ray_cluster: RayCluster) -> None:
    """Runs last: it adds a node ``node3`` with a ``spare`` slot, kills it under the
    step, and adds ``node4`` with the slot for the retry."""
    c = ray_cluster.cluster
    node3 = c.add_node(**ray_cluster.node_args("node3", spare=1))
    script = ('echo tick\nif [ "{{retries}}" = 0 ]; then sleep 300; fi\necho survived on attempt {{retries}}')
    spare = _pinned("main", "spare", script, extra="  retryStrategy:\n    limit: 1\n    retryPolicy: OnError\n")
    wf = cli.write("spare.yaml", template("node-dies", spare))
    proc, eid, log = _start(cli, wf, ray_cluster.env)  # attempt 1 runs on node3, the only spare slot
    try:
        t0 = time.monotonic()
        ray_cluster.node4 = c.add_node(**ray_cluster.node_args("node4", spare=1))  # where the retry can go
        t1 = time.monotonic()
        c.remove_node(node3, allow_graceful=False)  # its raylet and workers are killed
        t2 = time.monotonic()
        assert proc.wait(timeout=120) == 0
        print(f"add {t1 - t0:.1f} s, remove {t2 - t1:.1f} s, then the run ended in {time.monotonic() - t2:.1f} s")
    finally:
        proc.kill()
    shown = cli.json("executions", "show", eid)
    assert shown["status"] == "COMPLETED", shown
    first = log.read_text()
    assert "tick" in first and "the step's Ray task failed: NodeDiedError" in first, first
    assert "survived on attempt 1" in (log.parent / "attempt-2.log").read_text()
    placed = [json.loads((log.parent / f"ray-{n}.json").read_text())["workdir"] for n in (1, 2)]
    assert "/node3/" in placed[0] and "/node4/" in placed[1]


def a_step_whose_only_node_died_before_it_started_fails_instead_of_waiting(cli: Cli, ray_cluster: RayCluster) -> None:
    """``b`` needs the ``spare`` slot only node4 has; node4 goes away while ``a`` runs: once b's
    task has waited ORCHESTRATOR_RAY_PENDING_CHECK (1 s here) and no alive node can hold it, the
    attempt fails as an error (it is not left waiting for a node that never comes)."""
    a = _pinned("main", "node1", "echo tick\nsleep 2")
    b = _pinned("later", "spare", "echo never")
    wf = cli.write("orphan.yaml", template("orphaned-step", textwrap.dedent("""
        - name: root
          dag:
            tasks:
            - name: main
              template: main
            - name: later
              template: later
              dependencies: [main]
    """) + a + b, entrypoint="root"))
    proc, eid, _log = _start(cli, wf, ray_cluster.env)
    try:
        ray_cluster.cluster.remove_node(ray_cluster.node4)
        assert proc.wait(timeout=120) != 0
    finally:
        proc.kill()
    shown = cli.json("executions", "show", eid)
    assert shown["status"] == "DEAD", shown
    assert "cannot be scheduled" in json.dumps(shown) and "spare=1" in json.dumps(shown)
