#!/usr/bin/env python3
"""Convert Argo's own ``examples/`` into AI Core templates, and measure how many we run as Argo does.

The conversion is mechanical: every ``Workflow`` / ``WorkflowTemplate`` document becomes one
AI Core ``WorkflowTemplate`` file — kind ``WorkflowTemplate``, ``metadata.name`` from the name or
``generateName`` (made a valid executable id, unique), the scenario/version labels
(``scenarios.ai.sap.com/id``, ``ai.sap.com/version``) and the name annotations
(``scenarios.ai.sap.com/name``, ``executables.ai.sap.com/name``) added, the document's own labels
and annotations kept, ``spec`` unchanged but for references to a renamed WorkflowTemplate. ``CronWorkflow``/``ClusterWorkflowTemplate`` and other
kinds are not converted (AI Core schedules through its own API, and has no cluster templates).

    # convert a checkout of argoproj/argo-workflows (or its examples/ folder)
    python scripts/convert_argo_examples.py ARGO_CHECKOUT/examples OUT_DIR

    # convert, validate every file, run every accepted one, print the figures
    python scripts/convert_argo_examples.py ARGO_CHECKOUT/examples OUT_DIR --measure [--timeout 60] [-j 4]

``--measure`` validates each converted file on its own and classifies it: accepted; refused for
an AI Core reason (an ``aicore.*`` rule: a field AI Core forbids or makes pointless, see
``orchestrator/spec/aicore_refusals.py``, or a container without command); refused only by a
security rule (a parameter spliced into code); refused for a feature not supported yet (listed).
Every accepted file is then run (``orchestrator run FILE -q --json`` in a fresh home, killed
after ``--timeout``) and its ending is compared with Argo's. That expectation comes from
``tests/conformance/expected.yaml`` when the example is in the conformance suite (phase and every
step's state), else from Argo's own e2e test (``test/e2e/examples_test.go`` submits every
``Workflow`` not labelled ``workflows.argoproj.io/no-test`` and waits for it to *succeed*); other
examples (``no-test`` ones, WorkflowTemplate libraries) are presumed to succeed and counted apart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "argo-examples"
KINDS = ("Workflow", "WorkflowTemplate")
NO_TEST = "workflows.argoproj.io/no-test"
# Argo phase -> our execution status / step state
STATUS = {"Succeeded": "COMPLETED", "Failed": "DEAD", "Error": "DEAD"}
STEP_STATE = {"Succeeded": {"SUCCEEDED", "CACHED"}, "Failed": {"FAILED"}, "Error": {"FAILED"},
              "Skipped": {"SKIPPED"}, "Omitted": {"OMITTED"}}


@dataclass
class Converted:
    """One converted document: where it came from and where it was written."""

    source: str  # path relative to the examples folder, plus "#N" for the N-th document of a file
    out: Path
    name: str
    kind: str
    no_test: str = ""


def _executable_id(raw: str, taken: set[str]) -> str:
    """A valid, unique executable id (``^[a-z0-9-]{4,64}$``, hyphen the only separator)."""
    base = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-") or "example"
    if len(base) < 4:
        base = f"{base}-wf"
    base = base[:60].strip("-")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def convert_document(doc: dict[str, Any], taken: set[str]) -> tuple[dict[str, Any], str]:
    """The AI Core form of one Argo document (spec unchanged); returns (document, executable id)."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    raw = str(meta.get("name") or str(meta.get("generateName") or "").rstrip("-") or "example")
    name = _executable_id(raw, taken)
    labels = dict(meta.get("labels") or {})
    labels.update({"scenarios.ai.sap.com/id": SCENARIO, "ai.sap.com/version": "1.0"})
    annotations = dict(meta.get("annotations") or {})
    annotations.update({"scenarios.ai.sap.com/name": "Argo examples", "executables.ai.sap.com/name": name})
    out = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
           "metadata": {"name": name, "annotations": annotations, "labels": labels}, "spec": doc.get("spec")}
    return out, name


def _rename_refs(spec: Any, renamed: dict[str, str]) -> None:
    """``templateRef.name`` / ``workflowTemplateRef.name`` follow a WorkflowTemplate's new id."""
    if isinstance(spec, dict):
        for key in ("templateRef", "workflowTemplateRef"):
            ref = spec.get(key)
            if isinstance(ref, dict) and not ref.get("clusterScope") and str(ref.get("name")) in renamed:
                ref["name"] = renamed[str(ref["name"])]
        for v in spec.values():
            _rename_refs(v, renamed)
    elif isinstance(spec, list):
        for v in spec:
            _rename_refs(v, renamed)


