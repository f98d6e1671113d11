"""gitsync against real git repos built here: hostile repos, revisions, per-file results, timing.

Every hostile script only ever touches a marker under ``tmp_path``; the control test proves the
same repo *does* run them under naive git use, so "no marker" is not vacuous.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.git import gitsync
from orchestrator.git.gitsync import GitError, check_files, check_url, fetch, read_tree, skipped_results
from tests.conftest import template

BUILD_ENV = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
             "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": "/nonexistent"}
STEP = """
- name: main
  container:
    image: python:3.11
    command: [python, -c, "print(1)"]
"""


def git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                       env={**BUILD_ENV, **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"git {args} -> {p.returncode}\n{p.stderr}")
    return p.stdout.strip()


def tpl(name: str) -> str:
    return template(name, STEP)


def new_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())


def script(path: Path, body: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


HOOKS = ("post-checkout", "pre-commit", "post-merge", "reference-transaction", "post-rewrite", "pre-auto-gc")
MARKERS = ("hook", "fsmonitor", "clean", "smudge", "ext", "upload-pack", "pack-objects-hook")


def hostile_repo(root: Path, markers: Path) -> Path:
    """A repo whose config, hooks, attributes, symlinks, submodules and blobs all try something."""
    markers.mkdir(parents=True)
    repo = new_repo(root, {
        "workflows/good.yaml": tpl("good-train"),
        "workflows/huge.yaml": b"# padding\n" * (512 * 1024 + 1),  # 5 MiB + 10 bytes: (f)
        ".gitattributes": "* filter=evil\n",  # (c) the driver is configured below, after committing
        "README.md": "hostile\n",
    })
    os.symlink("/etc/passwd", repo / "workflows" / "escape.yaml")  # (d)
    head = git(repo, "rev-parse", "HEAD")
    # (e) submodules with hostile URLs, as gitlinks + .gitmodules (what `submodule add` would refuse)
    (repo / ".gitmodules").write_text(
        '[submodule "ext"]\n\tpath = workflows/sub-ext\n'
        f"\turl = ext::sh -c touch% {markers}/ext\n"
        '[submodule "up"]\n\tpath = workflows/sub-up\n'
        f'\turl = "--upload-pack=touch {markers}/upload-pack"\n')
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},workflows/sub-ext")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},workflows/sub-up")
    git(repo, "add", ".gitmodules", "workflows/escape.yaml")  # not -A: that would drop the gitlinks (no directories exist)
    git(repo, "commit", "-q", "-m", "hostile")
    # (a) hooks, both in .git/hooks and via core.hooksPath; (b) fsmonitor; (c) filter driver
    evil = root.parent / (root.name + "-evil")
    for hook in HOOKS:
        script(repo / ".git" / "hooks" / hook, f"touch {markers}/hook")
        script(evil / "hooks" / hook, f"touch {markers}/hook")
    git(repo, "config", "core.hooksPath", str(evil / "hooks"))
    git(repo, "config", "core.fsmonitor", script(evil / "fsmonitor", f"touch {markers}/fsmonitor"))
    git(repo, "config", "filter.evil.clean", script(evil / "clean", f"touch {markers}/clean; cat"))
    git(repo, "config", "filter.evil.smudge", script(evil / "smudge", f"touch {markers}/smudge; cat"))
    git(repo, "config", "filter.evil.required", "true")
    git(repo, "config", "uploadpack.packObjectsHook", script(evil / "pack", f"touch {markers}/pack-objects-hook; exec \"$@\""))
    assert list(markers.iterdir()) == []  # building it ran nothing
    return repo


def sync(url: str, mirror: Path, revision: str = "main", path: str = "workflows"):
    sha = fetch(url, mirror, revision)
    files, skipped = read_tree(mirror, sha, path)
    results, wfs, cfgs = check_files(files)[:3]
    return sha, files, skipped, results, wfs, cfgs


# ------------------------------------------------------------------------------------ hostile repo


def test_control_the_hostile_repo_really_runs_code_under_naive_git(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    repo = hostile_repo(tmp_path / "ctl", markers)
    os.utime(repo / "README.md", (1, 1))  # stat-dirty: status must re-clean the file
    git(repo, "status", "--porcelain")
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "README.md").unlink()
    git(repo, "checkout", "--", "README.md")
    git(repo, "-c", "protocol.ext.allow=always", "submodule", "update", "--init", "workflows/sub-ext", check=False)
    found = {m.name for m in markers.iterdir()}
    assert {"fsmonitor", "clean", "smudge", "hook", "ext"} <= found, found
    naive = tmp_path / "naive"
    git(tmp_path, "clone", "-q", str(repo), str(naive))
    assert os.readlink(naive / "workflows" / "escape.yaml") == "/etc/passwd"  # a checkout follows it


def test_hostile_repo_syncs_its_valid_template_and_executes_nothing(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    repo = hostile_repo(tmp_path / "src", markers)
    mirror = tmp_path / "home" / "git" / "app.git"
    for _ in range(2):  # clone, then fetch
        sha, files, skipped, results, wfs, _ = sync(str(repo), mirror)
        assert sha == git(repo, "rev-parse", "HEAD")
        assert [f for f, _ in files] == ["workflows/good.yaml"]
        assert [(r.path, r.status) for r in results] == [("workflows/good.yaml", "valid")]
        assert [w.executable_id for w in wfs] == ["good-train"]
        reasons = dict(skipped)
        assert set(reasons) == {"workflows/escape.yaml", "workflows/huge.yaml", "workflows/sub-ext",
                                "workflows/sub-up"}, skipped
        assert "symbolic link" in reasons["workflows/escape.yaml"]
        assert "5242890 bytes" in reasons["workflows/huge.yaml"] and "limit" in reasons["workflows/huge.yaml"]
        assert "submodule" in reasons["workflows/sub-ext"] and "submodule" in reasons["workflows/sub-up"]
        assert all(b"root:" not in data for _, data in files)
        rows = skipped_results(skipped)
        assert {r.status for r in rows} == {"skipped"} and all(r.errors for r in rows)
        assert sorted(m.name for m in markers.iterdir()) == []
    assert not (mirror / "modules").exists() and not list(mirror.glob("hooks/*"))


def test_file_url_and_home_inside_the_hostile_working_tree_execute_nothing(tmp_path: Path) -> None:
    """The default home ./.orchestrator may sit inside the user's repo: git must not discover it."""
    markers = tmp_path / "markers"
    repo = hostile_repo(tmp_path / "src", markers)
    mirror = repo / ".orchestrator" / "git" / "app.git"
    sha, files, _, results, _, _ = sync(f"file://{repo}", mirror)
    assert [r.status for r in results] == ["valid"] and sha == git(repo, "rev-parse", "HEAD")
    shutil.rmtree(mirror / "objects")  # a broken mirror must fail, not fall back to the outer repo
    with pytest.raises(GitError):
        read_tree(mirror, sha, "workflows")
    with pytest.raises(GitError, match="not a git mirror"):
        fetch(str(repo), mirror, "main")
    assert gitsync._git(["ls-tree", "-r", sha], mirror.parent, git_dir=mirror, check=False).returncode != 0
    assert gitsync._git(["rev-parse", "--git-dir"], mirror.parent, check=False).returncode != 0  # no discovery
    assert git(mirror.parent, "rev-parse", "--git-dir").endswith(".git")  # ... which plain git would do
    assert list(markers.iterdir()) == []


