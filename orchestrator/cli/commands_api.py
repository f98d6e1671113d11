"""CLI commands of the server side: ``serve``, ``tokens create|list|revoke`` and the hidden
``_execute`` (the background runner of an execution created by the API or the scheduler).

Owns: their arguments and output. Parsers are added by :func:`add_parsers`; handlers are bound
with ``set_defaults(func=...)``. Heavy imports (FastAPI, uvicorn) happen only inside ``serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_RG = "default"  # = orchestrator.control.service.DEFAULT_RG; the service is imported lazily (fast --version)


def _service(args: argparse.Namespace, **kwargs: Any) -> Any:
    from orchestrator.control.service import Service

    return Service(args.home, **kwargs)


def add_parsers(sub: Any) -> None:
    """``serve``, ``tokens`` and the hidden ``_execute`` (no help: never listed)."""
    s = sub.add_parser("serve", help="serve the AI API v2 (REST) over this home")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    s.add_argument("--workflows", action="append", default=[], metavar="DIR",
                   help="register the templates of DIR at start (repeatable)")
    s.add_argument("--resource-group", default=DEFAULT_RG, help="group for --workflows (default 'default')")
    s.add_argument("--max-body", type=int, default=None, help="request body cap in bytes (default 8 MiB)")
    s.add_argument("--sync-interval", type=float, default=None, help="seconds between git syncs (0: off)")
    s.add_argument("--schedule-interval", type=float, default=None, help="scheduler tick in seconds (0: off)")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("tokens", help="API bearer tokens (roles read < run < admin)")
    ts = t.add_subparsers(dest="tokcmd", metavar="SUBCOMMAND", required=True)
    tc = ts.add_parser("create", help="mint a token (printed once; only its sha256 is stored)")
    tc.add_argument("--name", required=True, help="a name to revoke it by later")
    tc.add_argument("--role", default="read", choices=("read", "run", "admin"), help="what it may do (default read)")
    tc.add_argument("--resource-group", default=None, help="limit the token to one resource group")
    tc.add_argument("--json", action="store_true", help="print the token and its record as JSON")
    tl = ts.add_parser("list", help="list tokens (never their secret)")
    tl.add_argument("--json", action="store_true", help="print the list as JSON")
    tr = ts.add_parser("revoke", help="revoke a token (and the access tokens minted from it)")
    tr.add_argument("name", help="token name or id")
    t.set_defaults(func=cmd_tokens)

    x = sub.add_parser("_execute")  # hidden: the background runner of an existing execution
    x.add_argument("id", help="execution id")
    x.add_argument("--rg", default=DEFAULT_RG, help="its resource group")
    x.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2, help="steps run in parallel")
    x.set_defaults(func=cmd_execute)


def cmd_serve(args: argparse.Namespace) -> int:
    """Check what the server needs, then become ``python -m orchestrator.api`` (same pid)."""
    import importlib.util

    from orchestrator.errors import UsageError

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"serve needs {' and '.join(missing)}: pip install 'orchestrator[server]'")
    svc = _service(args, rg=args.resource_group)  # opens (or creates) the home and reaps, as before
    home = str(svc.home)
    svc.close()
    cfg = {"home": home, "resource_group": args.resource_group, "host": args.host, "port": args.port,
           "workflows": [os.path.abspath(w) for w in args.workflows], "max_body": args.max_body,
           "sync_interval": args.sync_interval, "schedule_interval": args.schedule_interval}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "orchestrator.api", json.dumps(cfg)])
    return 0  # not reached


def cmd_tokens(args: argparse.Namespace) -> int:
    from orchestrator.control import tokens

    from orchestrator.errors import NotFound

    svc = _service(args, reap=False, create=args.tokcmd == "create")
    if args.tokcmd == "create":
        if args.resource_group:
            try:
                svc.store.get_resource_group(args.resource_group)
            except NotFound as exc:
                raise NotFound(exc.message, hint="a group exists once something ran in it (`orchestrator "
                               f"--resource-group {args.resource_group} run FILE`) or an admin created it (POST "
                               "/v2/admin/resourceGroups); `orchestrator tokens create` without "
                               "--resource-group makes a token for every group") from None
        plain, row = tokens.create(svc.store, args.name, args.role, args.resource_group)
        if args.json:
            print(json.dumps({"token": plain, "id": row["id"], "name": row["name"], "role": row["role"]}))
        else:
            print(plain)
            print(f"token {row['id']} ({row['name']}, role {row['role']}): shown once, store it now",
                  file=sys.stderr)
        return 0
    if args.tokcmd == "list":
        rows = svc.store.list_tokens()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                state = "revoked " + r["revoked_at"] if r["revoked_at"] else "active"
                print(f"{r['id']}  {r['name']:<20} {r['role']:<6} {r['rg'] or '*':<12} {state}")
        return 0
    row = svc.store.revoke_token(args.name)
    print(f"revoked {row['id']} ({row['name']})")
    return 0


def cmd_execute(args: argparse.Namespace) -> int:
    from orchestrator.model import Status

    svc = _service(args, rg=args.rg, reap=False, create=False)
    status = svc.run_stored(args.id, jobs=max(1, args.jobs))
    return 0 if status == Status.COMPLETED else 1
