"""Git sync end to end: real repos built here, real SQLite, the CLI as a subprocess where it matters.

Covers issue 5 items 1-4: repositories and applications, a hostile repo that syncs its valid
templates and runs nothing, per-file status with ``file:line:col``, last good version, removed
template -> gone (executions stay), commit SHA on every execution, Configuration and
ExecutionSchedule documents with stable ids, credentials never printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.control.service import Service
from orchestrator.errors import UsageError
from orchestrator.git.gitsync import GitError
from tests.conftest import Cli, template
from tests.unit.git.test_gitsync import MARKERS, git, hostile_repo, new_repo, write

STEP = """
- name: main
  container:
    image: python:3.11
    command: [python3, -c, pass]
"""
PARAMS = """
- name: slot
  default: none
"""


def tpl(name: str) -> str:
    return template(name, STEP, params=PARAMS)


def config(name: str, exe: str) -> str:
    return f"apiVersion: orchestrator/v1\nkind: Configuration\nmetadata:\n  name: {name}\nspec:\n  executableId: {exe}\n"


def schedule(name: str, cfg: str, cron: str = "0 * * * *", extra: str = "") -> str:
    return (f"apiVersion: orchestrator/v1\nkind: ExecutionSchedule\nmetadata:\n  name: {name}\nspec:\n"
            f"  cron: \"{cron}\"\n  configurationName: {cfg}\n  slotParameter: slot\n{extra}")


def commit(repo: Path, files: dict[str, str | bytes], remove: tuple[str, ...] = ()) -> str:
    write(repo, files)
    for rel in remove:
        (repo / rel).unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    s = Service(tmp_path / "home", reap=False)
    yield s
    s.close()


def setup_app(svc: Service, repo: Path, path: str = "workflows") -> None:
    svc.add_repository("repo", str(repo))
    svc.add_application("app", repository="repo", path=path, revision="main")


def test_cli_repos_apps_sync_status_with_file_line_col(cli: Cli, tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo", {
        "workflows/train.yaml": tpl("train") + "---\n" + config("train-cfg", "train"),
        "workflows/sched.yaml": schedule("hourly", "train-cfg"),
        "workflows/bad.yaml": tpl("bad").replace("entrypoint: main", "entrypoint: nope"),
        "workflows/badcron.yaml": schedule("broken", "train-cfg", cron="61 * * * *",
                                           extra="  timezone: Mars/Olympus\n"),
    })
    cli("repos", "add", "repo", f"file://{repo}", check=0)
    cli("apps", "add", "app", "--repo", "repo", "--path", "workflows", "--revision", "main", check=0)
    p = cli("sync", "app", check=1)  # some files were rejected: exit 1, never silent
    assert "SYNCED_WITH_ERRORS" in p.stdout and "workflows/bad.yaml:" in p.stdout
    status = cli.json("apps", "status", "app", check=1)
    files = {f["path"]: f for f in status["files"]}
    assert set(files) == {"workflows/train.yaml", "workflows/sched.yaml", "workflows/bad.yaml",
                          "workflows/badcron.yaml"}
    assert files["workflows/train.yaml"]["status"] == "valid"
    assert {o["kind"] for o in files["workflows/train.yaml"]["objects"]} == {"executable", "configuration"}
    assert files["workflows/bad.yaml"]["status"] == "invalid"
    assert any(e.startswith("workflows/bad.yaml:") and e.split(":")[1].isdigit() for e in files["workflows/bad.yaml"]["errors"])
    cron_errors = "\n".join(files["workflows/badcron.yaml"]["errors"])
    assert "workflows/badcron.yaml:6:9: error schedule.cron" in cron_errors
    assert "workflows/badcron.yaml:9:13: error schedule.timezone" in cron_errors
    assert status["lastCommit"] == git(repo, "rev-parse", "HEAD")
    listed = cli.json("schedules", "list")
    assert [s["name"] for s in listed] == ["hourly"] and listed[0]["slotParameter"] == "slot"
    again = cli("sync", "app", check=1)
    assert "UNCHANGED" in again.stdout  # same commit, same validator: nothing re-validated
    apps = cli.json("apps", "list")
    assert apps[0]["syncStatus"] == "SYNCED_WITH_ERRORS"


def test_credentials_are_stored_as_a_secret_and_never_printed(cli: Cli) -> None:
    secret = "s3cr3t-t0ken-value"
    p = cli("repos", "add", "remote", "https://git.example.org/o/r.git", "--username", "bot",
            "--password-env", "REPO_TOKEN", env={"REPO_TOKEN": secret}, check=0)
    assert secret not in p.stdout + p.stderr
    listed = cli("repos", "list", "--json", check=0)
    assert secret not in listed.stdout and "bot" in listed.stdout
    cli("apps", "add", "app", "--repo", "remote", "--revision", "main", check=0)
    s = cli("sync", "--json", check=1, env={"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"})
    report = json.loads(s.stdout)[0]
    assert report["status"] == "ERROR" and secret not in s.stdout + s.stderr
    status = cli("apps", "status", "app", "--json", check=1)
    assert secret not in status.stdout
    assert secret not in (cli.home / "orchestrator.db").read_bytes().decode("latin-1").replace(
        '"password": "' + secret, "")  # only the secrets row holds it
    assert cli("repos", "add", "x", "http://plain.example.org/r.git", check=2).stderr.startswith("error:")
    cli("repos", "add", "y", "/abs/path", "--password-env", "REPO_TOKEN", env={"REPO_TOKEN": "x"}, check=2)


def test_hostile_repo_syncs_valid_templates_and_executes_nothing(tmp_path: Path, svc: Service) -> None:
    markers = tmp_path / "markers"
    repo = hostile_repo(tmp_path / "hostile", markers)
    setup_app(svc, repo)
    (report,) = svc.sync("app")
    assert report.registered == ["good-train"], report
    files = {f["path"]: f for f in svc.store.application_files("app")}
    assert files["workflows/good.yaml"]["status"] == "valid"
    for skipped in ("workflows/escape.yaml", "workflows/huge.yaml", "workflows/sub-ext", "workflows/sub-up"):
        assert files[skipped]["status"] == "skipped", files.keys()
    assert "symbolic link" in files["workflows/escape.yaml"]["errors"][0]
    assert svc.sync("app", force=True)[0].registered == ["good-train"]  # a fetch into the existing mirror
    assert sorted(p.name for p in markers.iterdir()) == [], f"hostile code ran: {MARKERS}"
    assert not any((svc.home / "git").glob("*/hooks/*"))  # the mirror was created without templates


def test_invalid_then_fixed_keeps_last_good_then_removed_is_gone(tmp_path: Path, svc: Service) -> None:
    repo = new_repo(tmp_path / "repo", {"workflows/a.yaml": tpl("alpha") + "---\n" + config("alpha-cfg", "alpha"),
                                        "workflows/b.yaml": tpl("beta")})
    setup_app(svc, repo)
    first = svc.sync("app")[0]
    sha1 = first.commit
    assert first.status == "SYNCED" and sorted(first.registered) == ["alpha", "beta"]
    cfg_id = [o["object_id"] for o in svc.store.application_objects("app") if o["kind"] == "configuration"][0]
    doc_before = svc.store.executable_document("default", "alpha")
    # an invalid edit: the last good version stays active, and the status says so
    sha2 = commit(repo, {"workflows/a.yaml": tpl("alpha").replace("entrypoint: main", "entrypoint: missing")
                         + "---\n" + config("alpha-cfg", "alpha")})
    second = svc.sync("app")[0]
    assert second.status == "SYNCED_WITH_ERRORS" and second.commit == sha2
    assert "executable/alpha" in second.kept and not second.gone
    files = {f["path"]: f for f in svc.store.application_files("app")}
    assert "keeps the last good version (commit " + sha1[:12] in files["workflows/a.yaml"]["note"]
    assert svc.store.executable_document("default", "alpha") == doc_before
    assert svc.store.executable_origin("default", "alpha") == (sha1, None)
    # fixed: registered again from the new commit, configuration id unchanged
    sha3 = commit(repo, {"workflows/a.yaml": tpl("alpha").replace("python3, -c, pass", "python3, -c, 'pass  # v2'")
                         + "---\n" + config("alpha-cfg", "alpha")})
    third = svc.sync("app")[0]
    assert third.status == "SYNCED" and svc.store.executable_origin("default", "alpha") == (sha3, None)
    assert svc.store.executable_document("default", "alpha") != doc_before
    assert [o["object_id"] for o in svc.store.application_objects("app") if o["kind"] == "configuration"] == [cfg_id]
    # an execution of beta, then beta leaves the repo: gone, its execution stays
    beta_cfg = svc.store.create_configuration("default", "b", "test-scenario", "beta", [], [])
    ex = svc.store.create_execution("default", beta_cfg, str(tmp_path / "x"),
                                    commit_sha=svc.store.executable_origin("default", "beta")[0])
    commit(repo, {}, remove=("workflows/b.yaml",))
    fourth = svc.sync("app")[0]
    assert fourth.gone == ["executable/beta"]
    assert svc.store.executable_origin("default", "beta")[1] is not None  # gone_at set
    assert svc.store.get_execution("default", ex.id).commit_sha == sha3  # the commit its template came from
    assert "workflows/b.yaml" not in {f["path"] for f in svc.store.application_files("app")}
    # it comes back: no longer gone
    commit(repo, {"workflows/b.yaml": tpl("beta")})
    svc.sync("app")
    assert svc.store.executable_origin("default", "beta")[1] is None


def test_every_scheduled_and_submitted_execution_records_its_commit(tmp_path: Path, svc: Service) -> None:
    repo = new_repo(tmp_path / "repo", {"workflows/t.yaml": tpl("train") + "---\n" + config("cfg", "train"),
                                        "workflows/s.yaml": schedule("hourly", "cfg")})
    setup_app(svc, repo)
    sha = svc.sync("app")[0].commit
    (sched,) = svc.store.list_schedules("default")
    from datetime import datetime, timezone

    report = svc.backfill(sched["id"], datetime(2025, 1, 1, 0, tzinfo=timezone.utc),
                          datetime(2025, 1, 1, 1, tzinfo=timezone.utc))
    assert len(report.started) == 2 and report.conflicts == 0
    for _, slot, eid in report.started:
        ex = svc.store.get_execution("default", eid)
        assert ex.commit_sha == sha and ex.schedule_slot == slot and ex.extra_parameters == (("slot", slot),)
    again = svc.backfill(sched["id"], datetime(2025, 1, 1, 0, tzinfo=timezone.utc),
                         datetime(2025, 1, 1, 1, tzinfo=timezone.utc))
    assert again.started == [] and again.conflicts == 2  # a slot never gets a second execution
    # submitted like the API does, and planned by executable id like `orchestrator run train`
    (cfg,) = [o["object_id"] for o in svc.store.application_objects("app") if o["kind"] == "configuration"]
    assert svc.submit(cfg).commit_sha == sha
    assert svc.create(svc.plan("train", [], [])).commit_sha == sha


def test_a_gone_executable_is_refused_with_a_reason(tmp_path: Path, svc: Service) -> None:
    from orchestrator.errors import UsageError

    repo = new_repo(tmp_path / "repo", {"workflows/t.yaml": tpl("train") + "---\n" + config("cfg", "train"),
                                        "workflows/keep.yaml": tpl("keep")})
    setup_app(svc, repo)
    svc.sync("app")
    (cfg,) = [o["object_id"] for o in svc.store.application_objects("app") if o["kind"] == "configuration"]
    commit(repo, {}, remove=("workflows/t.yaml",))
    svc.sync("app")
    for attempt in (lambda: svc.submit(cfg), lambda: svc.plan("train", [], [])):
        with pytest.raises(UsageError, match="removed from its git repository"):
            attempt()


def test_schedule_and_configuration_ids_are_stable_across_resyncs_and_apps(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo", {"workflows/t.yaml": tpl("train") + "---\n" + config("cfg", "train"),
                                        "workflows/s.yaml": schedule("hourly", "cfg")})
    ids = []
    for home in ("h1", "h2"):
        s = Service(tmp_path / home, reap=False)
        setup_app(s, repo)
        s.sync("app")
        ids.append(sorted((o["kind"], o["object_id"]) for o in s.store.application_objects("app")))
        s.sync("app", force=True)
        assert sorted((o["kind"], o["object_id"]) for o in s.store.application_objects("app")) == ids[-1]
        s.close()
    assert ids[0] == ids[1]  # the same repo gives the same ids on every machine
    # a schedule deactivated by hand stays so until its document changes; removal deletes it
    s = Service(tmp_path / "h1", reap=False)
    sid = s.store.list_schedules("default")[0]["id"]
    s.store.update_schedule("default", sid, status="INACTIVE")
    commit(repo, {"workflows/other.yaml": tpl("other")})
    s.sync("app")
    assert s.store.get_schedule("default", sid)["status"] == "INACTIVE"
    commit(repo, {"workflows/s.yaml": schedule("hourly", "cfg", cron="30 * * * *")})
    s.sync("app")
    row = s.store.get_schedule("default", sid)
    assert (row["status"], row["cron"]) == ("ACTIVE", "30 * * * *")
    commit(repo, {}, remove=("workflows/s.yaml",))
    assert s.sync("app")[0].gone == ["schedule/hourly"]
    assert s.store.list_schedules("default") == []
    s.close()


def test_broken_references_are_located_errors(tmp_path: Path, svc: Service) -> None:
    repo = new_repo(tmp_path / "repo", {
        "workflows/t.yaml": tpl("train"),
        "workflows/c.yaml": config("cfg", "nope"),
        "workflows/s.yaml": schedule("s1", "missing-cfg"),
        "workflows/p.yaml": config("good", "train") + "---\n" + schedule("s2", "good").replace("slot\n", "sloot\n"),
    })
    setup_app(svc, repo)
    files = {f["path"]: f for f in svc.sync("app")[0].files}
    assert files["workflows/c.yaml"]["errors"][0].startswith("workflows/c.yaml:6:17: error ref.executable")
    assert files["workflows/s.yaml"]["errors"][0].startswith("workflows/s.yaml:7:22: error ref.configuration")
    assert "ref.parameter" in files["workflows/p.yaml"]["errors"][0] and "known: slot" in files["workflows/p.yaml"]["errors"][0]
    assert files["workflows/t.yaml"]["status"] == "valid"


def test_fetch_failures_and_bad_input_leave_the_registered_state(tmp_path: Path, svc: Service) -> None:
    repo = new_repo(tmp_path / "repo", {"workflows/t.yaml": tpl("train")})
    setup_app(svc, repo)
    assert svc.sync("app")[0].status == "SYNCED"
    os.rename(repo, tmp_path / "moved")
    failed = svc.sync("app")[0]
    assert failed.status == "ERROR" and "failed" in failed.message
    assert svc.store.executable_origin("default", "train")[1] is None  # nothing became gone
    assert svc.store.get_repository("repo")["status"] == "ERROR"
    with pytest.raises(UsageError):
        svc.add_application("Bad_Name", repository="repo", path="x", revision="main")
    with pytest.raises(GitError):
        svc.add_application("app2", repository="repo", path="../etc", revision="main")
    with pytest.raises(GitError):
        svc.add_application("app3", repository="repo", path="x", revision="--upload-pack=x")


def test_resync_reuses_clean_validations_and_keeps_warnings(tmp_path: Path, svc: Service) -> None:
    shell = template("shelly", """