def test_hostile_urls_are_refused_before_git_runs(tmp_path: Path) -> None:
    marker = tmp_path / "m"
    for url in ("ext::sh -c touch% " + str(marker), f"--upload-pack=touch {marker}", "-uhostile",
                "--upload-pack=x", "ext::sh"):
        with pytest.raises(GitError):
            fetch(url, tmp_path / "mirror", "main")
    assert not marker.exists() and not (tmp_path / "mirror").exists()


@pytest.mark.parametrize("url", [
    "ext::sh -c id", "fd::3", "-uhostile", "--upload-pack=x", "ssh://host/repo.git", "git@host:repo.git",
    "git://host/repo", "http://host/repo", "relative/path", "~/repo", "https://user:pw@host/repo",
    "https://token@host/repo", "https:///nohost", "file://host/x", "file:relative", "/tmp/a b",
    "/tmp/a\nb", "https://host/x\x00", "", "https://host:99999999/x", "C:\\repo",
])
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(GitError) as exc:
        check_url(url)
    assert isinstance(exc.value, UsageError) and exc.value.message
    assert "pw" not in str(exc.value)


@pytest.mark.parametrize("url", ["/srv/repo", "/srv/repo.git", "file:///srv/repo", "https://github.com/o/r.git",
                                 "HTTPS://host:8443/r"])
