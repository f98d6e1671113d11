"""Argo ``templateRef`` and ``workflowTemplateRef``: a call (or a whole workflow) that uses a template of
another WorkflowTemplate of the same scenario, linked into the referencing document before it is checked.

Owns: :func:`link` (every reference of a set of documents resolved against a library of
WorkflowTemplates by ``metadata.name``: the referenced template, and every template it reaches,
copied into the referencing document as ``NAME:TEMPLATE``; a ``workflowTemplateRef`` merges the
referenced spec under the document's own fields, as Argo merges a Workflow onto its template),
:func:`missing` (names a set of documents refers to but does not define) and :func:`siblings`
(the WorkflowTemplates of the referencing file's own folder that define them — the local stand-in
for the WorkflowTemplates AI Core syncs for a scenario). After linking, a document is
self-contained: checks, build and run see ordinary ``template:`` calls. Argo semantics kept: the
referenced template runs in the *calling* workflow (its parameters, volumes, defaults); a reference
to the document's own name is a plain ``template:``. A referenced document must be of the same
scenario and validate on its own (an entrypoint is not required of it: Argo's template libraries
have none). Every cross-document reference gets a warning: AI Core's support for it is
unconfirmed (SAP's documentation shows single self-contained templates only).
Imports yamlsafe and errors only (and the validator lazily, to check a referenced document).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import stat
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.spec.yamlsafe import MAX_BYTES, Document, escape, load_bytes

KIND = ("argoproj.io/v1alpha1", "WorkflowTemplate")
SCENARIO = "scenarios.ai.sap.com/id"
UNCONFIRMED = ("AI Core's support for references between WorkflowTemplates is unconfirmed (SAP documents "
               "self-contained templates)")
MAX_SIBLINGS = 500  # files of a folder looked at for referenced templates
SEP = ":"  # imported templates are named LIBRARY:TEMPLATE (Argo names cannot hold a colon)


def _is_template(doc: Document) -> bool:
    d = doc.data
    return isinstance(d, dict) and (d.get("apiVersion"), d.get("kind")) == KIND and isinstance(d.get("spec"), dict)


def name_of(doc: Document) -> str:
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def scenario_of(doc: Document) -> str:
    meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return str(labels.get(SCENARIO, "")) if isinstance(labels, dict) else ""


def _calls(t: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step and DAG task of template ``t``, inline templates' ones too."""
    return [c for _p, c in _call_ptrs(t, "")]


def references(doc: Document) -> set[str]:
    """WorkflowTemplate names ``doc`` refers to (other than its own)."""
    if not _is_template(doc):
        return set()
    spec, own = doc.data["spec"], name_of(doc)
    found: set[str] = set()
    ref = spec.get("workflowTemplateRef")
    if isinstance(ref, dict) and ref.get("name") and not ref.get("clusterScope"):
        found.add(str(ref["name"]))
    wf_hooks = [h for _p, h in _hook_ptrs(spec.get("hooks"), "")]
    for c in wf_hooks + [c for t in spec.get("templates") or [] for c in (_calls(t) if isinstance(t, dict) else [])]:
        r = c.get("templateRef")
        if isinstance(r, dict) and r.get("name") and not r.get("clusterScope"):
            found.add(str(r["name"]))
    return found - {own}


def missing(docs: list[Document]) -> set[str]:
    """Names referred to by ``docs`` that no WorkflowTemplate among them defines."""
    defined = {name_of(d) for d in docs if _is_template(d)}
    return {n for d in docs for n in references(d)} - defined


def siblings(files: list[str], wanted: set[str], exclude: set[str]) -> list[Document]:
    """WorkflowTemplates defining ``wanted`` names (and what they refer to in turn) among the YAML
    files of the folders of ``files``; files in ``exclude`` are not read again."""
    folders = sorted({os.path.dirname(os.path.abspath(f)) for f in files})
    found: list[Document] = []
    seen = {os.path.abspath(f) for f in exclude}
    todo = set(wanted)
    while todo:
        pattern = re.compile(r"^\s*name:\s*['\"]?(" + "|".join(re.escape(n) for n in sorted(todo)) + r")['\"]?\s*$",
                             re.M)
        todo_now, todo = todo, set()
        for folder in folders:
            try:
                names = sorted(os.listdir(folder))[:MAX_SIBLINGS]
            except OSError:
                continue
            for n in names:
                path = os.path.join(folder, n)
                if not n.endswith((".yaml", ".yml")) or path in seen:
                    continue
                try:  # a symlink (to a file outside the folder, a device, ...) is never followed
                    if not stat.S_ISREG(os.lstat(path).st_mode):
                        continue
                    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
                    with os.fdopen(fd, "rb") as fh:
                        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                            continue
                        data = fh.read(MAX_BYTES + 1)
                except OSError:
                    continue
                if not pattern.search(data[:1 << 20].decode("utf-8", "replace")):
                    continue
                seen.add(path)
                docs, _errs = load_bytes(data, path)
                new = [d for d in docs if _is_template(d)]
                found.extend(new)
                todo |= {r for d in new for r in references(d)}
        todo -= {name_of(d) for d in found} | todo_now
    return found


