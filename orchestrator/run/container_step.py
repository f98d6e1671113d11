"""A step's life as a container: the attached ``ENGINE run`` client is the step's process.

Owns: :class:`ContainerStep` — starting it (its bind-mounted host directories re-checked for
symbolic links first), a stop or a deadline as ``ENGINE stop -t GRACE`` (the engine's SIGTERM,
the grace, then SIGKILL; the engine's kill while the client still runs), exit 137 with
``State.OOMKilled`` reported as OOMKilled, exit 125 as the engine's own failure, output paths
copied out of a container that exited 0, the container (and its pod, after the sidecars) removed
after its result is read, and a daemon's ``exec`` probe run inside the container. Built by
:class:`orchestrator.run.container.ContainerExecutor` (re-exported there); must not import
control, api or cli.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from orchestrator.errors import ArtifactError
from orchestrator.run import stepfiles
from orchestrator.run.steps import StepProcess, StepResult
from orchestrator.store.paths import refuse_links


class ContainerStep(StepProcess):
    """A step whose process is the attached ``ENGINE run`` client of its container."""

    engine: str = ""
    name: str = ""
    client_env: dict[str, str] | None = None
    memory: int = 0
    removal: threading.Thread | None = None
    copy_out: list[tuple[str, str]] = []  # (path in the container, host path): copied after it exited
    pod: str = ""  # the step's pod (sidecars, containerSet): removed after the main container
    companions: list[ContainerStep] = []  # its sidecars / containerSet containers
    binds: list[str] = []  # host directories of its -v options: re-checked for links when it starts

    def start(self) -> StepResult | None:
        """Start the container; its binds under the execution directory are re-checked first (an
        earlier container of a containerSet may have swapped one for a symlink the engine would follow)."""
        workdir = Path(self.spec.cwd).parent.parent  # <workdir>/steps/<step>
        for host in self.binds:
            rel = os.path.relpath(host, workdir).split(os.sep)
            if rel[0] in ("..", "."):
                continue
            try:
                refuse_links(workdir / rel[0], rel[1:])
            except ArtifactError as exc:
                now = time.time()
                self.started = now
                return StepResult(126, now, now, error=f"cannot start {self.name}: {exc}")
        return super().start()

    def kill(self, reason: str, grace: float = 5.0) -> None:
        with self._lock:
            if self.killed:
                return
            self.killed = reason
        threading.Thread(target=self._stop, args=(grace,), daemon=True).start()

    def _stop(self, grace: float) -> None:
        """The engine's stop (SIGTERM, ``grace``, SIGKILL); then, while the client still runs (the
        container was being created when the stop came), the engine's kill until it ends."""
        self._engine("stop", "-t", str(max(0, int(round(grace)))), self.name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (self.proc is None or self.proc.poll() is None):
            time.sleep(0.5)
            self._engine("kill", self.name)

    def force_kill(self) -> None:
        self._engine("kill", self.name)
        super().force_kill()

    def finish(self) -> StepResult:
        result = super().finish()
        if result.exit_code == 137 and not result.killed:
            limit = f" (memory limit {self.memory / (1 << 20):.0f} MiB)" if self.memory else ""
            note = ""
            if self._oom_killed():
                note = f"OOMKilled: the container ran out of memory{limit}"
            elif self.memory:  # podman 4.3 with cgroupfs does not always report OOMKilled
                note = (f"exit 137 (SIGKILL){limit}: probably out of memory (the engine did not report "
                        "OOMKilled)")
            if note:
                stepfiles.note(self.spec.log_path, note)
            # Argo: an OOMKilled main container is a failed step (retried by OnFailure), so the
            # exit code stays and the reason is the last log line the step message quotes.
        elif result.exit_code == 125 and not result.killed:
            result.error = f"the container engine could not run the step (exit code 125: {_last_line(self.spec.log_path)})"
        if result.exit_code == 0 and not result.killed:
            for src, dest in self.copy_out:  # what the collector then finds (or reports missing)
                self._engine("cp", f"{self.name}:{src}", dest)
        self.removal = self.remove_later()
        return result

    def remove_later(self) -> threading.Thread:
        th = threading.Thread(target=self._remove, daemon=True)
        th.start()
        return th

    def _remove(self) -> None:
        self._engine("rm", "-f", self.name)
        if self.pod:  # after its sidecars got their stop and grace (the runner stops them now)
            deadline = time.monotonic() + 30
            for other in self.companions:
                while other.proc is not None and other.proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
            self._engine("pod", "rm", "-f", "-t", "0", self.pod)  # only its infra container is left

    def _oom_killed(self) -> bool:
        out = self._engine("inspect", "--format", "{{.State.OOMKilled}}", self.name)
        return out.strip().lower() == "true"

    def _engine(self, *args: str) -> str:
        try:
            res = subprocess.run([self.engine, *args], env=self.client_env, capture_output=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return res.stdout.decode("utf-8", "replace")

    def exec_spec(self, cmd: list[str]) -> tuple[list[str], dict[str, str], str]:
        """A daemon's ``exec`` probe runs inside this container (``ENGINE exec``: its user, its
        environment, its filesystem); the engine client gets only its own environment."""
        return [self.engine, "exec", self.name, *cmd], dict(self.client_env or {}), self.spec.cwd


def _last_line(path: str) -> str:
    from orchestrator.run.steps import log_tail

    return log_tail(path, 1).strip()[-300:] or "no message"
