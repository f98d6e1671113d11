"""The dashboard's security at the HTTP level, for every UI route (enumerated from the app): login
and session cookie, CSRF on every POST, roles as in the REST API, resource group scoping (another
group's id is a 404), security headers (CSP without inline script or external origins), and the
one-time login link of ``orchestrator ui``.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.parse
from typing import Any

import pytest

from tests.integration.ui.conftest import Seeded, form

# one worker runs every dashboard test (--dist loadgroup): the seeded home and server of ui/conftest.py are made once
pytestmark = pytest.mark.xdist_group("ui")


OWN = "default"


class Client:
    """A cookie-keeping HTTP client that never follows redirects."""

    def __init__(self, base: str) -> None:
        self.host, port = base.rsplit("//", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str, list[str]]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            set_cookies = resp.headers.get_all("set-cookie") or []
            for c in set_cookies:
                name, _, rest = c.partition("=")
                value = rest.split(";", 1)[0]
                if value:
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text, set_cookies
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], str, list[str]]:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> tuple[int, dict[str, str], str, list[str]]:
        return self.request("POST", path, form(data), **kw)

    def login(self, token: str) -> None:
        status, _, html, _ = self.get("/ui/login")
        assert status == 200
        pre = re.search(r'name="csrf" value="([^"]+)"', html)
        assert pre
        status, headers, body, cookies = self.post("/ui/login", {"csrf": pre.group(1), "token": token,
                                                                 "next": "/ui/executions"})
        assert status == 303, (status, body)
        assert any("HttpOnly" in c and "SameSite=Strict" in c for c in cookies if c.startswith("orch_ui=")), cookies
        status, _, html, _ = self.get("/ui/executions")
        assert status == 200
        m = re.search(r'name="csrf" value="([^"]+)"', html)
        assert m
        self.csrf = m.group(1)


def ui_routes() -> list[tuple[str, str]]:
    """(method, path) of every dashboard route, from the app the server builds."""
    import tempfile

    from orchestrator.api.app import create_app
    from orchestrator.api.ui import _UiRoute
    from orchestrator.control.service import Service

    app = create_app(Service(tempfile.mkdtemp()))
    mounts = [r for r in app.router.routes if isinstance(r, _UiRoute)]
    assert len(mounts) == 1
    inner = mounts[0].app.app
    out = []
    for r in inner.routes:
        for m in sorted(getattr(r, "methods", None) or ()):
            if m != "HEAD":
                out.append((m, r.path))
    return out


def fill(path: str, seeded: Seeded, *, foreign: bool = False) -> str:
    eid = seeded.team_b_id if foreign else seeded.train_ids[0]
    values = {"eid": eid, "action": "stop", "sid": "nope" if foreign else seeded.schedule_id,
              "name": ("app" if path.startswith("/ui/git") else "ui-model"),
              "swid": seeded.team_b_sweep_id if foreign else seeded.sweep_id,
              "did": seeded.team_b_deployment_id if foreign else seeded.deployment_id}
    filled = re.sub(r"\{(\w+)\}", lambda m: urllib.parse.quote(values[m.group(1)]), path)
    return filled + ("?step=main" if filled.endswith("/log.json") else "")


PUBLIC = {("GET", "/ui/login"), ("POST", "/ui/login"), ("GET", "/ui/login/once")}


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, str]]:
    found = ui_routes()
    paths = {p for _, p in found}
    assert {"/ui/executions", "/ui/executions/{eid}", "/ui/compare", "/ui/models/{name}/alias", "/ui/schedules/{sid}",
            "/ui/git/{name}", "/ui/rg", "/ui/sweeps", "/ui/sweeps/{swid}", "/ui/deployments", "/ui/deployments/{did}",
            "/ui/deployments/{did}/log.json"} <= paths
    assert len(found) >= 20
    return found


def test_every_route_needs_a_session(seeded: Seeded, routes: list[tuple[str, str]]) -> None:
    anon = Client(seeded.base)
    anon.cookies["orch_ui"] = "forged-session-id"
    for method, template in routes:
        if (method, template) in PUBLIC:
            continue
        path = fill(template, seeded)
        status, headers, body, _ = anon.request(method, path, form({"csrf": "x"}) if method == "POST" else None)
        if method == "GET" and not path.split("?")[0].endswith(".json"):
            assert status == 303 and headers["location"].startswith("/ui/login?next="), (path, status)
        else:
            assert status == 401, (method, path, status, body[:100])
        assert "content-security-policy" in headers
        assert seeded.train_ids[0] not in body


def test_login_refuses_bad_tokens_and_forged_forms(seeded: Seeded) -> None:
    c = Client(seeded.base)
    status, _, html, _ = c.get("/ui/login")
    pre = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert c.post("/ui/login", {"csrf": pre, "token": "orc_nope"})[0] == 401
    assert c.post("/ui/login", {"csrf": "other", "token": seeded.server.token})[0] == 403
    fresh = Client(seeded.base)  # no login cookie: a cross-site login form cannot log a victim in
    assert fresh.post("/ui/login", {"csrf": pre, "token": seeded.server.token})[0] == 403
    status, headers, _, _ = c.post("/ui/login", {"csrf": pre, "token": seeded.server.token, "next": "//evil.example/x"})
    assert status == 303 and headers["location"] == "/ui/executions"


def test_every_post_needs_the_csrf_token_and_same_origin(seeded: Seeded, routes: list[tuple[str, str]]) -> None:
    c = Client(seeded.base)
    c.login(seeded.server.token)
    posts = [(m, p) for m, p in routes if m == "POST" and (m, p) not in PUBLIC]
    assert {"/ui/executions/{eid}/{action}", "/ui/models/{name}/alias", "/ui/rg", "/ui/logout", "/ui/sweeps/{swid}/stop",
            "/ui/deployments/{did}/stop", "/ui/deployments/{did}/delete", "/ui/deployments/{did}/predict"} <= {
        p for _, p in posts}
    for _, template in posts:
        path = fill(template, seeded)
        for data in ({}, {"csrf": ""}, {"csrf": "wrong"}, {"csrf": c.csrf[:-1]}):
            status, _, body, _ = c.post(path, data)
            assert status == 403, (path, data, status, body[:100])
        status, _, _, _ = c.post(path, {"csrf": c.csrf}, headers={"Origin": "http://evil.example"})
        assert status == 403
        status, _, _, _ = c.post(path, {"csrf": c.csrf}, headers={"Sec-Fetch-Site": "cross-site"})
        assert status == 403
    # JSON or multipart bodies are refused; only forms are accepted
    status, _, _, _ = c.request("POST", "/ui/rg", b'{"rg": "team-b"}', {"Content-Type": "application/json"})
    assert status == 413
    assert c.get("/ui/executions")[0] == 200  # still logged in: nothing above changed the session


def test_scoping_another_groups_ids_are_404(seeded: Seeded, routes: list[tuple[str, str]]) -> None:
    c = Client(seeded.base)
    c.login(seeded.server.token)
    checked = 0
    for method, template in routes:
        if "{" not in template or method != "GET" or template.startswith("/ui/git"):
            continue
        own = fill(template, seeded)
        foreign = fill(template, seeded, foreign=True)
        assert c.get(own)[0] == 200, own
        if any(k in template for k in ("{eid}", "{sid}", "{swid}", "{did}")):
            status, _, body, _ = c.get(foreign)
            assert status == 404, (foreign, status)
            assert seeded.team_b_id not in body or "not found" in body
            checked += 1
    assert checked >= 9
    b = Client(seeded.base)  # a token limited to team-b: only that group, and nothing of default
    b.login(seeded.team_b_token)
    status, _, html, _ = b.get("/ui/executions")
    assert seeded.team_b_id in html and seeded.train_ids[0] not in html
    assert re.findall(r'<option value="([^"]+)"', html.split('id="rg-switch"', 1)[1].split("</select>", 1)[0]) == ["team-b"]
    assert b.get(f"/ui/executions/{seeded.train_ids[0]}")[0] == 404
    assert b.get("/ui/models/ui-model")[0] == 404
    assert b.get(f"/ui/schedules/{seeded.schedule_id}")[0] == 404
    assert b.get(f"/ui/compare?ids={seeded.train_ids[0]}")[0] == 404
    assert b.get(f"/ui/executions/{seeded.train_ids[0]}/metrics.csv")[0] == 404
    assert b.get(f"/ui/sweeps/{seeded.sweep_id}")[0] == 404 and b.get(f"/ui/deployments/{seeded.deployment_id}")[0] == 404
    assert b.post(f"/ui/sweeps/{seeded.sweep_id}/stop", {"csrf": b.csrf})[0] == 404
    for action in ("stop", "delete", "predict"):
        assert b.post(f"/ui/deployments/{seeded.deployment_id}/{action}",
                      {"csrf": b.csrf, "body": "{}", "path": "invocations"})[0] == 404
    assert b.get(f"/ui/executions?sweep={seeded.sweep_id}")[0] == 404
    sweeps_b, deps_b = b.get("/ui/sweeps")[2], b.get("/ui/deployments")[2]
    assert seeded.team_b_sweep_id in sweeps_b and seeded.sweep_id not in sweeps_b
    assert seeded.team_b_deployment_id in deps_b and seeded.deployment_id not in deps_b
    assert b.post("/ui/rg", {"csrf": b.csrf, "rg": OWN})[0] == 404
    assert b.get("/ui/git")[0] == 403 and b.get("/ui/git/app")[0] == 403  # tenant-wide: unlimited admin only
    # the unlimited admin switches groups and then sees team-b only
    assert c.post("/ui/rg", {"csrf": c.csrf, "rg": "team-b"})[0] == 303
    assert seeded.team_b_id in c.get("/ui/executions")[2]
    assert c.get(f"/ui/executions/{seeded.train_ids[0]}")[0] == 404
    assert c.post("/ui/rg", {"csrf": c.csrf, "rg": "no-such-group"})[0] == 404
    assert c.post("/ui/rg", {"csrf": c.csrf, "rg": OWN})[0] == 303


def test_roles_as_in_the_rest_api(seeded: Seeded) -> None:
    r = Client(seeded.base)
    r.login(seeded.read_token)
    html = r.get(f"/ui/executions/{seeded.train_ids[0]}")[2]
    assert 'id="rerun"' not in html  # a read token is not offered the buttons ...
    for path, data in ((f"/ui/executions/{seeded.failed_id}/rerun", {}),
                       (f"/ui/executions/{seeded.failed_id}/resume", {}),
                       (f"/ui/executions/{seeded.failed_id}/stop", {}),
                       ("/ui/models/ui-model/alias", {"alias": "champion", "version": "2"}),
                       (f"/ui/sweeps/{seeded.sweep_id}/stop", {}),
                       (f"/ui/deployments/{seeded.deployment_id}/stop", {}),
                       (f"/ui/deployments/{seeded.deployment_id}/delete", {}),
                       (f"/ui/deployments/{seeded.deployment_id}/predict", {"body": "{}", "path": "invocations"})):
        status, _, body, _ = r.post(path, {"csrf": r.csrf, **data})
        assert status == 403, (path, status)  # ... and cannot use them
    assert "@champion" in r.get("/ui/models")[2]
    assert 'id="predict-form"' not in r.get(f"/ui/deployments/{seeded.deployment_id}")[2]
    assert 'id="stop"' not in r.get(f"/ui/sweeps/{seeded.sweep_id}")[2]
    assert r.get("/ui/git")[0] == 403
    assert r.post("/ui/rg", {"csrf": r.csrf, "rg": OWN})[0] == 303  # switching groups only needs read
    assert r.post("/ui/logout", {"csrf": r.csrf})[0] == 303
    assert r.get("/ui/executions")[0] == 303  # logged out


def test_revoking_the_token_ends_its_sessions(seeded: Seeded) -> None:
    c = Client(seeded.base)
    c.login(seeded.run_token)
    assert c.get("/ui/models")[0] == 200
    token = json.loads(seeded.server.cli("tokens", "create", "--name", "ui-short", "--role", "read",
                                                       "--json").stdout)["token"]
    d = Client(seeded.base)
    d.login(token)
    seeded.server.cli("tokens", "revoke", "ui-short")
    time.sleep(1.1)  # the gate trusts a token check for 1 s
    assert d.get("/ui/models")[0] == 303
    assert c.get("/ui/models")[0] == 200


def test_headers_and_static_files(seeded: Seeded) -> None:
    c = Client(seeded.base)
    status, headers, _, _ = c.get("/ui/login")
    csp = headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
    assert "http" not in csp and "*" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
    status, headers, body, _ = c.get("/ui/static/app.js")
    assert status == 200 and "ExecutionPage" in body and "content-security-policy" in headers
    for path in ("/ui/static/../pages.py", "/ui/static/%2e%2e/pages.py", "/ui/static/..%2fpages.py",
                 "/ui/static/vendor/../../pages.py"):
        status, _, body, _ = c.get(path)
        assert status in (303, 404), (path, status)
        assert "def execution" not in body
    assert c.request("PUT", "/ui/executions")[0] == 405
    status, _, body, _ = c.request("POST", "/ui/login", b"x" * 70_000)
    assert status == 413


def test_orchestrator_ui_prints_a_one_time_link(seeded: Seeded, tmp_path: Any) -> None:
    env = {**seeded.server.env}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "ui", "--no-browser", "--port", "0"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not url:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            m = re.search(r"(http://127\.0\.0\.1:\d+/ui/login/once\?code=\S+)", line)
            if m:
                url = m.group(1)
            assert line or proc.poll() is None
        assert url, "no login link printed"
        parts = urllib.parse.urlsplit(url)
        c = Client(f"http://{parts.netloc}")
        status, headers, _, cookies = c.get(f"{parts.path}?{parts.query}")
        assert status == 303 and any(k.startswith("orch_ui=") and "HttpOnly" in k for k in cookies)
        assert c.get("/ui/executions")[0] == 200
        again = Client(f"http://{parts.netloc}")
        assert again.get(f"{parts.path}?{parts.query}")[0] == 403  # once only
        assert again.get("/ui/executions")[0] == 303
    finally:
        proc.terminate()
        proc.wait(15)


def _wait_terminal(seeded: Seeded, eid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status, _, body = seeded.server.call("GET", f"/v2/lm/executions/{eid}")
        assert status == 200, body
        if body["status"] in ("COMPLETED", "DEAD", "STOPPED"):
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_resume_reuses_completed_steps_and_rerun_starts_afresh(seeded: Seeded) -> None:
    c = Client(seeded.base)
    c.login(seeded.run_token)
    html = c.get(f"/ui/executions/{seeded.flaky_id}")[2]
    assert "DEAD" in html and 'id="resume"' in html
    assert seeded.flaky_count.read_text().count("ran") == 1
    seeded.flaky_mark.write_text("open")
    status, headers, _, _ = c.post(f"/ui/executions/{seeded.flaky_id}/resume", {"csrf": c.csrf})
    assert status == 303
    resumed = headers["location"].rsplit("/", 1)[1]
    assert resumed != seeded.flaky_id
    assert _wait_terminal(seeded, resumed)["status"] == "COMPLETED"
    assert seeded.flaky_count.read_text().count("ran") == 1  # step `once` was reused, not run again
    page = c.get(f"/ui/executions/{resumed}")[2]
    assert f'href="/ui/executions/{seeded.flaky_id}"' in page  # "resumed from" links the parent
    assert seeded.flaky_id in page and resumed in c.get(f"/ui/executions/{seeded.flaky_id}")[2]
    status, headers, _, _ = c.post(f"/ui/executions/{seeded.flaky_id}/rerun", {"csrf": c.csrf})
    assert status == 303
    rerun = headers["location"].rsplit("/", 1)[1]
    assert rerun not in (seeded.flaky_id, resumed)
    assert _wait_terminal(seeded, rerun)["status"] == "COMPLETED"
    # a rerun is a new execution of the same configuration: the step cache answers what did not change
    assert seeded.flaky_count.read_text().count("ran") == 1
    assert "hit" in c.get(f"/ui/executions/{rerun}")[2].split('id="cache"', 1)[1].split("</table>", 1)[0]
    status, _, body, _ = c.post(f"/ui/executions/{rerun}/resume", {"csrf": c.csrf})
    assert status == 303  # resuming a completed run is allowed: nothing to redo, it completes at once
    status, _, body, _ = c.post(f"/ui/executions/{rerun}/nonsense", {"csrf": c.csrf})
    assert status == 404



def test_try_it_checks_its_input_and_answers_through_the_relay(seeded: Seeded) -> None:
    deadline = time.monotonic() + 60
    while seeded.server.call("GET", f"/v2/lm/deployments/{seeded.deployment_id}")[2]["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the seeded deployment did not start"
        time.sleep(0.1)
    c = Client(seeded.base)
    c.login(seeded.run_token)
    path = f"/ui/deployments/{seeded.deployment_id}/predict"
    accept = {"Accept": "application/json"}
    status, _, body, _ = c.post(path, {"csrf": c.csrf, "path": "invocations", "body": '{"instances": [[1, 1]]}'},
                                headers=accept)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == 200 and json.loads(answer["body"]) == {"predictions": [1]}
    # the predictor's own refusal is shown as it came (its status and error), not as a dashboard error
    status, _, body, _ = c.post(path, {"csrf": c.csrf, "path": "invocations", "body": '{"nope": 1}'}, headers=accept)
    assert status == 200 and json.loads(body)["status"] == 400
    for bad in ({"path": "invocations", "body": "{not json"}, {"path": "../v2/lm/deployments", "body": "{}"},
                {"path": "x" * 400, "body": "{}"}, {"path": "v1\\models", "body": "{}"}):
        status, _, body, _ = c.post(path, {"csrf": c.csrf, **bad}, headers=accept)
        assert status == 400, (bad, status, body[:200])
    # without script the form posts as HTML and the page comes back with the answer
    status, _, html, _ = c.post(path, {"csrf": c.csrf, "path": "invocations", "body": '{"instances": [[0, 0]]}'})
    assert status == 200 and "HTTP 200" in html and "predictions" in html