def test_check_url_accepts(url: str) -> None:
    assert check_url(url) == url


# ------------------------------------------------------------------------------------ revisions


def test_fetch_after_a_new_commit_returns_the_new_sha_and_prunes(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src", {"workflows/a.yaml": tpl("a")})
    git(repo, "branch", "feature")
    mirror = tmp_path / "home" / "app.git"
    first = fetch(str(repo), mirror, "main")
    assert fetch(str(repo), mirror, "main") == first  # no change
    write(repo, {"workflows/b.yaml": tpl("b")})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "b")
    second = fetch(str(repo), mirror, "main")
    assert second != first and second == git(repo, "rev-parse", "HEAD")
    files, _ = read_tree(mirror, second, "workflows")
    assert [f for f, _ in files] == ["workflows/a.yaml", "workflows/b.yaml"]
    assert [f for f, _ in read_tree(mirror, first, "workflows")[0]] == ["workflows/a.yaml"]
    assert fetch(str(repo), mirror, "feature") == first
    git(repo, "branch", "-D", "feature")
    with pytest.raises(GitError, match="not a branch or tag"):
        fetch(str(repo), mirror, "feature")


def test_branch_tag_sha_and_head_resolve(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src", {"workflows/a.yaml": tpl("a")})
    c1 = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1")
    git(repo, "tag", "-a", "v1-annotated", "-m", "annotated")
    write(repo, {"workflows/b.yaml": tpl("b")})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "b")
    c2 = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "release/1.0", c1)
    mirror = tmp_path / "home" / "app.git"
    assert fetch(str(repo), mirror, "main") == c2
    assert fetch(str(repo), mirror, "v1") == c1
    assert fetch(str(repo), mirror, "v1-annotated") == c1  # peeled to the commit
    assert fetch(str(repo), mirror, "release/1.0") == c1
    assert fetch(str(repo), mirror, "refs/heads/main") == c2
    assert fetch(str(repo), mirror, c1) == c1
    assert fetch(str(repo), mirror, "HEAD") == c2
    with pytest.raises(GitError, match="not on any branch or tag"):
        fetch(str(repo), mirror, "0" * 40)
    for bad in ("-x", "--upload-pack=x", "main..v1", "HEAD~1", "main^", "v1:workflows", "@{-1}", "a b", "x.lock", ""):
        with pytest.raises(GitError, match="revision"):
            fetch(str(repo), mirror, bad)


