"""orchestrator.store.artifacts on real files: the URL traversal matrix (reliability.md row 12),
``resolve_inside``, content-addressed ``store_output`` and ``materialize``.

Every hostile URL must raise :class:`ArtifactError` and nothing else: any other exception type
fails the test (an API would turn it into a 500).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from orchestrator.errors import ArtifactError
from orchestrator.store import artifacts
from orchestrator.store.artifacts import ObjectStore, ParsedUrl, parse_url, resolve_inside

RG = "rg1"


class Env:
    """An object store home and a file root with hostile symlinks planted in both.

    home/objects/rg1/default/a/b.csv       a legit artifact
    home/objects/rg1/default/etc -> /etc   symlink inside the store pointing out of it
    home/objects/rg2/default/secret.csv    another resource group's data
    home/objects/rg2/private/              another resource group's object store secret
    data/x                                 a legit file under the allowed file root
    data/link -> /etc/passwd               symlink inside the file root pointing out of it
    data-evil/x                            sibling of the root sharing its prefix
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.default = self.home / "objects" / RG / "default"
        (self.default / "a").mkdir(parents=True)
        (self.default / "a" / "b.csv").write_text("a,b\n1,2\n")
        os.symlink("/etc", self.default / "etc")
        other = self.home / "objects" / "rg2"
        (other / "default").mkdir(parents=True)
        (other / "default" / "secret.csv").write_text("secret")
        (other / "private").mkdir()
        (other / "private" / "secret.csv").write_text("secret")
        self.root = tmp / "data"
        self.root.mkdir()
        (self.root / "x").write_text("x")
        os.symlink("/etc/passwd", self.root / "link")
        (tmp / "data-evil").mkdir()
        (tmp / "data-evil" / "x").write_text("evil")
        self.store = ObjectStore(self.home, file_roots=[str(self.root)])

    def resolve(self, url: str) -> Path:
        return self.store.local_path(RG, url)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def _bug(reason: str) -> pytest.MarkDecorator:
    """Regression test for a bug that was found and fixed (the reason says what it was)."""
    return pytest.mark.regression(reason=f"was BUG: {reason}")


# (id, url); "{root}" and "{tmp}" are filled from the Env.
HOSTILE = [
    ("dotdot", "ai://default/../x"),
    ("dotdot-deep", "ai://default/a/../../../etc/passwd"),
    ("encoded-dotdot", "ai://default/%2e%2e/x"),
    ("encoded-dotdot-upper", "ai://default/a/%2E%2E/%2E%2E/%2E%2E/etc/passwd"),
    ("encoded-slash-dotdot", "ai://default/a%2F..%2F..%2Fetc%2Fpasswd"),
    ("backslash", "ai://default/a\\b.csv"),
    ("encoded-backslash", "ai://default/..%5c..%5cetc%5cpasswd"),
    ("double-slash", "ai://default//etc/passwd"),
    ("fragment", "ai://default/a/b.csv#frag"),
    ("query", "ai://default/a/b.csv?q=1"),
    ("encoded-nul", "ai://default/a/b.csv%00.txt"),
    ("raw-nul", "ai://default/a/b.csv\x00.txt"),
    ("raw-newline", "ai://default/a/b.csv\n"),
    ("http", "http://example.com/a/b.csv"),
    ("s3", "s3://bucket/a/b.csv"),
    ("javascript", "javascript:alert(1)"),
    ("no-store-name", "ai:///a/b.csv"),
    ("store-name-dotdot", "ai://../a/b.csv"),
    ("trailing-slash", "ai://default/a/"),
    ("no-path", "ai://default"),
    ("empty", ""),
    ("absolute-path-no-scheme", "/etc/passwd"),
    ("file-with-host", "file://host/x"),
    ("file-outside-roots", "file:///etc/passwd"),
    ("file-dotdot-out-of-root", "file://{root}/../data-evil/x"),
    ("file-sibling-prefix", "file://{tmp}/data-evil/x"),
    ("file-symlink-out-of-root", "file://{root}/link"),
    ("store-symlink-to-etc", "ai://default/etc/passwd"),
    ("other-group-data", "ai://default/secret.csv"),
    ("other-group-secret", "ai://private/secret.csv"),
    ("double-encoded-dotdot-decoded-once", "ai://default/%252e%252e/%252e%252e/etc/passwd"),
    ("too-long", "ai://default/" + "a/" * 3000 + "b"),
    ("encoded-slash", "ai://default/a%2Fb.csv"),
    ("dot-segment-store-root", "ai://default/."),
    ("ipv6-bracket-host", "ai://[default/a/b.csv"),
    ("lone-surrogate", "ai://default/a/b\ud800.csv"),
    ("name-too-long", "ai://default/" + "n" * 300),
]
_HOSTILE_BUGS = {
    "encoded-slash": "ai://default/a%2Fb.csv is decoded to a/b.csv and accepted; an encoded "
                     "separator must be refused like %2e%2e",
    "dot-segment-store-root": "ai://default/. resolves to the whole objects/<rg>/default root "
                              "(parse_url drops no '.' segments and only rejects '..')",
    "ipv6-bracket-host": "urllib.parse.urlsplit raises ValueError('Invalid IPv6 URL') and "
                         "parse_url lets it escape",
    "lone-surrogate": "UnicodeEncodeError escapes from os.path.realpath/exists (a JSON body "
                      "can carry \\ud800)",
    "name-too-long": "a 300-char path segment makes Path.exists() raise OSError(ENAMETOOLONG)",
}


