"""Object store secrets of type S3 are real buckets (moto on loopback, credentials enforced): a run
reads its input from one bucket and, with the group's ``default`` secret on another, writes its
outputs there content-addressed, with the same digest as a local output; a model output is
attested from the bucket; wrong credentials fail the step with a located message that no log,
record or answer repeats with the credential in it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from orchestrator.store.artifacts import tree_digest
from orchestrator.store.objects_s3 import CAS, download
from tests.conftest import Cli, template

STEP = """\
import os, pathlib, shutil
src, out = pathlib.Path("{{inputs.artifacts.data.path}}"), pathlib.Path("{{outputs.artifacts.model.path}}")
shutil.copytree(src, out / "copy", dirs_exist_ok=True)
(out / "result.txt").write_text("trained on " + ",".join(sorted(p.name for p in src.rglob("*"))) + "\\n")
print("aws variables in the step:", sorted(k for k in os.environ if k.startswith("AWS")))
"""


def _template(code: str) -> str:
    return template("s3-train", """\
        - name: main
          inputs:
            artifacts:
              - {name: data, path: /app/data/}
          outputs:
            artifacts:
              - {name: model, path: /app/model/, globalName: model, archive: {none: {}}}
          script:
            image: python:3.11-slim
            command: [python3]
            source: |
