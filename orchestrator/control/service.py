"""Composition root and use cases: register, run, and the read side used by the CLI.

Owns: opening the home :mod:`orchestrator.control.home` locates (read commands never create
one), picking the concrete store and object store, turning CLI/config
bindings into a Configuration and an Execution *after* every check passed (so a refused run
writes nothing), id prefixes, and starting the runner. Entry points (CLI, API) call only this
module. Background runs and execution control live in :mod:`orchestrator.control.service_runs`,
git sync and schedules in :mod:`orchestrator.control.service_sync` (mixins of :class:`Service`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.control import modelrefs
from orchestrator.control.home import locate_home
from orchestrator.control.service_runs import ServiceRuns
from orchestrator.control.service_sync import ServiceSync
from orchestrator.errors import ArtifactError, BindingError, NotFound, StoreError, UsageError, ValidationFailed
from orchestrator.model import ConfigurationSpec, Execution, Status, WorkflowSpec
from orchestrator.plan.binding import RunPlan, bind_parameters
from orchestrator.plan.binding import hint as _hint
from orchestrator.run import reaper
from orchestrator.run.runner import EventSink, Runner
from orchestrator.spec import Result, validate_paths, validate_text
from orchestrator.store.artifacts import ObjectStore, parse_url
from orchestrator.store.sqlite import SqliteStore

if TYPE_CHECKING:  # names used only in annotations
    from typing import Any

DEFAULT_RG = "default"


class Service(ServiceRuns, ServiceSync):
    """All use cases over one home directory.

    ``create=False`` (read commands) refuses to create a store: :class:`NotFound` says where it
    looked. ``local_files=True`` (the local user's own CLI) reads ``file://`` URLs and plain paths
    anywhere the user can; otherwise only under the current directory, the home and
    ``ORCHESTRATOR_FILE_ROOTS`` (the server, background runners, synced documents).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, rg: str = DEFAULT_RG, *,
                 reap: bool = True, create: bool = True, local_files: bool = False) -> None:
        choice = locate_home(home)
        if not create and not choice.has_store:
            raise choice.missing()
        self.home = choice.path
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            if not self.home.is_dir():
                raise NotADirectoryError(20, "Not a directory")
        except OSError as exc:
            raise StoreError(f"cannot use {self.home} as the orchestrator home: {exc.strerror or exc}",
                             hint="set ORCHESTRATOR_HOME (or --home) to a writable directory") from None
        self.rg = rg
        # Set by `serve`: steps of executions this process starts get a tracking endpoint there.
        self.tracking_base = ""
        self.store = SqliteStore(str(self.home / "orchestrator.db"))
        roots = ["/"] if local_files else [os.getcwd(), str(self.home)] + [
            r for r in os.environ.get("ORCHESTRATOR_FILE_ROOTS", "").split(os.pathsep) if r]
        self.objects = ObjectStore(self.home, roots, remotes=self._bucket)
        if reap:
            reaper.reap(self.store)

    def close(self) -> None:
        self.store.close()

    def _bucket(self, rg: str, name: str) -> Any:
        """The :class:`~orchestrator.store.objects_s3.S3Target` of object store secret ``name`` of
        ``rg`` when it is of type S3 (``ai://name/...`` is then that bucket); None otherwise."""
        access = self.store.object_store_access(rg, name)
        if access is None or access[0].lower() != "s3":
            return None
        from orchestrator.store.objects_s3 import target_from_secret

        return target_from_secret(name, access[1], access[2])

    # ------------------------------------------------------------------ templates
    def validate(self, paths: list[str]) -> Result:
        return validate_paths(paths)

    def _load_file(self, path: str) -> tuple[Result, str, list[tuple[str, str]]]:
        """Validate one file, or reuse an earlier validation of the very same bytes; also the
        (file, text) of the WorkflowTemplates beside it that its ``templateRef`` s use."""
        from orchestrator.spec import library_files
        from orchestrator.spec.yamlsafe import MAX_BYTES

        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
        library = library_files(path, data)
        res = self._checked(data, path, library)
        return res, data.decode("utf-8"), library

    def _checked(self, data: bytes, name: str, library: list[tuple[str, str]] | None = None) -> Result:
        """Full validation, cached by sha256(bytes) + validator version (imports stay lazy)."""
        import hashlib

        from orchestrator.spec import checker_version, load_trusted

        h = hashlib.sha256(data + b"\0" + checker_version().encode())
        for f, text in library or []:  # the referenced templates are part of what was checked
            h.update(b"\0" + f.encode() + b"\0" + text.encode())
        digest = h.hexdigest()
        if self.store.is_validated(self.rg, digest):
            res = load_trusted(data, name, library)
            if not res.errors:
                return res
        res = validate_text(data, name, library)
        if res.errors:
            raise ValidationFailed(res.errors)
        self.store.mark_validated(self.rg, digest)
        return res

    def register(self, paths: list[str]) -> list[WorkflowSpec]:
        """Validate files and register every template in them as an executable (all or nothing)."""
        res = validate_paths(paths)
        if res.errors:
            raise ValidationFailed(res.errors)
        with self.store.transaction():
            from orchestrator.spec import library_files

            for spec in res.workflows:
                text = Path(spec.source).read_text(encoding="utf-8")
                doc: dict[str, object] = {"text": text, "index": spec.doc_index, "file": spec.source}
                library = library_files(spec.source, text.encode("utf-8"))
                if library:
                    doc["library"] = [list(x) for x in library]
                self.store.register_executable(self.rg, spec, doc)
        return res.workflows

    def load_executable(self, executable_id: str) -> tuple[WorkflowSpec, dict[str, object]]:
        try:
            doc = self.store.executable_document(self.rg, executable_id)
        except NotFound:
            known = [e.id for e in self.store.list_executables(self.rg)]
            raise UsageError(f"unknown executable {executable_id!r}",
                             hint=_hint(executable_id, known) + "; pass the template file or run "
                             "`orchestrator register FILE` first") from None
        if self.store.executable_origin(self.rg, executable_id)[1]:
            raise UsageError(f"executable {executable_id!r} was removed from its git repository",
                             hint="its executions stay readable; restore the template to run it again")
        library = [(str(f), str(t)) for f, t in doc.get("library") or []]  # type: ignore[attr-defined]
        res = self._checked(str(doc["text"]).encode(), str(doc.get("file", executable_id)), library)
        for spec in res.workflows:
            if spec.executable_id == executable_id:
                return spec, doc
        raise UsageError(f"stored template of {executable_id!r} no longer validates",
                         hint="register the file again")

    # ------------------------------------------------------------------ runs
    def plan(self, target: str | None, params: list[str], artifacts: list[str],
             config_file: str | None = None) -> RunPlan:
        """Check everything a run needs; raises before anything is written."""
        config: ConfigurationSpec | None = None
        if config_file:
            res, _, _lib = self._load_file(config_file)
            if len(res.configurations) != 1:
                raise UsageError(f"{config_file} must contain exactly one Configuration document")
            config = res.configurations[0]
            target = target or config.executable_id
        if not target:
            raise UsageError("nothing to run", hint="give a template file, an executable id or --config FILE")
        commit: str | None = None
        if os.path.isfile(target):
            res, text, library = self._load_file(target)
            runnable = [w for w in res.workflows if not w.deployable]
            if config is not None:
                runnable = [w for w in runnable if w.executable_id == config.executable_id] or runnable
            if len(runnable) != 1:
                raise UsageError(f"{target} holds {len(runnable)} WorkflowTemplates; expected exactly one",
                                 hint="pass the executable id instead")
            spec, doc = runnable[0], {"text": text, "index": runnable[0].doc_index, "file": target}
            if library:
                doc["library"] = [list(x) for x in library]
        else:
            if os.sep in target or target.endswith((".yaml", ".yml")):
                raise UsageError(f"no such file: {target}")
            spec, doc = self.load_executable(target)
            commit = self.store.executable_origin(self.rg, target)[0]
        if spec.deployable:
            raise UsageError(f"{spec.executable_id!r} is a ServingTemplate: it is deployed, not run")
        if not spec.entrypoint:
            raise UsageError(f"{spec.executable_id!r} has no entrypoint: it is a library of templates for templateRef",
                             hint="run a template that refers to it, or add spec.entrypoint")
        if config is not None and config.executable_id != spec.executable_id:
            raise BindingError(f"configuration {config.name!r} is for executable {config.executable_id!r}, "
                               f"not {spec.executable_id!r}")
        pairs: list[tuple[str, str]] = list(config.parameter_bindings) if config else []
        for p in params:
            key, sep, value = p.partition("=")
            if not sep or not key:
                raise UsageError(f"bad parameter {p!r}", hint="use -p name=value")
            pairs.append((key, value))
        values = bind_parameters(spec, pairs)
        plan = RunPlan(spec, values, config_name=config.name if config else "", document=doc, commit_sha=commit)
        art_pairs = list(config.artifact_bindings) if config else []
        for a in artifacts:
            key, sep, value = a.partition("=")
            if not sep or not key or not value:
                raise UsageError(f"bad artifact binding {a!r}", hint="use --artifact name=PATH, =ai://default/... or =ID")
            art_pairs.append((key, value))
        inputs = {a.name: a for a in spec.input_artifacts}
        for key, value in art_pairs:
            if key not in inputs:
                raise BindingError(f"unknown input artifact {key!r} for executable {spec.executable_id!r}",
                                   hint=_hint(key, list(inputs)))
            if modelrefs.is_reference(value):  # kept as written; resolved again when the execution is created
                self.objects.check(self.rg, self.store.get_artifact(
                    self.rg, modelrefs.resolve(self.store, self.rg, value, key=key).artifact_id).url)
                plan.artifact_ids[key] = value
                continue
            try:
                url = self._artifact_url(value)
            except ArtifactError as exc:  # say which binding: "input artifact 'model': no such file ..."
                raise ArtifactError(f"input artifact {key!r}: {exc.message}", hint=exc.hint) from None
            if url:
                parse_url(url)
                self.objects.check(self.rg, url)
                plan.artifact_urls[key] = url
            else:
                try:
                    art = self.store.get_artifact(self.rg, self.resolve_id("artifact", value))
                except NotFound:
                    raise ArtifactError(f"input artifact {key!r}: {value!r} is neither a file nor an artifact id",
                                        hint="pass a path, an ai:// or file:// URL, or an artifact id (or a "
                                        "unique prefix of one)") from None
                self.objects.check(self.rg, art.url)
                plan.artifact_ids[key] = art.id
        for name, a in inputs.items():
            if name not in plan.artifact_urls and name not in plan.artifact_ids and not a.optional:
                raise BindingError(f"input artifact {name!r} is not bound",
                                   hint=f"pass --artifact {name}=PATH (or an ai:// or file:// URL, an artifact id, "
                                   f"or models:/NAME@ALIAS)")
        return plan

    def _artifact_url(self, value: str) -> str:
        """The URL a binding names: ``ai://`` (a trailing ``/`` only says "folder"), ``file://``, or a
        path that exists (relative to the current directory); "" for an artifact id."""
        if "://" in value:
            folder = value.rstrip("/")
            return folder if value.startswith("ai://") and folder.count("/") > 2 else value
        path = Path(value).expanduser()
        try:
            if path.exists():
                if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
                    raise ArtifactError(f"cannot read {value}: permission denied")
                return path.resolve().as_uri()
        except (OSError, ValueError):
            pass
        if os.sep in value or value.startswith((".", "~")):
            raise ArtifactError(f"no such file or directory: {value}")
        return ""

    def resolve_id(self, kind: str, text: str) -> str:
        """The full id of the ``kind`` (execution, artifact, configuration) that ``text`` is or starts
        (git-style): see :func:`orchestrator.control.ids.resolve_id`."""
        from orchestrator.control.ids import resolve_id

        return resolve_id(self.store, self.rg, kind, text)

    def create(self, plan: RunPlan) -> Execution:
        """Write scenario, executable, artifacts, configuration and execution in one transaction."""
        spec = plan.spec
        with self.store.transaction():
            self.store.register_executable(self.rg, spec, plan.document)
            ids = dict(plan.artifact_ids)
            for name, url in plan.artifact_urls.items():
                meta = spec.artifact_meta.get(name)
                art = self.store.create_artifact(self.rg, name=name, kind=meta.kind if meta else "other", url=url,
                                                 scenario_id=spec.scenario_id,
                                                 description=meta.description if meta else "")
                ids[name] = art.id
            cfg = self.store.create_configuration(
                self.rg, plan.config_name or f"{spec.executable_id}-cli", spec.scenario_id, spec.executable_id,
                sorted(plan.params.items()), sorted(ids.items()))
            inputs = modelrefs.resolve_bindings(self.store, self.rg, cfg.input_artifact_bindings)
            ex = self.store.create_execution(self.rg, cfg, str(self.home / "executions"), commit_sha=plan.commit_sha)
            self.store.set_execution_inputs(self.rg, ex.id, inputs)
            return ex

    def execute(self, execution: Execution, plan: RunPlan, *, jobs: int = 1, on_event: EventSink | None = None,
                cache: bool = True, reuse: dict[str, tuple[str, dict[str, object], str]] | None = None,
                force: set[str] | None = None) -> Status:
        cfg = self.store.get_configuration(self.rg, execution.configuration_id)
        # A bucket's artifact (an S3 object store secret) is downloaded into the execution's
        # inputs/ when its first step is prepared (ObjectStore.fetch): a failure is that step's.
        inputs = Path(execution.workdir) / "inputs"
        try:
            bound = {i["key"]: self.objects.defer(self.rg, self.store.get_artifact(self.rg, i["artifactId"]).url,
                                                  inputs / i["key"])
                     for i in modelrefs.execution_inputs(self.store, self.rg, execution.id,
                                                         cfg.input_artifact_bindings)}
        except ArtifactError as exc:  # e.g. its object store secret was deleted since it was submitted
            self.store.set_status(self.rg, execution.id, Status.DEAD, f"cannot start: {exc}")
            return Status.DEAD
        return self.run_runner(self.runner(execution, plan, bound, jobs=jobs, on_event=on_event, cache=cache,
                                           reuse=reuse, force=force))

    def bound_inputs(self, inputs: Sequence[dict[str, object]]) -> dict[str, Path]:
        """Local paths of an execution's input artifacts (``modelrefs.execution_inputs``)."""
        get = self.store.get_artifact
        return {str(i["key"]): self.objects.local_path(self.rg, get(self.rg, str(i["artifactId"])).url) for i in inputs}

    def runner(self, execution: Execution, plan: RunPlan, bound: dict[str, Path], *, jobs: int = 1,
               on_event: EventSink | None = None, cache: bool = True,
               reuse: dict[str, tuple[str, dict[str, object], str]] | None = None,
               force: set[str] | None = None) -> Runner:
        """The runner of ``execution`` on this service's store, not started (:meth:`run_runner`);
        reads nothing of the execution (its creator may not have committed it yet)."""
        from orchestrator.plan.graph import compile_workflow

        graph = compile_workflow(plan.spec)
        return Runner(self.store, self.objects, graph, execution, params=plan.params, bound=bound,
                      jobs=jobs, on_event=on_event, sandbox=self._sandbox(graph), cache=cache, reuse=reuse,
                      force=force)

    def run_runner(self, runner: Runner) -> Status:
        """Run ``runner`` here to its end; then register what a COMPLETED execution's template asks for."""
        status = runner.run()
        if status == Status.COMPLETED:  # outputs the template asks to register (orchestrator/register-model.*)
            from orchestrator.control.registry import register_on_success

            register_on_success(self.store, self.rg, runner.ex.id)
        return status

    @staticmethod
    def _sandbox(graph: object) -> tuple[bool, str]:
        if os.environ.get("ORCHESTRATOR_SANDBOX", "1") in ("0", "false", "no"):
            return False, "disabled by ORCHESTRATOR_SANDBOX=0"
        leaves = getattr(graph, "leaves")()
        if not any(n.template.input_artifacts or n.template.output_artifacts or n.template.output_parameters
                   for n in leaves):
            return False, "not needed"
        from orchestrator.run import sandbox

        return sandbox.available()
