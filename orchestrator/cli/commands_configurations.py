"""CLI command ``configurations [list|show ID|NAME]``: the configurations of a resource group.

Owns: its argument parser (registered by :func:`add_parsers`), the table and the ``--json`` shape,
which is the AI API's (``GET /v2/lm/configurations``: ``parameterBindings`` as ``key``/``value``,
``inputArtifactBindings`` as ``key``/``artifactId``), locally and with ``--server``. A configuration
is named by its id, a unique id prefix or its name (:func:`orchestrator.control.ids.resolve_configuration`).
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.cli.client import Client
    from orchestrator.model import Configuration


def add_parsers(sub: Any) -> None:
    """Add ``configurations`` to the CLI's subparsers (it sets ``func``)."""
    c = sub.add_parser("configurations", help="list configurations (what executions and schedules run), or show one")
    cs = c.add_subparsers(dest="cfgcmd", metavar="SUBCOMMAND")
    for target in (c, cs.add_parser("list", help="list configurations (newest first)",
                                     argument_default=argparse.SUPPRESS)):
        target.add_argument("--executable", help="only configurations of this executable id")
        target.add_argument("--json", action="store_true", help="print the list as JSON (as the AI API)")
    show = cs.add_parser("show", help="one configuration: executable and bindings")
    show.add_argument("id", metavar="ID|NAME", help="configuration id, unique id prefix or name")
    show.add_argument("--json", action="store_true", help="print the configuration as JSON (as the AI API)")
    c.set_defaults(func=cmd_configurations, json=False, executable=None)


def configuration_json(c: Configuration) -> dict[str, Any]:
    """A configuration as the AI API returns it."""
    return {"id": c.id, "name": c.name, "scenarioId": c.scenario_id, "executableId": c.executable_id,
            "parameterBindings": [{"key": k, "value": v} for k, v in c.parameter_bindings],
            "inputArtifactBindings": [{"key": k, "artifactId": v} for k, v in c.input_artifact_bindings],
            "createdAt": c.created_at}


def cmd_configurations(args: argparse.Namespace) -> int:
    """Local: from the store (``--server`` goes to :func:`remote`)."""
    from orchestrator.cli.commands import _service
    from orchestrator.control.ids import resolve_configuration

    svc = _service(args, create=False)
    if getattr(args, "cfgcmd", None) == "show":
        return _show(configuration_json(svc.store.get_configuration(
            svc.rg, resolve_configuration(svc.store, svc.rg, args.id))), args.json)
    q = svc.store.query_configurations(svc.rg, executable_ids=[args.executable] if args.executable else None)
    rows = [configuration_json(svc.store.get_configuration(svc.rg, r["id"]))
            for r in svc.store.run_query(q, "id", limit=1000)]
    return _list(rows, args.json)


def remote(c: Client, args: argparse.Namespace) -> int:
    """``--server``: GET /v2/lm/configurations (an id, unique prefix or name, as locally)."""
    if getattr(args, "cfgcmd", None) == "show":
        return _show(find_remote(c, args.id), args.json)
    query = {"executableIds": args.executable} if args.executable else {}
    return _list(list(c.call("GET", "/v2/lm/configurations", **query).get("resources", [])), args.json)


def find_remote(c: Client, text: str) -> dict[str, Any]:
    """The server's configuration that ``text`` is (id), names or, git-style, starts (id prefix)."""
    from orchestrator.control.ids import MIN_PREFIX
    from orchestrator.errors import NotFound, UsageError

    try:
        return dict(c.call("GET", f"/v2/lm/configurations/{urllib.parse.quote(text, safe='')}"))
    except NotFound:
        pass
    rows = list(c.call("GET", "/v2/lm/configurations", **{"$top": 10000}).get("resources", []))
    named = [r for r in rows if r["name"] == text]
    if len({_content(r) for r in named}) == 1:
        return named[0]  # newest first: the same bindings under one name are one configuration
    if named:
        listed = "".join(f"\n  {r['id']}  {r['executableId']}  {str(r['createdAt'])[:19]}" for r in named[:10])
        raise UsageError(f"configuration name {text!r} is ambiguous: {len(named)} configurations of that name "
                         f"bind different values:{listed}", hint="give the configuration id (or a unique prefix)")
    ids = [r for r in rows if len(text) >= MIN_PREFIX and str(r["id"]).startswith(text)]
    if len(ids) == 1:
        return ids[0]
    if ids:
        raise UsageError(f"configuration id prefix {text!r} is ambiguous; it matches:"
                         + "".join(f"\n  {r['id']}  {r['name']}" for r in ids[:10]),
                         hint="give more characters of the id")
    raise NotFound(f"configuration {text!r} not found on {c.base} (resource group {c.rg})",
                   hint="`orchestrator configurations` lists them")


def _content(r: dict[str, Any]) -> str:
    import json

    return json.dumps([r.get("executableId"), r.get("parameterBindings"), r.get("inputArtifactBindings")],
                      sort_keys=True)


def _list(rows: list[dict[str, Any]], as_json: bool) -> int:
    from orchestrator.cli.commands import _dump, _table

    if as_json:
        _dump(rows)
        return 0
    _table("configurations", ["id", "name", "executable", "parameters", "artifacts", "created"],
           [[r["id"], r["name"], r["executableId"], _pairs(r["parameterBindings"], "value"),
             _pairs(r["inputArtifactBindings"], "artifactId"), str(r["createdAt"])[:19]] for r in rows])
    return 0


def _show(row: dict[str, Any], as_json: bool) -> int:
    from orchestrator.cli.commands import _dump

    if as_json:
        _dump(row)
        return 0
    print(f"configuration {row['id']}  {row['name']}")
    print(f"  executable  {row['executableId']}  (scenario {row['scenarioId']})")
    print(f"  created     {str(row['createdAt'])[:19]}")
    for b in row["parameterBindings"]:
        print(f"  parameter   {b['key']} = {b['value']}")
    for b in row["inputArtifactBindings"]:
        print(f"  artifact    {b['key']} = {b['artifactId']}")
    return 0


def _pairs(bindings: list[dict[str, Any]], value: str) -> str:
    return " ".join(f"{b['key']}={b[value]}" for b in bindings)
