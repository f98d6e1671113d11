"""``orchestrator serve``: the uvicorn server around the API app, and what runs beside it.

Owns: binding the socket (port 0 picks a free one; the chosen address is printed, and that
``/v2/lm`` calls need the ``AI-Resource-Group`` header), the first admin token (written 0600
under the home, its path printed, never the token), registering a ``--workflows`` folder at
start, the periodic reaper, background loops a service offers (git sync, scheduler), the
connection guard (:mod:`orchestrator.api.protocol`: header timeout, connection limit), and a
graceful shutdown on SIGTERM or SIGINT that exits 0 after the loops stopped. uvloop/httptools
are used when installed (uvicorn's "auto").
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.api import protocol
from orchestrator.control import tokens
from orchestrator.control.service import Service
from orchestrator.errors import UsageError
from orchestrator.run import reaper

REAP_INTERVAL = 10.0
SHUTDOWN_WAIT = 10.0  # seconds the background loops get to finish what they do after SIGTERM


def _reap_loop(svc: Service, stop: threading.Event) -> None:
    store = svc.store.clone()
    try:
        while not stop.wait(REAP_INTERVAL):
            try:
                reaper.reap(store)
            except Exception as exc:  # a failing sweep must not end the loop; it retries next time
                print(f"reaper: {exc}", file=sys.stderr, flush=True)
    finally:
        store.close()


def serve(svc: Service, *, host: str = "127.0.0.1", port: int = 8080, workflows: list[str] | None = None,
          body_cap: int | None = None, sync_interval: float | None = None,
          schedule_interval: float | None = None, ui: dict[str, Any] | None = None) -> int:
    from orchestrator.run.executor import check_server_executor

    check_server_executor()  # Ray is single-tenant: refused unless the operator trusts every user
    import uvicorn

    from orchestrator.api.app import DEFAULT_BODY_CAP, create_app

    svc.store.ensure_resource_group(svc.rg)
    svc.objects.sweep_temp()  # temporary files of uploads whose process died
    if workflows:
        for spec in svc.register(workflows):
            print(f"registered {spec.executable_id} into resource group {svc.rg}", flush=True)
    created = tokens.ensure_admin_file(svc.store, svc.home)
    if created:
        print(f"created an admin token in {created} (mode 0600); use it as 'Authorization: Bearer <token>'",
              flush=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         hint="pick another port with --port N, or --port 0 for a free one") from None
    sock.listen(2048)  # connections queue from now on: printing the address below is a promise
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    base = f"http://{shown}:{bound_port}"
    app = create_app(svc, body_cap=body_cap or DEFAULT_BODY_CAP, tracking_base=base)
    stop = threading.Event()
    threads = [threading.Thread(target=_reap_loop, args=(svc, stop), daemon=True, name="reaper")]
    for name, interval in (("sync_loop", sync_interval), ("scheduler_loop", schedule_interval)):
        loop = getattr(svc, name, None)
        if loop is not None and interval != 0:
            threads.append(threading.Thread(target=loop, args=(stop,) + ((interval,) if interval else ()),
                                            daemon=True, name=name))
    for t in threads:
        t.start()
    config = uvicorn.Config(app, **uvicorn_settings())
    server = uvicorn.Server(config)
    # a reader waiting for "listening on" then sees the whole banner: the UI line comes first, the
    # listening line and the header line are one write
    _announce_ui(app, svc, base, ui)
    print(f"orchestrator API listening on {base} (AI API v2 at {base}/v2, OpenAPI at {base}/openapi.json, "
          f"no token needed)\n"
          f"every {base}/v2/lm call needs the header 'AI-Resource-Group: <id>' (this server's group: "
          f"{svc.rg}); {base}/healthz answers liveness without a token", flush=True)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (in-flight requests get 5 s), then raises the
    # signal again with the handler it found: this one, which only asks for that same shutdown
    # (and covers a signal before uvicorn's own handlers are in place), so the exit code is 0.
    def shutdown(_signum: int, _frame: Any) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, shutdown) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        deadline = time.monotonic() + SHUTDOWN_WAIT  # a tick or a sync in progress ends its work
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    print("orchestrator API stopped", flush=True)
    return 0


def _announce_ui(app: Any, svc: Service, base: str, ui: dict[str, Any] | None) -> None:
    """Print where the dashboard is; for ``orchestrator ui`` a one-time login URL (opened in the
    browser unless ``ui["open_browser"]`` is false), as Jupyter does."""
    if ui is None:
        print(f"web dashboard at {base}/ui (log in with a token)", flush=True)
        return
    url = f"{base}/ui/login/once?code={app.state.ui_sessions.mint_once(svc.rg)}"
    print(f"web dashboard: open {url}\n(the link logs in once, within 10 minutes; Ctrl-C stops the server)",
          flush=True)
    if ui.get("open_browser", True):
        import webbrowser

        threading.Timer(0.3, webbrowser.open, (url,)).start()


def uvicorn_settings() -> dict[str, Any]:
    """The uvicorn settings of ``serve`` (the benchmark's bare app gets the same): one worker, loop
    and http "auto" (uvloop and httptools when installed) behind the connection guard, no access
    log, 5 s for in-flight requests at shutdown."""
    return {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5,
            "http": protocol.guarded()}


__all__ = ["serve", "Path"]
