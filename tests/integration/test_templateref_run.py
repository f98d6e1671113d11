"""A template using templateRef runs from its file, and again from the store once the folder is gone."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.control.service import Service
from tests.unit.spec.test_templateref import LIB, USER


def test_a_registered_template_keeps_what_its_references_need(tmp_path: Path) -> None:
    (tmp_path / "lib.yaml").write_text(LIB, encoding="utf-8")
    (tmp_path / "user.yaml").write_text(USER, encoding="utf-8")
    svc = Service(tmp_path / "home", local_files=True)
    try:
        svc.register([str(tmp_path / "user.yaml")])
        (tmp_path / "lib.yaml").unlink()
        plan = svc.plan("user-tmpl", [], [], None)
        ex = svc.create(plan)
        assert svc.execute(ex, plan, jobs=2).value == "COMPLETED"
        rows = {s.node_id: s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"}
        assert {n: (r.state.value, r.template) for n, r in rows.items()} == {
            "a": ("SUCCEEDED", "lib-tmpl:echo"), "b.one": ("SUCCEEDED", "lib-tmpl:echo"), "c": ("SUCCEEDED", "show")}
        assert json.loads(rows["a"].outputs)["parameters"]["said"].strip() == "hi"
    finally:
        svc.close()


def test_git_sync_links_a_reference_to_another_file_of_the_tree(tmp_path: Path) -> None:
    from tests.unit.git.test_gitsync import new_repo

    repo = new_repo(tmp_path / "repo", {"workflows/lib.yaml": LIB, "workflows/user.yaml": USER})
    svc = Service(tmp_path / "home", reap=False)
    try:
        svc.add_repository("repo", str(repo))
        svc.add_application("app", repository="repo", path="workflows", revision="main")
        (report,) = svc.sync("app")
        assert report.status == "SYNCED", report.files
        assert sorted(report.registered) == ["lib-tmpl", "user-tmpl"]
        spec, doc = svc.load_executable("user-tmpl")  # validates again from the stored texts alone
        assert "lib-tmpl:echo" in spec.templates and [f for f, _t in doc["library"]] == ["workflows/lib.yaml"]
    finally:
        svc.close()
