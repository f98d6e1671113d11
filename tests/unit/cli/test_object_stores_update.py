"""``object-stores update NAME`` changes what it is given and keeps the rest: rotating the
credentials (the use its help names) keeps the bucket, endpoint, prefix and scheme (they were
wiped, leaving a secret that pointed at AWS with no bucket); a field given replaces its value, a
new type starts from nothing, an unknown name is an error."""

from __future__ import annotations

from tests.conftest import Cli

CREDS = {"KEY_ID": "AK", "KEY_SECRET": "SK"}


def _meta(cli: Cli, name: str) -> dict[str, str]:
    return dict(cli.json("object-stores", "show", name)["metadata"])


def test_update_keeps_the_fields_it_is_not_given(cli: Cli) -> None:
    cred = ["--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET"]
    cli("object-stores", "create", "lake", "--bucket", "ml-bucket", "--endpoint", "127.0.0.1:9000",
        "--usehttps", "0", "--path-prefix", "team-a", "--region", "eu-central-1", *cred, check=0, env=CREDS)
    before = _meta(cli, "lake")
    assert before["storage.ai.sap.com/endpoint"] == "127.0.0.1:9000"
    cli("object-stores", "update", "lake", *cred, check=0, env={"KEY_ID": "AK2", "KEY_SECRET": "SK2"})
    assert _meta(cli, "lake") == before
    cli("object-stores", "update", "lake", "--path-prefix", "team-b", *cred, check=0, env=CREDS)
    assert _meta(cli, "lake") == {**before, "storage.ai.sap.com/pathPrefix": "team-b"}
    cli("object-stores", "update", "lake", "--type", "local", check=0)
    assert _meta(cli, "lake") == {"storage.ai.sap.com/type": "local"}
    p = cli("object-stores", "update", "nope", *cred, env=CREDS)
    assert p.returncode != 0 and "'nope' not found" in p.stderr


def test_update_removes_a_field_given_empty(cli: Cli) -> None:
    """``--endpoint ''`` goes back to AWS, ``--path-prefix ''`` and ``--verifyssl ''`` drop theirs
    (an empty value was taken as "not given" and the stored one kept)."""
    cred = ["--access-key-env", "KEY_ID", "--secret-key-env", "KEY_SECRET"]
    cli("object-stores", "create", "lake", "--bucket", "ml-bucket", "--endpoint", "127.0.0.1:9000",
        "--usehttps", "0", "--verifyssl", "0", "--path-prefix", "team-a", *cred, check=0, env=CREDS)
    before = _meta(cli, "lake")
    cli("object-stores", "update", "lake", "--path-prefix", "", "--verifyssl", "", *cred, check=0, env=CREDS)
    assert _meta(cli, "lake") == {k: v for k, v in before.items()
                                  if k not in ("storage.ai.sap.com/pathPrefix", "serving.kubeflow.org/s3-verifyssl")}
    cli("object-stores", "update", "lake", "--endpoint", "", "--usehttps", "", *cred, check=0, env=CREDS)
    assert _meta(cli, "lake") == {"storage.ai.sap.com/type": before["storage.ai.sap.com/type"],
                                  "storage.ai.sap.com/bucket": "ml-bucket"}
