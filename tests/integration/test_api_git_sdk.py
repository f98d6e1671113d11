"""SAP's ``ai_core_sdk`` (sap-ai-sdk-core), unmodified, on the git sync routes of a real ``orchestrator serve``.

Issue 5 review item 8: the application status carries ``syncResourcesStatus`` (what the SDK
reads) besides AI Core's old ``syncRessourcesStatus``, and ``repositories.modify`` /
``applications.modify`` (``PATCH``) work: new credentials are stored as a secret and never
returned, a new path or revision takes effect on the next sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ai_api_client_sdk.exception import AIAPIInvalidRequestException, AIAPINotFoundException
from ai_core_sdk.ai_core_v2_client import AICoreV2Client

from orchestrator.control.service import Service
from tests.integration.conftest import ApiServer
from tests.integration.test_sync import config, tpl
from tests.unit.git.test_gitsync import new_repo


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ApiServer]:
    (tmp_path / "srv").mkdir()
    server = ApiServer(tmp_path / "srv")
    try:
        yield server
    finally:
        server.stop()


def _core(srv: ApiServer) -> AICoreV2Client:
    return AICoreV2Client(base_url=f"{srv.base}/v2", token_creator=lambda: "Bearer " + srv.token,
                          resource_group="default")


def test_sdk_status_resources_and_modify_repository_and_application(srv: ApiServer, tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo", {"wf/t.yaml": tpl("train") + "---\n" + config("cfg", "train"),
                                        "wf2/t.yaml": tpl("score")})
    core = _core(srv)
    core.repositories.create(name="ml", url=str(repo), username=None, password=None)  # type: ignore[arg-type]
    core.applications.create(revision="main", path="wf", application_name="training", repository_name="ml")
    core.applications.refresh("training")
    status = core.applications.get_status("training")
    assert {(r.kind, r.name) for r in status.sync_resources_status} == {("executable", "train"),
                                                                        ("configuration", "cfg")}
    assert status.sync_ressources_status == status.sync_resources_status  # the deprecated alias too

    core.applications.modify("training", repository_url=str(repo), path="wf2", revision="main")
    assert core.applications.get("training").path == "wf2"
    core.applications.refresh("training")
    status = core.applications.get_status("training")
    assert {(r.kind, r.name) for r in status.sync_resources_status} == {("executable", "score")}
    with pytest.raises(AIAPINotFoundException):
        core.applications.modify("training", repository_url="file:///no/such/repo", path="wf", revision="main")
    with pytest.raises(AIAPIInvalidRequestException):
        core.applications.modify("training", repository_url=str(repo), path="../etc", revision="main")

    secret = "tok-91c2e7"
    core.repositories.create(name="remote", url="https://git.example.org/r.git", username="bot",
                             password="old-secret")
    core.repositories.modify("remote", username="bot2", password=secret)
    assert core.repositories.get("remote").name == "remote"
    with pytest.raises(AIAPIInvalidRequestException):  # credentials only ever go to https remotes
        core.repositories.modify("ml", username="u", password="p")
    with pytest.raises(AIAPINotFoundException):
        core.repositories.modify("nope", username="u", password="p")
    code, _, listed = srv.call("GET", "/v2/admin/repositories")
    assert code == 200 and secret not in str(listed) and "old-secret" not in str(listed)
    assert secret not in srv.output()
    svc = Service(srv.home, reap=False)
    try:
        assert svc.store.repository_credentials("remote") == ("bot2", secret)
        assert svc.store.repository_credentials("ml") is None
    finally:
        svc.close()
