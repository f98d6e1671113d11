"""``orchestrator ui``: the web dashboard on this machine, with a one-time login link.

Owns: its arguments. Like ``serve`` it checks what the server needs and then becomes
``python -m orchestrator.api`` (same pid), listening on 127.0.0.1 only; the server prints a
one-time login URL and opens it in the browser unless ``--no-browser``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_RG = "default"


def add_parsers(sub: Any) -> None:
    u = sub.add_parser("ui", help="open the web dashboard (a local server on 127.0.0.1 with a one-time login link)")
    u.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    u.add_argument("--no-browser", action="store_true", help="print the login link, do not open a browser")
    u.add_argument("--resource-group", default=DEFAULT_RG, help="group shown first (default 'default')")
    u.set_defaults(func=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    import importlib.util

    from orchestrator.control.service import Service
    from orchestrator.errors import UsageError

    missing = [m for m in ("fastapi", "uvicorn", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"ui needs {' and '.join(missing)}: pip install 'orchestrator[server]'")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    svc = Service(args.home, rg=args.resource_group)
    home = str(svc.home)
    svc.close()
    cfg = {"home": home, "resource_group": args.resource_group, "host": "127.0.0.1", "port": args.port,
           "workflows": [], "max_body": None, "sync_interval": 0, "schedule_interval": 0,
           "ui": {"open_browser": not args.no_browser}}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "orchestrator.api", json.dumps(cfg)])
    return 0  # not reached
