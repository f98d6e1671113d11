"""Security properties of ``orchestrator serve`` against a real server (issue 6, reliability.md #16, #19).

Deny by default: every route the app has (enumerated in-process and from ``/openapi.json``)
answers 401 with ``WWW-Authenticate`` and the AI API error body to a missing, bogus or revoked
credential, except the GETs of the API's description (``/openapi.json``: no data), which answer 200;
no page the server returns loads anything from another origin (no CDN Swagger UI at ``/docs``). Roles (read < run < admin) and token resource groups are enforced; revocation takes
effect; tokens are stored as sha256 only. Hostile requests (body cap, chunked bodies, deep JSON,
huge numbers, NaN, wrong content types, unknown fields, invalid UTF-8, traversal ids, odd
paging, unsafe artifact URLs) get their documented 4xx in the error shape, never a 5xx, and the
server stays up.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import stat
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.api.app import PUBLIC_DOCS
from tests.integration.conftest import REPO, ApiServer

# one worker runs the whole module (--dist loadgroup): its module-scoped servers are started once
pytestmark = pytest.mark.xdist_group("api_security")


DUMMY = "abcd1234"
# Route -> 401 challenge scheme. /oauth/token authenticates OAuth client credentials (Basic).
CHALLENGE = {"/oauth/token": "Basic"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    srv = ApiServer(tmp_path_factory.mktemp("sec"), "--workflows", str(REPO / "workflows"))
    try:
        status, _, _ = srv.call("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "team-b"}, rg=None)
        assert status == 202
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A second server with a 4 KiB body cap."""
    srv = ApiServer(tmp_path_factory.mktemp("small"), "--max-body", "4096")
    try:
        yield srv
    finally:
        srv.stop()


def _token(server: ApiServer, name: str, role: str, rg: str | None = None) -> str:
    args = ["tokens", "create", "--name", name, "--role", role, "--json"]
    if rg:
        args += ["--resource-group", rg]
    return str(json.loads(server.cli(*args).stdout)["token"])


def _assert_error(status: int, body: Any, expected: int | tuple[int, ...]) -> None:
    want = expected if isinstance(expected, tuple) else (expected,)
    assert status in want, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def _alive(server: ApiServer) -> None:
    status, _, body = server.call("GET", "/v2/lm/scenarios")
    assert status == 200 and body["count"] >= 1


# ---------------------------------------------------------------------- deny by default
def _routes(server: ApiServer) -> set[tuple[str, str]]:
    """(method, path template) of every route: the in-process app's router and /openapi.json."""
    from orchestrator.api.app import create_app
    from orchestrator.control.service import Service

    app = create_app(Service(server.tmp / "enum-home"))
    found: set[tuple[str, str]] = set()
    try:  # FastAPI >= 0.16x wraps included routers; this iterates the effective routes
        from fastapi.routing import iter_route_contexts

        entries = [(c.path, c.methods) for c in iter_route_contexts(app.router.routes)]
    except ImportError:  # older FastAPI: plain routes
        entries = [(r.path, getattr(r, "methods", None)) for r in app.routes]
    for path, methods in entries:
        for method in methods or ():
            found.add((method, path))
    status, _, spec = server.call("GET", "/openapi.json", rg=None)
    assert status == 200
    for path, ops in spec["paths"].items():
        found.update((method.upper(), path) for method in ops)
    return found


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", DUMMY, path)


