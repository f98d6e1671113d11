"""Finding 6: an S3 object store secret never points at a link-local or cloud metadata address,
and only at the operator's endpoints when ``ORCHESTRATOR_S3_ENDPOINTS`` is set (no network: literal
addresses, and a stubbed resolver for host names)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from orchestrator.errors import ArtifactError
from orchestrator.store import objects_s3, s3_endpoints
from orchestrator.store.objects_s3 import target_from_secret
from orchestrator.store.s3_endpoints import ENDPOINTS_VAR, check_endpoint

DATA = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-example"}


def _secret(endpoint: str) -> Any:
    meta = {"storage.ai.sap.com/type": "S3", "storage.ai.sap.com/bucket": "my-bucket",
            "storage.ai.sap.com/endpoint": endpoint}
    return target_from_secret("data", meta, DATA)


@pytest.fixture(autouse=True)
def _no_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINTS_VAR, raising=False)


@pytest.mark.parametrize("endpoint", [
    "http://169.254.169.254", "169.254.169.254:80", "https://169.254.170.2/latest", "http://[fe80::1]:9000",
    "http://[fd00:ec2::254]", "http://[::ffff:169.254.169.254]", "http://metadata.google.internal",
    "http://2852039166"])  # 169.254.169.254 as one decimal number (resolved by the C library)
def test_link_local_and_metadata_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ArtifactError) as err:
        _secret(endpoint)
    assert "object store secret 'data'" in err.value.message


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9000", "10.1.2.3:9000", "https://[::1]:443",
                                      "https://s3.eu-central-1.amazonaws.com", "http://localhost:9000"])
def test_other_endpoints_are_allowed(endpoint: str) -> None:
    assert _secret(endpoint).endpoint_url


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(host: str, port: Any, *a: Any, **kw: Any) -> list[Any]:
        assert host == "rebind.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(s3_endpoints.socket, "getaddrinfo", fake)
    with pytest.raises(ArtifactError, match="169.254.169.254"):
        check_endpoint("data", "https://rebind.example")


def test_the_check_runs_again_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    target = _secret("http://127.0.0.1:9000")
    monkeypatch.setenv(ENDPOINTS_VAR, "https://s3.internal:9443")  # changed since the secret was registered
    with pytest.raises(ArtifactError, match="not one of the endpoints"):
        objects_s3._new_client(target)


def test_the_operator_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINTS_VAR, "http://127.0.0.1:9000, https://s3.internal")
    assert _secret("http://127.0.0.1:9000").endpoint_url == "http://127.0.0.1:9000"
    assert _secret("https://S3.internal:443/").endpoint_url  # the scheme's port, any case
    for other in ("http://127.0.0.1:9001", "https://127.0.0.1:9000", "https://s3.internal:8443", "http://10.0.0.1"):
        with pytest.raises(ArtifactError, match=ENDPOINTS_VAR):
            _secret(other)
    monkeypatch.setenv(ENDPOINTS_VAR, "http://169.254.169.254")  # metadata stays refused
    with pytest.raises(ArtifactError, match="link-local"):
        _secret("http://169.254.169.254")
