"""Step secrets (``env[].valueFrom.secretKeyRef``, ``envFrom[].secretRef``) at run time (issue item 6).

Real runs through the CLI over a real SQLite file in tmp_path; the secrets are written with the
store's own ``put_secret`` (base64 values, as ``POST /v2/admin/secrets`` stores them). A step
proves it got the value by comparing digests, so the value itself is printed nowhere; the test
then looks for it in every place it must never be: logs, step records, messages, cache keys,
``executions show``/``explain`` and every table of the database but ``secrets``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as pysecrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from orchestrator.store.sqlite import SqliteStore
from tests.conftest import Cli, template
from tests.integration.conftest import ApiServer


def put_secret(cli: Cli, name: str, data: dict[str, str], rg: str = "default") -> None:
    cli.home.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(cli.home / "orchestrator.db"))
    try:
        store.ensure_resource_group(rg)
        store.put_secret(rg, name, {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
                         create=True)
    finally:
        store.close()


def secret_template(name: str, value: str, *, optional: str = "false", secret: str = "db",
                    key: str = "password") -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()
    return template(name, f"""
        - name: main
          container:
            image: python:3.11
            command: [python3, -c]
            args:
              - |
                import hashlib, os
                def seen(v):
                    return "absent" if v is None else hashlib.sha256(v.encode()).hexdigest() == "{digest}"
                print("password", seen(os.environ.get("DB_PASSWORD")))
                print("from", seen(os.environ.get("CFG_password")), os.environ.get("CFG_user"))
            env:
              - name: DB_PASSWORD
                valueFrom:
                  secretKeyRef: {{name: {secret}, key: {key}, optional: {optional}}}
            envFrom:
              - prefix: CFG_
                secretRef: {{name: db, optional: true}}
        """)


def everything_but_secrets(home: Path) -> str:
    db = sqlite3.connect(home / "orchestrator.db")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(db.execute(f"SELECT * FROM {t}").fetchall()) for t in tables if t != "secrets")
    finally:
        db.close()


def all_files(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and p.suffix != ".db"
                     and "-wal" not in p.name and "-shm" not in p.name)


def step(ex: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in ex["steps"] if s["name"] == "main")


def test_secret_reaches_the_step_and_nothing_else(cli: Cli) -> None:
    value = "pw-" + pysecrets.token_hex(16)
    put_secret(cli, "db", {"password": value, "user": "alice"})
    f = cli.write("s.yaml", secret_template("secret-env", value))
    out = cli.run_json(str(f))
    assert out["status"] == "COMPLETED", out
    log = cli("logs", out["id"], "--step", "main", check=0).stdout
    assert "password True" in log and "from True alice" in log
    # a second run is not served from the cache: a key must not depend on the secret's value
    again = cli.run_json(str(f))
    assert step(again)["state"] == "SUCCEEDED"
    explain = cli("executions", "explain", again["id"], "--json", check=0).stdout
    shown = cli("executions", "show", again["id"], "--json", check=0).stdout
    for where, text in (("database", everything_but_secrets(cli.home)), ("explain", explain), ("show", shown),
                        ("files under the home", all_files(cli.home)), ("log", log)):
        assert value not in text, f"the secret's value appears in the {where}"
        assert base64.b64encode(value.encode()).decode() not in text, f"the stored secret appears in the {where}"


def test_missing_secret_or_key_fails_the_step_naming_them(cli: Cli) -> None:
    value = "pw-" + pysecrets.token_hex(16)
    put_secret(cli, "db", {"password": value})
    f = cli.write("s.yaml", secret_template("secret-missing", value, secret="nope"))
    out = cli.run_json(str(f), check=1)
    assert out["status"] == "DEAD" and step(out)["state"] == "FAILED"
    msg = step(out)["message"]
    assert "'nope'" in msg and "password" in msg and value not in msg
    f = cli.write("k.yaml", secret_template("secret-no-key", value, key="token"))
    out = cli.run_json(str(f), check=1)
    msg = step(out)["message"]
    assert out["status"] == "DEAD" and "secret 'db' has no key 'token'" in msg and value not in msg
    assert value not in out["statusMessage"]
    # optional: the step runs without the variable
    f = cli.write("o.yaml", secret_template("secret-optional", value, key="token", optional="true"))
    out = cli.run_json(str(f))
    assert out["status"] == "COMPLETED"
    assert "password absent" in cli("logs", out["id"], "--step", "main", check=0).stdout


def test_secrets_of_another_resource_group_are_not_visible(cli: Cli) -> None:
    put_secret(cli, "db", {"password": "elsewhere"}, rg="other-group")
    f = cli.write("s.yaml", secret_template("secret-rg", "elsewhere"))
    out = cli.run_json(str(f), check=1)
    assert out["status"] == "DEAD" and "does not exist in resource group 'default'" in step(out)["message"]


def test_secret_created_through_the_api_reaches_a_server_run(api_server: ApiServer) -> None:
    value = "pw-" + pysecrets.token_hex(16)
    s, _, body = api_server.call("POST", "/v2/admin/secrets", {
        "name": "db", "data": {"password": base64.b64encode(value.encode()).decode()}})
    assert s in (200, 201, 202), body
    path = api_server.tmp / "s.yaml"
    path.write_text(secret_template("secret-api", value))
    api_server.cli("register", str(path))
    s, _, cfg = api_server.call("POST", "/v2/lm/configurations", {
        "name": "c", "scenarioId": "test-scenario", "executableId": "secret-api"})
    assert s == 201, cfg
    s, _, ex = api_server.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})
    assert s == 202, ex
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = api_server.call("GET", f"/v2/lm/executions/{ex['id']}")[2]
        if got["status"] in ("COMPLETED", "DEAD"):
            break
        time.sleep(0.2)
    assert got["status"] == "COMPLETED", got
    logs = api_server.call("GET", f"/v2/lm/executions/{ex['id']}/logs?$top=1000")[2]
    assert any("password True" in r["msg"] for r in logs["data"]["result"])
    assert value not in json.dumps(logs) and value not in json.dumps(got)
    assert value not in everything_but_secrets(api_server.home)
