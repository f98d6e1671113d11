"""CLI commands of deployments: ``deploy``, ``deployments list|show|stop|logs|delete`` and the hidden
``_deployments`` (the deployment manager process).

Owns: their arguments and what they print, locally (over :mod:`orchestrator.control.deploy`; the
detached deployment manager, started on demand, supervises the predictors, so ``deploy`` returns
while the model keeps being served) and with ``--server`` (the AI API v2 calls). Parsers are added
by :func:`add_parsers` and import nothing heavy. Must not import: api.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

ENDED = ("RUNNING", "DEAD", "STOPPED")


def add_parsers(sub: Any) -> None:
    d = sub.add_parser("deploy", help="serve a model: a ServingTemplate's configuration becomes a deployment")
    d.add_argument("target", nargs="?", metavar="CONFIG_FILE|TEMPLATE_FILE|EXECUTABLE_ID",
                   help="a Configuration file, a ServingTemplate file or a registered ServingTemplate id")
    d.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable)")
    d.add_argument("--artifact", action="append", default=[], metavar="NAME=PATH|URL|ID|models:/…",
                   help="an input artifact binding (repeatable)")
    d.add_argument("--model", metavar="models:/NAME@ALIAS", help="serve a registered model with the built-in "
                   "predictor (no template needed)")
    d.add_argument("--configuration", metavar="ID|NAME",
                   help="deploy an existing configuration: id, unique id prefix or name "
                   "(`orchestrator configurations` lists them)")
    d.add_argument("--name", help="name of the configuration created")
    d.add_argument("--ttl", help="stop it after this long: a number and m, h or d (e.g. 30m)")
    d.add_argument("--wait", type=float, default=120.0, help="seconds to wait for RUNNING (default 120; 0: don't)")
    d.add_argument("--json", action="store_true", help="print the deployment as JSON")
    d.set_defaults(func=cmd_deploy)

    ds = sub.add_parser("deployments", help="list deployments, or show, stop, delete one or print its logs")
    dss = ds.add_subparsers(dest="depcmd", metavar="SUBCOMMAND")
    for target in (ds, dss.add_parser("list", help="list deployments (newest first)",
                                      argument_default=argparse.SUPPRESS)):
        target.add_argument("--status", type=str.upper, help="only this status")
        target.add_argument("--json", action="store_true", help="print the list as JSON")
    for name, text in (("show", "one deployment"), ("stop", "stop it (RUNNING -> STOPPING -> STOPPED)"),
                       ("delete", "stop it if needed and delete it"), ("logs", "its predictor's log")):
        p = dss.add_parser(name, help=text)
        p.add_argument("id", help="deployment id or unique id prefix")
        if name in ("show", "stop"):
            p.add_argument("--json", action="store_true", help="print the deployment as JSON")
        if name == "stop":
            p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for STOPPED (default 30)")
        if name == "logs":
            p.add_argument("--tail", type=int, default=0, metavar="N", help="only the last N lines")
    ds.set_defaults(func=cmd_deployments)

    m = sub.add_parser("_deployments")  # hidden: the deployment manager of a store
    m.set_defaults(func=cmd_manager)


def _service(args: argparse.Namespace, create: bool = True) -> Any:
    from orchestrator.cli.commands import _service as service

    return service(args, create=create)


def _url(row: dict[str, Any]) -> str:
    return f"http://127.0.0.1:{row['port']}" if row.get("status") == "RUNNING" and row.get("port") else ""


def _local_wire(row: dict[str, Any]) -> dict[str, Any]:
    """The AI API shape ``--server`` prints too; locally it is scored on the predictor itself, so
    ``deploymentUrl`` is the predictor's URL (also in ``predictorUrl``, as the server gives it)."""
    from orchestrator.control.deploy import deployment_json

    return deployment_json(row, _url(row))


def _print_one(row: dict[str, Any], url: str) -> None:
    print(f"deployment {row['id']}: {row['status']}  configuration {row['configuration_id']}  "
          f"executable {row['executable_id']}")
    if url:
        print(f"  url: {url}")
    if row.get("status_message"):
        print(f"  {row['status_message']}")


def cmd_manager(args: argparse.Namespace) -> int:
    from orchestrator.control.deploy_manager import Manager

    svc = _service(args, create=False)
    return Manager(svc).run()


def cmd_deploy(args: argparse.Namespace) -> int:
    from orchestrator.control import deploy
    from orchestrator.control.deploy_configure import configure

    svc = _service(args)
    cfg_id = args.configuration or configure(svc, args.target, params=args.param, artifacts=args.artifact,
                                             model=args.model, name=args.name)
    from orchestrator.control.ids import resolve_configuration

    row = deploy.create(svc, resolve_configuration(svc.store, svc.rg, cfg_id), args.ttl)
    if args.wait > 0:
        row = deploy.wait(svc, row["id"], ENDED, args.wait)
    if args.json:
        print(json.dumps(_local_wire(row), indent=2, default=str))
    else:
        _print_one(row, _url(row))
    return 0 if row["status"] in ("RUNNING", "PENDING", "UNKNOWN") else 1