def test_concurrent_first_syncs_share_one_mirror(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    repo = new_repo(tmp_path / "src", {"workflows/a.yaml": tpl("a")})
    mirror = tmp_path / "home" / "app.git"
    with ThreadPoolExecutor(4) as pool:
        shas = list(pool.map(lambda _: fetch(str(repo), mirror, "main"), range(4)))
    assert set(shas) == {git(repo, "rev-parse", "HEAD")}
    assert sorted(p.name for p in mirror.parent.iterdir()) == [".git-home", "app.git"]


def test_mirror_dir_that_is_not_a_mirror_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src", {"workflows/a.yaml": tpl("a")})
    target = tmp_path / "home" / "app.git"
    target.mkdir(parents=True)
    (target / "precious.txt").write_text("keep")
    with pytest.raises(GitError, match="not a git mirror"):
        fetch(str(repo), target, "main")
    assert (target / "precious.txt").read_text() == "keep"
    with pytest.raises(GitError):
        fetch(str(tmp_path / "missing"), tmp_path / "home" / "other.git", "main")
    assert not (tmp_path / "home" / "other.git").exists()
    assert [p.name for p in (tmp_path / "home").iterdir() if p.name.startswith(".other")] == []


def test_read_tree_refuses_escaping_paths_and_reports_a_missing_one(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src", {"workflows/a.yaml": tpl("a"), "workflowsX/b.yaml": tpl("b"),
                                       "top.yml": tpl("top"), "workflows/notes.txt": "x",
                                       ".github/workflows/ci.yaml": "on: push\n", "workflows/.hidden/h.yaml": "x",
                                       "odd/new\nline.yaml": "x", "odd/.dot.yaml": "x"})
    (repo / "odd").joinpath(os.fsdecode(b"\xff.yaml")).write_text("x")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd names")
    mirror = tmp_path / "home" / "app.git"
    sha = fetch(str(repo), mirror, "main")
    for bad in ("../x", "/etc", "workflows/../../x", "a\\b", "x\ny"):
        with pytest.raises(GitError):
            read_tree(mirror, sha, bad)
    with pytest.raises(GitError, match="does not exist"):
        read_tree(mirror, sha, "nope")
    with pytest.raises(GitError, match="SHA"):
        read_tree(mirror, "main", "workflows")
    assert [f for f, _ in read_tree(mirror, sha, "./workflows/")[0]] == ["workflows/a.yaml"]
    assert [f for f, _ in read_tree(mirror, sha, ".github")[0]] == [".github/workflows/ci.yaml"]
    files, skipped = read_tree(mirror, sha, "odd")
    assert [f for f, _ in files] == ["odd/.dot.yaml"]
    assert sorted(skipped) == [("odd/\\xff.yaml", "file name is not valid UTF-8"), ("odd/new\\nline.yaml",
                               "unsafe file name (control character, backslash, '.', '..' or '.git')")]
    files, skipped = read_tree(mirror, sha, "")
    assert [f for f, _ in files] == ["odd/.dot.yaml", "top.yml", "workflows/a.yaml", "workflowsX/b.yaml"]
    files, skipped = read_tree(mirror, sha, ".", max_blob=10)
    assert [f for f, _ in files] == ["odd/.dot.yaml"] and len(skipped) == 5
    assert sum("10-byte limit" in r for _, r in skipped) == 3


# ------------------------------------------------------------------------------------ validation


def test_invalid_file_gets_file_line_col_errors_and_the_valid_one_passes() -> None:
    bad = tpl("bad-one").replace("entrypoint: main", "entrypoint: mian")
    results, wfs, _, _ = check_files([("wf/bad.yaml", bad.encode()), ("wf/good.yaml", tpl("good").encode()),
                                      ("wf/broken.yaml", b"a: [1, 2\n"), ("wf/dup-key.yaml", b"a: 1\na: 2\n")])
    status = {r.path: r.status for r in results}
    assert status == {"wf/bad.yaml": "invalid", "wf/good.yaml": "valid", "wf/broken.yaml": "invalid",
                      "wf/dup-key.yaml": "invalid"}
    line = bad.splitlines().index("  entrypoint: mian") + 1
    assert any(e.startswith(f"wf/bad.yaml:{line}:") for e in results[0].errors), results[0].errors
    for r in results:
        if r.status == "invalid":
            assert all(e.split(":")[0] == r.path and e.split(":")[1].isdigit() and e.split(":")[2].isdigit()
                       for e in r.errors)
    assert [w.executable_id for w in wfs] == ["good"] and wfs[0].source == "wf/good.yaml"