def from_files(docs: list[Document], files: list[tuple[str, bytes]]) -> list[str]:
    """Names (in order) of the ``files`` — (name, bytes), e.g. a git tree's — whose WorkflowTemplates
    ``docs`` refer to, directly or through each other."""
    wanted = missing(docs)
    chosen: list[str] = []
    defined = {name_of(d) for d in docs if _is_template(d)}
    while wanted:
        pattern = re.compile(rb"^\s*name:\s*['\"]?(" + b"|".join(re.escape(n.encode()) for n in sorted(wanted))
                             + rb")['\"]?\s*$", re.M)
        new: set[str] = set()
        for fname, data in files:
            if fname in chosen or not pattern.search(data[:1 << 20]):
                continue
            found = [d for d in load_bytes(data, fname)[0] if _is_template(d)]
            if {name_of(d) for d in found} & wanted:
                chosen.append(fname)
                defined |= {name_of(d) for d in found}
                new |= {r for d in found for r in references(d)}
        wanted = new - defined
    return chosen


class _Linker:
    """Links one document against ``index`` (name -> WorkflowTemplate document)."""

    def __init__(self, doc: Document, index: dict[str, Document], checked: dict[str, str | None]) -> None:
        self.doc, self.index, self.checked = doc, index, checked
        self.data: dict[str, Any] = copy.deepcopy(doc.data)
        self.raw = dict(doc.raw_scalars)
        self.errs: list[SpecError] = []
        self.imported: dict[tuple[str, str], str] = {}
        self.own = {name_of(doc)}
        self.broken: list[str] = []  # pointers of calls whose reference failed
        self.warned: set[str] = set()  # one warning per referenced WorkflowTemplate

    def err(self, ptr: str, rule: str, msg: str, hint: str = "", severity: str = "error") -> None:
        self.errs.append(self.doc.error(ptr, rule, msg, hint, key=True, severity=severity))

    def library(self, name: str, ptr: str) -> Document | None:
        lib = self.index.get(name)
        if lib is None:
            self.err(ptr, "templateref.unknown", f"no WorkflowTemplate named {name!r} among the validated files "
                     "or in this file's folder", "put the referenced WorkflowTemplate beside this file (AI Core: "
                     "the same scenario)")
            return None
        if scenario_of(lib) != scenario_of(self.doc):
            self.err(ptr, "templateref.scenario", f"WorkflowTemplate {name!r} ({lib.file}) is of scenario "
                     f"{scenario_of(lib)!r}, not {scenario_of(self.doc)!r}: a reference stays within one scenario",
                     "copy the template into this file, or give both the same scenarios.ai.sap.com/id")
            return None
        problem = self.check(name, lib)
        if problem:
            self.err(ptr, "templateref.invalid", f"WorkflowTemplate {name!r} does not validate: {problem}",
                     f"run `orchestrator validate {lib.file}`")
            return None
        return lib

    def check(self, name: str, lib: Document) -> str | None:
        """The first error of the referenced document on its own (None: it validates)."""
        if name not in self.checked:
            self.checked[name] = "it refers back to the document that refers to it"  # a cycle: none
            from orchestrator.spec import check_document

            linked, raw, errs, _b = link_one(lib, self.index, self.checked)
            _kind, found = check_document(dataclasses.replace(lib, data=linked, raw_scalars=raw))
            bad = [e for e in errs + found if e.severity == "error" and not _entrypoint_missing(e)]
            self.checked[name] = f"{bad[0].file}:{bad[0].line}: {bad[0].message}" if bad else None
        return self.checked[name]

    def run(self) -> tuple[dict[str, Any], dict[str, str], list[SpecError], list[str]]:
        spec = self.data.get("spec")
        if not isinstance(spec, dict):
            return self.data, self.raw, self.errs, self.broken
        ref = spec.get("workflowTemplateRef")
        if isinstance(ref, dict) and ref.get("name") and not ref.get("clusterScope"):
            lib = self.library(str(ref["name"]), "/spec/workflowTemplateRef/name")
            if lib is not None:
                self.merge(lib)
                self.own.add(str(ref["name"]))
                self.err("/spec/workflowTemplateRef", "templateref.unconfirmed",
                         f"workflowTemplateRef {ref['name']!r}: linked from {lib.file}; {UNCONFIRMED}",
                         severity="warning")
        templates = spec.get("templates")
        for i, t in enumerate(list(templates) if isinstance(templates, list) else []):
            if isinstance(t, dict):
                self.rewrite(t, f"/spec/templates/{i}", None)
        for hptr, h in _hook_ptrs(spec.get("hooks"), "/spec/hooks"):  # workflow-level hooks (exit too)
            self.call(hptr, h, None, hptr)
        return self.data, self.raw, self.errs, self.broken

    def merge(self, lib: Document) -> None:
        """Argo merges a Workflow's spec onto the WorkflowTemplate it refers to: the referenced spec,
        with the referring document's own fields (arguments by name, templates by name) on top."""
        spec = self.data["spec"]
        base = copy.deepcopy(lib.data["spec"])
        own_t = [t for t in spec.get("templates") or [] if isinstance(t, dict)]
        names = {str(t.get("name")) for t in own_t}
        templates = list(spec.get("templates") or [])
        for i, t in enumerate(base.get("templates") or []):
            if isinstance(t, dict) and str(t.get("name")) not in names:
                self.copy_raw(lib, f"/spec/templates/{i}/", f"/spec/templates/{len(templates)}/")
                templates.append(t)
        own_args = spec.get("arguments") if isinstance(spec.get("arguments"), dict) else {}
        args = dict(base.get("arguments") or {}) if isinstance(base.get("arguments"), dict) else {}
        for key in ("parameters", "artifacts"):
            mine = [p for p in own_args.get(key) or [] if isinstance(p, dict)]
            have = {str(p.get("name")) for p in mine}
            merged = list(own_args.get(key) or [])
            for j, p in enumerate(args.get(key) or []):
                if isinstance(p, dict) and str(p.get("name")) not in have:
                    self.copy_raw(lib, f"/spec/arguments/{key}/{j}/", f"/spec/arguments/{key}/{len(merged)}/")
                    merged.append(p)
            if merged:
                args[key] = merged
        merged_spec = {k: v for k, v in base.items() if k not in ("templates", "arguments")}
        merged_spec.update({k: v for k, v in spec.items() if k != "workflowTemplateRef"})
        merged_spec["templates"] = templates
        if args:
            merged_spec["arguments"] = args
        self.data["spec"] = merged_spec

    def copy_raw(self, lib: Document, src: str, dst: str) -> None:
        for k, v in lib.raw_scalars.items():
            if k.startswith(src):
                self.raw[dst + k[len(src):]] = v

    def rewrite(self, t: dict[str, Any], ptr: str, lib: Document | None) -> None:
        """Calls of ``t`` (at ``ptr``; a template of ``lib`` when imported) -> plain ``template:`` calls."""
        for cptr, c in _call_ptrs(t, ptr):
            self.call(cptr, c, lib, ptr)

    def call(self, cptr: str, c: dict[str, Any], lib: Document | None, ptr: str) -> None:
        """One call or lifecycle hook at ``cptr`` (of a template of ``lib`` at ``ptr`` when imported)."""
        r = c.get("templateRef")
        if lib is not None and "template" in c and "templateRef" not in c:
            c["template"] = self.import_(lib, str(c["template"]), cptr)
            return
        if not isinstance(r, dict) or r.get("clusterScope") or "name" not in r or "template" not in r:
            return  # a malformed or cluster reference: the schema / AI Core refusal says so
        name, tmpl = str(r["name"]), str(r["template"])
        del c["templateRef"]
        if name in self.own and lib is None:
            c["template"] = tmpl
            return
        if lib is not None and name == name_of(lib):
            c["template"] = self.import_(lib, tmpl, cptr)
            return
        target = self.library(name, f"{cptr}/templateRef/name" if lib is None else ptr)
        at = f"{cptr}/templateRef/template" if lib is None else ptr
        c["template"] = self.import_(target, tmpl, at) if target is not None else f"{name}{SEP}{tmpl}"
        if target is None:
            self.broken.append(f"{cptr}/template")
        elif lib is None and name not in self.warned:
            self.warned.add(name)
            self.err(f"{cptr}/templateRef", "templateref.unconfirmed",
                     f"templateRef {name}/{tmpl}: linked from {target.file}; {UNCONFIRMED}", severity="warning")

    def import_(self, lib: Document, tmpl: str, cptr: str) -> str:
        """Copy template ``tmpl`` of ``lib`` (and what it calls) into this document; its new name
        (``cptr``: where a missing template is reported)."""
        name = name_of(lib)
        if name in self.own:
            return tmpl
        key = (name, tmpl)
        if key in self.imported:
            return self.imported[key]
        new = f"{name}{SEP}{tmpl}"
        self.imported[key] = new
        found = [(i, t) for i, t in enumerate(lib.data["spec"].get("templates") or [])
                 if isinstance(t, dict) and str(t.get("name")) == tmpl]
        if not found:
            from orchestrator.spec.schema import did_you_mean

            known = [str(t.get("name")) for t in lib.data["spec"].get("templates") or [] if isinstance(t, dict)]
            self.err(cptr, "templateref.unknown", f"WorkflowTemplate {name!r} has no template {tmpl!r}",
                     did_you_mean(tmpl, known))
            self.broken.append(f"{cptr.removesuffix('/templateRef/template')}/template")
            return new
        i, t = found[0]
        templates = self.data["spec"].setdefault("templates", [])
        copy_t = copy.deepcopy(t)
        copy_t["name"] = new
        self.copy_raw(lib, f"/spec/templates/{i}/", f"/spec/templates/{len(templates)}/")
        templates.append(copy_t)
        self.rewrite(copy_t, f"/spec/templates/{len(templates) - 1}", lib)
        return new


