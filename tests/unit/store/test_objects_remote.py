"""The object store over buckets (moto on loopback): outputs of a group whose ``default`` secret is
S3 go to its bucket, a bucket artifact's local copy follows the objects' ETags, a deferred input
is downloaded once and a failed download is remembered and located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ArtifactError
from orchestrator.store.artifacts import ObjectStore, tree_digest


def _store(tmp_path: Path, targets: dict[str, Any]) -> ObjectStore:
    return ObjectStore(tmp_path / "home", remotes=lambda rg, name: targets.get(name) if rg == "default" else None)


def test_outputs_go_to_the_default_bucket_and_back(s3: Any, tmp_path: Path) -> None:
    bucket = s3.bucket()
    objects = _store(tmp_path, {"default": s3.target(bucket, "p", name="default")})
    step = tmp_path / "step"
    (step / "out").mkdir(parents=True)
    (step / "out" / "m.txt").write_text("model v1\n")
    url, digest, size = objects.store_output("default", step / "out", "ex1/model", step)
    assert (url, digest, size) == ("ai://default/ex1/model", tree_digest(step / "out"), 9)
    assert "p/ex1/model/m.txt" in s3.keys(bucket)
    assert not (tmp_path / "home" / "objects" / "default" / "default").exists()
    # another group (no S3 default) and the step cache stay local
    assert objects.store_output("team-b", step / "out", "ex1/model", step)[0] == "ai://default/ex1/model"
    assert (tmp_path / "home" / "objects" / "team-b" / "default" / "ex1" / "model" / "m.txt").is_file()
    objects.store_output("default", step / "out", "k/model", step, space=".cache")
    assert (tmp_path / "home" / "objects" / "default" / ".cache" / "k" / "model").is_dir()
    # read back through local_path: a cached copy, fetched again when an object changed
    first = objects.local_path("default", url)
    assert tree_digest(first) == digest and str(tmp_path / "home" / "cache" / "s3") in str(first)
    assert objects.local_path("default", url) == first
    s3.client().put_object(Bucket=bucket, Key="p/ex1/model/m.txt", Body=b"model v2\n")
    second = objects.local_path("default", url)
    assert second != first and (second / "m.txt").read_text() == "model v2\n"
    objects.check("default", url)
    with pytest.raises(ArtifactError, match="does not exist"):
        objects.check("default", "ai://default/ex1/nothing")


def test_a_deferred_input_downloads_once_and_a_failure_is_remembered(s3: Any, tmp_path: Path) -> None:
    bucket = s3.bucket()
    s3.client().put_object(Bucket=bucket, Key="ds/a.txt", Body=b"a\n")
    objects = _store(tmp_path, {"lake": s3.target(bucket, name="lake"),
                                "gone": s3.target("no-such-bucket-xyz", name="gone")})
    where = objects.defer("default", "ai://lake/ds", tmp_path / "inputs" / "data")
    assert where == tmp_path / "inputs" / "data" / "ds" and not where.exists()
    assert objects.deferred_remote(where) is not None  # a remote executor could fetch it on its node
    assert objects.fetch(where / "a.txt") == where / "a.txt"  # a path inside it (subPath) fetches it too
    assert (where / "a.txt").read_text() == "a\n" and objects.deferred_remote(where) is None
    s3.client().put_object(Bucket=bucket, Key="ds/a.txt", Body=b"changed\n")
    objects.fetch(where)
    assert (where / "a.txt").read_text() == "a\n"  # once per execution
    bad = objects.defer("default", "ai://gone/ds", tmp_path / "inputs" / "other")
    for _ in range(2):
        with pytest.raises(ArtifactError) as err:
            objects.fetch(bad)
        assert "'gone'" in str(err.value) and "no-such-bucket-xyz" in str(err.value)
    missing = _store(tmp_path, {"default": s3.target("no-such-bucket-xyz", name="default")})
    with pytest.raises(ArtifactError, match="no-such-bucket-xyz"):  # an output for a missing bucket
        missing.store_output("default", *_out(tmp_path))


def _out(tmp_path: Path) -> tuple[Path, str, Path]:
    (tmp_path / "s" / "o").mkdir(parents=True, exist_ok=True)
    (tmp_path / "s" / "o" / "f").write_text("x")
    return tmp_path / "s" / "o", "ex/o", tmp_path / "s"


def test_a_local_copy_written_before_the_switch_never_shadows_the_bucket(s3: Any, tmp_path: Path) -> None:
    """A path the local store held before ``default`` became a bucket is read locally only while
    the bucket has nothing there; once the bucket holds it (rewritten since), the bucket's bytes win."""
    bucket = s3.bucket()
    objects = _store(tmp_path, {})
    local = tmp_path / "home" / "objects" / "default" / "default" / "datasets"
    local.mkdir(parents=True)
    (local / "train.csv").write_text("old\n")
    (local / "only-here.csv").write_text("kept\n")
    objects.remotes = lambda rg, name: s3.target(bucket, name="default") if name == "default" else None
    assert objects.local_path("default", "ai://default/datasets/only-here.csv").read_text() == "kept\n"
    assert objects.remote_of("default", "ai://default/datasets/only-here.csv") is None
    s3.client().put_object(Bucket=bucket, Key="datasets/train.csv", Body=b"new\n")
    assert objects.remote_of("default", "ai://default/datasets/train.csv") is not None
    assert objects.local_path("default", "ai://default/datasets/train.csv").read_text() == "new\n"
    # a local directory the bucket holds part of: the bucket's copy, not the stale local tree
    s3.client().put_object(Bucket=bucket, Key="datasets/extra.csv", Body=b"x\n")
    assert objects.remote_of("default", "ai://default/datasets") is not None
