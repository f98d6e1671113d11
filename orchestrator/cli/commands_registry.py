"""``orchestrator registry-secrets create|list|show|update|delete``: docker registry secrets.

Owns: the command line of the store's docker registry secrets (the records
``/v2/admin/dockerRegistrySecrets`` manages; the container executor logs in with them for the
images of a template that names them in ``imagePullSecrets``). The docker ``config.json`` comes
from a file (``--from-file ~/.docker/config.json``) or stdin — never from the command line — and
is stored base64 as ``.dockerconfigjson``; nothing prints a value: ``list`` and ``show`` give names.
"""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

MAX_INPUT = 64 * 1024


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("registry-secrets", help="docker registry secrets for imagePullSecrets (container executor)")
    rs = r.add_subparsers(dest="regcmd", metavar="SUBCOMMAND", required=True)
    for name, helptext in (("create", "create a secret from a docker config.json (a file or stdin)"),
                           ("update", "replace the config.json of a secret")):
        c = rs.add_parser(name, help=helptext)
        c.add_argument("name", help="secret name (lowercase letters, digits, '.', '-')")
        c.add_argument("--from-file", metavar="FILE", help="a docker config.json (default: read it from stdin)")
    ls = rs.add_parser("list", help="list secrets (names only, never a value)")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    for name, helptext in (("show", "whether a secret exists (its name; never its value)"),
                           ("delete", "delete a secret")):
        rs.add_parser(name, help=helptext).add_argument("name", help="secret name")
    r.set_defaults(func=cmd_registry_secrets)


def _read(path: str | None) -> dict[str, str]:
    from orchestrator.errors import UsageError

    if path:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_INPUT + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no docker config.json given", hint="--from-file FILE, or pipe it on stdin")
        raw = sys.stdin.buffer.read(MAX_INPUT + 1)
    if len(raw) > MAX_INPUT:
        raise UsageError(f"the docker config.json is larger than {MAX_INPUT // 1024} KiB")
    return {".dockerconfigjson": base64.b64encode(raw).decode()}


def cmd_registry_secrets(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands import _dump, _service, _table
    from orchestrator.control import registry_secrets as rs

    svc = _service(args, create=args.regcmd == "create")
    if args.regcmd == "create":
        rs.create(svc.store, args.name, _read(args.from_file))
        print(f"docker registry secret {args.name} created")
    elif args.regcmd == "update":
        rs.modify(svc.store, args.name, _read(args.from_file))
        print(f"docker registry secret {args.name} updated")
    elif args.regcmd == "delete":
        rs.delete(svc.store, args.name)
        print(f"docker registry secret {args.name} deleted")
    elif args.regcmd == "show":
        print(rs.get(svc.store, args.name)["name"])
    else:
        rows = rs.names(svc.store)
        if args.json:
            _dump(rows)
        else:
            _table("docker registry secrets", ["name", "created", "modified"],
                   [[r["name"], r["createdAt"][:19], r["modifiedAt"][:19]] for r in rows])
    return 0