def _call_ptrs(t: dict[str, Any], ptr: str) -> list[tuple[str, dict[str, Any]]]:
    from orchestrator.spec.inline import calls

    out = list(calls(t, ptr))
    for cptr, c in list(out):
        if isinstance(c.get("inline"), dict):
            out.extend(_call_ptrs(c["inline"], f"{cptr}/inline"))
    return out + [h for cptr, c in out for h in _hook_ptrs(c.get("hooks"), f"{cptr}/hooks")]


def _hook_ptrs(hooks: Any, ptr: str) -> list[tuple[str, dict[str, Any]]]:
    """``(pointer, hook)`` of a ``hooks:`` mapping (``exit`` too): a hook names its template as a
    call does, by ``template`` or ``templateRef`` (Argo's LifecycleHook)."""
    if not isinstance(hooks, dict):
        return []
    return [(f"{ptr}/{escape(str(k))}", h) for k, h in hooks.items() if isinstance(h, dict)]


def _entrypoint_missing(e: SpecError) -> bool:
    return e.rule == "schema.required" and e.pointer in ("/spec", "/spec/entrypoint") and "entrypoint" in e.message


def link_one(doc: Document, index: dict[str, Document],
             checked: dict[str, str | None]) -> tuple[dict[str, Any], dict[str, str], list[SpecError], list[str]]:
    return _Linker(doc, index, checked).run()


