"""The container executor's pods, isolation, registry pulls and deployment reaping (issue 13).

Covered with real podman containers: a sidecar reached on ``localhost`` from the main container
(one pod) and a containerSet whose containers share an emptyDir volume; the created container's
configuration as the engine reports it (``podman inspect``: not privileged, not the host's
network, no engine socket mounted, its own user namespace, ``runAsUser``/``runAsGroup``,
``readOnlyRootFilesystem``); ``runAsNonRoot`` refusing an image that runs as root; a pull with
``imagePullSecrets`` from a real registry (Debian's ``docker-registry``, the CNCF distribution
registry, with htpasswd auth on 127.0.0.1) — and a wrong password failing the step with the
engine's reason, the secret never printed; a deployment manager killed with -9, then the next one
removing its predictor container.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, template
from tests.integration import container_images as images

pytestmark = pytest.mark.slow
PODMAN = {"ORCHESTRATOR_EXECUTOR": "podman", "ORCHESTRATOR_KILL_GRACE": "1"}


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> str:
    return images.busybox_image(tmp_path_factory.mktemp("bb"))


def test_a_sidecar_is_reached_on_localhost_and_a_container_set_shares_its_volume(cli: Cli, busybox: str) -> None:
    wf = cli.write("pod.yaml", template("pod-steps", f"""
        - name: main
          steps:
          - - {{name: web, template: with-sidecar}}
          - - {{name: set, template: group}}
        - name: with-sidecar
          container:
            image: {busybox}
            command: [sh, -c]
            args: ["for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
                    wget -qO- http://127.0.0.1:8081/x && exit 0; sleep 0.25; done; exit 1"]
          sidecars:
          - name: web
            image: {busybox}
            command: [sh, -c]
            args: ["mkdir -p /tmp/www && echo from-the-sidecar > /tmp/www/x &&
                    exec busybox httpd -f -p 8081 -h /tmp/www"]
        - name: group
          volumes: [{{name: ws, emptyDir: {{}}}}]
          containerSet:
            volumeMounts: [{{name: ws, mountPath: /workspace}}]
            containers:
            - {{name: main, image: {busybox}, command: [sh, -c, "cat /workspace/a; cat /etc/hostname"],
                dependencies: [a]}}
            - {{name: a, image: {busybox}, command: [sh, -c, "echo made-by-a > /workspace/a"]}}
    """))
    out = cli.run_json(str(wf), env=PODMAN)
    assert out["status"] == "COMPLETED", out
    logs = cli("logs", out["id"], check=0).stdout
    assert "from-the-sidecar" in logs and "made-by-a" in logs
    assert os.uname().nodename not in logs  # nothing ran on this host
    assert images.containers_of(out["id"]) == []
    pods = images.podman("pod", "ps", "-q", "--filter", f"label=orchestrator.execution={out['id']}").stdout
    assert pods.split() == []  # the pods went with their steps


def test_a_step_starts_in_its_images_workdir_and_relative_outputs_are_collected(cli: Cli, tmp_path: Path) -> None:
    image = images.workdir_image(tmp_path)
    wf = cli.write("wd.yaml", template("image-workdir", f"""
        - name: main
          outputs:
            parameters:
            - name: where
              valueFrom:
                path: /srv/job/where.txt
          script:
            image: {image}
            command: [sh]
            source: |
              pwd > where.txt
              echo "ran in $(pwd)"
    """))
    out = cli.run_json(str(wf), env=PODMAN)
    assert out["status"] == "COMPLETED", out
    assert "ran in /srv/job" in cli("logs", out["id"], check=0).stdout
    copied = next((cli.home / "executions" / out["id"]).rglob("fs/srv/job/where.txt"))  # collected from there
    assert copied.read_text() == "/srv/job\n"


def _start(cli: Cli, wf: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "-q", str(wf)], cwd=cli.tmp, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**cli.env, **PODMAN})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = cli.json("executions", "list") if cli.home.exists() else []
        running = images.podman("ps", "--format", "{{.Names}}", "--filter",
                                f"label=orchestrator.execution={rows[0]['id']}").stdout if rows else ""
        ours = [n for n in running.split() if n.startswith("orch-")]  # not the pod's infra container
        if len(ours) >= 2:
            return proc, rows[0]["id"], ours
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("the step's containers did not start")


def test_the_engine_shows_an_unprivileged_isolated_container(cli: Cli, busybox: str) -> None:
    wf = cli.write("iso.yaml", template("isolated", f"""
        - name: main
          container:
            image: {busybox}
            command: [sleep, "300"]
            securityContext:
              runAsUser: 1234
              runAsGroup: 2345
              runAsNonRoot: true
              readOnlyRootFilesystem: true
              allowPrivilegeEscalation: false
          sidecars:
          - name: helper
            image: {busybox}
            command: [sleep, "300"]
            securityContext: {{runAsUser: 4321}}
    """))
    proc, eid, ids = _start(cli, wf)
    try:
        shown = json.loads(images.podman("inspect", *ids).stdout)
        pod = json.loads(images.podman("pod", "inspect", shown[0]["Pod"]).stdout)
    finally:
        cli("executions", "stop", eid, check=0)
        proc.wait(timeout=60)
    main = next(c for c in shown if not c["Name"].endswith("-sc0"))
    side = next(c for c in shown if c["Name"].endswith("-sc0"))
    assert side["Config"]["User"] == "4321"  # the sidecar's own securityContext
    assert side["HostConfig"]["ReadonlyRootfs"] is False
    host = main["HostConfig"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] != "host" and host["PidMode"] != "host" and host["IpcMode"] != "host"
    assert main["Config"]["User"] == "1234:2345" and host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in " ".join(host["SecurityOpt"] or [])
    for c in shown:
        assert c["Pod"], "sidecar and main share a pod"
        sources = " ".join(m["Source"] + " " + m["Destination"] for m in c["Mounts"])
        assert "docker.sock" not in sources and "podman.sock" not in sources
        assert not c["HostConfig"]["Privileged"]
    pod = pod[0] if isinstance(pod, list) else pod
    assert pod["InfraConfig"]["HostNetwork"] is False
    if os.geteuid() == 0:  # rootful: its own user namespace (rootless podman is the user's one already)
        for c in shown:
            maps = (c["HostConfig"].get("IDMappings") or {}).get("UidMap") or []
            assert maps and all(m.split(":")[1] != "0" for m in maps), maps  # root inside is not root here
    assert cli.json("executions", "show", eid)["status"] == "STOPPED"
    assert images.containers_of(eid) == []


def test_user_namespace_maps_root_to_an_unprivileged_host_id(cli: Cli, busybox: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("rootless podman: the container already runs in the user's namespace")
    wf = cli.write("ns.yaml", template("userns", f"""
        - name: main
          container:
            image: {busybox}
            command: [sh, -c, "cat /proc/self/uid_map; touch $HOME/made-inside"]
    """))
    out = cli.run_json(str(wf), env=PODMAN)
    assert out["status"] == "COMPLETED", out
    line = next(ln for ln in cli("logs", out["id"], check=0).stdout.splitlines() if ln.split()[:1] == ["0"])
    inside, outside, _size = line.split()[-3:]
    assert inside == "0" and outside != "0"  # the container's root is not this machine's
    made = next((cli.home / "executions" / out["id"]).rglob("made-inside"))
    assert made.stat().st_uid == int(outside)


def test_run_as_non_root_refuses_an_image_that_runs_as_root(cli: Cli, busybox: str) -> None:
    wf = cli.write("nr.yaml", template("non-root", f"""
        - name: main
          container:
            image: {busybox}
            command: ["true"]
            securityContext:
              runAsNonRoot: true
    """))
    out = cli.run_json(str(wf), check=None, env=PODMAN)
    assert out["status"] == "DEAD", out
    msg = json.dumps(cli.json("executions", "show", out["id"]))
    assert "runAsNonRoot" in msg and "root" in msg
    assert images.containers_of(out["id"]) == []


# ---------------------------------------------------------------------- a real registry
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path, busybox: str) -> Iterator[tuple[str, Path]]:
    """The CNCF distribution registry on 127.0.0.1 (plain HTTP, htpasswd auth) holding the busybox
    image as ``team/busybox:1``; yields the registry's host:port and a registries.conf marking it
    insecure (plain HTTP), as a team configures a registry without TLS."""
    exe = shutil.which("docker-registry") or shutil.which("registry")
    if not exe:
        pytest.skip("no registry binary (apt-get install docker-registry)")
    if not shutil.which("htpasswd"):
        pytest.skip("no htpasswd (apt-get install apache2-utils)")
    port = _free_port()
    hp = subprocess.run(["htpasswd", "-Bbn", "robot", "pw-Zq81"], capture_output=True, text=True, check=True)
    (tmp_path / "htpasswd").write_text(hp.stdout)
    (tmp_path / "registry.yml").write_text(f"""version: 0.1
log: {{level: error}}
storage: {{filesystem: {{rootdirectory: {tmp_path / 'blobs'}}}}}
http: {{addr: "127.0.0.1:{port}"}}
auth: {{htpasswd: {{realm: test, path: {tmp_path / 'htpasswd'}}}}}
""")
    proc = subprocess.Popen([exe, "serve", str(tmp_path / "registry.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        where = f"127.0.0.1:{port}"
        conf = tmp_path / "registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "{where}"\ninsecure = true\n')
        images.podman("push", "--tls-verify=false", "--creds", "robot:pw-Zq81", busybox, f"{where}/team/busybox:1")
        images.podman("rmi", "-f", f"{where}/team/busybox:1", check=False)
        yield where, conf
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _secret(cli: Cli, tmp: Path, name: str, where: str, password: str) -> None:
    auth = base64.b64encode(f"robot:{password}".encode()).decode()
    cfg = tmp / f"{name}.json"
    cfg.write_text(json.dumps({"auths": {where: {"auth": auth}}}))
    cli("registry-secrets", "create", name, "--from-file", str(cfg), check=0)
    cfg.unlink()


def test_image_pull_secrets_pull_from_a_real_registry(cli: Cli, tmp_path: Path,
                                                      registry: tuple[str, Path]) -> None:
    where, conf = registry
    env = {**PODMAN, "CONTAINERS_REGISTRIES_CONF": str(conf)}
    _secret(cli, tmp_path, "team-registry", where, "pw-Zq81")
    _secret(cli, tmp_path, "wrong-registry", where, "not-the-password")

    def run(secret: str) -> tuple[dict[str, object], str]:
        wf = cli.write(f"{secret}.yaml", template(f"pull-{secret}", f"""
            - name: main
              container:
                image: {where}/team/busybox:1
                imagePullPolicy: Always
                command: [sh, -c, "echo pulled-and-ran"]
        """, spec_extra=f"  imagePullSecrets:\n  - name: {secret}\n"))
        p = cli("run", "-q", str(wf), "--json", env=env, timeout=120)
        out = json.loads(p.stdout)
        return out, p.stdout + p.stderr + cli("logs", out["id"], check=None).stdout

    out, text = run("team-registry")
    assert out["status"] == "COMPLETED", text
    assert "pulled-and-ran" in text
    bad, text2 = run("wrong-registry")
    assert bad["status"] == "DEAD", text2
    shown = json.dumps(cli.json("executions", "show", bad["id"]))
    assert "container engine could not run the step" in shown and "team/busybox" in shown
    assert "unauthorized" in shown.lower() or "authentication" in shown.lower(), shown  # the engine's reason
    everything = text + text2 + shown + cli("registry-secrets", "list", "--json").stdout
    everything += "".join(p.read_text(errors="replace") for p in cli.home.rglob("*.log"))
    for value in ("pw-Zq81", "not-the-password", base64.b64encode(b"robot:pw-Zq81").decode()):
        assert value not in everything
    assert not list(cli.home.rglob("registry-auth/config.json"))  # credentials gone with the runs


# ---------------------------------------------------------------------- deployments
def test_a_killed_deployment_managers_container_is_removed_by_the_next(tmp_path: Path) -> None:
    from tests.integration.test_container_executor import SERVING, _server_with

    py = images.python_image(tmp_path)
    srv, cfg_id = _server_with(tmp_path, "serve.yaml", SERVING.replace("IMAGE", py), "own-image-server", "own-image",
                               {**PODMAN, "ORCHESTRATOR_DEPLOY_READY_TIMEOUT": "30"})

    def containers(dep_id: str) -> list[str]:
        return images.podman("ps", "-aq", "--filter", f"label=orchestrator.deployment={dep_id}").stdout.split()

    try:
        s, _, dep = srv.call("POST", "/v2/lm/deployments", {"configurationId": cfg_id})
        assert s == 202, dep
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.call("GET", f"/v2/lm/deployments/{dep['id']}")[2]["status"] != \
                "RUNNING":
            time.sleep(0.3)
        first = containers(dep["id"])
        assert len(first) == 1
        bound = json.loads(images.podman("inspect", first[0]).stdout)[0]["HostConfig"]["PortBindings"]
        assert [b["HostIp"] for b in bound["8080/tcp"]] == ["127.0.0.1"]  # KServe's 8080, on loopback only
        import sqlite3

        db = sqlite3.connect(f"file:{tmp_path / 'home' / 'orchestrator.db'}?mode=ro", uri=True)
        try:
            pid = int(db.execute("SELECT pid FROM deployment_manager WHERE id=1").fetchone()[0])
        finally:
            db.close()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert containers(dep["id"]) == first  # the manager is gone, its container is not
        deadline, now = time.monotonic() + 90, first
        while time.monotonic() < deadline and (set(now) & set(first) or not now):
            srv.call("GET", f"/v2/lm/deployments/{dep['id']}")  # the server starts a manager again
            time.sleep(0.5)
            now = containers(dep["id"])
        assert now and not set(now) & set(first), (first, now)  # the old one removed, a new one started
        assert srv.call("PATCH", f"/v2/lm/deployments/{dep['id']}", {"targetStatus": "STOPPED"})[0] == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and containers(dep["id"]):
            time.sleep(0.3)
        assert containers(dep["id"]) == []
    finally:
        srv.stop()