def cmd_deployments(args: argparse.Namespace) -> int:
    from orchestrator.control import deploy

    svc = _service(args, create=False)
    sub = getattr(args, "depcmd", None)
    deploy.wake(svc)  # deployments left by a manager that stopped (reboot, kill) are started again
    if sub in (None, "list"):
        recs = deploy.records(svc)
        rows = recs.listing(recs.query(svc.rg, status=getattr(args, "status", None)), limit=1000, offset=0)
        return _list([_local_wire(r) for r in rows], getattr(args, "json", False))
    dep_id = deploy.resolve_id(svc, args.id)
    if sub == "show":
        row = deploy.get(svc, dep_id)
    elif sub == "stop":
        deploy.stop(svc, dep_id)
        row = deploy.wait(svc, dep_id, ("STOPPED", "DEAD"), args.wait)
    elif sub == "delete":
        deploy.delete(svc, dep_id)
        print(f"deployment {dep_id} deleted")
        return 0
    else:
        lines = deploy.log_lines(svc, dep_id, limit=args.tail or 100000, tail=bool(args.tail))
        for _stamp, line in lines:
            print(line)
        return 0
    if args.json:
        print(json.dumps(_local_wire(row), indent=2, default=str))
    else:
        _print_one(row, _url(row))
    return 0


def _list(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from orchestrator.cli.commands import _table
    from orchestrator.cli.tables import Col

    def g(r: dict[str, Any], *keys: str) -> str:
        return next((str(r[k]) for k in keys if r.get(k)), "")

    _table("deployments", ["id", "status", "configuration", "executable", Col("url", key=True), "created", "message"],
           [[g(r, "id"), g(r, "status"), g(r, "configurationName"), g(r, "executableId"), g(r, "deploymentUrl"),
             g(r, "createdAt")[:19], g(r, "statusMessage")[:80]] for r in rows])  # local rows: the AI API shape too
    return 0


# ---------------------------------------------------------------------- --server
def _client(args: argparse.Namespace) -> Any:
    from orchestrator.cli.client import Client

    return Client.from_options(args.server, getattr(args, "resource_group_remote", None))


def remote_deploy(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands_remote import _find_executable, _pairs
    from orchestrator.errors import UsageError

    c = _client(args)
    if args.model:
        created = c.call("POST", "/v2/lm/deployments", {"model": args.model, **({"ttl": args.ttl} if args.ttl else {})})
    else:
        cfg_id = args.configuration
        if cfg_id:  # an id, a unique prefix or a name, as locally
            from orchestrator.cli.commands_configurations import find_remote

            cfg_id = find_remote(c, cfg_id)["id"]
        if not cfg_id:
            if not args.target or args.target.endswith((".yaml", ".yml")):
                raise UsageError("with --server, deploy takes a registered executable id, --configuration ID "
                                 "or --model models:/NAME@ALIAS")
            exe = _find_executable(c, args.target)
            bindings = []
            for key, value in _pairs(args.artifact, "artifact binding"):
                if "://" in value and not value.lower().startswith("models:/"):  # a URL: an artifact first
                    value = c.call("POST", "/v2/lm/artifacts", {"name": key, "kind": "model", "url": value,
                                                                "scenarioId": exe["scenarioId"]})["id"]
                bindings.append({"key": key, "artifactId": value})
            cfg_id = c.call("POST", "/v2/lm/configurations", {
                "name": args.name or f"{exe['id']}-deploy", "scenarioId": exe["scenarioId"], "executableId": exe["id"],
                "parameterBindings": [{"key": k, "value": v} for k, v in _pairs(args.param, "parameter")],
                "inputArtifactBindings": bindings})["id"]
        created = c.call("POST", "/v2/lm/deployments", {"configurationId": cfg_id,
                                                        **({"ttl": args.ttl} if args.ttl else {})})
    row = c.call("GET", f"/v2/lm/deployments/{created['id']}")
    deadline = time.monotonic() + args.wait
    while row["status"] not in ENDED and time.monotonic() < deadline:
        time.sleep(0.2)
        row = c.call("GET", f"/v2/lm/deployments/{created['id']}")
    _print_remote(row, args.json)
    return 0 if row["status"] in ("RUNNING", "PENDING", "UNKNOWN") else 1


def _print_remote(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row, indent=2, default=str))
        return
    print(f"deployment {row['id']}: {row['status']}  configuration {row['configurationId']}  "
          f"executable {row.get('executableId', '')}")
    if row.get("deploymentUrl"):
        print(f"  url: {row['deploymentUrl']}")
    if row.get("statusMessage"):
        print(f"  {row['statusMessage']}")


def remote_deployments(args: argparse.Namespace) -> int:
    c = _client(args)
    sub = getattr(args, "depcmd", None)
    if sub in (None, "list"):
        rows = c.call("GET", "/v2/lm/deployments", status=getattr(args, "status", None))["resources"]
        return _list(rows, getattr(args, "json", False))
    from orchestrator.cli.remote_ids import resolve_remote

    args.id = resolve_remote(c, "deployment", args.id)  # an id or a unique prefix of one, as locally
    path = f"/v2/lm/deployments/{args.id}"
    if sub == "show":
        _print_remote(c.call("GET", path), args.json)
    elif sub == "stop":
        c.call("PATCH", path, {"targetStatus": "STOPPED"})
        deadline = time.monotonic() + args.wait
        row = c.call("GET", path)
        while row["status"] not in ("STOPPED", "DEAD") and time.monotonic() < deadline:
            time.sleep(0.2)
            row = c.call("GET", path)
        _print_remote(row, args.json)
    elif sub == "delete":
        c.call("DELETE", path)
        print(f"deployment {args.id} deleted")
    else:
        res = c.call("GET", path + "/logs", top=args.tail or None, order="desc" if args.tail else None)
        lines = [r["msg"] for r in res["data"]["result"]]
        for line in reversed(lines) if args.tail else lines:
            print(line)
    sys.stdout.flush()
    return 0
