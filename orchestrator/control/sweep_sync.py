"""Git sync of ``Sweep`` documents: checked across files, recorded per application, started once per digest.

Owns what :mod:`orchestrator.control.syncing` does for the ``Sweep`` kind. A synced Sweep is a
request to run, like a Kubernetes Job applied from git, so unlike a Configuration (registered,
run by someone) it is *started* by the sync: once per content digest. The application object
``("sweep", name)`` remembers the digest and the id of the sweep started for it; a re-sync of an
unchanged document starts nothing, a changed document starts a new sweep (the old one keeps
running to its end; stop it with ``sweeps stop``), a removed one is marked gone (its sweep is
left alone, as executions of a gone template are). The checks a sync can make without a service
(names unique across files, the trial's executable defined in the repository or registered) are
located ``file:line:col`` errors of the file, like the other kinds'; what only starting can tell
(a search-space parameter the executable does not declare, an artifact that does not exist) is
recorded the same way on the file when the start fails, and the next sync that applies the file
tries again. Starting needs a service (the caller passes :data:`Start`; the server, ``sync`` and
the REST refresh do); a sync without one records the sweep as not started.

Must not import service, runner, cli or api (the starter is passed in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFound, OrchestratorError, SpecError, ValidationFailed
from orchestrator.git import gitsync
from orchestrator.spec.sweep import SweepSpec
from orchestrator.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from orchestrator.git.gitsync import FileResult

Start = Callable[[str, SweepSpec, str], str]  # (resource group, spec, "app:path") -> the started sweep's id
KIND = "sweep"


def check(store: SqliteStore, rg: str, sweeps: list[SweepSpec], executables: set[str],
          by_path: dict[str, FileResult], data_of: dict[str, bytes]) -> bool:
    """Reject (in place, located) the files of sweeps whose name another valid file also uses or
    whose trial executable is neither in the repository's valid files nor registered; True when a
    file became invalid."""
    valid = {p for p, r in by_path.items() if r.status == "valid"}
    live = [s for s in sweeps if s.source in valid]
    owners: dict[str, list[str]] = {}
    for s in live:
        owners.setdefault(s.name, []).append(s.source)
    problems: list[SpecError] = []
    for s in live:
        others = [p for p in owners[s.name] if p != s.source]
        if others:
            problems.append(_error(data_of, s, "/metadata/name", "id.duplicate",
                                   f"sweep name {s.name!r} is also defined in {', '.join(sorted(set(others)))}",
                                   "sweep names are unique across the repository: rename one"))
        exe = s.trial.executable_id
        if exe and exe not in executables and not _registered(store, rg, exe):
            problems.append(_error(data_of, s, "/spec/trial/executableId", "ref.executable",
                                   f"executable {exe!r} is not defined",
                                   "define the template in this repository or register it first"))
    changed = False
    for e in problems:
        r = by_path[e.file]
        r.errors.append(e.format())
        changed |= r.status == "valid"
        r.status = "invalid"
    return changed


def record(store: SqliteStore, app: str, rg: str, sha: str, sweeps: list[SweepSpec], prev: dict[Any, Any],
           current: set[tuple[str, str]], objects: dict[str, list[dict[str, str]]]) -> list[SweepSpec]:
    """Record the valid sweeps as application objects (inside the sync's transaction); returns the
    ones to start: new, changed, or never started."""
    pending = []
    for s in sweeps:
        old = prev.get((KIND, s.name))
        started = bool(old and old["digest"] == s.digest and old["object_id"])
        sid = old["object_id"] if started and old else ""
        store.put_application_object(app, kind=KIND, name=s.name, rg=rg, object_id=sid, path=s.source,
                                     digest=s.digest, commit=sha)
        current.add((KIND, s.name))
        objects.setdefault(s.source, []).append({"kind": KIND, "name": s.name, "id": sid})
        if not started:
            pending.append(s)
    return pending


def start_pending(store: SqliteStore, app: str, rg: str, sha: str, pending: list[SweepSpec], start: Start | None,
                  rows: list[dict[str, Any]], data_of: dict[str, bytes]) -> list[str]:
    """Start each pending sweep (after the sync's transaction committed, so the executables it
    registered are visible); record the sweep id on its object and file row, or the located
    reasons it could not start on the file row (which becomes invalid). Returns the started ids."""
    if not pending:
        return []
    by_path = {r["path"]: r for r in rows}
    started: list[str] = []
    for s in pending:
        row = by_path[s.source]
        if start is None:
            _note(row, f"sweep {s.name} is recorded but not started (this sync cannot start sweeps)")
            continue
        try:
            sid = start(rg, s, f"{app}:{s.source}")
        except OrchestratorError as exc:
            errs = exc.errors if isinstance(exc, ValidationFailed) else [
                SpecError(s.source, 1, 1, "", "sweep.not-started", exc.message, exc.hint or "")]
            row["errors"] = [*row["errors"], *(_error(data_of, s, e.pointer or "/metadata/name", e.rule,
                                                      f"sweep {s.name} not started: {e.message}", e.hint).format()
                                               for e in errs)]
            row["status"] = "invalid"
            continue
        store.put_application_object(app, kind=KIND, name=s.name, rg=rg, object_id=sid, path=s.source,
                                     digest=s.digest, commit=sha)
        for o in row["objects"]:
            if o["kind"] == KIND and o["name"] == s.name:
                o["id"] = sid
        _note(row, f"started sweep {s.name} as {sid}")
        started.append(sid)
    store.replace_application_files(app, sha, rows)
    return started


def _note(row: dict[str, Any], text: str) -> None:
    row["note"] = f"{row['note']}; {text}" if row.get("note") else text


def _registered(store: SqliteStore, rg: str, exe: str) -> bool:
    try:
        store.get_executable(rg, exe)
    except NotFound:
        return False
    return True


def _error(data_of: dict[str, bytes], s: SweepSpec, pointer: str, rule: str, message: str, hint: str = "") -> SpecError:
    return SpecError(s.source, *gitsync.position_of(data_of[s.source], s.source, ("Sweep",), s.name, pointer),
                     pointer, rule, message, hint)