def link(docs: list[Document], library: list[Document]) -> tuple[list[Document], dict[int, tuple[list[SpecError],
                                                                                                 list[str]]]]:
    """``docs`` with every templateRef / workflowTemplateRef linked; per linked document (by position):
    its link errors and the pointers of calls whose reference failed (their ``ref.template``
    errors say nothing more)."""
    index: dict[str, Document] = {}
    for d in list(library) + list(docs):  # the validated set wins over the folder
        if _is_template(d) and name_of(d):
            index[name_of(d)] = d
    checked: dict[str, str | None] = {}
    out: list[Document] = []
    notes: dict[int, tuple[list[SpecError], list[str]]] = {}
    for k, doc in enumerate(docs):
        if not _is_template(doc) or not _has_refs(doc):
            out.append(doc)
            continue
        data, raw, errs, broken = link_one(doc, index, checked)
        out.append(dataclasses.replace(doc, data=data, raw_scalars=raw))
        notes[k] = (errs, broken)
    return out, notes


def _has_refs(doc: Document) -> bool:
    spec = doc.data["spec"]
    if isinstance(spec.get("workflowTemplateRef"), dict) or any(
            isinstance(h.get("templateRef"), dict) for _p, h in _hook_ptrs(spec.get("hooks"), "")):
        return True
    return any(isinstance(c.get("templateRef"), dict) for t in spec.get("templates") or [] if isinstance(t, dict)
               for c in _calls(t))
