"""Argo conformance: Argo's own examples, converted into AI Core templates, end as Argo ends them.

Each entry of ``expected.yaml`` names an example of argoproj/argo-workflows (converted copy in
``examples/``, see NOTICE) and Argo's outcome: refused with an AI Core reason (rule and location),
or accepted and ending with Argo's workflow phase and step states. Runs are real runs (the
service's plan/create/execute, as ``orchestrator run`` does, in this process: step processes and
the SQLite store are real) in a fresh home. Examples needing a feature not supported yet are ``xfail(strict=True)``: when the
feature lands they pass, and the strict mark turns that into a failure that asks for the mark to
be removed. The figures over all of Argo's examples come from
``scripts/convert_argo_examples.py --measure``.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.control.service import Service
from orchestrator.spec import validate_paths

HERE = Path(__file__).resolve().parent
MANIFEST = yaml.safe_load((HERE / "expected.yaml").read_text(encoding="utf-8"))
STATUS = {"Succeeded": "COMPLETED", "Failed": "DEAD", "Error": "DEAD"}
STEP_STATE = {"Succeeded": {"SUCCEEDED", "CACHED"}, "Failed": {"FAILED"}, "Error": {"FAILED"},
              "Skipped": {"SKIPPED"}, "Omitted": {"OMITTED"}}


def converted(source: str) -> Path:
    """The converted file of ``source`` (the converter's naming: ``a/b.yaml#2`` -> ``a_b.2.yaml``)."""
    rel, _, doc = source.partition("#")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.rsplit(".", 1)[0])
    return HERE / "examples" / (f"{stem}.{doc}.yaml" if doc else f"{stem}.yaml")


@contextlib.contextmanager
def _resuming(home: Path, execution_id: str, outputs: dict[str, str] | None) -> Iterator[None]:
    """With ``resume:`` in the entry, a user (another connection) resumes every suspended step as
    soon as it waits, giving those output parameters (Argo's ``argo resume`` / ``argo node set``)."""
    if outputs is None:
        yield
        return
    from orchestrator.control.suspended import resume, suspended_steps

    done = threading.Event()

    def user() -> None:
        other = Service(home, local_files=True)
        try:
            while not done.wait(0.05):
                waiting = suspended_steps(other, execution_id)
                if waiting:
                    resume(other, execution_id, None, {k: str(v) for k, v in outputs.items()})
        finally:
            other.close()

    t = threading.Thread(target=user, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


def _params() -> list[Any]:
    out = []
    for e in MANIFEST["examples"]:
        marks = [pytest.mark.xfail(strict=True, reason=f"not yet supported: {e['xfail']}")] if e.get("xfail") else []
        for jobs in e.get("jobs", [2]):  # the outcome must not depend on -j
            out.append(pytest.param(e, jobs, id=e["source"] + ("" if jobs == 2 else f"-j{jobs}"), marks=marks))
    return out


def test_manifest_names_every_converted_file() -> None:
    files = {p.name for p in (HERE / "examples").glob("*.yaml")}
    assert files == {converted(e["source"]).name for e in MANIFEST["examples"]}
    assert len(MANIFEST["examples"]) >= 40
    for e in MANIFEST["examples"]:
        assert ("refused" in e) != ("phase" in e), e["source"]
        assert e.get("phase", "Succeeded") in STATUS, e["source"]
        assert all(s in STEP_STATE for s in (e.get("steps") or {}).values()), e["source"]


@pytest.mark.parametrize(("entry", "jobs"), _params())
def test_example_ends_as_argo_ends_it(entry: dict[str, Any], jobs: int, tmp_path: Path) -> None:
    path = converted(entry["source"])
    res = validate_paths([str(path)])
    errors = "\n".join(e.format() for e in res.errors)
    if "refused" in entry:
        hits = [e for e in res.errors if e.rule == entry["refused"] and e.pointer == entry["at"]]
        assert hits, f"expected {entry['refused']} at {entry['at']}, got:\n{errors}"
        assert "AI Core" in hits[0].message, hits[0].format()
        assert hits[0].line > 1, hits[0].format()  # located in the file, not at its top
        return
    assert res.ok, f"Argo accepts {entry['source']}; we refuse it:\n{errors}"
    if entry.get("run") is False:
        return
    svc = Service(tmp_path / "home", local_files=True)
    try:
        plan = svc.plan(str(path), [], [], None)
        execution = svc.create(plan)
        with _resuming(tmp_path / "home", execution.id, entry.get("resume")):
            status = svc.execute(execution, plan, jobs=jobs).value
        message = svc.store.get_execution(svc.rg, execution.id).status_message
        got = {s.node_id: s.state.value for s in svc.store.list_steps(svc.rg, execution.id) if s.kind == "leaf"}
    finally:
        svc.close()
    want = STATUS[entry["phase"]]
    assert status == want, f"Argo ends {entry['phase']}; we end {status}: {message}\nsteps: {got}"
    wrong = {name: (got.get(name, "absent"), state) for name, state in (entry.get("steps") or {}).items()
             if got.get(name) not in STEP_STATE[state]}
    assert not wrong, f"steps (ours, Argo's): {wrong}\nall our steps: {got}"
