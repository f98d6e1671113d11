"""The runner's loopback MLflow endpoint: one per execution, for its steps' ``mlflow`` client.

Owns: its lifecycle and the ``MLFLOW_*`` variables a step gets (:func:`step_env`):
``MLFLOW_TRACKING_URI`` (``http://127.0.0.1:<port>``), ``MLFLOW_RUN_ID`` (the step's run: its
token), ``MLFLOW_TRACKING_TOKEN`` (a random per-execution bearer credential) and
``MLFLOW_EXPERIMENT_ID`` (the scenario), and for SAP's ``ai_core_sdk`` tracking ``AICORE_EXECUTION_ID``
and ``AICORE_TRACKING_ENDPOINT`` (:mod:`orchestrator.run.aicore_tracking`; unless the server set its
own). Started when the first leaf step is prepared: the main
thread only binds a listening socket on 127.0.0.1 (port 0); one acceptor thread per process
(``_Acceptor``: an epoll over every endpoint's socket, watched from once the runner's first steps
run: ``Runner.deferred``; a step connecting sooner waits in the backlog) waits for the first
connection, and only then starts the endpoint's own thread, which imports the HTTP server
(:mod:`orchestrator.run.mlflow_http`) and the protocol and opens its store connection (a
``clone()``), so a run whose steps never log pays for a socket only. When a
step ends, :func:`step_ended` ends its run (and child runs) if the step left it RUNNING —
FINISHED, FAILED or KILLED — and stores the files it logged. Stopped when the run ends (what is
left is stored then). Executions the REST server starts run in the same runner code
(``orchestrator _execute``), so this endpoint serves them too.
``ORCHESTRATOR_MLFLOW=0`` turns it off. Must not import: control, api, cli.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Any


def new_run(node_id: str) -> dict[str, Any]:
    """The in-memory record of one step's MLflow run (its status is the step's own view)."""
    return {"node": node_id, "status": "RUNNING", "start": int(time.time() * 1000), "end": None, "outputs": []}


def add_run(runs: dict[str, dict[str, Any]], run_id: str, node_id: str) -> None:
    """Register a step's run; a retried step's run is RUNNING again."""
    run = runs.get(run_id)
    if run is None:
        runs[run_id] = new_run(node_id)
    elif run["status"] != "RUNNING":
        run["status"], run["end"] = "RUNNING", None


class Endpoint:
    """A loopback endpoint for one execution (its runs are registered by :func:`step_env`)."""

    def __init__(self, r: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = base64.urlsafe_b64encode(os.urandom(24)).decode()  # (secrets costs 4 ms to import)
        self.experiment_id = r.ex.scenario_id
        self.runs: dict[str, dict[str, Any]] = {}
        self.closed = False
        self.server: Any = None
        self.session: Any = None
        self._args = (r.store.clone, r.objects, r.ex, Path(r.workdir) / "mlflow")
        self.thread = threading.Thread(target=self._loop, name="mlflow-endpoint", daemon=True)
        self.lock = threading.Lock()
        # Its own thread starts when a step connects (most never do); watched from once the runner's
        # first steps run (a step that connects sooner waits in the backlog).
        if getattr(r, "up", True):
            _ACCEPTOR.watch(self)
        else:
            r.deferred.append(lambda: _ACCEPTOR.watch(self))

    def add_run(self, run_id: str, node_id: str) -> None:
        add_run(self.runs, run_id, node_id)

    def connected(self) -> None:
        """A step connects (the acceptor saw it): serve from this endpoint's own thread."""
        with self.lock:
            if not self.closed and self.thread.ident is None:
                self.thread.start()

    def _loop(self) -> None:
        # Nothing is imported or opened until a step connects: a run whose steps never use MLflow
        # pays for a socket and a sleeping thread only (the chain-50 benchmark).
        while True:
            try:
                first, peer = self.sock.accept()
                break
            except OSError:
                if self.closed:
                    return
                time.sleep(0.05)  # out of descriptors for now (EMFILE): the endpoint waits, never dies
        if self.closed:
            first.close()
            return
        from orchestrator.run.mlflow_http import make_server
        from orchestrator.run.mlflow_protocol import Session

        factory, objects, ex, staging = self._args
        self.session = Session(factory, objects, ex, self.token, staging, runs=self.runs)
        self.server = make_server(self.sock, self.session)
        self.server.process_request(first, peer)
        while not self.closed:
            try:
                self.server.handle_request()  # blocks in select: no polling interval to wait out at stop
            except Exception:  # noqa: BLE001 - one bad accept or request never ends the endpoint (nor the run)
                if self.closed:
                    return
                time.sleep(0.05)

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            started = self.thread.ident is not None
        if not started:  # no step ever connected: no thread to end
            _ACCEPTOR.forget(self)
            self.sock.close()
            return
        try:  # wake the blocked accept; it sees ``closed`` and returns
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
        except OSError:
            pass
        if self.thread.ident is not None:  # started
            self.thread.join(5.0)
        if self.server is not None:
            self.server.server_close()
        else:
            self.sock.close()
        if self.session is not None:
            try:
                self.session.close()
            except Exception:  # noqa: BLE001 - called from the runner's finally: never mask its outcome
                pass