def _raw(server: ApiServer, method: str, path: str, headers: dict[str, str],
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = server.base.rsplit("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_every_route_requires_a_credential(server: ApiServer) -> None:
    routes = _routes(server)
    paths = {p for _, p in routes}
    # The enumeration is real: admin, tracking, oauth and the docs are all in it.
    assert {"/openapi.json", "/oauth/token", "/v2/admin/secrets", "/v2/lm/executions/{execution_id}",
            "/tracking/{capability}/api/v1/metrics", "/v2/lm/healthz"} <= paths
    assert len(routes) >= 45
    revoked = _token(server, "to-revoke", "admin")
    server.cli("tokens", "revoke", "to-revoke")
    bad_headers: list[dict[str, str]] = [
        {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nothing"},
        {"Authorization": f"Bearer {revoked}"}, {"Authorization": f"Basic {server.token}"},
    ]
    checked = 0
    for method, template in sorted(routes):
        if template in PUBLIC_DOCS and method in ("GET", "HEAD"):  # the API's description: public, no data
            status, _, raw = _raw(server, method, template, {"Authorization": "Bearer nothing"})
            assert status == 200, (method, template, status)
            assert method == "HEAD" or b"/openapi.json" in raw or b"/v2/lm/executions" in raw, (method, template)
            continue
        path = _fill(template)
        for hdrs in bad_headers:
            headers = {"AI-Resource-Group": "default", **hdrs}
            body = b"{}" if method in ("POST", "PATCH", "PUT") else None
            if body is not None:
                headers["Content-Type"] = "application/json"
            status, rh, raw = _raw(server, method, path, headers, body)
            assert status == 401, (method, template, hdrs, status, raw[:200])
            scheme = CHALLENGE.get(template, "Bearer")
            assert rh.get("www-authenticate", "").startswith(scheme), (method, template, rh)
            if method != "HEAD":
                _assert_error(status, json.loads(raw), 401)
            checked += 1
    assert checked >= 45 * len(bad_headers)
    _alive(server)


def test_credential_variants_are_refused(server: ApiServer) -> None:
    good = server.token
    for value in (good[:-1], good + "x", good.upper(), " " + good[4:], "Bearer " + good, good + "\u00e9",
                  "x" * 300, "x" * 200_000):
        status, rh, body = server.call("GET", "/v2/lm/scenarios", token=value)
        assert status in (400, 401, 431), (value[:40], status)  # huge headers may be refused by the parser
        if status == 401:
            _assert_error(status, body, 401)
            assert rh["www-authenticate"].startswith("Bearer")
    # A token in the query string is not a credential.
    status, _, body = server.call("GET", f"/v2/lm/scenarios?access_token={good}&token={good}", token="")
    _assert_error(status, body, 401)
    # Lower-case scheme is accepted (RFC 7235: case-insensitive); the token itself is exact.
    status, _, _ = server.call("GET", "/v2/lm/scenarios", token="", headers={"Authorization": f"bearer {good}"})
    assert status == 200
    _alive(server)


# ---------------------------------------------------------------------- roles and scope
def test_read_role(server: ApiServer) -> None:
    read = _token(server, "r", "read")
    for path in ("/v2/lm/scenarios", "/v2/lm/executions", "/v2/lm/configurations", "/v2/lm/artifacts",
                 "/v2/lm/executions/$count", "/v2/lm/meta", "/v2/lm/healthz", "/v2/lm/executionSchedules"):
        status, _, body = server.call("GET", path, token=read)
        assert status == 200, (path, body)
    for method, path, body in (
            ("POST", "/v2/lm/configurations", {"name": "c", "scenarioId": "orchestrator-demo",
                                               "executableId": "failing-step"}),
            ("POST", "/v2/lm/executions", {"configurationId": DUMMY}),
            ("PATCH", f"/v2/lm/executions/{DUMMY}", {"targetStatus": "STOPPED"}),
            ("PATCH", "/v2/lm/executions", {"executions": []}),
            ("DELETE", f"/v2/lm/executions/{DUMMY}", None),
            ("PATCH", "/v2/lm/metrics", {"executionId": DUMMY}),
            ("DELETE", f"/v2/lm/metrics?executionId={DUMMY}", None),
            ("POST", "/v2/lm/artifacts", {"name": "a", "kind": "dataset", "url": "ai://default/x",
                                          "scenarioId": "orchestrator-demo"}),
            ("GET", "/v2/admin/resourceGroups", None),
            ("GET", "/v2/admin/secrets", None),
            ("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "evil-group"})):
        status, _, answer = server.call(method, path, body, token=read)
        _assert_error(status, answer, 403)


def test_run_role(server: ApiServer) -> None:
    run = _token(server, "runner", "run")
    status, _, cfg = server.call("POST", "/v2/lm/configurations", {
        "name": "run-role", "scenarioId": "orchestrator-demo", "executableId": "failing-step"}, token=run)
    assert status == 201, cfg
    status, _, ex = server.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]}, token=run)
    assert status == 202 and ex["id"], ex
    status, _, _ = server.call("GET", f"/v2/lm/executions/{ex['id']}", token=run)
    assert status == 200
    for method, path, body in (("GET", "/v2/admin/resourceGroups", None),
                               ("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "evil-group"}),
                               ("DELETE", "/v2/admin/resourceGroups/team-b", None),
                               ("GET", "/v2/admin/objectStoreSecrets", None),
                               ("POST", "/v2/admin/secrets", {"name": "s", "data": {"k": "dg=="}})):
        status, _, answer = server.call(method, path, body, token=run)
        _assert_error(status, answer, 403)


def test_revocation_takes_effect(server: ApiServer) -> None:
    tok = _token(server, "short-lived", "read")
    assert server.call("GET", "/v2/lm/scenarios", token=tok)[0] == 200
    server.cli("tokens", "revoke", "short-lived")
    # The gate may cache a digest for at most one second.
    import time

    deadline = time.monotonic() + 1.5
    while True:
        status, rh, body = server.call("GET", "/v2/lm/scenarios", token=tok)
        if status == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    _assert_error(status, body, 401)
    assert rh["www-authenticate"].startswith("Bearer")
    # Revoking a token also kills the access tokens minted from it via /oauth/token.
    parent = _token(server, "oauth-parent", "read")
    status, _, minted = server.call("POST", "/oauth/token", rg=None, token="",
                                    raw=f"grant_type=client_credentials&client_id=x&client_secret={parent}".encode(),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and minted["expires_in"] > 3600
    assert server.call("GET", "/v2/lm/scenarios", token=minted["access_token"])[0] == 200
    server.cli("tokens", "revoke", "oauth-parent")
    time.sleep(1.1)
    status, _, body = server.call("GET", "/v2/lm/scenarios", token=minted["access_token"])
    _assert_error(status, body, 401)


def test_token_limited_to_a_resource_group(server: ApiServer) -> None:
    tok = _token(server, "team-b-only", "run", rg="team-b")
    assert server.call("GET", "/v2/lm/scenarios", token=tok, rg="team-b")[0] == 200
    for method, path, body in (("GET", "/v2/lm/scenarios", None), ("GET", "/v2/lm/executions/$count", None),
                               ("POST", "/v2/lm/executions", {"configurationId": DUMMY})):
        status, _, answer = server.call(method, path, body, token=tok, rg="default")
        _assert_error(status, answer, 403)


def test_group_limited_admin_token_stays_in_its_group(server: ApiServer) -> None:
    tok = _token(server, "team-b-admin", "admin", rg="team-b")
    status, _, body = server.call("POST", "/v2/admin/secrets", {"name": "b-secret", "data": {"k": "dg=="}},
                                  token=tok, rg="team-b")
    assert status == 200, body
    assert server.call("GET", "/v2/admin/objectStoreSecrets", token=tok, rg="team-b")[0] == 200
    for method, path, body, rg, extra in (
            ("GET", "/v2/admin/secrets", None, "default", {}),
            ("GET", "/v2/admin/objectStoreSecrets", None, "default", {}),
            ("POST", "/v2/admin/secrets", {"name": "evil", "data": {"k": "dg=="}}, "default", {}),
            ("DELETE", "/v2/admin/objectStoreSecrets/default", None, "default", {}),
            ("GET", "/v2/admin/secrets", None, None, {}),
            ("GET", "/v2/admin/secrets", None, "team-b", {"AI-Tenant-Scope": "true"}),
            ("GET", "/v2/admin/resourceGroups", None, "team-b", {}),
            ("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "evil-group"}, "team-b", {}),
            ("DELETE", "/v2/admin/resourceGroups/default", None, "team-b", {}),
            # repositories and applications are the tenant's, not a group's
            ("GET", "/v2/admin/repositories", None, "team-b", {}),
            ("POST", "/v2/admin/repositories", {"name": "r", "url": "/tmp"}, "team-b", {}),
            ("GET", "/v2/admin/applications", None, "team-b", {}),
            ("GET", "/v2/admin/applications/any/status", None, "team-b", {}),
            ("POST", "/v2/admin/applications/any/refresh", None, "team-b", {}),
            ("DELETE", "/v2/admin/applications/any", None, "team-b", {})):
        status, _, answer = server.call(method, path, body, token=tok, rg=rg, headers=extra)
        _assert_error(status, answer, 403)
    # A header sent twice would let the gate and the handler read different groups: refused.
    for name, values in (("AI-Resource-Group", ("default", "team-b")), ("AI-Tenant-Scope", ("true", "false")),
                         ("Authorization", (f"Bearer {tok}", f"Bearer {server.token}"))):
        conn = http.client.HTTPConnection(server.base.split("//")[1], timeout=10)
        conn.putrequest("DELETE", "/v2/admin/secrets/b-secret")
        conn.putheader("Authorization", f"Bearer {tok}") if name != "Authorization" else None
        conn.putheader("AI-Resource-Group", "team-b") if name != "AI-Resource-Group" else None
        for value in values:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        _assert_error(resp.status, json.loads(resp.read()), 400)
        conn.close()
    assert server.call("GET", "/v2/admin/secrets", token=tok, rg="team-b")[2]["count"] == 1  # still there
    # The unrestricted admin still sees default's secrets, and team-b's secret only in team-b.
    _, _, listed = server.call("GET", "/v2/admin/secrets", rg="team-b")
    assert [s["name"] for s in listed["resources"]] == ["b-secret"]


def test_tokens_are_stored_as_digests_only(server: ApiServer) -> None:
    plain = _token(server, "digest-check", "read")
    assert server.call("GET", "/v2/lm/scenarios", token=plain)[0] == 200
    import hashlib

    blobs = b"".join(p.read_bytes() for p in server.home.glob("orchestrator.db*"))
    assert blobs, list(server.home.iterdir())
    for secret in (plain, server.token):
        assert secret.encode() not in blobs
        assert secret[4:].encode() not in blobs  # not even without the prefix
    assert hashlib.sha256(plain.encode()).hexdigest().encode() in blobs
    mode = stat.S_IMODE((server.home / "admin-token").stat().st_mode)
    assert mode == 0o600, oct(mode)
    for args in (("tokens", "list"), ("tokens", "list", "--json")):
        out = server.cli(*args)
        text = out.stdout + out.stderr
        assert "digest-check" in text
        assert plain not in text and server.token not in text and "orc_" not in text
    assert server.token not in server.output() and plain not in server.output()


# ---------------------------------------------------------------------- hostile requests
def _post_raw(server: ApiServer, path: str, raw: bytes, ctype: str = "application/json",
              method: str = "POST") -> tuple[int, Any]:
    status, _, body = server.call(method, path, raw=raw, headers={"Content-Type": ctype})
    return status, body


def test_body_cap(small: ApiServer) -> None:
    status, body = _post_raw(small, "/v2/lm/configurations", b'{"name": "' + b"x" * 5000 + b'"}')
    _assert_error(status, body, 413)
    # A Content-Length over the cap is refused before reading.
    host, port = small.base.rsplit("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /v2/lm/executions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {small.token}\r\n"
                  f"AI-Resource-Group: default\r\nContent-Type: application/json\r\n"
                  f"Content-Length: 999999999\r\n\r\n{{".encode())
        head = b""
        while b"}}" not in head:
            more = s.recv(65536)
            if not more:
                break
            head += more
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    _assert_error(413, json.loads(head.split(b"\r\n\r\n", 1)[1]), 413)
    # A chunked body without Content-Length is counted as it streams.
    for chunks in ([b"[" + b" " * 1000] * 10, [b'{"a":"' + b"y" * 8000]):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.putrequest("POST", "/v2/lm/executions")
            for k, v in (("Authorization", f"Bearer {small.token}"), ("AI-Resource-Group", "default"),
                         ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")):
                conn.putheader(k, v)
            conn.endheaders()
            try:
                for chunk in chunks:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer and close before the whole body is sent
            resp = conn.getresponse()
            assert resp.status == 413
            _assert_error(413, json.loads(resp.read()), 413)
        finally:
            conn.close()
    # A body under the cap still works, and so does the server.
    status, body = _post_raw(small, "/v2/lm/executions", b'{"configurationId": "abcd1234"}')
    _assert_error(status, body, 404)
    _alive_any(small)


def _alive_any(server: ApiServer) -> None:
    assert server.call("GET", "/v2/lm/healthz")[0] == 200


HOSTILE: list[tuple[str, str, str, bytes, str, int]] = [
    ("deep arrays", "POST", "/v2/lm/configurations", b"[" * 100_000, "application/json", 400),
    ("deep objects", "POST", "/v2/lm/configurations", b'{"a":' * 50_000, "application/json", 400),
    ("deep but closed", "POST", "/v2/lm/executions", b"[" * 5000 + b"]" * 5000, "application/json", 400),
    ("5000-digit integer", "POST", "/v2/lm/configurations", b'{"name":' + b"9" * 5000 + b"}", "application/json", 400),
    ("5000-digit float", "PATCH", "/v2/lm/metrics",
     b'{"executionId":"abcd1234","metrics":[{"name":"m","value":1.' + b"1" * 5000 + b"e999}]}",
     "application/json", 400),
    ("NaN", "PATCH", "/v2/lm/metrics",
     b'{"executionId":"abcd1234","metrics":[{"name":"m","value":NaN}]}', "application/json", 400),
    ("Infinity", "PATCH", "/v2/lm/metrics",
     b'{"executionId":"abcd1234","metrics":[{"name":"m","value":Infinity}]}', "application/json", 400),
    ("-Infinity", "PATCH", "/v2/lm/metrics",
     b'{"executionId":"abcd1234","metrics":[{"name":"m","value":-Infinity}]}', "application/json", 400),
    ("1e999", "PATCH", "/v2/lm/metrics",
     b'{"executionId":"abcd1234","metrics":[{"name":"m","value":1e999}]}', "application/json", 400),
    ("text/plain", "POST", "/v2/lm/executions", b'{"configurationId":"abcd1234"}', "text/plain", 415),
    ("form", "POST", "/v2/lm/executions", b"configurationId=abcd1234", "application/x-www-form-urlencoded", 415),
    ("multipart", "POST", "/v2/lm/executions", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 415),
    ("no content type", "POST", "/v2/lm/executions", b'{"configurationId":"abcd1234"}', "", 415),
    ("unknown field", "POST", "/v2/lm/executions", b'{"configurationId":"abcd1234","x":1}', "application/json", 400),
    ("unknown nested field", "POST", "/v2/lm/configurations",
     b'{"name":"n","scenarioId":"orchestrator-demo","executableId":"failing-step",'
     b'"parameterBindings":[{"key":"k","value":"v","evil":true}]}', "application/json", 400),
    ("invalid UTF-8", "POST", "/v2/lm/executions", b'{"configurationId":"\xff\xfe\xfd"}', "application/json", 400),
    ("lone surrogate", "POST", "/v2/lm/executions", b'{"configurationId":"\\ud800abcd"}', "application/json", 400),
    ("not JSON", "POST", "/v2/lm/executions", b"{configurationId:", "application/json", 400),
    ("JSON array", "POST", "/v2/lm/executions", b"[]", "application/json", 400),
    ("JSON string", "POST", "/v2/lm/executions", b'"x"', "application/json", 400),
    ("NUL in id", "POST", "/v2/lm/executions", b'{"configurationId":"abcd\\u0000"}', "application/json", 400),
    ("wrong type", "PATCH", "/v2/lm/metrics", b'{"executionId":["abcd1234"]}', "application/json", 400),
    ("bulk enum", "PATCH", "/v2/lm/executions", b'{"executions":[{"id":"abcd1234","targetStatus":"RUNNING"}]}',
     "application/merge-patch+json", 400),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_bodies(server: ApiServer, case: tuple[str, str, str, bytes, str, int]) -> None:
    _, method, path, raw, ctype, expected = case
    headers = {"Content-Type": ctype} if ctype else {}
    status, _, body = server.call(method, path, raw=raw, headers=headers)
    _assert_error(status, body, expected)
    _alive(server)


@pytest.mark.parametrize("path,expected", [
    ("/v2/lm/executions/..%2f..%2fetc%2fpasswd", (400, 404)),
    ("/v2/lm/executions/..%2F..%2F..%2Fetc%2Fpasswd/logs", (400, 404)),
    ("/v2/lm/artifacts/..%2f..", (400, 404)),
    ("/v2/lm/artifacts/%2e%2e", (400, 404)),
    ("/v2/lm/configurations/..%5c..%5cwin.ini", (400, 404)),
    ("/v2/lm/scenarios/..%2f..%2fetc/executables/x", (400, 404)),
    ("/v2/lm/executions/%00", (400, 404)),
    ("/v2/lm/executions?$top=99999999999999999999", 400),
    ("/v2/lm/executions?top=-1", 400),
    ("/v2/lm/executions?$skip=-5", 400),
    ("/v2/lm/executions?skip=1e3", 400),
    ("/v2/lm/configurations?$top=abc", 400),
    ("/v2/lm/artifacts?kind=../../x", 400),
    ("/v2/lm/executions/abcd1234/logs?order=sideways", (400, 404)),
    ("/v2/lm/metrics", 400),
    ("/v2/lm/metrics?executionIds=" + ",".join(["abcd1234"] * 11), 400),
    ("/v2/lm/executionSchedules?status=EVIL", 400),
])
def test_hostile_paths_and_queries(server: ApiServer, path: str, expected: int | tuple[int, ...]) -> None:
    status, _, body = server.call("GET", path)
    _assert_error(status, body, expected)
    _alive(server)


def test_error_messages_do_not_leak_internals(server: ApiServer) -> None:
    status, _, body = server.call("POST", "/v2/lm/executions", raw=b'{"configurationId":' + b"9" * 5000 + b"}",
                                  headers={"Content-Type": "application/json"})
    _assert_error(status, body, 400)
    assert "sys." not in body["error"]["message"] and "Traceback" not in json.dumps(body)


def test_huge_top_is_clamped_not_an_error(server: ApiServer) -> None:
    status, _, body = server.call("GET", "/v2/lm/executions?$top=999999999")
    assert status == 200 and isinstance(body["resources"], list)


def test_resource_group_header(server: ApiServer) -> None:
    status, _, body = server.call("GET", "/v2/lm/scenarios", rg=None)
    _assert_error(status, body, 400)
    status, _, body = server.call("GET", "/v2/lm/scenarios", rg="no-such-group")
    _assert_error(status, body, 404)
    status, _, body = server.call("GET", "/v2/lm/scenarios", rg="../../etc")
    _assert_error(status, body, (400, 404))
    _alive(server)


@pytest.mark.parametrize("url", [
    "ai://default/../../etc/passwd", "ai://default/%2e%2e/%2e%2e/etc/passwd", "ai://default/a/../../..",
    "ai://default//etc/passwd", "ai://default/a#/../../etc", "ai://default/a?x=/../..", "ai://default/a\\..\\..",
    "ai://default/a\x00b", "ai://other-store/x", "file:///etc/passwd", "file://localhost/etc/passwd",
    "/etc/passwd", "../../etc/passwd", "http://169.254.169.254/latest/meta-data", "s3://bucket/key",
])
def test_unsafe_artifact_urls_are_not_registered(server: ApiServer, url: str) -> None:
    body = {"name": "evil", "kind": "dataset", "url": url, "scenarioId": "orchestrator-demo"}
    status, _, answer = server.call("POST", "/v2/lm/artifacts", body)
    _assert_error(status, answer, (400, 404))
    status, _, listed = server.call("GET", "/v2/lm/artifacts?name=evil")
    assert status == 200 and listed["count"] == 0, listed


def test_no_stack_trace_reached_a_client_or_the_log(server: ApiServer) -> None:
    out = server.output()
    assert "Traceback" not in out, out[-3000:]
    assert server.proc.poll() is None
    _alive(server)


def test_tracking_endpoint_needs_its_capability(server: ApiServer) -> None:
    for cap, body in ((DUMMY, b'{"executionId":"abcd1234"}'), (DUMMY, b"[" * 100_000), (server.token, b"{}"),
                      ("", b"{}")):
        status, rh, answer = server.call("PATCH", f"/tracking/{cap}/api/v1/metrics", raw=body, token="", rg=None,
                                         headers={"Content-Type": "application/json"})
        if cap == "":
            _assert_error(status, answer, (401, 404))
            continue
        _assert_error(status, answer, 401)
        assert rh["www-authenticate"].startswith("Bearer")


def test_out_of_range_timestamps_are_a_400(server: ApiServer) -> None:
    status, _, cfg = server.call("POST", "/v2/lm/configurations", {
        "name": "stamps", "scenarioId": "orchestrator-demo", "executableId": "failing-step"})
    assert status == 201, cfg
    status, _, ex = server.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})
    assert status == 202, ex
    for stamp in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z"):
        for method, path, body in (
                ("POST", "/v2/lm/executionSchedules", {"name": "s", "cron": "0 * * * *",
                                                       "configurationId": cfg["id"], "start": stamp}),
                ("GET", f"/v2/lm/executions/{ex['id']}/logs?start={stamp.replace('+', '%2B')}", None)):
            status, _, answer = server.call(method, path, body)
            _assert_error(status, answer, 400)
            assert "timestamp" in answer["error"]["message"], answer
    _alive(server)


EXTERNAL = re.compile(rb"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//(?!127\.0\.0\.1[:/])""", re.I)


def test_no_page_loads_anything_from_another_origin(server: ApiServer) -> None:
    """Script from a CDN would run on the dashboard's origin (session cookie, CSRF token) and needs
    the network: FastAPI's /docs and /redoc pages are off, and no page or asset names another origin."""
    auth = {"Authorization": f"Bearer {server.token}"}
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert _raw(server, "GET", path, {})[0] == 401, path  # no longer public
        status, headers, raw = _raw(server, "GET", path, auth)
        assert status == 404 and not headers.get("content-type", "").startswith("text/html"), (path, status)
    assert PUBLIC_DOCS == ("/openapi.json",)
    status, headers, login = _raw(server, "GET", "/ui/login", {})
    assert status == 200 and headers["content-type"].startswith("text/html"), status
    pages = [login]
    assets = re.findall(rb"""(?:src|href)=["'](/ui/[^"'?#]+)""", login)
    assert assets, login[:300]  # the check below reads the page's own assets too
    pages += [_raw(server, "GET", a.decode(), {})[2] for a in assets]
    for raw in pages:
        assert not EXTERNAL.search(raw), EXTERNAL.search(raw)
