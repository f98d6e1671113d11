"""Docker registry secrets over the AI API with SAP's own client, and on the command line.

``/v2/admin/dockerRegistrySecrets`` create/list/get/patch/delete through ``ai_core_sdk``'s
``docker_registry_secrets`` client against a real server; the value is never returned nor printed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ai_api_client_sdk.exception import AIAPIInvalidRequestException, AIAPINotFoundException
from ai_core_sdk.ai_core_v2_client import AICoreV2Client

from tests.integration.conftest import ApiServer

# one worker runs the whole module (--dist loadgroup): its module-scoped server is started once
pytestmark = pytest.mark.xdist_group("registry_secrets")


AUTH = base64.b64encode(b"robot:s3cr3t-value").decode()
CONFIG = json.dumps({"auths": {"registry.example.com": {"auth": AUTH}}})
DATA = {".dockerconfigjson": base64.b64encode(CONFIG.encode()).decode()}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


def _core(srv: ApiServer) -> AICoreV2Client:
    return AICoreV2Client(base_url=f"{srv.base}/v2", token_creator=lambda: "Bearer " + srv.token,
                          resource_group="default")


def test_the_sdk_creates_lists_gets_patches_and_deletes(srv: ApiServer) -> None:
    core = _core(srv)
    assert core.docker_registry_secrets.create(name="team-registry", data=DATA).message
    listed = core.docker_registry_secrets.query()
    assert [s.name for s in listed.resources] == ["team-registry"] and listed.count == 1
    assert core.docker_registry_secrets.get("team-registry").name == "team-registry"
    other = {".dockerconfigjson": base64.b64encode(b'{"auths": {}}').decode()}
    assert core.docker_registry_secrets.modify("team-registry", data=other).message
    for path in ("/v2/admin/dockerRegistrySecrets", "/v2/admin/dockerRegistrySecrets/team-registry"):
        code, _, body = srv.call("GET", path)
        assert code == 200 and DATA[".dockerconfigjson"] not in json.dumps(body) and AUTH not in json.dumps(body)
    assert core.docker_registry_secrets.delete("team-registry").id == "team-registry"
    with pytest.raises(AIAPINotFoundException):
        core.docker_registry_secrets.get("team-registry")


@pytest.mark.parametrize("name,data", [
    ("Bad_Name", DATA),
    ("ok-name\n", DATA),  # "$" also matches before a final newline
    ("ok-name", {"password": "x"}),
    ("ok-name", {".dockerconfigjson": "not base64!"}),
    ("ok-name", {".dockerconfigjson": base64.b64encode(b'["no auths"]').decode()}),
])
def test_bad_names_and_data_are_refused(srv: ApiServer, name: str, data: dict[str, str]) -> None:
    with pytest.raises(AIAPIInvalidRequestException):
        _core(srv).docker_registry_secrets.create(name=name, data=data)


def test_a_duplicate_is_refused_and_so_is_a_bad_token(srv: ApiServer) -> None:
    assert srv.call("POST", "/v2/admin/dockerRegistrySecrets", {"name": "dup", "data": DATA})[0] == 202
    code, _, body = srv.call("POST", "/v2/admin/dockerRegistrySecrets", {"name": "dup", "data": DATA})
    assert code == 400 and body["error"]["code"] == "INVALID_STATE"  # as a duplicate generic secret
    assert srv.call("GET", "/v2/admin/dockerRegistrySecrets")[2]["count"] == 1
    assert srv.call("GET", "/v2/admin/dockerRegistrySecrets", token="not-a-token")[0] == 401
    assert srv.call("DELETE", "/v2/admin/dockerRegistrySecrets/dup")[0] == 202


def test_the_cli_never_prints_a_value(srv: ApiServer, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(CONFIG)
    out = srv.cli("registry-secrets", "create", "cli-registry", "--from-file", str(cfg)).stdout
    out += srv.cli("registry-secrets", "list").stdout + srv.cli("registry-secrets", "list", "--json").stdout
    out += srv.cli("registry-secrets", "show", "cli-registry").stdout
    assert "cli-registry" in out and AUTH not in out and "s3cr3t" not in out
    assert srv.call("GET", "/v2/admin/dockerRegistrySecrets/cli-registry")[0] == 200  # the same records
    bad = srv.cli("registry-secrets", "update", "cli-registry", "--from-file", str(tmp_path / "nope"), check=None)
    assert bad.returncode == 2
    srv.cli("registry-secrets", "delete", "cli-registry")
    assert srv.call("GET", "/v2/admin/dockerRegistrySecrets/cli-registry")[0] == 404


def test_a_name_with_a_trailing_newline_is_refused_on_the_command_line(srv: ApiServer, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(CONFIG)
    bad = srv.cli("registry-secrets", "create", "cli-newline\n", "--from-file", str(cfg), check=None)
    assert bad.returncode != 0 and "invalid docker registry secret name" in bad.stderr
    names = [r["name"] for r in srv.call("GET", "/v2/admin/dockerRegistrySecrets")[2]["resources"]]
    assert not any("newline" in n for n in names)
    code, _, body = srv.call("POST", "/v2/admin/dockerRegistrySecrets", {"name": "api-newline\n", "data": DATA})
    assert code == 400, body
    assert not any("newline" in r["name"] for r in srv.call("GET", "/v2/admin/dockerRegistrySecrets")[2]["resources"])


def test_api_ids_with_a_trailing_newline_are_refused(srv: ApiServer) -> None:
    """The bodies' ``Id`` pattern runs in pydantic-core's Rust engine, whose ``$`` is the end of the
    text: a guard that this stays so (Python's ``re`` would accept ``"x\\n"``)."""
    body = {"name": "c", "scenarioId": "demo-scenario", "executableId": "demo-train"}
    assert srv.call("POST", "/v2/lm/configurations", body)[0] == 404  # a valid id of no executable
    code, _, out = srv.call("POST", "/v2/lm/configurations", {**body, "executableId": "demo-train\n"})
    assert (code, out["error"]["code"]) == (400, "INVALID_REQUEST"), out