def test_duplicate_executable_ids_across_files_are_errors_in_both(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src", {"t/one.yaml": tpl("same"), "t/two.yaml": tpl("same"), "t/other.yaml": tpl("other")})
    mirror = tmp_path / "home" / "app.git"
    _, _, _, results, wfs, _ = sync(str(repo), mirror, path="t")
    by = {r.path: r for r in results}
    assert by["t/other.yaml"].status == "valid" and [w.executable_id for w in wfs] == ["other"]
    line = tpl("same").splitlines().index("  name: same") + 1
    for me, other in (("t/one.yaml", "t/two.yaml"), ("t/two.yaml", "t/one.yaml")):
        assert by[me].status == "invalid" and by[me].executables == ["same"]
        [err] = by[me].errors
        assert err.startswith(f"{me}:{line}:9: error id.duplicate") and f"{other}:{line}" in err


def test_duplicate_configuration_names_and_a_crashing_validator() -> None:
    cfg = b"apiVersion: orchestrator/v1\nkind: Configuration\nmetadata:\n  name: c1\nspec:\n  executableId: x\n"
    results, _, cfgs = check_files([("a.yaml", cfg), ("b.yaml", cfg), ("c.yaml", cfg.replace(b"c1", b"c2"))])[:3]
    assert [r.status for r in results] == ["invalid", "invalid", "valid"] and [c.name for c in cfgs] == ["c2"]
    assert "configuration name 'c1'" in results[0].errors[0]

    import orchestrator.spec as spec
    real = spec.validate_text

    def flaky(data: bytes, name: str):
        if name == "boom.yaml":
            raise RuntimeError("secret file content")
        return real(data, name)

    results, wfs, _ = check_files([("boom.yaml", b"x"), ("ok.yaml", tpl("ok-ok").encode())], flaky)[:3]
    assert [r.status for r in results] == ["invalid", "valid"] and [w.executable_id for w in wfs] == ["ok-ok"]
    assert "internal.check-failed" in results[0].errors[0] and "secret" not in results[0].errors[0]


# ------------------------------------------------------------------------------------ the git helper


def test_credentials_go_to_env_config_never_to_argv_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    def spy(argv, **kw):  # type: ignore[no-untyped-def]
        seen.append((list(argv), dict(kw["env"])))
        return real(argv, **kw)

    monkeypatch.setattr(gitsync.subprocess, "Popen", spy)
    with pytest.raises(GitError) as exc:  # port 1 on localhost: refused at once, no network needed
        fetch("https://127.0.0.1:1/r.git", tmp_path / "m.git", "main", credentials=("bot", "s3cr3t-token"), timeout=20)
    argv, env = seen[0]
    assert not any("s3cr3t" in a or "Authorization" in a for a in argv)
    assert env["GIT_CONFIG_KEY_0"] == "http.https://127.0.0.1:1/r.git.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert "s3cr3t" not in str(exc.value) and env["GIT_CONFIG_VALUE_0"][21:] not in str(exc.value)
    assert env["GIT_CONFIG_GLOBAL"] == "/dev/null" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["HOME"] != os.environ.get("HOME") and list(Path(env["HOME"]).iterdir()) == []
    assert "--" in argv and argv.index("--") < argv.index("https://127.0.0.1:1/r.git")
    assert "protocol.ext.allow=never" in argv and "core.hooksPath=/dev/null" in argv


def test_timeout_kills_the_whole_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    pidfile = tmp_path / "child.pid"
    script(fake / "git", f"sleep 60 & echo $! > {pidfile}\nwait")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    t0 = time.monotonic()
    with pytest.raises(GitError, match="timed out"):
        gitsync._git(["fetch"], tmp_path, timeout=0.5)
    assert time.monotonic() - t0 < 10
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild survived the timeout")


# ------------------------------------------------------------------------------------ timing


def test_sync_time_for_50_templates_cold_and_no_change(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "src", {f"workflows/t{i:02d}.yaml": tpl(f"train-{i:02d}") for i in range(50)})
    check_files([("warm.yaml", tpl("warm").encode())])  # the validator's one-off imports are not sync time
    mirror = tmp_path / "home" / "app.git"
    t0 = time.perf_counter()
    sync(str(repo), mirror)
    cold = time.perf_counter() - t0
    laps = []
    for _ in range(3):
        t0 = time.perf_counter()
        _, files, _, results, wfs, _ = sync(str(repo), mirror)
        laps.append(time.perf_counter() - t0)
    assert len(files) == 50 and all(r.status == "valid" for r in results) and len(wfs) == 50
    print(f"\nsync of 50 templates: cold {cold * 1000:.0f} ms, no-change {min(laps) * 1000:.0f} ms "
          f"(median {sorted(laps)[1] * 1000:.0f} ms)")
    assert cold < 30 and min(laps) < 30
