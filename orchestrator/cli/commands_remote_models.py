"""``compare`` and ``models ...`` against a server (``--server URL`` or ``ORCHESTRATOR_SERVER``).

Owns: turning these commands into calls of the server's extension endpoints (``GET /v2/lm/compare``,
``/v2/lm/models...``) through :class:`orchestrator.cli.client.Client`, and the server's answers
back into what the local commands print (the printers of :mod:`orchestrator.cli.commands_experiments`),
so ``--json`` output is the same shape either way. Execution and artifact ids are passed as given
(the server resolves no prefixes). Must not import: api.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from orchestrator.cli import commands_experiments as out
from orchestrator.cli.client import Client
from orchestrator.cli.remote_ids import resolve_remote
from orchestrator.errors import NotFound

PAGE = 1000


def _client(args: argparse.Namespace) -> Client:
    return Client.from_options(args.server, getattr(args, "resource_group_remote", None))


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _model(m: dict[str, Any]) -> dict[str, Any]:
    """A model as the server lists it (aliases a list) -> as the local store gives it (a dict)."""
    m = dict(m)
    m["aliases"] = {a["alias"]: a["version"] for a in m.get("aliases") or []}
    m.pop("versions", None)
    return m


def _all(c: Client, path: str, **query: Any) -> list[dict[str, Any]]:
    """Every item of a paged listing."""
    items: list[dict[str, Any]] = []
    while True:
        page = c.call("GET", path, **query, **{"$top": PAGE, "$skip": len(items)})
        items += page["resources"]
        if not page["resources"] or len(items) >= int(page.get("count", len(items))):
            return items


def cmd_compare(args: argparse.Namespace) -> int:
    c = _client(args)
    args.ids = [resolve_remote(c, "execution", i) for i in args.ids or []]
    result = c.call("GET", "/v2/lm/compare", executionIds=",".join(args.ids), scenarioId=args.scenario,
                    executableId=args.executable, sort=args.sort, **{"$top": args.limit})
    result["executions"] = result.pop("resources")
    return out.compare_out(args, result)


def _version(c: Client, name: str, ref: str) -> dict[str, Any]:
    """A version by number, alias or ``latest``, with its lineage."""
    if not ref.isdigit():
        if ref == "latest":
            ref = str(c.call("GET", f"/v2/lm/models/{_q(name)}")["latestVersion"])
        else:
            ref = str(c.call("GET", f"/v2/lm/models/{_q(name)}/aliases/{_q(ref)}")["version"])
    return dict(c.call("GET", f"/v2/lm/models/{_q(name)}/versions/{ref}"))


def cmd_models(args: argparse.Namespace) -> int:
    from orchestrator.control.registry import parse_tags

    c = _client(args)
    sub = args.modelcmd
    base = f"/v2/lm/models/{_q(args.name)}" if hasattr(args, "name") else ""
    if getattr(args, "execution", None):
        args.execution = resolve_remote(c, "execution", args.execution)
    if sub == "register":
        try:  # to say "already registered" as the local command does (the POST answers 201 either way)
            before = {v["artifactId"] for v in _all(c, f"{base}/versions")}
        except NotFound:
            before = set()
        mv = c.call("POST", f"{base}/versions", {
            "executionId": args.execution, "artifactId": args.artifact, "output": args.output,
            "description": args.description, "tags": [{"key": k, "value": v} for k, v in parse_tags(args.tag)]})
        text = (f"{'already registered as' if mv['artifactId'] in before else 'registered'} {mv['model']} "
                f"version {mv['version']} (artifact {mv['artifactId']}, execution {mv['executionId']})")
        if args.alias:
            c.call("PUT", f"{base}/aliases/{_q(args.alias)}", {"version": mv["version"]})
            mv = _version(c, args.name, str(mv["version"]))
            mv.pop("lineage", None)
            text += f"; alias {args.alias} -> version {mv['version']}"
        return _version_out(args, mv, text)
    if sub == "list":
        if args.execution:
            models = _all(c, "/v2/lm/models", executionId=args.execution)
            return out.versions_out(args, [v for m in models for v in m["versions"]], "model versions of the execution")
        return out.models_out(args, [_model(m) for m in _all(c, "/v2/lm/models")])
    if sub == "show":
        if args.version is None:
            model = _model(c.call("GET", base))
            return out.model_out(args, model, _all(c, f"{base}/versions"))
        return out.show_version(args, _version(c, args.name, args.version))
    if sub in ("alias", "unalias"):
        if sub == "alias":
            body: dict[str, Any] = {"version": args.version}
            if args.expect is not None:
                body["expectedVersion"] = args.expect
            moved = c.call("PUT", f"{base}/aliases/{_q(args.alias)}", body)
        else:
            moved = c.call("DELETE", f"{base}/aliases/{_q(args.alias)}")
        return out.alias_out(args, moved.get("previousVersion"))
    patch: dict[str, Any] = {}
    if args.description is not None:
        patch["description"] = args.description
    if args.tag:
        patch["tags"] = [{"key": k, "value": v} for k, v in parse_tags(args.tag)]
    mv = c.call("PATCH", f"{base}/versions/{args.version}", patch)
    return _version_out(args, mv, f"updated {mv['model']} version {mv['version']}")


def _version_out(args: argparse.Namespace, mv: dict[str, Any], text: str) -> int:
    if args.json:
        out._dump(mv)
    else:
        print(text)
    return 0
