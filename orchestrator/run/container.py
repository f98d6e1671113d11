"""The container executor: each leaf step runs as a container of its template's ``image``.

Owns: finding the engine (``podman`` or ``docker``; ``--executor container`` takes whichever is
installed, podman first), podman's own ``containers.conf`` (runc, cgroupfs, no default ulimits:
what works on machines where crun fails with "cgroups in hybrid mode"; ``$CONTAINERS_CONF`` wins),
building the ``ENGINE run`` command of a prepared leaf: ``--entrypoint`` = the template's
``command`` (the image's when none), arguments = ``args``, ``-w`` = ``workingDir``, environment =
the template's ``env`` (values travel in the engine client's environment, ``-e NAME``, never on
its command line), input artifacts mounted read-only at their declared paths, output artifact and
output parameter paths mounted from the step directory, the step directory itself (HOME, TMPDIR,
the tracking file, ``script.source``) mounted at its host path. The log is the attached engine
client's stdout/stderr, supervised like any step (:mod:`orchestrator.run.watch`). The step's life
as a container (stop as ``ENGINE stop -t GRACE``, OOMKilled, copy-out, removal) is
:mod:`orchestrator.run.container_step` (re-exported here). Every container carries the labels
``orchestrator.execution`` / ``orchestrator.token``: what the reaper removes after a kill -9 of
the runner (:mod:`orchestrator.run.container_reap`).

A step with sidecars or a ``containerSet`` runs as one podman pod (:mod:`orchestrator.run.container_pod`):
its sidecars start with the main container and are stopped when it ends, the other containers of a
containerSet run before "main" in dependency order, all sharing the network (``localhost``), the
step directory, the declared paths and the volumes; each has its own pull policy, resources and
``securityContext`` (a resource plan sizes the main container). Rootful podman gives every
container (or pod) its own user namespace. A ``runAsNonRoot`` step whose image would run as root
fails before it starts, as the kubelet refuses it.

Network (``$ORCHESTRATOR_CONTAINER_NETWORK``): podman's default here is
``slirp4netns:allow_host_loopback=true``, where the host's loopback is ``10.0.2.2`` — the step's
MLflow/tracking endpoints (``http://127.0.0.1:PORT``) are rewritten to it, nothing else of the
host is reachable; docker's default is its bridge with ``host.docker.internal:host-gateway``
(a loopback-only endpoint is then not reachable: use ``host``, only when you ask for it);
``none`` cuts the network. Security: never ``--privileged``, no engine socket mounted, no host
network unless asked, ``securityContext`` honoured (:mod:`orchestrator.run.container_spec`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.plan.graph import Node
from orchestrator.run import container_mounts, container_spec
from orchestrator.run.container_step import ContainerStep
from orchestrator.run.prepare import Prepared
from orchestrator.run.steps import StepProcess, StepSpec
from orchestrator.spec.image_ref import check_image

__all__ = ["CONF", "LABEL_EXECUTION", "LABEL_TOKEN", "MARKER", "ContainerExecutor", "ContainerStep", "engine_env",
           "find_engine"]

LABEL_EXECUTION = "orchestrator.execution"
LABEL_TOKEN = "orchestrator.token"
MARKER = "containers.engine"  # in the execution's workdir: which engine ran its steps (for the reaper)
CONF = """[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
_LOOPBACK = re.compile(r"^(https?://)(127\.0\.0\.1|localhost|\[::1\])(?=[:/]|$)")
_CLIENT_ONLY = ("PATH", "HOME", "TMPDIR", "CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "XDG_RUNTIME_DIR",
                "XDG_CONFIG_HOME", "DOCKER_HOST", "DOCKER_CONFIG", "CONTAINER_HOST")


def find_engine(choice: str) -> str:
    """The engine's executable for ``container`` | ``podman`` | ``docker``."""
    names = ("podman", "docker") if choice == "container" else (choice,)
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise UsageError(f"executor {choice!r}: no {' or '.join(names)} on PATH",
                     hint="install podman (apt-get install podman runc) or docker, or use --executor local")


def engine_env(engine: str) -> dict[str, str]:
    """The engine client's own environment (podman: our containers.conf unless one is set)."""
    env = {k: v for k, v in os.environ.items() if k in _CLIENT_ONLY or k.startswith(("LC_", "LANG"))}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if os.path.basename(engine) == "podman" and "CONTAINERS_CONF" not in env:
        conf = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "orchestrator" / "containers.conf"
        try:
            if not conf.is_file() or conf.read_text() != CONF:
                conf.parent.mkdir(parents=True, exist_ok=True)
                conf.write_text(CONF)
            env["CONTAINERS_CONF"] = str(conf)
        except OSError:
            pass
    return env


class ContainerExecutor:
    """Runs leaves as containers (see the module docstring)."""

    def __init__(self, choice: str = "container") -> None:
        self.engine = find_engine(choice)
        self.name = os.path.basename(self.engine)
        self.client_env = engine_env(self.engine)
        self.network = os.environ.get("ORCHESTRATOR_CONTAINER_NETWORK") or (
            "slirp4netns:allow_host_loopback=true" if self.name == "podman" else "bridge")
        self.gateway = {"slirp4netns:allow_host_loopback=true": "10.0.2.2", "bridge": "host.docker.internal"}.get(
            self.network, "")
        policy = os.environ.get("ORCHESTRATOR_PULL_POLICY", "")
        if policy and policy.lower() not in container_spec.PULL_POLICIES:
            raise UsageError(f"pull policy {policy!r} is not IfNotPresent, Always or Never")
        self.pull = container_spec.PULL_POLICIES.get(policy.lower(), "") if policy else ""
        self.steps: list[ContainerStep] = []
        self.ex_id = ""
        self.extras: dict[str, container_spec.ContainerExtras] = {}
        self.auth: Path | None = None
        self.auth_args: list[str] = []
        from orchestrator.run.container_pod import userns_args

        self.userns = userns_args(self.name)
        self.companions: dict[int, ContainerStep] = {}
        self.side_extras: dict[str, dict[str, container_spec.ContainerExtras]] = {}
        self.pods = 0
        self.mounts_volumes = True  # volumeMounts are the engine's -v, not the sandbox's binds

    # ---------------------------------------------------------------- the seam
    def open(self, r: Any) -> None:
        self.ex_id = r.ex.id
        r.sandbox = (False, f"{self.name} executor")  # the container shows declared paths itself
        spec = r.graph.spec
        text = str(r.store.executable_document(r.rg, spec.executable_id).get("text", ""))  # as registered
        for node in r.graph.leaves():
            t = node.template
            if t.name in self.extras:
                continue
            x = container_spec.template_extras(text, spec.doc_index, t.name, dict(t.labels))
            container_spec.check_machine(node.id, x)
            if (t.sidecars or t.before_main) and self.name != "podman":
                raise OrchestratorError(f"template {t.name!r} has sidecars or a containerSet: the {self.name} "
                                        "executor has no pods to share localhost between containers",
                                        hint="use --executor podman, or --executor local")
            if t.sidecars or t.before_main:
                self.side_extras[t.name] = container_spec.companion_extras(text, spec.doc_index, t.name)
                for side_name, sx in self.side_extras[t.name].items():
                    container_spec.check_machine(f"{node.id} ({side_name})", sx)
            if t.container is not None and not t.container.image:
                raise OrchestratorError(f"template {t.name!r} has no image: the {self.name} executor runs "
                                        "every step in its image", hint="set container.image, or use --executor local")
            self.extras[t.name] = x
        Path(r.workdir).mkdir(parents=True, exist_ok=True)
        (Path(r.workdir) / MARKER).write_text(self.engine + "\n")
        from orchestrator.run import container_auth  # imagePullSecrets -> the engine's credentials

        self.auth = container_auth.write_auth(r.store, container_spec.pull_secrets(text, spec.doc_index),
                                              Path(r.workdir))
        if self.auth is not None:
            if self.name == "docker":
                self.client_env = {**self.client_env, "DOCKER_CONFIG": str(self.auth)}
            else:
                self.auth_args = ["--authfile", str(self.auth / "config.json")]

    def submit(self, r: Any, node: Node, prep: Prepared, attempt: int) -> ContainerStep:
        t = node.template
        c = t.container
        assert c is not None
        x = self.extras.get(t.name) or container_spec.ContainerExtras()
        token = prep.spec.token
        name = f"orch-{token}-{attempt}"
        for side_name, side in [("main", c), *t.sidecars, *t.before_main]:  # before any engine call
            check_image(side.image or c.image, f"step {node.id!r} ({side_name})")
        if x.run_as_non_root and x.run_as_user in (None, 0):
            self._check_non_root(node.id, c.image, x)
        mounts, copy_out = container_mounts.mounts(r, node, prep)
        mounts += container_mounts.volume_args(node, prep)
        pod = ""
        if prep.sidecars or prep.before:  # one pod: the step's containers share localhost, as in Kubernetes
            from orchestrator.run import container_pod

            pod = f"orch-pod-{token}-{attempt}"
            try:
                container_pod.create(self.engine, self.client_env, pod, self.network, self.ex_id, token, self.userns)
            except container_pod.PodError as exc:
                raise OrchestratorError(f"step {node.id!r}: the {self.name} pod of its sidecars could not be created: "
                                        f"{exc}") from None
            self.pods += 1
        step = self._container(r, node, prep.spec, c, x, name, pod, mounts, copy_out, token)
        step.memory = x.memory
        others = [(side_name, side, spec, "sc") for (side_name, side), spec in zip(t.sidecars, prep.sidecars)]
        others += [(nm, other, spec, "cs") for (nm, other), (_n, spec) in zip(t.before_main, prep.before)]
        for k, (side_name, side, spec, kind) in enumerate(others):
            sx = self.side_extras.get(t.name, {}).get(side_name) or container_spec.ContainerExtras()
            if sx.run_as_non_root and sx.run_as_user in (None, 0):
                self._check_non_root(f"{node.id} ({side_name})", side.image or c.image, sx)
            companion = self._container(r, node, spec, side, sx, f"{name}-{kind}{k}", pod, mounts, [], token)
            self.companions[id(spec)] = companion
            step.companions.append(companion)
        step.pod = pod
        self.steps.append(step)
        return step

    def companion(self, spec: StepSpec) -> StepProcess:
        """The handle of a sidecar or another container of a containerSet (made by :meth:`submit`)."""
        step = self.companions.pop(id(spec), None)
        return step if step is not None else StepProcess(spec)

    def _container(self, r: Any, node: Node, spec0: StepSpec, c: Any, x: container_spec.ContainerExtras, name: str,
                   pod: str, mounts: list[str], copy_out: list[tuple[str, str]], token: str) -> ContainerStep:
        """``ENGINE run`` of one container of the step (the main one, a sidecar, a containerSet's)."""
        env = dict(spec0.env)
        for k, v in r.base_env.items():  # the host's PATH, LANG ... are not the image's
            if env.get(k) == v and k != "PYTHONUNBUFFERED":
                del env[k]
        if self.gateway:
            env = {k: _LOOPBACK.sub(lambda m: m.group(1) + self.gateway, v) if k.endswith(("_URI", "_URL", "_ENDPOINT"))
                   else v for k, v in env.items()}
        argv = [self.engine, "run", "--name", name, "--label", f"{LABEL_EXECUTION}={self.ex_id}",
                "--label", f"{LABEL_TOKEN}={token}", "--stop-timeout", "3"]
        if pod:
            argv += ["--pod", pod]  # network and user namespace: the pod's
        else:
            argv += ["--network", self.network, *self.userns]
            if self.network == "bridge" and self.name == "docker":
                argv += ["--add-host", "host.docker.internal:host-gateway"]
        argv += ["--pull", self.pull or x.pull_policy or "missing", *self.auth_args]
        argv += container_spec.engine_limits(x)  # each container's own resources and securityContext
        argv += container_spec.gpu_args(self.name, x.gpus)
        if x.run_as_user is not None:
            argv += ["--user", f"{x.run_as_user}" + (f":{x.run_as_group}" if x.run_as_group is not None else "")]
        if x.read_only_root:
            argv += ["--read-only"]
        if x.no_new_privileges:
            argv += ["--security-opt", "no-new-privileges"]
        step_dir = str(Path(spec0.log_path).parent)
        container_mounts.writable(step_dir)
        argv += ["-v", f"{step_dir}:{step_dir}:rw", *mounts]
        if c.working_dir:
            argv += ["-w", r.ctx.declared_path(node, c.working_dir)]
        client_env = dict(self.client_env)
        for k, v in env.items():
            if not k or "*" in k or "=" in k:  # `-e NAME*` would import every matching client variable
                raise OrchestratorError(f"step {node.id!r}: environment variable name {k[:80]!r} cannot be passed "
                                        "to a container")
            if k in _CLIENT_ONLY:
                argv += ["-e", f"{k}={v}"]  # HOME, TMPDIR: not secret, and the client needs its own
            else:
                argv += ["-e", k]
                client_env[k] = v
        n = len(c.command)  # the entrypoint; the script path and args are the image's CMD
        words = spec0.argv
        if n:
            argv += ["--entrypoint", json.dumps(words[:n])]
        main = node.template.container
        image = check_image(c.image or (main.image if main is not None else ""), f"step {node.id!r} ({name})")
        binds = [argv[i + 1].split(":", 1)[0] for i, a in enumerate(argv[:-1]) if a == "-v"]
        argv += [image, *words[n:]]
        step = ContainerStep(StepSpec(argv, client_env, step_dir, spec0.log_path, spec0.token, spec0.log_cap))
        step.binds = binds
        step.engine, step.name, step.client_env = self.engine, name, self.client_env
        step.copy_out, step.companions = copy_out, []
        return step

    def _check_non_root(self, step: str, image: str, x: container_spec.ContainerExtras) -> None:
        """``runAsNonRoot``: the kubelet refuses to start a container whose user would be root."""
        if x.run_as_user == 0:
            raise OrchestratorError(f"step {step!r}: securityContext has runAsNonRoot and runAsUser 0")
        check_image(image, f"step {step!r}")
        user = ""
        try:
            res = subprocess.run([self.engine, "image", "inspect", "--format", "{{.Config.User}}", image],
                                 env=self.client_env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            user = res.stdout.decode().strip() if res.returncode == 0 else "?"
        except (OSError, subprocess.TimeoutExpired):
            user = "?"
        uid = user.split(":", 1)[0]
        if not uid.isdigit() or int(uid) == 0:
            why = "the image is not here to tell its user" if user == "?" else (
                f"its user is {user!r}" if user else "it runs as root")
            raise OrchestratorError(f"step {step!r}: securityContext has runAsNonRoot and image {image!r} would run "
                                    f"as root ({why})", hint="set securityContext.runAsUser to a non-zero uid")

    def cancel(self, handle: StepProcess, reason: str, grace: float) -> None:
        handle.kill(reason, grace=grace)

    def shutdown(self) -> None:
        """Remove every container of this execution (exited or, after a failure, still running)."""
        if not self.ex_id:
            return
        from orchestrator.run.container_reap import remove_labelled

        for step in self.steps:
            if step.removal is not None:
                step.removal.join(timeout=30)
        remove_labelled(self.engine, self.ex_id, self.client_env, pods=bool(self.pods))
        self.steps.clear()
        from orchestrator.run import container_auth

        container_auth.remove_auth(self.auth)