class _Acceptor:
    """One thread per process waits for the first connection to every endpoint (an epoll over
    their listening sockets) and then starts that endpoint's own thread: an execution whose steps
    never connect costs a socket, not a thread start and a wake-up connection at its end."""

    def __init__(self) -> None:
        self.sel: selectors.BaseSelector | None = None
        self.lock = threading.Lock()

    def watch(self, ep: Endpoint) -> None:
        with self.lock:
            if ep.closed:
                return
            if self.sel is None:
                self.sel = selectors.DefaultSelector()
                threading.Thread(target=self._loop, args=(self.sel,), name="mlflow-accept", daemon=True).start()
            self.sel.register(ep.sock, selectors.EVENT_READ, ep)  # (epoll: seen by a select already waiting)

    def forget(self, ep: Endpoint) -> None:
        with self.lock:
            try:
                if self.sel is not None:
                    self.sel.unregister(ep.sock)
            except (KeyError, ValueError):
                pass

    def _loop(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                events = sel.select(60.0)
            except OSError:  # (e.g. EINTR storms, a closed descriptor's leftover): look again
                time.sleep(0.05)
                continue
            for key, _mask in events:
                ep: Endpoint = key.data
                self.forget(ep)  # its own thread accepts from now on
                ep.connected()


_ACCEPTOR = _Acceptor()


def step_env(r: Any, run_id: str, node_id: str) -> dict[str, str]:
    """The ``MLFLOW_*`` variables of one step (its run is ``run_id``); starts the endpoint once."""
    if os.environ.get("ORCHESTRATOR_MLFLOW", "1") == "0":
        return {}
    ep: Endpoint | None = getattr(r, "mlflow_endpoint", None)
    if ep is None:
        ep = r.mlflow_endpoint = Endpoint(r)
    ep.add_run(run_id, node_id)
    env = {"MLFLOW_TRACKING_URI": ep.url, "MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_TOKEN": ep.token,
           "MLFLOW_EXPERIMENT_ID": ep.experiment_id}
    if not os.environ.get("AICORE_TRACKING_ENDPOINT"):  # a server-run execution has the server's already
        from orchestrator.run.aicore_tracking import endpoint

        env.update({"AICORE_EXECUTION_ID": r.ex.id, "AICORE_TRACKING_ENDPOINT": endpoint(ep.url, ep.token, run_id)})
    return env


def step_ended(r: Any, run_id: str, state: str) -> None:
    """The runner's word on how a step ended (``FINISHED``, ``FAILED``, ``KILLED``): its MLflow run
    and child runs still RUNNING take that status, and what the run logged as files is stored."""
    ep: Endpoint | None = getattr(r, "mlflow_endpoint", None)
    if ep is None or run_id not in ep.runs:
        return
    from orchestrator.run.mlflow_runs import end_step

    end_step(ep.runs, run_id, state)
    if ep.session is not None:  # off the runner's loop: another step's upload may hold the session
        threading.Thread(target=ep.session.step_ended, args=(run_id,), name="mlflow-flush", daemon=True).start()


def stop(r: Any) -> None:
    """Stop the runner's endpoint, if it was started."""
    ep: Endpoint | None = getattr(r, "mlflow_endpoint", None)
    if ep is not None:
        r.mlflow_endpoint = None
        ep.stop()
