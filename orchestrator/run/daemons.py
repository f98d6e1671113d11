"""Argo ``daemon`` steps: a step that keeps running, once ready, until the template that called it ends.

Owns: the readiness of a started daemon step (its container's ``readinessProbe`` — ``httpGet``,
``tcpSocket`` on 127.0.0.1 only, or ``exec`` — polled in a thread after ``initialDelaySeconds``,
every 0.2 s, each try bounded by ``timeoutSeconds``; no probe: ready when started), then the
step's detachment: it leaves the running set (it holds no ``-j`` slot, as Argo has no such
limit), settles SUCCEEDED so its successors start (``{{steps.NAME.ip}}`` is 127.0.0.1 here), and is
killed when its enclosing steps/dag call ends, or with the execution. A daemon that exits before
it is ready ends as any step (retries included). Functions over the runner's state; called by
:mod:`orchestrator.run.runner` and :mod:`orchestrator.run.flow`.

Security: an ``exec`` probe is template text; it runs with the step's privileges only, through the
step's handle (:meth:`~orchestrator.run.steps.StepProcess.exec_spec`): ``ENGINE exec`` into the
step's container, or the step's own sandbox, environment and cwd on the host executor — never
with the runner's environment. The Ray executor has no way to do so: :func:`refuse_exec_probes`
refuses such a run before any step starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.model import StepState
from orchestrator.run import supervise

LOOPBACK = "127.0.0.1"
PERIOD = 0.2
EXEC_SLACK = 5.0  # starting the sandbox or the engine's exec client is not counted in timeoutSeconds


class ProbeRefused(OrchestratorError):
    """A daemon's ``exec`` readiness probe cannot run with the step's privileges on this executor."""

    code = "UNSUPPORTED"


def refuse_exec_probes(r: Any) -> None:
    """Before the first step: the Ray executor refuses a run with a daemon ``exec`` probe (the probe
    would have to run on the step's node, inside its process tree's privileges)."""
    if getattr(r.executor, "name", "") != "ray":
        return
    for node in r.graph.leaves():
        t = node.template
        if t.daemon is not None and isinstance(json.loads(t.daemon).get("exec"), dict):
            raise ProbeRefused(f"template {t.name!r} is a daemon with an exec readinessProbe, which the Ray "
                               "executor does not run",
                               hint="use an httpGet or tcpSocket probe, or run it with --executor local "
                               "(or podman)")


def _run_exec(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> bool:
    """One try of an exec probe: its own session, no stdin/stdout; killed (its group) at the timeout."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    try:
        return proc.wait(timeout) == 0
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        return False


class Probe(threading.Thread):
    """Polls one readiness probe until it succeeds or ``stop`` is set; ``ready`` tells."""

    def __init__(self, probe: dict[str, Any], handle: Any = None) -> None:
        super().__init__(daemon=True, name="readiness")
        self.probe = probe
        self.handle = handle  # the step's handle: an exec probe runs through it (its privileges)
        self.ready = threading.Event()
        self.stop = threading.Event()

    def once(self) -> bool:
        import http.client  # only a daemon step's probe needs them (~10 ms of imports for every run)
        import socket

        p, timeout = self.probe, float(self.probe.get("timeoutSeconds") or 1)
        try:
            if isinstance(p.get("httpGet"), dict):
                g = p["httpGet"]
                conn = http.client.HTTPConnection(LOOPBACK, int(g.get("port") or 80), timeout=timeout)
                try:
                    conn.request("GET", str(g.get("path") or "/"))
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if isinstance(p.get("tcpSocket"), dict):
                with socket.create_connection((LOOPBACK, int(p["tcpSocket"].get("port") or 0)), timeout=timeout):
                    return True
            if isinstance(p.get("exec"), dict):
                cmd = [str(x) for x in p["exec"].get("command") or []]
                if not cmd or cmd[0].startswith("-") or self.handle is None:  # never an engine option
                    return False
                argv, env, cwd = self.handle.exec_spec(cmd)
                return _run_exec(argv, env, cwd, timeout + EXEC_SLACK)
        except (OSError, ValueError, http.client.HTTPException, subprocess.SubprocessError):
            return False
        return True  # a probe of no known kind: ready when started

    def run(self) -> None:
        if self.stop.wait(float(self.probe.get("initialDelaySeconds") or 0)):
            return
        while not self.stop.is_set():
            if self.once():
                self.ready.set()
                return
            self.stop.wait(PERIOD)


def started(r: Any, nid: str) -> None:
    """A leaf was started: a daemon's readiness is watched from now on."""
    node = r.graph.nodes[nid]
    if node.template.daemon is None:
        return
    probe = Probe(json.loads(node.template.daemon), r.running[nid].proc)
    r.daemon_probes[nid] = probe
    probe.start()


def check(r: Any) -> None:
    """Detach every daemon that became ready (called from the runner's loop)."""
    for nid, probe in list(r.daemon_probes.items()):
        if nid not in r.running:  # it ended (or was retried) before it was ready
            probe.stop.set()
            del r.daemon_probes[nid]
        elif probe.ready.is_set():
            del r.daemon_probes[nid]
            run = r.running.pop(nid)
            for s in r.scopes(r.graph.nodes[nid]):
                r.scope_running[s] -= 1
            r.daemoned[nid] = run
            r.settle(nid, StepState.SUCCEEDED, "daemoned: runs until its template ends")


def exited(r: Any, nid: str) -> None:
    """A detached daemon's process ended (killed at its scope's end, or by itself)."""
    r.daemoned.pop(nid, None)


def end_scope(r: Any, scope: str) -> None:
    """The steps/dag call ``scope`` (an ENTER id) ended: its daemons (nested ones too) are killed."""
    for nid, run in list(r.daemoned.items()):
        if scope in r.scopes(r.graph.nodes[nid]):
            run.proc.kill("the template that started the daemon ended", grace=supervise.KILL_GRACE)


def stop_probes(r: Any) -> None:
    for probe in r.daemon_probes.values():
        probe.stop.set()
