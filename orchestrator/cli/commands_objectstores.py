"""``orchestrator object-stores create|update|list|show|delete``: object store secrets.

Owns: the command line of the records ``/v2/admin/objectStoreSecrets`` manages (the same use case,
:func:`orchestrator.control.resources.put_object_store`). ``--type S3`` makes ``ai://<name>/…`` a
bucket (``--bucket``, ``--endpoint``, ``--region``, ``--path-prefix``, ``--usehttps``,
``--verifyssl``, as AI Core's fields); a secret named ``default`` of type S3 also receives the
resource group's execution outputs. The credentials come from environment variables
(``--access-key-env VAR --secret-key-env VAR``) or stdin (``AWS_ACCESS_KEY_ID=…`` and
``AWS_SECRET_ACCESS_KEY=…`` lines, or a prompt without echo) — never from the command line — and
nothing prints them: ``list`` and ``show`` give the name and the metadata only.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
FIELDS = ("bucket", "endpoint", "region", "pathPrefix", "usehttps", "verifyssl")


def add_parsers(sub: Any) -> None:
    o = sub.add_parser("object-stores", help="object store secrets: ai://NAME/... on a local directory or an S3 bucket")
    os_ = o.add_subparsers(dest="oscmd", metavar="SUBCOMMAND", required=True)
    for name, helptext in (("create", "create an object store secret"),
                           ("update", "change an object store secret (e.g. rotate its credentials): the fields "
                            "not given keep their stored values, a field given as '' is removed (e.g. "
                            "--endpoint '' goes back to AWS); the credentials are read again")):
        c = os_.add_parser(name, help=helptext)
        c.add_argument("name", help="secret name (lowercase letters, digits and '-'); 'default' also takes outputs")
        c.add_argument("--type", help="S3 (a bucket; the default) or another AI Core type, "
                       "which is a local directory here")
        c.add_argument("--bucket", help="the S3 bucket")
        c.add_argument("--endpoint", help="the S3 endpoint (host[:port] or URL; default: AWS; update: '' "
                       "removes it)")
        c.add_argument("--region", help="the bucket's region (default us-east-1)")
        c.add_argument("--path-prefix", dest="pathPrefix",
                       help="a folder in the bucket for all ai://NAME/ paths (update: '' removes it)")
        c.add_argument("--usehttps", choices=("0", "1", ""), metavar="{0,1}",
                       help="0: plain http to a host:port endpoint (default 1; update: '' removes it)")
        c.add_argument("--verifyssl", choices=("0", "1", ""), metavar="{0,1}",
                       help="0: do not verify the endpoint's TLS certificate (update: '' removes it, "
                       "so it is verified)")
        c.add_argument("--access-key-env", metavar="VAR", help="read AWS_ACCESS_KEY_ID from this environment variable")
        c.add_argument("--secret-key-env", metavar="VAR",
                       help="read AWS_SECRET_ACCESS_KEY from this environment variable")
    ls = os_.add_parser("list", help="list object store secrets (metadata only, never credentials)")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    for name, helptext in (("show", "one object store secret's metadata (never its credentials)"),
                           ("delete", "delete an object store secret (its objects stay)")):
        c = os_.add_parser(name, help=helptext)
        c.add_argument("name", help="secret name")
        if name == "show":
            c.add_argument("--json", action="store_true", help="print it as JSON")
    o.set_defaults(func=cmd_object_stores)


def _credentials(args: argparse.Namespace) -> dict[str, str]:
    from orchestrator.cli.commands_secrets import read_values
    from orchestrator.errors import UsageError

    if str(args.type).lower() != "s3":
        return {}
    if bool(args.access_key_env) != bool(args.secret_key_env):
        raise UsageError("give both --access-key-env and --secret-key-env, or neither (then stdin)")
    envs = [args.access_key_env, args.secret_key_env] if args.access_key_env else []
    return read_values(KEYS, envs)


def cmd_object_stores(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands import _dump, _service, _table
    from orchestrator.control import resources, syncing

    svc = _service(args, create=args.oscmd in ("create", "update"))
    syncing.check_resource_group(svc.rg)
    if args.oscmd in ("create", "update"):
        stored = _stored_fields(svc, args.name) if args.oscmd == "update" else {}
        args.type = args.type or stored.get("type") or "S3"
        body: dict[str, Any] = {"name": args.name, "type": args.type, "data": _credentials(args)}
        for key in FIELDS:
            given = getattr(args, key)
            if given is not None:  # '' removes the field: it is not carried over from the stored secret
                if given:
                    body[key] = given
            elif key in stored and str(args.type).lower() == str(stored.get("type", "")).lower():
                body[key] = stored[key]  # an update keeps what it does not change
        resources.put_object_store(svc, body, create=args.oscmd == "create")
        print(f"object store secret {args.name} {args.oscmd}d in resource group {svc.rg}")
        return 0
    if args.oscmd == "delete":
        resources.delete_object_store(svc, args.name)
        print(f"object store secret {args.name} deleted from resource group {svc.rg} (its objects stay)")
        return 0
    rows = [svc.store.get_object_store(svc.rg, args.name)] if args.oscmd == "show" \
        else svc.store.list_object_stores(svc.rg)
    items = [{"name": r["name"], "metadata": json.loads(str(r["metadata"])), "modifiedAt": r["modified_at"]}
             for r in rows]
    if args.json:
        _dump(items[0] if args.oscmd == "show" else items)
        return 0
    if args.oscmd == "show":  # one secret: every metadata field, and where ai://NAME/ resolves
        item = items[0]
        where = _where(item["metadata"])
        if where == "a local directory":
            where += f" {svc.home / 'objects' / svc.rg / item['name']}"
        print(f"object store secret {item['name']} (resource group {svc.rg}): ai://{item['name']}/... is {where}")
        for key, value in sorted(item["metadata"].items()):
            print(f"  {key}: {value}")
        print(f"  modifiedAt: {item['modifiedAt']}")
        return 0
    _table(f"object store secrets of resource group {svc.rg}", ["name", "type", "where", "modified"],
           [[i["name"], i["metadata"].get("storage.ai.sap.com/type", ""), _where(i["metadata"]), i["modifiedAt"][:19]]
            for i in items])
    return 0


def _stored_fields(svc: Any, name: str) -> dict[str, str]:
    """The body fields (type, bucket, endpoint, ...) of a stored secret, from its metadata (never
    its credentials); NotFound for an unknown name."""
    meta = json.loads(str(svc.store.get_object_store(svc.rg, name)["metadata"]))
    out = {"type": meta.get("storage.ai.sap.com/type", "")}
    for key in FIELDS:
        for label in (f"storage.ai.sap.com/{key}", f"serving.kubeflow.org/s3-{key}"):
            if meta.get(label):
                out[key] = str(meta[label])
    return out


def _where(meta: dict[str, str]) -> str:
    if meta.get("storage.ai.sap.com/type", "").lower() != "s3":
        return "a local directory"
    prefix = meta.get("storage.ai.sap.com/pathPrefix", "").strip("/")
    endpoint = meta.get("storage.ai.sap.com/endpoint", "")
    return f"s3://{meta.get('storage.ai.sap.com/bucket', '')}/{prefix}" + (f" at {endpoint}" if endpoint else "")