""" + "\n".join("              " + line for line in code.splitlines()))


def _secret(cli: Cli, s3: Any, verb: str, name: str, bucket: str, secret_key: str, prefix: str = "") -> None:
    args = ["object-stores", verb, name, "--bucket", bucket, "--endpoint", s3.host_port, "--usehttps", "0",
            "--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET"]
    cli(*args, *(["--path-prefix", prefix] if prefix else []), check=0,
        env={"KEY_ID": s3.access_key_id, "KEY_SECRET": secret_key})


def test_a_run_reads_from_one_bucket_and_writes_its_outputs_to_the_default_bucket(cli: Cli, s3: Any,
                                                                                   tmp_path: Path) -> None:
    inputs, outputs = s3.bucket("in"), s3.bucket("out")
    c = s3.client()
    c.put_object(Bucket=inputs, Key="team/ds/train.csv", Body=b"x,y\n1,2\n")
    c.put_object(Bucket=inputs, Key="team/ds/more/notes.txt", Body=b"notes\n")
    _secret(cli, s3, "create", "indata", inputs, s3.secret_access_key, prefix="team")
    _secret(cli, s3, "create", "default", outputs, s3.secret_access_key)
    cli.write("t.yaml", _template(STEP))
    ex = cli.run_json("t.yaml", "--artifact", "data=ai://indata/ds")
    assert ex["status"] == "COMPLETED", ex
    logs = cli("logs", ex["id"], check=0).stdout
    assert "aws variables in the step: []" in logs  # the runner transfers; the step gets no credential
    shown = cli.json("artifacts", "show", ex["outputArtifacts"][0]["id"])
    assert shown["url"] == f"ai://default/{ex['id']}/model" and shown["localPath"] is None
    assert shown["location"] == f"s3://{outputs}/{ex['id']}/model"
    art = shown
    # the bytes are in the default bucket, and hash to the digest recorded (= a local output's)
    got = download(s3.target(outputs), f"{ex['id']}/model", tmp_path / "got")
    assert (got and (tmp_path / "got" / "copy" / "train.csv").read_bytes() == b"x,y\n1,2\n")
    assert (tmp_path / "got" / "result.txt").read_text() == "trained on more,notes.txt,train.csv\n"
    local = tmp_path / "local"
    (local / "copy" / "more").mkdir(parents=True)
    (local / "copy" / "train.csv").write_bytes(b"x,y\n1,2\n")
    (local / "copy" / "more" / "notes.txt").write_bytes(b"notes\n")
    (local / "result.txt").write_text("trained on more,notes.txt,train.csv\n")
    assert art["digest"] == tree_digest(local) == tree_digest(tmp_path / "got")
    assert not (cli.home / "objects" / "default" / "default" / ex["id"]).exists()  # nothing went to the local store
    assert len(s3.keys(outputs, CAS)) == 3  # one blob per distinct file (dedup: tests/unit/store/test_objects_s3.py)
    # a model output of a COMPLETED run is attested from the bucket (downloaded, then its sha256 checked)
    from orchestrator.control.service import Service
    from orchestrator.run.attest import attest_artifact

    svc = Service(cli.home, reap=False)
    try:
        att = attest_artifact(svc.store, svc.objects, "default", art["id"])
        assert att.sha256 == art["digest"] and tree_digest(Path(att.path)) == art["digest"]
        assert str(cli.home / "cache" / "s3") in str(att.path)
    finally:
        svc.close()


def test_wrong_credentials_fail_the_step_with_a_located_message_and_no_secret_anywhere(cli: Cli, s3: Any) -> None:
    from orchestrator.control import resources
    from orchestrator.control.service import Service

    bucket = s3.bucket("in")
    s3.client().put_object(Bucket=bucket, Key="ds/a.txt", Body=b"a\n")
    _secret(cli, s3, "create", "indata", bucket, s3.secret_access_key)
    cli.write("t.yaml", _template("print(1)"))
    wrong = "WRONG-secret-value-5e1f0c2d"
    svc = Service(cli.home, reap=False, local_files=True)
    try:  # checked with the right key; the key is rotated wrongly before the run starts
        plan = svc.plan(str(cli.tmp / "t.yaml"), [], ["data=ai://indata/ds"])
        resources.put_object_store(svc, s3.secret_body("indata", bucket, secret_access_key=wrong), create=False)
        ex = svc.create(plan)
        assert svc.execute(ex, plan).value == "DEAD"
    finally:
        svc.close()
    shown = cli("executions", "show", ex.id, check=0).stdout
    assert "indata" in shown and "credentials were refused" in shown, shown
    # a run with the wrong key is refused before anything is written, with the same located message
    refused = cli("run", "t.yaml", "--artifact", "data=ai://indata/ds")
    assert refused.returncode == 2 and "indata" in refused.stderr and "credentials were refused" in refused.stderr
    for secret in (wrong, s3.secret_access_key):
        assert secret not in shown and secret not in refused.stderr
        for path in cli.home.rglob("*"):  # logs, step files, tracking files
            if path.is_file() and path.suffix not in (".db", ".db-wal", ".db-shm"):
                assert secret.encode() not in path.read_bytes(), path
        db = sqlite3.connect(cli.home / "orchestrator.db")
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                if table == "object_stores":  # the one place credentials are kept
                    continue
                for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - names from sqlite_master
                    assert secret not in repr(row), (table, row)
        finally:
            db.close()


def test_an_azure_datastore_mapped_to_an_s3_secret_reads_the_bucket(cli: Cli, s3: Any) -> None:
    import shutil

    fix = Path(__file__).resolve().parents[1] / "fixtures" / "azureml"
    bucket = s3.bucket("lake")
    csv = (fix / "data/workspaceblobstore/example-data/iris.csv").read_bytes()
    s3.client().put_object(Bucket=bucket, Key="ws/example-data/iris.csv", Body=csv)
    _secret(cli, s3, "create", "lake", bucket, s3.secret_access_key)
    shutil.copy(fix / "basics/hello-iris-datastore-file.yml", cli.tmp / "job.yml")
    shutil.copytree(fix / "basics/src", cli.tmp / "src")
    cli("assets", "datastore", "set", "workspaceblobstore", "ai://lake/ws", check=0)
    ex = cli.run_json("job.yml")
    assert ex["status"] == "COMPLETED", ex
    rows = sum(1 for line in csv.decode().splitlines()[1:] if line.strip())
    assert f"iris rows: {rows};" in cli("logs", ex["id"], check=0).stdout


def test_the_server_takes_ai_core_s3_bodies_and_its_background_runs_use_the_buckets(tmp_path: Path, s3: Any) -> None:
    import time

    from tests.integration.conftest import ApiServer

    inputs, outputs = s3.bucket("in"), s3.bucket("out")
    s3.client().put_object(Bucket=inputs, Key="team/ds/train.csv", Body=b"x,y\n1,2\n")
    server = ApiServer(tmp_path)
    try:
        (tmp_path / "t.yaml").write_text(_template(STEP))
        server.cli("register", str(tmp_path / "t.yaml"))
        for body in (s3.secret_body("indata", inputs, path_prefix="team"), s3.secret_body("default", outputs)):
            assert server.call("POST", "/v2/admin/objectStoreSecrets", body)[0] == 202
        bad = s3.secret_body("broken", inputs)
        del bad["data"]["AWS_SECRET_ACCESS_KEY"]
        status, _, answer = server.call("POST", "/v2/admin/objectStoreSecrets", bad)
        assert status == 400 and "broken" in answer["error"]["message"], answer
        listed = server.call("GET", "/v2/admin/objectStoreSecrets")[2]
        one = server.call("GET", "/v2/admin/objectStoreSecrets/indata")[2]
        assert one["metadata"]["storage.ai.sap.com/bucket"] == inputs
        assert one["metadata"]["serving.kubeflow.org/s3-usehttps"] == "0"
        assert s3.secret_access_key not in json.dumps([listed, one]) and "data" not in one
        art = server.call("POST", "/v2/lm/artifacts", {"name": "data", "kind": "dataset", "url": "ai://indata/ds",
                                                       "scenarioId": "test-scenario"})
        assert art[0] == 201, art
        assert server.call("POST", "/v2/lm/artifacts", {"name": "x", "kind": "dataset", "url": "ai://nope/ds",
                                                        "scenarioId": "test-scenario"})[0] == 404
        cfg = server.call("POST", "/v2/lm/configurations", {
            "name": "c", "scenarioId": "test-scenario", "executableId": "s3-train",
            "inputArtifactBindings": [{"key": "data", "artifactId": art[2]["id"]}]})[2]
        ex = server.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})[2]
        deadline, row = time.monotonic() + 60, {}
        while time.monotonic() < deadline and row.get("status") not in ("COMPLETED", "DEAD"):
            time.sleep(0.2)
            row = server.call("GET", f"/v2/lm/executions/{ex['id']}")[2]
        assert row["status"] == "COMPLETED", row
        outs = server.call("GET", f"/v2/lm/artifacts?executionId={ex['id']}")[2]["resources"]
        assert [a["url"] for a in outs] == [f"ai://default/{ex['id']}/model"]
        assert f"{ex['id']}/model/result.txt" in s3.keys(outputs)
        assert s3.secret_access_key not in server.output()
    finally:
        server.stop()