- name: main
  container:
    image: python:3.11
    command: [sh, -c]
    args: ["echo {{workflow.parameters.slot}}"]
""", params=PARAMS)
    repo = new_repo(tmp_path / "repo", {"workflows/a.yaml": tpl("alpha"), "workflows/w.yaml": shell})
    setup_app(svc, repo)
    first = {f["path"]: f for f in svc.sync("app")[0].files}
    assert "security.shell-splice" in first["workflows/w.yaml"]["warnings"][0]
    import orchestrator.spec as spec

    calls: list[str] = []
    real = spec.validate_text
    spec.validate_text = lambda data, name: calls.append(name) or real(data, name)  # type: ignore[assignment]
    try:
        again = {f["path"]: f for f in svc.sync("app", force=True)[0].files}
    finally:
        spec.validate_text = real
    assert calls == ["workflows/w.yaml"]  # the clean file is only re-parsed; the one with a warning is re-checked
    assert again == first


def test_cli_apps_add_creates_a_valid_group_but_never_a_reserved_one(cli: Cli, tmp_path: Path) -> None:
    """Issue 5 review item 3b on the CLI: ``--resource-group`` may create a new group with a valid
    id; ``(admin)`` and other invalid ids are refused and create nothing."""
    repo = new_repo(tmp_path / "repo", {"workflows/train.yaml": tpl("train")})
    cli("repos", "add", "repo", str(repo), check=0)
    for bad in ("(admin)", "x", "bad_name"):
        p = cli("apps", "add", "app", "--repo", "repo", "--path", "workflows", "--revision", "main",
                "--resource-group", bad, check=2)
        assert "resource group" in p.stderr, p.stderr
    cli("apps", "add", "app", "--repo", "repo", "--path", "workflows", "--revision", "main",
        "--resource-group", "team-b", check=0)
    svc = Service(cli.home, reap=False)
    try:
        assert "(admin)" not in svc.store.resource_groups() and "team-b" in svc.store.resource_groups()
        assert svc.store.get_application("app")["rg"] == "team-b"
        with pytest.raises(UsageError):
            svc.add_application("app2", repository="repo", path="workflows", revision="main", rg="(admin)")
    finally:
        svc.close()


def test_a_local_registration_over_a_synced_template_is_repaired_by_the_next_sync(tmp_path: Path,
                                                                                    svc: Service) -> None:
    """Issue 5 review item 4: ``orchestrator run ./train.yaml`` with the name of a git-synced
    template replaces its document; the next sync (same commit) restores the repository's
    version and says so."""
    repo = new_repo(tmp_path / "repo", {"workflows/train.yaml": tpl("train")})
    setup_app(svc, repo)
    (first,) = svc.sync("app")
    synced = svc.store.get_executable("default", "train").digest
    local = tmp_path / "train.yaml"
    local.write_text(tpl("train").replace("command: [python3, -c, pass]", "command: [python3, -c, 'print(1)']"))
    svc.register([str(local)])
    assert svc.store.get_executable("default", "train").digest != synced  # replaced outside git
    assert svc.store.executable_origin("default", "train")[0] is None  # runs of it claim no git commit
    (report,) = svc.sync("app")
    assert report.status == "SYNCED" and report.restored == ["train"], report
    assert svc.store.get_executable("default", "train").digest == synced
    assert svc.store.executable_document("default", "train")["file"] == "workflows/train.yaml"
    assert svc.store.executable_origin("default", "train") == (first.commit, None)
    (row,) = svc.store.application_files("app")
    assert "restored" in row["note"] and "outside git" in row["note"], row
    assert "1 restored" in report.message
    (again,) = svc.sync("app")
    assert again.status == "UNCHANGED" and svc.store.get_executable("default", "train").digest == synced


def test_two_applications_defining_one_executable_id_in_a_group(tmp_path: Path, svc: Service) -> None:
    """Issue 5 review item 10: an executable id another live application of the group owns is a
    located error in the second application's file; removing a (legacy) second copy never marks
    the first application's executable gone."""
    repo = new_repo(tmp_path / "repo", {"a/train.yaml": tpl("train"), "b/train.yaml": tpl("train"),
                                        "b/other.yaml": tpl("other")})
    svc.add_repository("repo", str(repo))
    svc.add_application("app-a", repository="repo", path="a", revision="main")
    svc.add_application("app-b", repository="repo", path="b", revision="main")
    (a,) = svc.sync("app-a")
    (b,) = svc.sync("app-b")
    assert b.status == "SYNCED_WITH_ERRORS" and b.registered == ["other"]
    rows = {r["path"]: r for r in svc.store.application_files("app-b")}
    line = tpl("train").splitlines().index("  name: train") + 1
    (err,) = rows["b/train.yaml"]["errors"]
    assert err.startswith(f"b/train.yaml:{line}:9:") and "app-a" in err, err
    assert svc.store.executable_document("default", "train")["file"] == "a/train.yaml"
    # a copy app-b registered before this check existed: removing it leaves app-a's executable alone
    svc.store.put_application_object("app-b", kind="executable", name="train", rg="default", object_id="train",
                                     path="b/train.yaml", digest="legacy", commit=b.commit or "")
    commit(repo, {}, remove=("b/train.yaml",))
    (b2,) = svc.sync("app-b")
    assert b2.gone == ["executable/train"]
    assert svc.store.executable_origin("default", "train") == (a.commit, None)
    # and an executable marked gone anyway (by the old code) is repaired by its owner's next sync,
    # even at the same commit (the UNCHANGED fast path notices it)
    (a2,) = svc.sync("app-a")
    assert svc.store.executable_origin("default", "train") == (a2.commit, None)
    svc.store.db.execute("UPDATE executables SET gone_at='2025-01-01T00:00:00Z' WHERE id='train'")
    svc.store.db.commit()
    (a3,) = svc.sync("app-a")
    assert a3.status == "SYNCED" and a3.commit == a2.commit and a3.restored == ["train"]
    assert svc.store.executable_origin("default", "train") == (a2.commit, None)
    assert svc.sync("app-a")[0].status == "UNCHANGED"
