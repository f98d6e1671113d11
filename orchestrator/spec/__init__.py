"""The spec layer: files -> validated, frozen objects. Validation is one pure pipeline.

Owns: ``load_paths`` (files and directories, recursive), ``validate`` (size cap -> safe YAML ->
JSON Schema -> semantic checks -> cross-file checks), returning every error of every file at
once. Semantic checks run even when the schema stage found errors (on a copy pruned of what the
schema rejected, :func:`orchestrator.spec.shape.prune`), so one run shows every problem of a file. Used by the CLI ``validate``, by ``run``, by git sync and by the API.
The folder may import only model and errors; every other folder may import it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import SpecError
from orchestrator.model import ConfigurationSpec, ScheduleSpec, WorkflowSpec
from orchestrator.spec import schema, semantic, shape
from orchestrator.spec.yamlsafe import Document, load_bytes, load_file

if TYPE_CHECKING:
    from orchestrator.spec.sweep import SweepSpec
    from orchestrator.spec.azureml_job import AzureJob

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Result:
    """Outcome of validating a set of files."""

    files: list[str] = field(default_factory=list)
    workflows: list[WorkflowSpec] = field(default_factory=list)
    configurations: list[ConfigurationSpec] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sweeps: list[SweepSpec] = field(default_factory=list)  # ``Sweep`` documents (orchestrator/v1)
    azure_jobs: list[AzureJob] = field(default_factory=list)  # Azure ML command/sweep jobs (spec.azureml)

    @property
    def ok(self) -> bool:
        return not self.errors


def expand_paths(paths: list[str]) -> tuple[list[str], list[SpecError]]:
    """Files named directly, plus every ``*.yaml``/``*.yml`` under directories (sorted)."""
    files: list[str] = []
    errs: list[SpecError] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(YAML_SUFFIXES))
        elif os.path.isfile(p):
            files.append(p)
        else:
            errs.append(SpecError(p, 1, 1, "", "file.not-found", "no such file or directory"))
    return files, errs


def check_document(doc: Document) -> tuple[str, list[SpecError]]:
    """Schema + semantic checks of one parsed document; returns (kind-schema-name, errors)."""
    d = doc.data
    if not isinstance(d, dict):
        return "", [doc.error("", "schema.type", "a document must be a mapping",
                              "expected apiVersion, kind, metadata, spec")]
    if "apiVersion" not in d and "kind" not in d:  # else not an Azure ML job (azureml.job_kind): no import
        from orchestrator.spec import azureml

        if azureml.job_kind(d) is not None:  # an Azure ML job file (CLI v2 YAML or REST body)
            return "azureml", azureml.check_document(doc)
    key = (d.get("apiVersion"), d.get("kind"))
    name = schema.KINDS.get(key)  # type: ignore[arg-type]
    if name is None:
        return "", [doc.error("/kind" if "kind" in d else "", "schema.kind",
                              f"unsupported document kind {d.get('kind')!r} (apiVersion {d.get('apiVersion')!r})",
                              "expected WorkflowTemplate (argoproj.io/v1alpha1), ServingTemplate "
                              "(ai.sap.com/v1alpha1), Configuration, ExecutionSchedule or Sweep (orchestrator/v1)")]
    shape.normalize(doc, name)
    errs = schema.check(doc, name)
    # Unknown fields do not make the structure unreadable. Any other schema error would make the
    # semantic checks guess: they run on a copy without the rejected parts instead.
    target = doc if all(e.rule == "argo.unsupported-field" for e in errs) else shape.prune(doc, name)
    from orchestrator.spec.schedule import check_schedule

    check = {"workflowtemplate": semantic.check_workflow, "servingtemplate": semantic.check_serving,
             "executionschedule": check_schedule}.get(name)
    if name == "executionschedule" and not isinstance(target.data.get("spec"), dict):
        check = None
    if name == "sweep" and not errs:
        from orchestrator.spec.sweep_kind import check_sweep

        check = check_sweep
    if check is not None:
        try:
            errs = errs + check(target)
        except Exception as exc:  # noqa: BLE001 - a checker bug must not hide the other files
            errs.append(doc.error("", "internal.check-failed",
                                  f"semantic checks crashed ({type(exc).__name__}: {exc})",
                                  "please report this with the file"))
    if name == "workflowtemplate":  # fields AI Core forbids: its reason, not "unsupported field"
        from orchestrator.spec.aicore_refusals import refine

        errs = refine(doc, errs)
    return name, errs


def validate_documents(docs: list[Document], result: Result | None = None,
                       library: list[Document] | None = None) -> Result:
    """Validate parsed documents, build the valid ones, and check cross-file rules. A
    ``templateRef`` is linked first, against ``docs`` and the ``library`` (:mod:`.templateref`)."""
    from orchestrator.spec.build import build_configuration, build_workflow
    from orchestrator.spec.schedule import build_schedule

    res = result or Result()
    first_ids: dict[str, Document] = {}
    docs = [d for d in docs if d.data is not None]
    notes: dict[int, tuple[list[SpecError], list[str]]] = {}
    if any("emplateRef" in str(d.data)[:1_000_000] for d in docs):  # cheap: most files have none
        from orchestrator.spec import templateref

        docs, notes = templateref.link(docs, library or [])
    checked = []
    for k, doc in enumerate(docs):
        name, errs = check_document(doc)
        if k in notes:
            link_errs, broken = notes[k]
            errs = link_errs + [e for e in errs if not (e.rule == "ref.template" and e.pointer in broken)]
        checked.append((doc, name, errs))
    named = _named_scenarios(checked)
    for doc, name, errs in checked:
        errs = [_named_elsewhere(doc, e) if e.rule == "annotation.name-missing" and _scenario(doc) in named
                and "scenarios.ai.sap.com/name" in e.message else e for e in errs]
        res.errors.extend(e for e in errs if e.severity == "error")
        res.warnings.extend(e for e in errs if e.severity != "error")
        if name in ("workflowtemplate", "servingtemplate") and isinstance(doc.data.get("metadata"), dict):
            exe = str(doc.data["metadata"].get("name"))
            if exe in first_ids:
                other = first_ids[exe]
                line, _ = other.where("/metadata/name")
                res.errors.append(doc.error("/metadata/name", "id.duplicate",
                                            f"executable id {exe!r} is also defined in {other.file}:{line}",
                                            "executable ids are unique across all templates: rename one"))
            else:
                first_ids[exe] = doc
        if any(e.severity == "error" for e in errs):
            continue
        if name in ("workflowtemplate", "servingtemplate"):
            res.workflows.append(build_workflow(doc))
        elif name == "configuration":
            res.configurations.append(build_configuration(doc))
        elif name == "executionschedule":
            res.schedules.append(build_schedule(doc))
        elif name == "sweep":
            from orchestrator.spec.sweep_kind import build_sweep

            res.sweeps.append(build_sweep(doc))
        elif name == "azureml":
            from orchestrator.spec.azureml import read

            job = read(doc)[0]
            if job is not None:
                res.azure_jobs.append(job)
    dup = {e.file + str(e.line) for e in res.errors if e.rule == "id.duplicate"}
    if dup:
        bad = {e.pointer and e.file for e in res.errors if e.rule == "id.duplicate"}
        res.workflows = [w for w in res.workflows if w.source not in bad]
    return res


def _scenario(doc: Document) -> str | None:
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return str(labels["scenarios.ai.sap.com/id"]) if isinstance(labels, dict) and \
        "scenarios.ai.sap.com/id" in labels else None


def _named_scenarios(checked: list[tuple[Document, str, list[SpecError]]]) -> set[str]:
    """Scenario ids some template of this run gives a name (``scenarios.ai.sap.com/name``)."""
    out: set[str] = set()
    for doc, name, _errs in checked:
        meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        scenario = _scenario(doc)
        if name in ("workflowtemplate", "servingtemplate") and scenario and isinstance(ann, dict) and \
                "scenarios.ai.sap.com/name" in ann:
            out.add(scenario)
    return out


def _named_elsewhere(doc: Document, err: SpecError) -> SpecError:
    """A missing scenario name is a warning when another template names the scenario (AI Core
    keeps one name per scenario; SAP's samples name it in one template only)."""
    return dataclasses.replace(err, severity="warning",
                               message=f"{err.message}; scenario {_scenario(doc)!r} is named by another template")


def validate_paths(paths: list[str]) -> Result:
    """Load and validate files/directories; every error of every file in one result. A
    ``templateRef`` to a WorkflowTemplate none of them defines is looked up in the referencing
    file's folder (those files are read, not reported on)."""
    files, errs = expand_paths(paths)
    res = Result(files=files, errors=list(errs))
    docs: list[Document] = []
    for f in files:
        fdocs, ferrs = load_file(f)
        res.errors.extend(ferrs)
        docs.extend(fdocs)
    return validate_documents(docs, res, library=folder_library(docs, files))


def folder_library(docs: list[Document], files: list[str]) -> list[Document]:
    """WorkflowTemplates from the folders of the referencing files that ``docs`` refer to but lack."""
    if not any("emplateRef" in str(d.data)[:1_000_000] for d in docs if d.data is not None):
        return []
    from orchestrator.spec import templateref

    wanted = templateref.missing([d for d in docs if d.data is not None])
    referring = sorted({d.file for d in docs if d.data is not None and templateref.references(d) & wanted})
    return templateref.siblings(referring, wanted, set(files)) if wanted else []


@functools.lru_cache(maxsize=1)
def checker_version() -> str:
    """Identifies the validator (package version, schema files and the spec package's own source):
    part of every validation cache key, so a changed rule re-validates what an older one passed."""
    import hashlib

    from orchestrator import __version__

    h = hashlib.sha256(__version__.encode())
    for f in sorted(schema.schema_dir().glob("*.json")) + sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def library_files(path: str, data: bytes, tree: list[tuple[str, bytes]] | None = None) -> list[tuple[str, str]]:
    """(file, text) of the files beside ``path`` (or, given ``tree``, among those (name, bytes) — a git
    tree's) whose WorkflowTemplates its ``templateRef`` s need: stored with an executable, so that
    it validates and runs again without them."""
    if b"emplateRef" not in data:
        return []
    from orchestrator.spec import templateref

    docs = [d for d in load_bytes(data, path)[0] if d.data is not None]
    wanted = templateref.missing(docs)
    if not wanted:
        return []
    if tree is not None:
        blobs = dict(tree)
        return [(n, blobs[n].decode("utf-8", "replace")) for n in
                templateref.from_files(docs, [(n, b) for n, b in tree if n != path])]
    out: list[tuple[str, str]] = []
    for f in dict.fromkeys(d.file for d in templateref.siblings([path], wanted, {path})):
        try:
            out.append((f, Path(f).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return out


def _library_docs(library: list[tuple[str, str]] | None) -> list[Document]:
    docs: list[Document] = []
    for f, text in library or []:
        docs.extend(d for d in load_bytes(text.encode("utf-8"), f)[0] if d.data is not None)
    return docs


def load_trusted(data: bytes, name: str, library: list[tuple[str, str]] | None = None) -> Result:
    """Build specs from bytes that already passed :func:`validate_text` (same digest).

    Skips the JSON Schema and semantic stages (the expensive imports) but still parses with the
    same safe loader, so hostile bytes can never get past it.
    """
    from orchestrator.spec.build import build_configuration, build_workflow
    from orchestrator.spec.schedule import build_schedule

    docs, errs = load_bytes(data, name)
    res = Result(files=[name], errors=list(errs))
    if any("emplateRef" in str(d.data)[:1_000_000] for d in docs if d.data is not None):
        from orchestrator.spec import templateref

        docs = templateref.link([d for d in docs if d.data is not None], _library_docs(library))[0]
    for doc in docs:
        if not isinstance(doc.data, dict):
            continue
        kind = schema.KINDS.get((doc.data.get("apiVersion"), doc.data.get("kind")))  # type: ignore[arg-type]
        if kind is not None:
            shape.normalize(doc, kind)  # as validate_text did: the same data, the same digest
        if kind in ("workflowtemplate", "servingtemplate"):
            res.workflows.append(build_workflow(doc))
        elif kind == "configuration":
            res.configurations.append(build_configuration(doc))
        elif kind == "executionschedule":
            res.schedules.append(build_schedule(doc))
        elif kind == "sweep":
            from orchestrator.spec.sweep_kind import build_sweep

            res.sweeps.append(build_sweep(doc))
        elif kind is None:
            from orchestrator.spec import azureml

            if azureml.job_kind(doc.data) is not None:  # as validate_documents: the job, for its kind
                job = azureml.read(doc)[0]
                if job is not None:
                    res.azure_jobs.append(job)
    return res


def validate_text(data: bytes, name: str, library: list[tuple[str, str]] | None = None) -> Result:
    """Validate one in-memory file (API bodies, git blobs); ``library``: (file, text) of the files
    holding the WorkflowTemplates its ``templateRef`` s name (:func:`library_files`)."""
    docs, errs = load_bytes(data, name)
    return validate_documents(docs, Result(files=[name], errors=list(errs)), library=_library_docs(library))


__all__ = ["Result", "validate_paths", "validate_text", "validate_documents", "expand_paths", "load_trusted",
           "checker_version", "library_files", "Path"]
