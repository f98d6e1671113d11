"""Git sync use case: repositories and applications -> registered executables, configurations, schedules.

Owns: adding repositories (credentials to the secrets table) and applications, one sync of an
application (fetch into the home's mirror, read the tree from git objects, have
:mod:`orchestrator.control.sync_check` validate every file and cross-check references, register
what is valid under stable ids in one transaction), the per-file status that is persisted and shown,
"last good version" for a file that became invalid, ``gone_at`` for a template that left the
repository, and the commit SHA each object came from. An executable id belongs to one live
application per resource group (a second one is a located ``id.conflict``). An executable whose
registered row drifted from what the application registered (a local ``run``/``register`` of a
file with the same name replaced it, or it was marked gone) is restored by the next sync, even at
an unchanged commit, and the file's note says so.

Sits below :mod:`orchestrator.control.service` and above :mod:`orchestrator.git.gitsync` and the store; must
not import service, runner, cli, commands or api. Never logs or returns credentials.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.control import sweep_sync
from orchestrator.control.sweep_sync import Start
from orchestrator.control.sync_check import ValidationCache, cross_check
from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.git import gitsync
from orchestrator.git.gitsync import FileResult, GitError
from orchestrator.store.sqlite import SqliteStore

log = logging.getLogger(__name__)
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # AI Core: a DNS label
DEFAULT_GROUP = "default"  # = service.DEFAULT_RG (not imported: syncing sits below the service)
_RG = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9.-]{1,62}[a-zA-Z0-9]")  # AI Core's resource group id
_NS = uuid.UUID("6f1c7e0e-4a55-4c1e-9d3c-0a9b3c1f5e21")


def stable_id(app: str, kind: str, name: str) -> str:
    """The id of a git-synced configuration or schedule: the same on every sync, on every machine."""
    return str(uuid.uuid5(_NS, f"{app}/{kind}/{name}"))


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"{what} name {name!r} is not valid",
                         hint="lower-case letters, digits and '-', at most 63 characters, as in AI Core")
    return name


def add_repository(store: SqliteStore, name: str, url: str, *, username: str | None = None,
                   password: str | None = None) -> dict[str, Any]:
    """Register a git remote (local path, ``file://`` or ``https://``); the password goes to the secrets table."""
    _check_name(name, "repository")
    gitsync.check_url(url)
    if password is not None and not url.startswith("https://"):
        raise UsageError("credentials are only sent to https:// remotes")
    return store.add_repository(name, url, username=username, password=password)


def modify_repository(store: SqliteStore, name: str, *, username: str | None,
                      password: str | None) -> dict[str, Any]:
    """New credentials for a repository (stored as a secret, never returned); https remotes only."""
    if password is not None and not store.get_repository(name)["url"].startswith("https://"):
        raise UsageError("credentials are only sent to https:// remotes")
    return store.set_repository_credentials(name, username=username, password=password)


def modify_application(store: SqliteStore, name: str, *, repository: str | None = None, path: str | None = None,
                       revision: str | None = None) -> dict[str, Any]:
    """Another repository, directory or revision for an application; the next sync applies it in full."""
    if revision is not None:
        gitsync.check_revision(revision)
    if path is not None:
        path = gitsync.check_path(path) or "."
    return store.update_application(name, repository=repository, path=path, revision=revision)


def check_resource_group(rg: str) -> str:
    """A resource group id as AI Core allows it (never a reserved name such as ``(admin)``)."""
    if not isinstance(rg, str) or not _RG.fullmatch(rg):
        raise UsageError(f"resource group {rg!r} is not a valid resource group id",
                         hint="3-64 letters, digits, '.' and '-', starting and ending with a letter or digit")
    return rg


def add_application(store: SqliteStore, name: str, *, repository: str, path: str, revision: str,
                    rg: str, create_group: bool = False) -> dict[str, Any]:
    """An application: which directory of which repository at which branch / tag / SHA, into which group.

    The group must exist (:class:`NotFound` otherwise) unless ``create_group`` (the CLI's
    ``--resource-group``) or it is ``default``, which always exists implicitly (as on AI Core; a
    fresh home has no row for it yet); either way its id must be valid, so no reserved name
    becomes a group.
    """
    _check_name(name, "application")
    check_resource_group(rg)
    gitsync.check_revision(revision)
    return store.add_application(name, repository=repository, path=gitsync.check_path(path) or ".",
                                 revision=revision, rg=rg, create_group=create_group or rg == DEFAULT_GROUP)


def mirror_dir(home: Path, url: str) -> Path:
    """One bare mirror per remote URL under the home (never a user's working tree)."""
    return home / "git" / hashlib.sha256(url.encode()).hexdigest()[:20]


@dataclass
class SyncReport:
    """What one sync of an application did."""

    application: str
    status: str  # SYNCED | SYNCED_WITH_ERRORS | UNCHANGED | ERROR
    commit: str | None
    message: str
    duration: float
    files: list[dict[str, Any]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # executables replaced outside git, put back
    sweeps: list[str] = field(default_factory=list)  # ids of the sweeps this sync started (sweep_sync)


def sync_application(store: SqliteStore, home: Path, name: str, *, force: bool = False,
                     start: Start | None = None) -> SyncReport:
    """Bring one application up to date with its revision; never raises for repository content.

    A fetch or tree failure leaves everything registered as it was and records ``ERROR`` with
    git's reason. With the same commit and validator as last time, nothing is re-validated
    (``UNCHANGED``) unless ``force``. Syncs of one mirror in this process take turns (the
    server's loop and a ``refresh`` would otherwise race on git's ref locks). ``start`` starts the
    ``Sweep`` documents that are new or changed (:mod:`orchestrator.control.sweep_sync`).
    """
    url = store.get_repository(store.get_application(name)["repository"])["url"]
    with _LOCKS.setdefault(url, threading.Lock()):
        return _sync_application(store, home, name, force=force, start=start)


_LOCKS: dict[str, threading.Lock] = {}


def _sync_application(store: SqliteStore, home: Path, name: str, *, force: bool, start: Start | None) -> SyncReport:
    from orchestrator.spec import checker_version

    t0 = time.perf_counter()
    app = store.get_application(name)
    repo = store.get_repository(app["repository"])
    store.start_sync(name)
    try:
        mirror = mirror_dir(home, repo["url"])
        sha = gitsync.fetch(repo["url"], mirror, app["revision"],
                            credentials=store.repository_credentials(repo["name"]))
        checker = checker_version()
        if not force and sha == app["last_commit"] and checker == app["checker"] \
                and app["sync_status"] in ("SYNCED", "SYNCED_WITH_ERRORS", "UNCHANGED") \
                and not store.drifted_executables(name):  # nothing replaced or marked gone behind its back
            took = time.perf_counter() - t0
            store.finish_sync(name, status=app["sync_status"], message=app["message"] or "", commit=sha,
                              checker=checker, duration=took)
            return SyncReport(name, "UNCHANGED", sha, f"already at {sha[:12]}", took,
                              files=store.application_files(name))
        files, skipped = gitsync.read_tree(mirror, sha, "" if app["path"] == "." else app["path"])
    except GitError as exc:
        took = time.perf_counter() - t0
        store.finish_sync(name, status="ERROR", message=exc.message, commit=None, checker=None, duration=took)
        store.set_repository_status(repo["name"], "ERROR", exc.message)
        log.warning("sync of application %s failed: %s", name, exc.message)
        return SyncReport(name, "ERROR", None, exc.message, took)
    store.set_repository_status(repo["name"], "COMPLETED", "")
    report = _apply(store, app, sha, files, gitsync.skipped_results(skipped), start)
    report.duration = time.perf_counter() - t0
    store.finish_sync(name, status=report.status, message=report.message, commit=sha, checker=checker,
                      duration=report.duration)
    return report


def sync_all(store: SqliteStore, home: Path, *, force: bool = False, start: Start | None = None) -> list[SyncReport]:
    """Sync every application; one failing application does not stop the others."""
    reports = []
    for app in store.list_applications():
        try:
            reports.append(sync_application(store, home, app["name"], force=force, start=start))
        except OrchestratorError as exc:
            reports.append(SyncReport(app["name"], "ERROR", None, exc.message, 0.0))
    return reports


def loop(store: SqliteStore, home: Path, stop: threading.Event, interval: float, start: Start | None = None) -> None:
    """Sync every application now and every ``interval`` s until ``stop`` is set; never raises."""
    while not stop.is_set():
        try:
            sync_all(store, home, start=start)
        except Exception:  # noqa: BLE001 - the loop outlives one bad sync (store busy, disk full)
            log.exception("git sync failed")
        stop.wait(interval)


# ---------------------------------------------------------------- applying one checked tree


def _apply(store: SqliteStore, app: dict[str, Any], sha: str, files: list[tuple[str, bytes]],
           skipped: list[FileResult], start: Start | None = None) -> SyncReport:
    name, rg = app["name"], app["rg"]
    cache = ValidationCache(store, rg, files)
    results, all_workflows, all_configs, all_schedules = gitsync.check_files(files, cache.validate)
    by_path = {r.path: r for r in results}
    data_of = dict(files)
    cross_check(store, rg, name, (all_workflows, all_configs, all_schedules), by_path, data_of)
    all_sweeps = [s for n, _ in files for s in cache.sweeps.get(n, ())]
    exes = {w.executable_id for w in all_workflows if by_path[w.source].status == "valid"}
    if sweep_sync.check(store, rg, all_sweeps, exes, by_path, data_of):  # a rejected file may hold a template
        cross_check(store, rg, name, (all_workflows, all_configs, all_schedules), by_path, data_of)
    valid = {p for p, r in by_path.items() if r.status == "valid"}
    workflows = [w for w in all_workflows if w.source in valid]
    configs = [c for c in all_configs if c.source in valid]
    schedules = [s for s in all_schedules if s.source in valid]
    prev = {(o["kind"], o["name"]): o for o in store.application_objects(name)}
    drifted = store.drifted_executables(name)
    current: set[tuple[str, str]] = set()
    report = SyncReport(name, "SYNCED", sha, "", 0.0)
    objects: dict[str, list[dict[str, str]]] = {}
    notes: dict[str, str] = {}
    with store.transaction():
        for w in workflows:
            key = ("executable", w.executable_id)
            if prev.get(key, {}).get("digest") != w.digest or prev[key]["gone_at"] \
                    or prev[key]["path"] != w.source or drifted.get(w.executable_id) == "replaced":
                doc: dict[str, Any] = {"text": data_of[w.source].decode("utf-8"), "index": w.doc_index,
                                       "file": w.source}
                if cache.libraries.get(w.source):  # what its templateRefs use, from the same tree
                    doc["library"] = [list(x) for x in cache.libraries[w.source]]
                store.register_executable(rg, w, doc)
            if w.executable_id in drifted and prev.get(key, {}).get("digest") == w.digest:
                report.restored.append(w.executable_id)
                why = ("had been replaced outside git (a local register or run of a template with the same "
                       "name)" if drifted[w.executable_id] == "replaced" else "had been marked gone")
                note = f"restored executable {w.executable_id}: it {why}; the repository's version is active again"
                notes[w.source] = f"{notes[w.source]}; {note}" if w.source in notes else note
            store.set_executable_origin(rg, w.executable_id, sha)
            store.put_application_object(name, kind="executable", name=w.executable_id, rg=rg,
                                         object_id=w.executable_id, path=w.source, digest=w.digest, commit=sha)
            current.add(key)
            report.registered.append(w.executable_id)
            objects.setdefault(w.source, []).append({"kind": "executable", "name": w.executable_id,
                                                     "id": w.executable_id})
        for c in configs:
            cid = stable_id(name, "configuration", c.name)
            digest = hashlib.sha256(repr(c).encode()).hexdigest()
            if prev.get(("configuration", c.name), {}).get("digest") != digest:
                scenario = c.scenario_id or store.get_executable(rg, c.executable_id).scenario_id
                store.put_configuration(rg, cid, name=c.name, scenario_id=scenario, executable_id=c.executable_id,
                                        parameter_bindings=c.parameter_bindings, artifact_bindings=c.artifact_bindings,
                                        source=f"{name}:{c.source}")
            store.put_application_object(name, kind="configuration", name=c.name, rg=rg, object_id=cid,
                                         path=c.source, digest=digest, commit=sha)
            current.add(("configuration", c.name))
            objects.setdefault(c.source, []).append({"kind": "configuration", "name": c.name, "id": cid})
        for s in schedules:
            sid = stable_id(name, "schedule", s.name)
            old = prev.get(("schedule", s.name))
            if old is None or old["digest"] != s.digest or old["gone_at"]:
                store.put_synced_schedule(rg, sid, {
                    "name": s.name, "cron": s.cron, "timezone": s.timezone, "start": s.start, "end": s.end,
                    "status": s.status, "catchup": s.catchup, "max_catchup": s.max_catchup,
                    "concurrency": s.concurrency, "slot_parameter": s.slot_parameter or None,
                    "configuration_id": s.configuration_id or stable_id(name, "configuration", s.configuration_name),
                    "source": f"{name}:{s.source}"})
            store.put_application_object(name, kind="schedule", name=s.name, rg=rg, object_id=sid, path=s.source,
                                         digest=s.digest, commit=sha)
            current.add(("schedule", s.name))
            objects.setdefault(s.source, []).append({"kind": "schedule", "name": s.name, "id": sid})
        pending = sweep_sync.record(store, name, rg, sha, [s for s in all_sweeps if s.source in valid], prev,
                                    current, objects)
        for r in [*results, *skipped]:
            if r.status == "valid":
                continue
            kept = [k for k, o in prev.items() if o["path"] == r.path and not o["gone_at"] and k not in current]
            if kept:
                current.update(kept)
                report.kept.extend(f"{k}/{n}" for k, n in kept)
                commit = prev[kept[0]]["commit_sha"][:12]
                notes[r.path] = (f"keeps the last good version (commit {commit}) of "
                                 + ", ".join(f"{k} {n}" for k, n in kept))
                if any(k == "executable" and drifted.get(n) == "replaced" for k, n in kept):
                    notes[r.path] += ("; but the registered executable was replaced outside git and is restored "
                                      "when this file is valid again")
                objects[r.path] = [{"kind": k, "name": n, "id": prev[(k, n)]["object_id"]} for k, n in kept]
        for key, o in prev.items():
            if key not in current and not o["gone_at"]:
                store.mark_object_gone(name, *key)
                report.gone.append(f"{key[0]}/{key[1]}")
        for r in results:  # Azure ML job files are checked like the other kinds; a sync runs none of them
            kinds = cache.azure_jobs.get(r.path)
            if kinds and r.status == "valid":
                note = (f"Azure ML {kinds[0]} job: checked, not run (a job file is a run request: "
                        f"orchestrator run {r.path}, or POST /v2/lm/azureml/jobs)")
                notes[r.path] = f"{notes[r.path]}; {note}" if r.path in notes else note
        rows = [{"path": r.path, "status": r.status, "errors": r.errors, "warnings": r.warnings,
                 "objects": objects.get(r.path, []), "note": notes.get(r.path)}
                for r in sorted([*results, *skipped], key=lambda r: r.path)]
        store.replace_application_files(name, sha, rows)
        cache.commit()
    report.sweeps = sweep_sync.start_pending(store, name, rg, sha, pending, start, rows, data_of)
    report.files = rows
    bad = sum(1 for r in rows if r["status"] != "valid")
    report.status = "SYNCED_WITH_ERRORS" if bad else "SYNCED"
    report.message = (f"{len(rows)} file(s) at {sha[:12]}: {len(rows) - bad} valid, {bad} rejected or skipped; "
                      f"{len(report.registered)} executable(s), {len(report.gone)} gone"
                      + (f", {len(report.restored)} restored (changed outside git)" if report.restored else "")
                      + (f", {len(report.sweeps)} sweep(s) started" if report.sweeps else ""))
    return report


def file_rows(store: SqliteStore, name: str) -> Sequence[dict[str, Any]]:
    """The persisted per-file status of an application (every file, with errors and notes)."""
    return store.application_files(name)
