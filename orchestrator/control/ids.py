"""Ids as people type them: the full id, or git-style a unique prefix of at least four characters.

Owns: the lookup of executions, artifacts, configurations and schedules by prefix within one resource
group, and the errors: not found (with where to list them), or ambiguous (listing candidates).
"""

from __future__ import annotations

from orchestrator.errors import NotFound, UsageError
from orchestrator.store.sqlite import SqliteStore

ID_KINDS = {"execution": "executions", "artifact": "artifacts", "configuration": "configurations",
            "schedule": "execution_schedules"}
# where a user finds the ids of each kind
_LISTED_BY = {"execution": "`orchestrator executions` lists them", "artifact": "`orchestrator artifacts` lists them",
              "configuration": "`orchestrator executions show ID` prints the configuration an execution ran with",
              "schedule": "`orchestrator schedules list` lists them"}
MIN_PREFIX = 4  # as git: shorter prefixes are never expanded


def resolve_id(store: SqliteStore, rg: str, kind: str, text: str) -> str:
    """The full id of the ``kind`` (execution, artifact, configuration, schedule) that is ``text`` or, git-style,
    the only one starting with it (at least 4 characters); NotFound, or UsageError listing candidates."""
    rows = store.ids_with_prefix(rg, ID_KINDS[kind], text, limit=11) if text else []
    if any(r["id"] == text for r in rows):
        return text
    if len(text) < MIN_PREFIX or not rows:
        short = f" (an id prefix needs at least {MIN_PREFIX} characters)" if rows else ""
        raise NotFound(f"{kind} {text!r} not found in resource group {rg!r}{short}",
                       hint=_LISTED_BY[kind])
    if len(rows) == 1:
        return str(rows[0]["id"])
    listed = "".join(f"\n  {r['id']}  {r['what']}  {r['created_at'][:19]}" for r in rows[:10])
    raise UsageError(f"{kind} id prefix {text!r} is ambiguous; it matches"
                     f"{' more than 10' if len(rows) > 10 else ''}:{listed}",
                     hint="give more characters of the id")