def convert(examples: Path, out_dir: Path, pick: set[str] | None = None) -> list[Converted]:
    """Convert every Workflow/WorkflowTemplate document under ``examples`` into ``out_dir``
    (only those whose source is in ``pick``, when given; names stay those of the whole set). A
    reference to a WorkflowTemplate (``templateRef``, ``workflowTemplateRef``) follows its new id."""
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    done: list[Converted] = []
    pending: list[tuple[Path, str, int, int, dict[str, Any], dict[str, Any]]] = []
    renamed: dict[str, str] = {}
    for path in sorted(p for p in examples.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        rel = path.relative_to(examples).as_posix()
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
        except yaml.YAMLError as exc:
            print(f"skipped {rel}: not readable YAML ({exc.__class__.__name__})", file=sys.stderr)
            continue
        docs = [d for d in docs if d.get("kind") in KINDS and str(d.get("apiVersion", "")).startswith("argoproj.io/")]
        for i, doc in enumerate(docs):
            conv, name = convert_document(doc, taken)
            original = str((doc.get("metadata") or {}).get("name") or "")
            if doc.get("kind") == "WorkflowTemplate" and original and original != name:
                renamed.setdefault(original, name)
            pending.append((path, rel, i, len(docs), doc, conv))
    for path, rel, i, n, doc, conv in pending:
        _rename_refs(conv["spec"], renamed)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.rsplit(".", 1)[0])
        target = out_dir / (f"{stem}.yaml" if n == 1 else f"{stem}.{i + 1}.yaml")
        source = rel if n == 1 else f"{rel}#{i + 1}"
        if pick is not None and source not in pick:
            continue
        header = (f"# Converted from argoproj/argo-workflows examples/{rel}"
                  f"{'' if n == 1 else f' (document {i + 1})'} (Apache-2.0):\n"
                  "# kind WorkflowTemplate, AI Core labels and name annotations added, spec unchanged.\n")
        target.write_text(header + yaml.safe_dump(conv, sort_keys=False, allow_unicode=True, width=1000),
                          encoding="utf-8")
        labels = (doc.get("metadata") or {}).get("labels") or {}
        done.append(Converted(source, target, str(conv["metadata"]["name"]), str(doc["kind"]),
                              str(labels.get(NO_TEST, ""))))
    return done


# ---------------------------------------------------------------------- measuring
@dataclass
class Verdict:
    """What validation said about one converted file."""

    accepted: bool
    aicore: list[str] = field(default_factory=list)  # AI Core reasons (rule: field)
    unsupported: list[str] = field(default_factory=list)  # features not supported yet
    warnings: list[str] = field(default_factory=list)


def _feature(err: Any) -> str:
    """A short name of what an error refuses: the field for unknown fields, else the rule."""
    if err.rule == "argo.unsupported-field":
        return f"field {err.pointer.rsplit('/', 1)[-1]!s}"
    return err.rule


def aicore_reason(rule: str) -> bool:
    """The rule refuses for an AI Core reason (a forbidden field; a container without command)."""
    return rule.startswith("aicore.") or rule == "container.no-command"


def classify(path: Path) -> Verdict:
    """Validate one file on its own and sort its errors into AI Core reasons and missing features."""
    from orchestrator.spec import validate_paths

    res = validate_paths([str(path)])
    aicore = sorted({f"{e.rule}: {e.pointer}" for e in res.errors if aicore_reason(e.rule)})
    other = sorted({_feature(e) for e in res.errors if not aicore_reason(e.rule)})
    return Verdict(res.ok, aicore, other, sorted({e.rule for e in res.warnings}))


