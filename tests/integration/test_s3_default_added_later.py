"""Creating an S3 ``default`` object store secret in a group that already has local artifacts keeps
them usable: an earlier run's model output, the model version registered from it and an
``azureml:`` asset still resolve to their bytes in the local store (they were "does not exist
(s3://…)" from then on), a run binding them completes with the model attested, and new outputs go
to the bucket. moto on loopback, the real CLI."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Cli
from tests.integration.test_s3_attested_inputs import SCORE, TRAIN, _line

MODEL_KIND = "    artifacts.ai.sap.com/model.kind: model\n"


def test_local_artifacts_stay_readable_after_default_becomes_a_bucket(cli: Cli, s3: Any) -> None:
    cli.write("train.yaml", TRAIN.replace("  labels:\n", "  annotations:\n" + MODEL_KIND + "  labels:\n", 1)
              if "  annotations:\n" not in TRAIN else TRAIN.replace("  annotations:\n", "  annotations:\n" + MODEL_KIND, 1))
    cli.write("score.yaml", SCORE)
    (cli.tmp / "data").mkdir()
    (cli.tmp / "data" / "rows.csv").write_text("a\n1\n")
    before = cli.run_json("train.yaml")
    art = cli.json("artifacts", "show", before["outputArtifacts"][0]["id"])
    cli("models", "register", "m", "--artifact", art["id"], check=0)
    cli("assets", "register", "rows", "data/rows.csv", check=0)
    bucket = s3.bucket("later")
    cli("object-stores", "create", "default", "--bucket", bucket, "--endpoint", s3.host_port, "--usehttps", "0",
        "--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET", check=0,
        env={"KEY_ID": s3.access_key_id, "KEY_SECRET": s3.secret_access_key})

    assert cli.json("artifacts", "show", art["id"])["localPath"]  # still here, not "s3://... does not exist"
    assert "objects/default/default/assets/rows/1" in cli("assets", "show", "rows", check=0).stdout
    for binding in (art["id"], "models:/m/1"):
        ex = cli.run_json("score.yaml", "--no-cache", "--artifact", f"model={binding}")
        assert ex["status"] == "COMPLETED", ex["statusMessage"]
        assert json.loads(_line(cli("logs", ex["id"], check=0).stdout, "ATTESTED")) == {"model": art["digest"]}
    after = cli.run_json("train.yaml", "--no-cache")  # new outputs go to the bucket
    assert cli.json("artifacts", "show", after["outputArtifacts"][0]["id"])["location"].startswith(f"s3://{bucket}/")
