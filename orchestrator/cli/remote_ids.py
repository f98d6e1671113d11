"""Ids as people type them, against a server (``--server``): the full id, or a unique prefix.

Owns: turning what the user typed for an execution, artifact, deployment or sweep into the server's full id, as the
local commands do (:mod:`orchestrator.control.ids`): an exact id is one GET; otherwise a prefix of
at least four characters is looked up in the server's listing (paged), and must match exactly one
id. The AI API itself only knows full ids, so the prefix is never sent as an id.
"""

from __future__ import annotations

import urllib.parse

from orchestrator.cli.client import Client
from orchestrator.control.ids import MIN_PREFIX
from orchestrator.errors import NotFound, UsageError

_PATHS = {"execution": "/v2/lm/executions", "artifact": "/v2/lm/artifacts", "deployment": "/v2/lm/deployments",
          "sweep": "/v2/lm/sweeps"}
_PAGE = 1000
_MAX_LISTED = 10


def resolve_remote(c: Client, kind: str, text: str) -> str:
    """The full id of the ``kind`` (``execution``, ``artifact``, ``deployment``, ``sweep``) on the
    server that ``text`` is or, git-style, the only one starting with it (at least 4 characters)."""
    path = _PATHS[kind]
    try:
        c.call("GET", f"{path}/{urllib.parse.quote(text, safe='')}",
               **({"$select": "status"} if kind == "execution" else {}))
        return text
    except NotFound:
        if len(text) < MIN_PREFIX:
            short = f" (an id prefix needs at least {MIN_PREFIX} characters)"
            raise NotFound(f"{kind} {text!r} not found on {c.base}{short}",
                           hint=f"`orchestrator {kind}s` lists them") from None
    matches: list[str] = []
    seen = 0
    while len(matches) <= _MAX_LISTED:
        page = c.call("GET", path, **{"$top": _PAGE, "$skip": seen})
        ids = [str(r["id"]) for r in page.get("resources", [])]
        matches += [i for i in ids if i.startswith(text)]
        seen += len(ids)
        if not ids or seen >= int(page.get("count", seen)):
            break
    if not matches:
        raise NotFound(f"{kind} {text!r} not found on {c.base} (resource group {c.rg})",
                       hint=f"`orchestrator {kind}s` lists them")
    if len(matches) > 1:
        listed = "".join(f"\n  {i}" for i in matches[:_MAX_LISTED])
        more = " more than 10" if len(matches) > _MAX_LISTED else ""
        raise UsageError(f"{kind} id prefix {text!r} is ambiguous; it matches{more}:{listed}",
                         hint="give more characters of the id")
    return matches[0]


__all__ = ["resolve_remote"]
