"""The S3 transfers against a real S3-compatible server (moto, on loopback): content-addressed
uploads with the local tree digest, downloads that refuse hostile keys, located errors that never
carry a credential, and a target whose repr hides them."""

from __future__ import annotations

import hashlib
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ArtifactError
from orchestrator.store import objects_s3
from orchestrator.store.artifacts import tree_digest
from orchestrator.store.objects_s3 import CAS, S3Target, download, put_tree, target_from_secret, upload_tree


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    return root


def test_target_from_an_ai_core_secret_hides_its_credentials() -> None:
    meta = {"storage.ai.sap.com/type": "S3", "storage.ai.sap.com/bucket": "my-bucket",
            "storage.ai.sap.com/endpoint": "127.0.0.1:9000", "storage.ai.sap.com/pathPrefix": "/team/x/",
            "storage.ai.sap.com/region": "eu-central-1", "serving.kubeflow.org/s3-usehttps": "0",
            "serving.kubeflow.org/s3-verifyssl": "0"}
    t = target_from_secret("data", meta, {"AWS_ACCESS_KEY_ID": "AKIDVISIBLE1", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"})
    assert (t.bucket, t.prefix, t.endpoint_url, t.region, t.verify_ssl) == \
        ("my-bucket", "team/x", "http://127.0.0.1:9000", "eu-central-1", False)
    assert t.url("ds/1") == "s3://my-bucket/team/x/ds/1"
    for text in (repr(t), str(t), f"{t}"):
        assert "s3cr3t-value" not in text and "AKIDVISIBLE1" not in text
    assert pickle.loads(pickle.dumps(t)) == t  # it travels to a worker node
    https = target_from_secret("d", {**meta, "serving.kubeflow.org/s3-usehttps": "1"}, dict(
        AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"))
    assert https.endpoint_url == "https://127.0.0.1:9000"
    for bad_meta, bad_data in (({**meta, "storage.ai.sap.com/bucket": "B_AD"}, {"AWS_ACCESS_KEY_ID": "a",
                                                                                 "AWS_SECRET_ACCESS_KEY": "b"}),
                               (meta, {"AWS_ACCESS_KEY_ID": "a"}),
                               ({**meta, "storage.ai.sap.com/pathPrefix": "a/../b"}, {"AWS_ACCESS_KEY_ID": "a",
                                                                                      "AWS_SECRET_ACCESS_KEY": "b"})):
        with pytest.raises(ArtifactError):
            target_from_secret("d", bad_meta, bad_data)


def test_upload_is_content_addressed_with_the_local_digest_and_download_round_trips(s3: Any, tmp_path: Path) -> None:
    bucket = s3.bucket()
    t = s3.target(bucket, "proj")
    src = _tree(tmp_path / "out")
    first = put_tree(t, src, "ex1/model")
    assert first.digest == tree_digest(src)  # the same digest a local output records
    assert sorted(first.keys) == ["proj/ex1/model/a.txt", "proj/ex1/model/sub/b.bin"]
    assert len(first.new_blobs) == 2 and all(k.startswith(f"proj/{CAS}/") for k in first.new_blobs)
    blobs = s3.keys(bucket, f"proj/{CAS}/")
    assert set(blobs) == set(first.new_blobs)
    # the same bytes again, elsewhere: no blob is written again
    copy = _tree(tmp_path / "again")
    second = put_tree(t, copy, "ex2/model")
    assert second.new_blobs == [] and second.digest == first.digest
    assert s3.keys(bucket, f"proj/{CAS}/") == blobs  # same keys, same LastModified
    assert upload_tree(t, copy, "ex3/model") == ["proj/ex3/model/a.txt", "proj/ex3/model/sub/b.bin"]
    # a reader sees plain objects
    body = s3.client().get_object(Bucket=bucket, Key="proj/ex1/model/a.txt")["Body"].read()
    assert body == b"alpha\n"
    got = download(t, "ex1/model", tmp_path / "dl")
    assert sorted(got) == ["a.txt", "sub/b.bin"]
    assert tree_digest(tmp_path / "dl") == first.digest
    assert (tmp_path / "dl" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    # one object is a file
    download(t, "ex1/model/a.txt", tmp_path / "one.txt")
    assert (tmp_path / "one.txt").read_text() == "alpha\n"


@pytest.mark.parametrize("key", ["in/../escape.txt", "in//etc/passwd", "in/a/../../x", "in/./x", "in/ok.txt/x"])
def test_hostile_keys_of_a_listing_are_refused(s3: Any, tmp_path: Path, key: str) -> None:
    bucket = s3.bucket()
    c = s3.client()
    c.put_object(Bucket=bucket, Key="in/ok.txt", Body=b"fine")
    c.put_object(Bucket=bucket, Key=key, Body=b"evil")
    dest = tmp_path / "work" / "dest"
    with pytest.raises(ArtifactError) as err:
        download(s3.target(bucket), "in", dest)
    assert "refusing the object key" in err.value.message or "cannot write" in err.value.message
    assert not dest.exists()
    assert not (tmp_path / "work" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert [p.name for p in (tmp_path / "work").iterdir()] == []  # no staging left behind


def test_caps_and_a_tampered_object_are_refused(s3: Any, tmp_path: Path) -> None:
    bucket = s3.bucket()
    c = s3.client()
    c.put_object(Bucket=bucket, Key="big/x.bin", Body=b"x" * 2048)
    with pytest.raises(ArtifactError, match="cap"):
        download(s3.target(bucket), "big", tmp_path / "d1", max_bytes=1024)
    c.put_object(Bucket=bucket, Key="many/1", Body=b"1")
    c.put_object(Bucket=bucket, Key="many/2", Body=b"2")
    with pytest.raises(ArtifactError, match="more than 1 objects"):
        download(s3.target(bucket), "many", tmp_path / "d2", max_files=1)
    c.put_object(Bucket=bucket, Key="bad/x", Body=b"changed", Metadata={"sha256": hashlib.sha256(b"orig").hexdigest()})
    with pytest.raises(ArtifactError, match="recorded sha256"):
        download(s3.target(bucket), "bad", tmp_path / "d3")
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3"))


def test_errors_name_the_secret_and_never_a_credential(s3: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects_s3, "ATTEMPTS", 1)  # no backoff between retries of a dead endpoint
    bucket = s3.bucket()
    s3.client().put_object(Bucket=bucket, Key="x", Body=b"1")
    wrong = s3.target(bucket, name="team-data", secret_access_key="WRONG-secret-9f8e7d")
    with pytest.raises(ArtifactError) as err:
        download(wrong, "x", tmp_path / "x")
    text = str(err.value)
    assert "team-data" in text and "credentials were refused" in text
    assert "WRONG-secret-9f8e7d" not in text and s3.secret_access_key not in text
    unknown = s3.target(bucket, name="team-data", access_key_id="AKIAUNKNOWN0000")
    with pytest.raises(ArtifactError, match="credentials were refused"):
        upload_tree(unknown, _tree(tmp_path / "t"), "k")
    with pytest.raises(ArtifactError, match="does not exist") as err:
        download(s3.target("no-such-bucket-here", name="team-data"), "x", tmp_path / "y")
    assert "no-such-bucket-here" in str(err.value)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = S3Target(bucket, "", f"http://127.0.0.1:{port}", "us-east-1", "a", "b", name="team-data")
    with pytest.raises(ArtifactError, match="unreachable"):
        download(dead, "x", tmp_path / "z")


def test_a_planted_cas_blob_of_other_bytes_is_replaced_not_trusted(s3: Any, tmp_path: Path) -> None:
    """Finding 7: whoever can write the bucket may put other bytes at cas/sha256/<digest>; an
    upload checks the blob's size and sha256 metadata before reusing it, and re-uploads otherwise."""
    bucket = s3.bucket()
    t = s3.target(bucket, "proj")
    src = tmp_path / "model.bin"
    src.write_bytes(b"the real model\n")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    blob = f"proj/{CAS}/{digest}"
    client = s3.client()
    client.put_object(Bucket=bucket, Key=blob, Body=b"evil")  # wrong size, no metadata
    first = put_tree(t, src, "ex1/model.bin")
    assert first.new_blobs == [blob]
    assert client.get_object(Bucket=bucket, Key=blob)["Body"].read() == b"the real model\n"
    client.put_object(Bucket=bucket, Key=blob, Body=b"THE REAL MODEL\n",  # same size, other digest recorded
                      Metadata={"sha256": "0" * 64})
    second = put_tree(t, src, "ex2/model.bin")
    assert second.new_blobs == [blob]
    download(t, second.keys[0].removeprefix("proj/"), tmp_path / "back.bin")  # verified against its sha256 on the way in
    assert (tmp_path / "back.bin").read_bytes() == b"the real model\n"
    assert put_tree(t, src, "ex3/model.bin").new_blobs == []  # a correct blob is reused


def test_the_default_download_cap_is_16_gib() -> None:
    import os

    if "ORCHESTRATOR_S3_MAX_BYTES" not in os.environ:
        assert objects_s3.MAX_BYTES == 16 << 30
