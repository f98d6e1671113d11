"""Store records of the catalog: resource groups, scenarios, executables, configurations, artifacts.

Owns: the SQL that registers an executable (its scenario and version with it), reads its
stored template document, remembers validated template digests, creates and reads
configurations, and creates, reads and lists artifacts. A mixin of
:class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``db``, ``transaction`` and ``_one``).
Every read takes the resource group: an id from another group is NotFound.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from orchestrator.model import Artifact, Configuration, Executable, ParameterDecl, WorkflowSpec
from orchestrator.store import now_iso
from orchestrator.store.codec import j as _j
from orchestrator.store.codec import pairs as _pairs


class CatalogRecords:
    """Resource groups, scenarios, executables, configurations and artifacts."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SqliteStore
    def _one(self, sql: str, args: Sequence[Any], what: str) -> Any: ...  # provided by SqliteStore

    # ------------------------------------------------------------------ scenarios/executables
    def ensure_resource_group(self, rg: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO resource_groups(id, created_at) VALUES (?, ?)", (rg, now_iso()))

    def register_executable(self, rg: str, spec: WorkflowSpec, document: dict[str, Any]) -> Executable:
        now = now_iso()
        inputs = [(a.name, spec.artifact_meta.get(a.name).kind if a.name in spec.artifact_meta else "")
                  for a in spec.input_artifacts]
        outputs = [(a.global_name, spec.artifact_meta.get(a.global_name).kind
                    if a.global_name in spec.artifact_meta else "") for a in spec.output_artifacts]
        params = [[p.name, p.default, p.description, list(p.enum)] for p in spec.parameters]
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO resource_groups(id, created_at) VALUES (?, ?)", (rg, now))
            db.execute("""INSERT INTO scenarios(rg, id, name, description, created_at, modified_at)
                          VALUES (?,?,?,?,?,?) ON CONFLICT(rg, id) DO UPDATE SET
                          name=excluded.name, description=excluded.description, modified_at=excluded.modified_at
                          WHERE name IS NOT excluded.name OR description IS NOT excluded.description""",
                       (rg, spec.scenario_id, spec.scenario_name or spec.scenario_id, spec.scenario_description,
                        now, now))
            db.execute("""INSERT OR IGNORE INTO versions(rg, scenario_id, id, created_at, modified_at)
                          VALUES (?,?,?,?,?)""", (rg, spec.scenario_id, spec.version, now, now))
            db.execute("""INSERT INTO executables(rg, id, scenario_id, version_id, name, description, deployable,
                          parameters, input_artifacts, output_artifacts, digest, source, document,
                          created_at, modified_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                          ON CONFLICT(rg, id) DO UPDATE SET scenario_id=excluded.scenario_id,
                          version_id=excluded.version_id, name=excluded.name, description=excluded.description,
                          deployable=excluded.deployable, parameters=excluded.parameters,
                          input_artifacts=excluded.input_artifacts, output_artifacts=excluded.output_artifacts,
                          digest=excluded.digest, source=excluded.source, document=excluded.document,
                          commit_sha=NULL, modified_at=excluded.modified_at
                          WHERE digest IS NOT excluded.digest""",
                       (rg, spec.executable_id, spec.scenario_id, spec.version, spec.executable_name or
                        spec.executable_id, spec.executable_description, int(spec.deployable), _j(params),
                        _j(inputs), _j(outputs), spec.digest, spec.source, _j(document), now, now))
        return self.get_executable(rg, spec.executable_id)

    def get_executable(self, rg: str, executable_id: str) -> Executable:
        r = self._one("""SELECT id, scenario_id, version_id, name, description, deployable, parameters,
                         input_artifacts, output_artifacts, digest, source, created_at, modified_at
                         FROM executables WHERE rg=? AND id=?""", (rg, executable_id),
                      f"executable {executable_id!r}")
        params = tuple(ParameterDecl(p[0], p[1], p[2] or "", tuple(p[3] or ())) for p in json.loads(r[6]))
        return Executable(r[0], r[1], r[2], r[3], r[4] or "", bool(r[5]), params, _pairs(r[7]), _pairs(r[8]),
                          r[9], r[10] or "", r[11], r[12], rg)

    def executable_document(self, rg: str, executable_id: str) -> dict[str, Any]:
        r = self._one("SELECT document FROM executables WHERE rg=? AND id=?", (rg, executable_id),
                      f"executable {executable_id!r}")
        return json.loads(r[0])

    def list_executables(self, rg: str) -> list[Executable]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM executables WHERE rg=? ORDER BY id", (rg,))]
        return [self.get_executable(rg, i) for i in ids]

    def is_validated(self, rg: str, digest: str) -> bool:
        return self.db.execute("SELECT 1 FROM validated_files WHERE rg=? AND digest=?", (rg, digest)).fetchone() \
            is not None

    def mark_validated(self, rg: str, digest: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO validated_files(rg, digest, checked_at) VALUES (?,?,?)",
                       (rg, digest, now_iso()))

    # ------------------------------------------------------------------ configurations
    def create_configuration(self, rg: str, name: str, scenario_id: str, executable_id: str,
                             parameter_bindings: Sequence[tuple[str, str]],
                             artifact_bindings: Sequence[tuple[str, str]]) -> Configuration:
        cid = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute("""INSERT INTO configurations(rg, id, name, scenario_id, executable_id, parameter_bindings,
                          input_artifact_bindings, created_at) VALUES (?,?,?,?,?,?,?,?)""",
                       (rg, cid, name, scenario_id, executable_id, _j(list(parameter_bindings)),
                        _j(list(artifact_bindings)), now_iso()))
        return self.get_configuration(rg, cid)

    def get_configuration(self, rg: str, configuration_id: str) -> Configuration:
        r = self._one("""SELECT id, name, scenario_id, executable_id, parameter_bindings, input_artifact_bindings,
                         created_at FROM configurations WHERE rg=? AND id=?""", (rg, configuration_id),
                      f"configuration {configuration_id!r}")
        return Configuration(r[0], r[1], r[2], r[3], _pairs(r[4]), _pairs(r[5]), r[6], rg)

    # ------------------------------------------------------------------ artifacts
    _ART_COLS = """id, name, kind, url, scenario_id, description, labels, created_at, modified_at, execution_id,
                   configuration_id, digest, size, rg"""

    def create_artifact(self, rg: str, *, name: str, kind: str, url: str, scenario_id: str,
                        description: str = "", labels: Sequence[tuple[str, str]] = (),
                        execution_id: str | None = None, configuration_id: str | None = None,
                        digest: str = "", size: int = 0) -> Artifact:
        aid = str(uuid.uuid4())
        now = now_iso()
        with self.transaction() as db:
            db.execute(f"INSERT INTO artifacts({self._ART_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (aid, name, kind, url, scenario_id, description, _j(list(labels)), now, now, execution_id,
                        configuration_id, digest, size, rg))
        return self.get_artifact(rg, aid)

    def _artifact(self, r: Sequence[Any]) -> Artifact:
        return Artifact(r[0], r[1], r[2], r[3], r[4], r[5] or "", _pairs(r[6]), r[7], r[8], r[9], r[10], r[11] or "",
                        r[12] or 0, r[13])

    def get_artifact(self, rg: str, artifact_id: str) -> Artifact:
        return self._artifact(self._one(f"SELECT {self._ART_COLS} FROM artifacts WHERE rg=? AND id=?",
                                        (rg, artifact_id), f"artifact {artifact_id!r}"))

    def list_artifacts(self, rg: str, *, execution_id: str | None = None, kind: str | None = None,
                       scenario_id: str | None = None, name: str | None = None,
                       limit: int = 100, offset: int = 0) -> list[Artifact]:
        sql = f"SELECT {self._ART_COLS} FROM artifacts WHERE rg=?"
        args: list[Any] = [rg]
        for col, val in (("execution_id", execution_id), ("kind", kind), ("scenario_id", scenario_id),
                         ("name", name)):
            if val:
                sql += f" AND {col}=?"
                args.append(val)
        sql += " ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
        return [self._artifact(r) for r in self.db.execute(sql, (*args, limit, offset))]