def load_expected(path: Path = REPO / "tests" / "conformance" / "expected.yaml") -> dict[str, dict[str, Any]]:
    """The conformance manifest, keyed by source example (``examples/`` relative path)."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(e["source"]): e for e in data.get("examples", [])}


def argo_expectation(c: Converted, manifest: dict[str, dict[str, Any]]) -> tuple[str, dict[str, str], str]:
    """(Argo phase, step states or {}, where the expectation comes from). Known: the conformance
    manifest, or Argo's e2e test (it submits every ``Workflow`` without a ``no-test`` label and
    waits for success). Anything else is *presumed* to succeed (``no-test`` examples Argo's CI does
    not run, and ``WorkflowTemplate`` libraries it only applies), and is counted apart."""
    entry = manifest.get(c.source)
    if entry and entry.get("phase"):
        return str(entry["phase"]), dict(entry.get("steps") or {}), "manifest"
    if c.kind == "Workflow" and not c.no_test:
        return "Succeeded", {}, "e2e"
    if c.no_test == "expected-failure":
        return "Failed", {}, "presumed: no-test expected-failure"
    return "Succeeded", {}, f"presumed: {'no-test ' + c.no_test if c.no_test else 'a WorkflowTemplate e2e does not run'}"


def _resumer(home: Path, outputs: dict[str, Any], done: threading.Event) -> None:
    """A user who resumes every suspended step of the run in ``home`` as soon as it waits, with
    ``outputs`` (the manifest's ``resume:``), as ``orchestrator executions resume ID -o N=V`` does."""
    from orchestrator.control.service import Service
    from orchestrator.control.suspended import resume, suspended_steps

    while not done.wait(0.2):
        if not (home / "orchestrator.db").exists():
            continue
        svc = Service(home, reap=False)
        try:
            for ex in svc.store.list_executions(svc.rg):
                if suspended_steps(svc, ex.id):
                    resume(svc, ex.id, None, {k: str(v) for k, v in outputs.items()})
        except Exception:  # noqa: BLE001 - the store may be busy or the run just ended: try again
            pass
        finally:
            svc.close()


def run_file(path: Path, timeout: float, jobs: int, resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one template in a fresh home; the ``run --json`` result, or ``{"status": "TIMEOUT"}``.
    With ``resume`` (a manifest entry's), its suspended steps are resumed as they wait."""
    home = Path(tempfile.mkdtemp(prefix="argo-ex-"))
    env = {**os.environ, "ORCHESTRATOR_HOME": str(home / "home")}
    cmd = [sys.executable, "-m", "orchestrator", "run", "-q", "--json", "-j", str(jobs), str(path.resolve())]
    proc = subprocess.Popen(cmd, cwd=home, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    done = threading.Event()
    if resume is not None:
        threading.Thread(target=_resumer, args=(home / "home", resume, done), daemon=True).start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "TIMEOUT", "steps": []}
    finally:
        done.set()
        shutil.rmtree(home, ignore_errors=True)
    try:
        return dict(json.loads(out))
    except ValueError:
        return {"status": "NO-RESULT", "statusMessage": err.strip()[-300:], "steps": []}


def compare(result: dict[str, Any], phase: str, steps: dict[str, str]) -> list[str]:
    """Differences between our run and Argo's ending (empty: it ends as Argo ends it)."""
    diffs = []
    want = STATUS.get(phase, phase)
    if result.get("status") != want:
        diffs.append(f"status {result.get('status')} (Argo: {phase} -> {want})")
    got = {s["name"]: s["state"] for s in result.get("steps", [])}
    for name, state in steps.items():
        if got.get(name) not in STEP_STATE.get(state, {state}):
            diffs.append(f"step {name}: {got.get(name, 'absent')} (Argo: {state})")
    return diffs


ENV_NOTE = ("the host executor records images and runs nothing from them, steps reach only the loopback "
            "network, and nothing downloads at run time; with a container executor and the images at hand "
            "(and the network) it runs as in Argo")

def measure(conv: list[Converted], timeout: float, jobs: int, run: bool = True) -> int:
    manifest = load_expected()
    verdicts = {c.source: classify(c.out) for c in conv}
    accepted = [c for c in conv if verdicts[c.source].accepted]
    aicore = [c for c in conv if verdicts[c.source].aicore]
    refused = [c for c in conv if not verdicts[c.source].accepted and not verdicts[c.source].aicore]
    # refused only by a security rule (a parameter spliced into code): Argo runs it, we will not
    security = [c for c in refused if all(f.startswith("security.") for f in verdicts[c.source].unsupported)]
    missing = [c for c in refused if c not in security]
    print(f"documents converted: {len(conv)}")
    print(f"accepted: {len(accepted)}")
    print(f"refused for an AI Core reason: {len(aicore)}")
    for c in aicore:
        print(f"  {c.source}: {'; '.join(verdicts[c.source].aicore)}")
    print(f"refused only by a security rule (Argo runs it as is): {len(security)}")
    for c in security:
        print(f"  {c.source}: {', '.join(verdicts[c.source].unsupported)}")
    print(f"refused for a feature not supported yet: {len(missing)}")
    for c in missing:
        print(f"  {c.source}: {', '.join(verdicts[c.source].unsupported)}")
    features = Counter(f for c in missing for f in verdicts[c.source].unsupported if not f.startswith("security."))
    print("missing features (examples refused for it):")
    for f, n in features.most_common():
        print(f"  {n:4d}  {f}")
    if not run:
        return 0
    same: Counter[bool] = Counter()
    ran: Counter[bool] = Counter()
    differ: list[str] = []
    env_bound: list[str] = []  # differ only because a tool of the image is missing here
    slow: list[str] = []
    t0 = time.monotonic()
    libraries = [c for c in accepted if not _entrypoint(c.out) or (manifest.get(c.source) or {}).get("library")]
    print(f"template libraries (only referred to by templateRef; not run): {len(libraries)}")
    for c in libraries:
        print(f"  {c.source}")
    for c in (c for c in accepted if c not in libraries):
        phase, steps, origin = argo_expectation(c, manifest)
        result = run_file(c.out, timeout, jobs, (manifest.get(c.source) or {}).get("resume"))
        bound = str((manifest.get(c.source) or {}).get("environment") or "")
        if result.get("status") == "TIMEOUT":
            if bound:  # e.g. it waits for a sidecar whose program only its image has
                env_bound.append(f"  {c.source} [{origin}]: still running after {timeout:.0f} s\n      "
                                 f"(environment-bound: {bound}; {ENV_NOTE})")
            else:
                slow.append(f"  {c.source} [{origin}]")
            continue
        known = not origin.startswith("presumed")
        ran[known] += 1
        diffs = compare(result, phase, steps)
        if diffs and bound:  # needs a tool only its image has: no local run can end as in Argo
            env_bound.append(f"  {c.source} [{origin}]: {'; '.join(diffs)}\n      (environment-bound: {bound}; "
                             f"{ENV_NOTE})")
            ran[known] -= 1
        elif diffs:
            why = str(result.get("statusMessage") or "").splitlines()[:1]
            differ.append(f"  {c.source} [{origin}]: {'; '.join(diffs)}" + (f"\n      ({why[0][:160]})" if why else ""))
        else:
            same[known] += 1
    print(f"runs: {len(accepted) - len(libraries)} in {time.monotonic() - t0:.0f} s (-j {jobs}, timeout {timeout:.0f} s)")
    print(f"ending as Argo ends them: {same[True]} of {ran[True]} runs whose outcome is known "
          "(conformance manifest, or Argo's e2e)")
    print(f"ending as presumed: {same[False]} of {ran[False]} runs whose outcome is presumed "
          "(no-test examples, WorkflowTemplate libraries)")
    print(f"environment-bound (needs a program only its images have, or the network; not counted): {len(env_bound)}")
    print("\n".join(env_bound))
    print(f"ending differently: {len(differ)}")
    print("\n".join(differ))
    print(f"still running after {timeout:.0f} s (killed, not counted): {len(slow)}")
    print("\n".join(slow))
    return 0


def _entrypoint(path: Path) -> str:
    """The converted template's entrypoint, or the WorkflowTemplate it takes it from ("": a library)."""
    spec = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("spec") or {}
    return str(spec.get("entrypoint") or (spec.get("workflowTemplateRef") or {}).get("name") or "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("examples", type=Path, help="argo-workflows checkout, or its examples/ folder")
    p.add_argument("out", type=Path, help="folder to write the converted templates to (created)")
    p.add_argument("--measure", action="store_true", help="validate and run every converted file, print figures")
    p.add_argument("--pick", type=Path, metavar="MANIFEST",
                   help="convert only the examples a conformance manifest lists (tests/conformance/expected.yaml)")
    p.add_argument("--no-run", action="store_true", help="with --measure: validate only")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one run may take (default 60)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="steps in parallel per run")
    args = p.parse_args(argv)
    examples = args.examples / "examples" if (args.examples / "examples").is_dir() else args.examples
    if not examples.is_dir():
        p.error(f"{examples}: not a folder")
    pick = set(load_expected(args.pick)) if args.pick else None
    conv = convert(examples, args.out, pick)
    print(f"converted {len(conv)} documents into {args.out}", file=sys.stderr)
    if args.measure:
        return measure(conv, args.timeout, args.jobs, run=not args.no_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
