"""``orchestrator secrets create|list|delete``: the store's generic secrets of a resource group.

Owns: reading secret values from stdin (a prompt without echo on a terminal, the raw input or
``KEY=VALUE`` lines in a pipe) or from environment variables (``--from-env VAR``) — never from
argv, where ``ps`` and shell history would see them — and storing them as AI Core does (key ->
base64 value; the same records ``/v2/admin/secrets`` manages). ``list`` prints names and key
names, never a value. Steps get them through ``env[].valueFrom.secretKeyRef``.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
from typing import Any

NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # = the API's secret name rule
KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")  # as Kubernetes secret keys
MAX_VALUE = 65536


def add_parsers(sub: Any) -> None:
    """``secrets`` and its subcommands."""
    s = sub.add_parser("secrets", help="secrets steps read through env valueFrom.secretKeyRef (per resource group)")
    ss = s.add_subparsers(dest="seccmd", metavar="SUBCOMMAND", required=True)
    c = ss.add_parser("create", help="create a secret; values from stdin or --from-env, never from the command line")
    c.add_argument("name", help="secret name (lowercase letters, digits and '-')")
    c.add_argument("--key", action="append", default=[], metavar="KEY",
                   help="a key of the secret (repeatable); one key takes all of stdin, several read KEY=VALUE lines "
                   "(a terminal prompts for each without echo)")
    c.add_argument("--from-env", action="append", default=[], metavar="VAR",
                   help="read the value from this environment variable (repeatable, paired with --key in order; "
                   "without --key the key is VAR)")
    c.add_argument("--replace", action="store_true", help="replace the data of an existing secret")
    ls = ss.add_parser("list", help="list secrets and their keys (never their values)")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    d = ss.add_parser("delete", help="delete a secret")
    d.add_argument("name", help="secret name")
    s.set_defaults(func=cmd_secrets)


def _usage(message: str, hint: str | None = None) -> Exception:
    from orchestrator.errors import UsageError

    return UsageError(message, hint=hint)


def read_values(keys: list[str], env_vars: list[str]) -> dict[str, str]:
    """Plain values by key, from the environment or stdin (see the module doc)."""
    if env_vars:
        if keys and len(keys) != len(env_vars):
            raise _usage(f"{len(keys)} --key but {len(env_vars)} --from-env", hint="pair them: --key K --from-env VAR")
        values = {}
        for key, var in zip(keys or env_vars, env_vars):
            if var not in os.environ:
                raise _usage(f"environment variable {var} is not set")
            values[key] = os.environ[var]
        return values
    if sys.stdin is None or sys.stdin.isatty():
        if not keys:
            raise _usage("no --key to prompt for", hint="give --key K, pipe KEY=VALUE lines, or use --from-env VAR")
        import getpass

        return {k: getpass.getpass(f"value of {k}: ") for k in keys}
    text = sys.stdin.read(MAX_VALUE * max(1, len(keys)) + 1)
    if len(keys) == 1:
        return {keys[0]: text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text}
    values = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise _usage(f"stdin line {n} is not KEY=VALUE", hint="one key takes all of stdin: --key K")
        values[key.strip()] = value
    missing = [k for k in keys if k not in values]
    extra = [k for k in values if keys and k not in keys]
    if missing or extra:
        raise _usage("stdin " + "; ".join(p for p in (f"lacks {', '.join(missing)}" if missing else "",
                                                     f"has keys not asked for: {', '.join(extra)}" if extra else "")
                                          if p))
    if not values:
        raise _usage("no KEY=VALUE lines on stdin")
    return values


def cmd_secrets(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands import _dump, _service, _table
    from orchestrator.control import syncing

    svc = _service(args, create=args.seccmd == "create")
    syncing.check_resource_group(svc.rg)
    if args.seccmd == "create":
        if not NAME.fullmatch(args.name):
            raise _usage(f"invalid secret name {args.name!r}", hint="lowercase letters, digits and '-', at most 63")
        values = read_values(args.key, args.from_env)
        for key, value in values.items():
            if not KEY.fullmatch(key):
                raise _usage(f"invalid secret key {key!r}", hint="letters, digits, '-', '_' and '.'")
            if not value:
                raise _usage(f"the value of key {key!r} is empty")
            if len(value) > MAX_VALUE:
                raise _usage(f"the value of key {key!r} is longer than {MAX_VALUE} characters")
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        from orchestrator.errors import Conflict

        try:
            svc.store.put_secret(svc.rg, args.name, data, create=not args.replace)
        except Conflict:
            raise _usage(f"secret {args.name!r} already exists in resource group {svc.rg}",
                         hint="--replace replaces its data") from None
        print(f"secret {args.name} {'replaced' if args.replace else 'created'} in resource group {svc.rg} "
              f"(keys: {', '.join(sorted(data))})")
        return 0
    if args.seccmd == "delete":
        svc.store.delete_secret(svc.rg, args.name)
        print(f"secret {args.name} deleted from resource group {svc.rg}")
        return 0
    rows = [{"name": r["name"], "keys": sorted(svc.store.secret_data(svc.rg, r["name"])),
             "createdAt": r["created_at"], "modifiedAt": r["modified_at"]} for r in svc.store.list_secrets(svc.rg)]
    if args.json:
        _dump(rows)
    else:
        _table(f"secrets of resource group {svc.rg}", ["name", "keys", "created", "modified"],
               [[r["name"], ", ".join(r["keys"]), r["createdAt"][:19], r["modifiedAt"][:19]] for r in rows])
    return 0
