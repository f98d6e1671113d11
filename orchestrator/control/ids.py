"""Ids as people type them: the full id, or git-style a unique prefix of at least four characters.

Owns: the lookup of executions, artifacts, configurations and schedules by prefix within one resource
group (configurations also by name), and the errors: not found (with where to list them), or
ambiguous (listing candidates).
"""

from __future__ import annotations

from orchestrator.errors import NotFound, UsageError
from orchestrator.model import Configuration
from orchestrator.store.sqlite import SqliteStore

ID_KINDS = {"execution": "executions", "artifact": "artifacts", "configuration": "configurations",
            "schedule": "execution_schedules"}
# where a user finds the ids of each kind
_LISTED_BY = {"execution": "`orchestrator executions` lists them", "artifact": "`orchestrator artifacts` lists them",
              "configuration": "`orchestrator configurations` lists them",
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


def resolve_configuration(store: SqliteStore, rg: str, text: str) -> str:
    """The id of the configuration that ``text`` names: its id, its name, or a unique id prefix.

    Several configurations of one name (every ``orchestrator run`` adds an ``EXECUTABLE-cli`` one)
    are one if they bind the same executable, parameters and artifacts: the newest is taken. Named
    configurations that differ are ambiguous (UsageError listing them); no match is NotFound.
    """
    if not text:
        return resolve_id(store, rg, "configuration", text)
    if any(r["id"] == text for r in store.ids_with_prefix(rg, ID_KINDS["configuration"], text, limit=2)):
        return text
    named = [store.get_configuration(rg, r["id"]) for r in store.run_query(
        store.query_configurations(rg).eq("name", text), "id", limit=101, order="created_at DESC, id")]
    if named and len({_content(c) for c in named}) == 1:
        return named[0].id
    if named:
        listed = "".join(f"\n  {c.id}  {c.executable_id}  {c.created_at[:19]}  {_bindings(c)}" for c in named[:10])
        raise UsageError(f"configuration name {text!r} is ambiguous: {len(named)} configurations of that name "
                         f"bind different values:{listed}", hint="give the configuration id (or a unique prefix)")
    return resolve_id(store, rg, "configuration", text)


def _content(c: Configuration) -> tuple[object, ...]:
    return (c.scenario_id, c.executable_id, tuple(sorted(c.parameter_bindings)),
            tuple(sorted(c.input_artifact_bindings)))


def _bindings(c: Configuration) -> str:
    return " ".join(f"{k}={v}" for k, v in [*c.parameter_bindings, *c.input_artifact_bindings])[:80]
