"""A model output kept in the group's S3 ``default`` bucket is attested to a later run that binds it
by artifact id, as a local output is (the shipped scoring script loads only attested models): the
execution's downloaded copy is listed in ``$ORCHESTRATOR_ATTESTED_INPUTS`` with the recorded digest,
and a URL binding of the same bytes is not."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.conftest import Cli, template

TRAIN = template("s3-att-train", """\
    - name: main
      outputs:
        artifacts:
          - {name: model, path: /app/model/, globalName: model, archive: {none: {}}}
      script:
        image: python:3.11-slim
        command: [python3]
        source: |
          import pathlib
          out = pathlib.Path("{{outputs.artifacts.model.path}}")
          (out / "weights.bin").write_bytes(b"w" * 1000)
""")

SCORE = template("s3-att-score", """\
    - name: main
      inputs:
        artifacts:
          - {name: model, path: /app/model/}
      script:
        image: python:3.11-slim
        command: [python3]
        source: |
          import hashlib, json, os, pathlib
          att = json.loads(pathlib.Path(os.environ["ORCHESTRATOR_ATTESTED_INPUTS"]).read_text()) \\
              if os.environ.get("ORCHESTRATOR_ATTESTED_INPUTS") else {"inputs": {}}
          copy = pathlib.Path("{{inputs.artifacts.model.path}}") / "weights.bin"
          print("ATTESTED " + json.dumps({k: v["sha256"] for k, v in att["inputs"].items()}))
          print("COPY " + hashlib.sha256(copy.read_bytes()).hexdigest())
""")


def _line(log: str, tag: str) -> str:
    return next(x for x in log.splitlines() if x.startswith(tag)).split(" ", 1)[1]


def test_a_model_in_the_default_bucket_is_attested_to_the_run_that_binds_it(cli: Cli, s3: Any) -> None:
    bucket = s3.bucket("att")
    cli("object-stores", "create", "default", "--bucket", bucket, "--endpoint", s3.host_port, "--usehttps", "0",
        "--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET", check=0,
        env={"KEY_ID": s3.access_key_id, "KEY_SECRET": s3.secret_access_key})
    cli.write("train.yaml", TRAIN)
    cli.write("score.yaml", SCORE)
    trained = cli.run_json("train.yaml")
    assert trained["status"] == "COMPLETED", trained
    art = cli.json("artifacts", "show", trained["outputArtifacts"][0]["id"])
    assert art["location"].startswith(f"s3://{bucket}/")  # the bytes are in the bucket only
    assert not (cli.home / "objects" / "default" / "default" / trained["id"]).exists()

    by_id = cli.run_json("score.yaml", "--artifact", f"model={art['id']}")
    assert by_id["status"] == "COMPLETED", by_id
    log = cli("logs", by_id["id"], check=0).stdout
    assert json.loads(_line(log, "ATTESTED")) == {"model": art["digest"]}
    # the step's copy is the attested bytes (a directory's digest is over its files' sha256)
    weights = hashlib.sha256(b"w" * 1000).hexdigest()
    assert _line(log, "COPY") == weights
    assert art["digest"] == hashlib.sha256(f"weights.bin\0{weights}\n".encode()).hexdigest()

    by_url = cli.run_json("score.yaml", "--no-cache", "--artifact", f"model={art['url']}")
    assert by_url["status"] == "COMPLETED", by_url
    assert json.loads(_line(cli("logs", by_url["id"], check=0).stdout, "ATTESTED")) == {}
    assert not list((cli.home / "cache").rglob("weights.bin"))  # the check downloads nothing besides the run's copy