def _params(rows: list[tuple[str, str]], bugs: dict[str, str]) -> list[object]:
    return [pytest.param(url, id=name, marks=[_bug(bugs[name])] if name in bugs else [])
            for name, url in rows]


@pytest.mark.parametrize("url", _params(HOSTILE, _HOSTILE_BUGS))
def test_hostile_url_raises_artifact_error(env: Env, url: str) -> None:
    url = url.format(root=env.root, tmp=env.tmp) if "{" in url else url
    with pytest.raises(ArtifactError):
        env.resolve(url)


def test_matrix_covers_at_least_the_21_urls_of_row_12() -> None:
    assert len(HOSTILE) >= 21
    assert len({u for _, u in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(("url", "relative"), [
    ("ai://default/a/b.csv", "a/b.csv"),
    ("ai://default/a", "a"),
])
def test_legit_ai_url_resolves_inside_the_groups_store(env: Env, url: str, relative: str) -> None:
    path = env.resolve(url)
    assert path == env.default.resolve() / relative
    assert os.path.commonpath([env.default.resolve(), path]) == str(env.default.resolve())


@pytest.mark.parametrize("prefix", ["file://", "file://localhost"])
def test_legit_file_url_resolves_inside_the_file_root(env: Env, prefix: str) -> None:
    path = env.resolve(f"{prefix}{env.root}/x")
    assert path == env.root.resolve() / "x"
    assert path.read_text() == "x"


def test_file_url_is_refused_when_no_roots_are_configured(env: Env) -> None:
    with pytest.raises(ArtifactError, match="outside the allowed file roots"):
        ObjectStore(env.home).local_path(RG, f"file://{env.root}/x")


def test_missing_artifact_is_an_artifact_error(env: Env) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        env.resolve("ai://default/a/missing.csv")


@pytest.mark.parametrize("rg", ["", "..", "a/b", "a\\b", "a\x00b"])
def test_unsafe_resource_group_is_refused(env: Env, rg: str) -> None:
    with pytest.raises(ArtifactError):
        env.store.local_path(rg, "ai://default/a/b.csv")


@pytest.mark.parametrize(("url", "expected"), [
    ("ai://default/a/b.csv", ParsedUrl("ai", "default", "a/b.csv")),
    ("ai://my-store/x/y", ParsedUrl("ai", "my-store", "x/y")),
    ("file:///srv/data/x.csv", ParsedUrl("file", "", "/srv/data/x.csv")),
    ("file://localhost/srv/x", ParsedUrl("file", "", "/srv/x")),
    ("ai://default/a%20b", ParsedUrl("ai", "default", "a b")),
])
def test_parse_url_of_legit_urls(url: str, expected: ParsedUrl) -> None:
    assert parse_url(url) == expected


# ------------------------------------------------------------------ resolve_inside


@pytest.mark.parametrize("untrusted", [
    "..", "../x", "a/../../x", "a/..", "/etc/passwd", "/", "a\\..\\..\\x", "a\x00b",
    "etc/passwd", "etc", "out/x", "../data-evil/x",
])
def test_resolve_inside_refuses(env: Env, untrusted: str) -> None:
    os.symlink(env.tmp / "data-evil", env.default / "out")
    with pytest.raises(ArtifactError):
        resolve_inside(env.default, untrusted)


@pytest.mark.parametrize(("untrusted", "relative"), [
    ("a/b.csv", "a/b.csv"), ("./a//b.csv", "a/b.csv"), ("a", "a"), ("new/file", "new/file"),
    ("inner/b.csv", "a/b.csv"),
])
def test_resolve_inside_accepts_paths_that_stay_inside(env: Env, untrusted: str, relative: str) -> None:
    os.symlink(env.default / "a", env.default / "inner")  # a link that stays inside is fine
    assert resolve_inside(env.default, untrusted) == env.default.resolve() / relative


def test_resolve_inside_refuses_a_symlink_whose_target_shares_the_roots_prefix(tmp_path: Path) -> None:
    root, evil = tmp_path / "root", tmp_path / "root-evil"
    root.mkdir()
    evil.mkdir()
    os.symlink(evil, root / "x")
    with pytest.raises(ArtifactError, match="leaves its root"):
        resolve_inside(root, "x/file")


# ------------------------------------------------------------------ store_output


class Outputs:
    """A step directory to write outputs in, and the object store they are stored into."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.step = tmp / "step"
        self.step.mkdir()
        self.store = ObjectStore(self.home)

    def file(self, rel: str, data: bytes | str) -> Path:
        p = self.step / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        p.write_bytes(data)
        return p

    def tree(self, name: str, files: dict[str, str]) -> Path:
        for rel, text in files.items():
            self.file(f"{name}/{rel}", text)
        return self.step / name

    def put(self, source: Path, url_path: str) -> tuple[str, str, int]:
        return self.store.store_output(RG, source, url_path, self.step)

    def blobs(self) -> list[Path]:
        cas = self.home / "cas" / "sha256"
        return sorted(p for p in cas.rglob("*") if p.is_file()) if cas.exists() else []

    def stray(self) -> list[Path]:
        """Staging directories and half-written blobs left behind."""
        found = []
        for base in (self.home / "objects", self.home / "cas" / "sha256"):
            if base.exists():
                found += [p for p in base.rglob("*") if p.name.startswith((".out-", ".in-"))]
        return found

    def stored(self, url_path: str) -> Path:
        return self.home / "objects" / RG / "default" / url_path


@pytest.fixture
def out(tmp_path: Path) -> Outputs:
    return Outputs(tmp_path)


def test_same_content_twice_gives_one_blob_and_the_same_digest(out: Outputs) -> None:
    src = out.file("model.bin", b"weights" * 1000)
    url1, d1, size1 = out.put(src, "run1/model")
    url2, d2, size2 = out.put(src, "run2/model")
    assert (url1, url2) == ("ai://default/run1/model", "ai://default/run2/model")
    assert d1 == d2 == hashlib.sha256(b"weights" * 1000).hexdigest()
    assert size1 == size2 == 7000
    [blob] = out.blobs()
    assert blob.name == d1 and blob.parent.name == d1[:2]
    assert os.stat(blob).st_nlink == 3  # the blob plus one hard link per stored output
    for run in ("run1", "run2"):
        assert os.path.samefile(out.stored(f"{run}/model/model.bin"), blob)
    assert out.stray() == []


def test_directory_digest_is_stable_and_changes_when_one_file_changes(out: Outputs) -> None:
    d = out.tree("model", {"a.txt": "1", "sub/b.txt": "2", "sub/c.txt": "3"})
    _, first, size = out.put(d, "m1")
    _, again, _ = out.put(d, "m2")
    assert first == again and size == 3
    assert first != hashlib.sha256(b"1").hexdigest()  # a manifest digest, not one file's
    (d / "sub" / "c.txt").write_text("changed")
    _, changed, _ = out.put(d, "m3")
    assert changed != first
    assert (out.stored("m3") / "sub" / "c.txt").read_text() == "changed"
    assert (out.stored("m1") / "sub" / "c.txt").read_text() == "3"


def test_directory_digest_depends_on_file_names(out: Outputs) -> None:
    _, d1, _ = out.put(out.tree("x", {"a.txt": "1"}), "x")
    _, d2, _ = out.put(out.tree("y", {"b.txt": "1"}), "y")
    assert d1 != d2


@pytest.mark.parametrize("link", [
    pytest.param(("evil.txt", "/etc/passwd"), id="file-link-out"),
    pytest.param(("dangling", "/nonexistent/target"), id="dangling-link"),
    pytest.param(("inner.txt", "a.txt"), id="file-link-inside"),
    pytest.param(("etc", "/etc"), id="dir-link-out", marks=_bug(
        "os.walk(followlinks=False) lists a symlink to a directory under dirs, not names, so "
        "store_output silently drops it instead of refusing it")),
])
def test_symlink_inside_an_output_directory_is_refused(out: Outputs, link: tuple[str, str]) -> None:
    d = out.tree("model", {"a.txt": "1"})
    os.symlink(link[1], d / link[0])
    with pytest.raises(ArtifactError, match="symlink"):
        out.put(d, "m")
    assert not out.stored("m").exists()
    assert out.stray() == []


def test_output_that_is_itself_a_symlink_is_refused(out: Outputs) -> None:
    target = out.file("real.txt", "x")
    os.symlink(target, out.step / "link.txt")
    with pytest.raises(ArtifactError, match="outside the step directory"):
        out.put(out.step / "link.txt", "m")


def test_output_outside_the_step_directory_is_refused(out: Outputs, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    for src in (outside, out.step / ".." / "elsewhere.txt"):
        with pytest.raises(ArtifactError, match="outside the step directory"):
            out.put(src, "m")
    assert out.blobs() == []


def test_missing_output_is_an_artifact_error(out: Outputs) -> None:
    with pytest.raises(ArtifactError, match="not created"):
        out.put(out.step / "never-written", "m")


@pytest.mark.parametrize("url_path", ["../escape", "a/../../escape", "..", "a\\b", "a\x00b"])
def test_output_url_path_cannot_leave_the_store(out: Outputs, url_path: str) -> None:
    src = out.file("m.txt", "x")
    with pytest.raises(ArtifactError):
        out.put(src, url_path)
    assert not (out.home / "objects" / "escape").exists()
    assert not (out.home / "escape").exists()


_NON_CANONICAL = "store_output accepts a url path that parse_url rejects, stores the data and returns " \
                 "an unreadable URL (e.g. 'ai://default//abs'): it must refuse the path instead"


@pytest.mark.parametrize("url_path", [
    pytest.param("/abs", marks=_bug(_NON_CANONICAL)),
    pytest.param("a//b", marks=_bug(_NON_CANONICAL)),
    pytest.param("a/", marks=_bug(_NON_CANONICAL)),
    "run/model",
])
def test_returned_url_resolves_back_to_the_stored_output(out: Outputs, url_path: str) -> None:
    src = out.file("m.txt", "payload")
    try:
        url, _, _ = out.put(src, url_path)
    except ArtifactError:
        return  # refusing a non-canonical path is correct too
    assert (out.store.local_path(RG, url) / "m.txt").read_text() == "payload"


@_bug("store_output(rg, src, '.', within) resolves to objects/<rg>/default itself and "
      "shutil.rmtree()s it: every artifact of the resource group is deleted")
def test_storing_at_the_store_root_never_deletes_other_artifacts(out: Outputs) -> None:
    out.put(out.file("keep.txt", "keep"), "exec1/model")
    with pytest.raises(ArtifactError):
        out.put(out.file("other.txt", "x"), ".")
    assert (out.stored("exec1/model") / "keep.txt").read_text() == "keep"


def _fail_on_call(monkeypatch: pytest.MonkeyPatch, obj: object, name: str, nth: int,
                  exc: BaseException) -> None:
    """Make ``obj.name`` raise ``exc`` on its ``nth`` call (1-based) and behave normally otherwise."""
    real = getattr(obj, name)
    calls = {"n": 0}

    def wrapper(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == nth:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)


def test_failure_on_the_second_file_leaves_no_partial_object(out: Outputs,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    d = out.tree("model", {"a.txt": "1", "b.txt": "2", "c.txt": "3"})
    _fail_on_call(monkeypatch, ObjectStore, "_blob", 2, OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        out.put(d, "runs/model")
    assert not out.stored("runs/model").exists()
    assert out.stray() == []
    objects = out.home / "objects"
    assert [p for p in objects.rglob("*") if p.is_file()] == []


def test_failure_midway_keeps_the_previous_version_intact(out: Outputs,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = out.tree("model", {"a.txt": "old-a", "b.txt": "old-b"})
    out.put(d, "m")
    (d / "a.txt").write_text("new-a")
    (d / "b.txt").write_text("new-b")
    _fail_on_call(monkeypatch, ObjectStore, "_blob", 2, RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        out.put(d, "m")
    assert {p.name: p.read_text() for p in out.stored("m").iterdir()} == {"a.txt": "old-a", "b.txt": "old-b"}
    assert out.stray() == []


def test_blob_write_failure_removes_its_temporary_file(out: Outputs, monkeypatch: pytest.MonkeyPatch) -> None:
    d = out.tree("model", {"a.txt": "1", "b.txt": "2"})
    _fail_on_call(monkeypatch, artifacts.os, "fsync", 2, OSError(5, "Input/output error"))
    with pytest.raises(OSError, match="Input/output error"):
        out.put(d, "m")
    assert out.stray() == []
    assert [b.read_text() for b in out.blobs()] == ["1"]  # the complete first blob only
    assert not out.stored("m").exists()


# ------------------------------------------------------------------ materialize


def test_materialize_directory_copies_recursively_without_following_symlinks(out: Outputs,
                                                                              tmp_path: Path) -> None:
    src = out.tree("src", {"a.txt": "1", "sub/b.txt": "2", "sub/deeper/c.txt": "3"})
    os.symlink("/etc/passwd", src / "passwd")
    os.symlink("/etc", src / "sub" / "etc")
    os.symlink(src / "a.txt", src / "inner-link")
    dest = tmp_path / "dest" / "data"
    out.store.materialize(src, dest)
    copied = {str(p.relative_to(dest)) for p in dest.rglob("*")}
    assert copied == {"a.txt", "sub", "sub/b.txt", "sub/deeper", "sub/deeper/c.txt"}
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert (dest / "sub" / "deeper" / "c.txt").read_text() == "3"


def test_materialize_single_file_directory_to_a_file_path_yields_that_file(out: Outputs,
                                                                            tmp_path: Path) -> None:
    src = out.tree("src", {"model.pkl": "pickled"})
    dest = tmp_path / "in" / "model.pkl"
    out.store.materialize(src, dest)
    assert dest.is_file() and dest.read_text() == "pickled"


def test_materialize_single_file_directory_to_a_plain_path_yields_a_directory(out: Outputs,
                                                                               tmp_path: Path) -> None:
    src = out.tree("src", {"model.pkl": "pickled"})
    dest = tmp_path / "in" / "model"
    out.store.materialize(src, dest)
    assert dest.is_dir() and (dest / "model.pkl").read_text() == "pickled"


def test_materialize_a_file(out: Outputs, tmp_path: Path) -> None:
    src = out.file("x.csv", "1,2")
    dest = tmp_path / "deep" / "er" / "x.csv"
    out.store.materialize(src, dest)
    assert dest.read_text() == "1,2"


def test_stored_output_round_trips_through_local_path_and_materialize(out: Outputs, tmp_path: Path) -> None:
    src = out.file("model.pkl", b"\x80\x04weights")
    url, digest, _ = out.put(src, "exec1/model")
    local = out.store.local_path(RG, url)
    dest = tmp_path / "serve" / "model.pkl"
    out.store.materialize(local, dest)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
    assert not os.path.samefile(dest, out.blobs()[0])  # a copy: the step cannot alter the blob
