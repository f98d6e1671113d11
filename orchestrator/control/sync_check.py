"""Checking one fetched application tree before anything of it is registered.

Owns: validating each file of the tree with the same function as ``orchestrator validate``, with a
memory of files that validated cleanly (:class:`ValidationCache`: a commit that touches one file
of fifty re-checks one), and the references between documents of the tree and the store
(:func:`cross_check`: a configuration's executable, a schedule's configuration and slot parameter,
an executable id another application of the group owns), each a located error that rejects its
file. Used by :mod:`orchestrator.control.syncing`; must not import service, runner, cli or api.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from orchestrator.errors import NotFound, SpecError
from orchestrator.git import gitsync
from orchestrator.git.gitsync import FileResult
from orchestrator.model import ConfigurationSpec, ScheduleSpec, WorkflowSpec
from orchestrator.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from orchestrator.spec import Result


class ValidationCache:
    """``validate_text`` with a memory of files that validated with no error and no warning.

    Keyed by sha256 of the bytes and the validator version (in the store's ``validated_files``,
    salted apart from the ``run`` cache, which also keeps files with warnings): such a file is
    only re-parsed (:func:`load_trusted`), so a commit that touches one file of fifty re-checks one.
    """

    def __init__(self, store: SqliteStore, rg: str, tree: list[tuple[str, bytes]] | None = None) -> None:
        from orchestrator.spec import checker_version

        self.store, self.rg, self.salt, self.fresh = store, rg, b"sync\0" + checker_version().encode(), []
        self.sweeps: dict[str, list[Any]] = {}  # file -> its Sweep documents (check_files keeps no sweeps)
        self.tree = tree or []  # the application's files: where a templateRef finds its WorkflowTemplate
        self.libraries: dict[str, list[tuple[str, str]]] = {}
        self.azure_jobs: dict[str, list[str]] = {}  # file -> the types of its Azure ML jobs (command, sweep)

    def validate(self, data: bytes, name: str) -> Result:
        from orchestrator.spec import library_files, load_trusted, validate_text

        library = library_files(name, data, self.tree)
        self.libraries[name] = library
        h = hashlib.sha256(self.salt + b"\0" + data)
        for f, text in library:
            h.update(b"\0" + f.encode() + b"\0" + text.encode())
        digest = h.hexdigest()
        if self.store.is_validated(self.rg, digest):
            res = load_trusted(data, name, library)
            if not res.errors:
                self.sweeps[name] = list(res.sweeps)
                self.azure_jobs[name] = [j.job_type for j in res.azure_jobs]
                return res
        res = validate_text(data, name, library) if library else validate_text(data, name)
        self.sweeps[name] = list(res.sweeps)
        self.azure_jobs[name] = [j.job_type for j in res.azure_jobs]
        if not res.errors and not res.warnings:
            self.fresh.append(digest)
        return res

    def commit(self) -> None:
        for digest in self.fresh:
            self.store.mark_validated(self.rg, digest)


def cross_check(store: SqliteStore, rg: str, app: str,
                specs: tuple[list[WorkflowSpec], list[ConfigurationSpec], list[ScheduleSpec]],
                by_path: dict[str, FileResult], data_of: dict[str, bytes]) -> None:
    """References between documents: a configuration's executable, a schedule's configuration and
    slot parameter; and that no other live application of the group defines the same executable
    id (two owners would register over each other, and one's removal would mark the other's
    executable gone). A file with a broken reference is rejected as a whole (to a fixed point)."""
    owners = store.executable_owners(rg, other_than=app)
    changed = True
    while changed:
        changed = False
        valid = {p for p, r in by_path.items() if r.status == "valid"}
        exes = {w.executable_id: w for w in specs[0] if w.source in valid}
        cfgs = {c.name: c for c in specs[1] if c.source in valid}
        problems: list[SpecError] = []
        for w in specs[0]:
            if w.source in valid and w.executable_id in owners:
                problems.append(SpecError(
                    w.source, *gitsync.position_of(data_of[w.source], w.source, ("WorkflowTemplate", "ServingTemplate"),
                                                   w.executable_id), "/metadata/name", "id.conflict",
                    f"executable {w.executable_id!r} is already defined by application {owners[w.executable_id]!r} "
                    f"in resource group {rg!r}", "rename the template, or remove it from the other application"))
        for c in specs[1]:
            if c.source in valid and c.executable_id not in exes and not _known_executable(store, rg, c.executable_id):
                problems.append(_located(data_of, c.source, "Configuration", c.name, "/spec/executableId",
                                         "ref.executable", f"executable {c.executable_id!r} is not defined",
                                         "define the template in this repository or register it first"))
        for s in specs[2]:
            if s.source not in valid:
                continue
            cfg = cfgs.get(s.configuration_name) if s.configuration_name else None
            if s.configuration_name and cfg is None:
                problems.append(_located(data_of, s.source, "ExecutionSchedule", s.name, "/spec/configurationName",
                                         "ref.configuration",
                                         f"configuration {s.configuration_name!r} is not defined in application {app}",
                                         "add a Configuration document with that name, or use configurationId"))
                continue
            if not s.configuration_name:
                try:
                    exe_id = store.get_configuration(rg, s.configuration_id).executable_id
                except NotFound:
                    problems.append(_located(data_of, s.source, "ExecutionSchedule", s.name, "/spec/configurationId",
                                             "ref.configuration", f"configuration {s.configuration_id!r} does not exist"
                                             f" in resource group {rg!r}"))
                    continue
            else:
                exe_id = cfg.executable_id if cfg else ""
            declared = _parameters(store, rg, exes, exe_id)
            if s.slot_parameter and declared is not None and s.slot_parameter not in declared:
                problems.append(_located(data_of, s.source, "ExecutionSchedule", s.name, "/spec/slotParameter",
                                         "ref.parameter", f"executable {exe_id!r} declares no parameter "
                                         f"{s.slot_parameter!r}", "known: " + (", ".join(sorted(declared)) or "none")))
        for e in problems:
            r = by_path[e.file]
            r.errors.append(e.format())
            changed |= r.status == "valid"
            r.status = "invalid"


def _known_executable(store: SqliteStore, rg: str, executable_id: str) -> bool:
    try:
        return store.executable_origin(rg, executable_id)[1] is None
    except NotFound:
        return False


def _parameters(store: SqliteStore, rg: str, exes: dict[str, WorkflowSpec], exe_id: str) -> set[str] | None:
    if exe_id in exes:
        return {p.name for p in exes[exe_id].parameters}
    try:
        return {p.name for p in store.get_executable(rg, exe_id).parameters}
    except NotFound:
        return None


def _located(data_of: dict[str, bytes], path: str, kind: str, name: str, pointer: str, rule: str, message: str,
             hint: str = "") -> SpecError:
    """A reference error at the field's ``line:col``."""
    return SpecError(path, *gitsync.position_of(data_of[path], path, (kind,), name, pointer), pointer, rule,
                     message, hint)
