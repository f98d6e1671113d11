"""A named object store secret of a type other than S3 is a local directory: ``ai://<name>/…`` resolves in runs of the
server, its data is never returned, and deleting the secret keeps the objects."""

from __future__ import annotations

import textwrap
import time

from tests.integration.conftest import ApiServer


def _cat_template(server: ApiServer) -> None:
    path = server.tmp / "cat.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: argoproj.io/v1alpha1
        kind: WorkflowTemplate
        metadata:
          name: cat-input
          labels: {scenarios.ai.sap.com/id: store-tests, ai.sap.com/version: "1.0"}
          annotations: {scenarios.ai.sap.com/name: store tests, executables.ai.sap.com/name: cat-input}
        spec:
          entrypoint: main
          templates:
            - name: main
              inputs:
                artifacts:
                  - {name: data, path: /app/data/in.txt}
              container:
                image: python:3.11-slim
                command: [python3, -c, "print(open('/app/data/in.txt').read())"]
        """))
    server.cli("register", str(path))


def test_named_object_store_resolves_in_a_run(api_server: ApiServer) -> None:
    s, _, body = api_server.call("POST", "/v2/admin/objectStoreSecrets",
                                 {"name": "shared", "type": "GCS", "bucket": "b", "pathPrefix": "p",
                                  "data": {"AWS_ACCESS_KEY_ID": "AKIA-SECRET-VALUE"}})
    assert s == 202, body
    s, _, listed = api_server.call("GET", "/v2/admin/objectStoreSecrets")
    assert [r["name"] for r in listed["resources"]] == ["shared"]
    assert listed["resources"][0]["metadata"]["storage.ai.sap.com/bucket"] == "b"
    assert "AKIA-SECRET-VALUE" not in str(listed)
    # ai://<name>/... before the object exists: the secret is known, the run would fail on the path
    root = api_server.home / "objects" / "default" / "shared"
    assert root.is_dir()
    (root / "greetings").mkdir()
    (root / "greetings" / "hello.txt").write_text("hello from the shared store\n")
    _cat_template(api_server)
    s, _, art = api_server.call("POST", "/v2/lm/artifacts", {"name": "data", "kind": "dataset",
                                                             "url": "ai://shared/greetings/hello.txt",
                                                             "scenarioId": "store-tests"})
    assert s == 201, art
    unknown = api_server.call("POST", "/v2/lm/artifacts", {"name": "x", "kind": "dataset", "url": "ai://nope/x",
                                                           "scenarioId": "store-tests"})
    assert unknown[0] == 404, unknown
    s, _, cfg = api_server.call("POST", "/v2/lm/configurations", {
        "name": "c", "scenarioId": "store-tests", "executableId": "cat-input",
        "inputArtifactBindings": [{"key": "data", "artifactId": art["id"]}]})
    assert s == 201, cfg
    s, _, ex = api_server.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})
    assert s == 202, ex
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline and status not in ("COMPLETED", "DEAD"):
        status = api_server.call("GET", f"/v2/lm/executions/{ex['id']}?$select=status")[2]["status"]
        time.sleep(0.2)
    assert status == "COMPLETED", api_server.call("GET", f"/v2/lm/executions/{ex['id']}")[2]
    logs = api_server.call("GET", f"/v2/lm/executions/{ex['id']}/logs")[2]["data"]["result"]
    assert any("hello from the shared store" in line["msg"] for line in logs)
    # deleting the secret forgets it (new artifacts are refused) but keeps the objects
    assert api_server.call("DELETE", "/v2/admin/objectStoreSecrets/shared")[0] == 202
    assert (root / "greetings" / "hello.txt").exists()
    again = api_server.call("POST", "/v2/lm/artifacts", {"name": "d2", "kind": "dataset",
                                                         "url": "ai://shared/greetings/hello.txt",
                                                         "scenarioId": "store-tests"})
    assert again[0] == 404, again


def test_an_s3_secret_pointing_at_instance_metadata_is_a_400(api_server: ApiServer) -> None:
    s, _, body = api_server.call("POST", "/v2/admin/objectStoreSecrets",
                                 {"name": "imds", "type": "S3", "bucket": "b-imds", "endpoint": "169.254.169.254",
                                  "data": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x" * 12}})
    assert s == 400, body
    assert "169.254.169.254" in str(body)
    names = [r["name"] for r in api_server.call("GET", "/v2/admin/objectStoreSecrets")[2]["resources"]]
    assert "imds" not in names


def test_patch_replaces_the_secret_and_an_empty_field_is_removed(api_server: ApiServer) -> None:
    """PATCH takes the same body as create (AI API): a field given as "" or left out is not kept,
    as ``object-stores update NAME --endpoint ''`` removes it."""
    body = {"name": "lake-patch", "type": "S3", "bucket": "b-patch", "endpoint": "127.0.0.1:9000", "usehttps": "0",
            "verifyssl": "0", "pathPrefix": "team-a",
            "data": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x" * 12}}
    assert api_server.call("POST", "/v2/admin/objectStoreSecrets", body)[0] == 202
    s, _, out = api_server.call("PATCH", "/v2/admin/objectStoreSecrets/lake-patch",
                                {**body, "endpoint": "", "usehttps": "", "verifyssl": "", "pathPrefix": ""})
    assert s == 202, out
    meta = api_server.call("GET", "/v2/admin/objectStoreSecrets/lake-patch")[2]["metadata"]
    assert meta == {"storage.ai.sap.com/type": "S3", "storage.ai.sap.com/bucket": "b-patch"}
