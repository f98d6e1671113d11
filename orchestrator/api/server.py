"""``orchestrator serve``: the uvicorn server around the API app, and what runs beside it.

Owns: binding the socket (port 0 picks a free one; the chosen address is printed), the first
admin token (written 0600 under the home, its path printed, never the token), registering a
``--workflows`` folder at start, the periodic reaper, and background loops a service offers
(git sync, scheduler). uvloop/httptools are used when installed (uvicorn's "auto").
"""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

from orchestrator.control import tokens
from orchestrator.control.service import Service
from orchestrator.errors import UsageError
from orchestrator.run import reaper

REAP_INTERVAL = 10.0


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
          schedule_interval: float | None = None) -> int:
    import uvicorn

    from orchestrator.api.app import DEFAULT_BODY_CAP, create_app

    svc.store.ensure_resource_group(svc.rg)
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
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    print(f"orchestrator API listening on {base} (AI API v2 at {base}/v2, OpenAPI at {base}/openapi.json)",
          flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
    return 0


__all__ = ["serve", "Path"]
