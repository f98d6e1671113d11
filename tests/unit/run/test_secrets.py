"""orchestrator.run.secrets: a container's secret references -> environment variables (no value in errors)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from orchestrator.model import Container, SecretEnv, SecretEnvFrom
from orchestrator.run.secrets import SecretError, references, secret_env, uses_secrets
from orchestrator.store.sqlite import SqliteStore

VALUE = "s3cr3t-Value"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(str(tmp_path / "o.db"))
    s.ensure_resource_group("rg1")
    s.put_secret("rg1", "db", {"password": b64(VALUE), "user": b64("alice"), "bad key": b64("x"),
                               "9lives": b64("x")}, create=True)
    s.put_secret("rg1", "weird", {"nul": b64(b"a\0b"), "notb64": "%%%", "bytes": b64(b"\xff\xfe")}, create=True)
    return s


def test_env_and_env_from_with_prefix(store: SqliteStore) -> None:
    c = Container(env_secrets=(SecretEnv("PW", "db", "password"),),
                  env_from_secrets=(SecretEnvFrom("db", "DB_"), SecretEnvFrom("gone", optional=True)))
    env_from, env = secret_env(store, "rg1", c)
    assert env == {"PW": VALUE}
    # keys that are no valid variable names are skipped, as Kubernetes does
    assert env_from == {"DB_password": VALUE, "DB_user": "alice", "DB_9lives": "x"}
    assert secret_env(store, "rg1", Container(env_from_secrets=(SecretEnvFrom("db"),)))[0].keys() == \
        {"password", "user"}


@pytest.mark.parametrize("ref, words", [
    (SecretEnv("PW", "nope", "password"), ["'nope'", "does not exist", "'rg1'", "password"]),
    (SecretEnv("PW", "db", "token"), ["'db'", "has no key 'token'"]),
    (SecretEnv("X", "weird", "nul"), ["'nul'", "'weird'", "NUL"]),
    (SecretEnv("X", "weird", "notb64"), ["'notb64'", "not valid base64"]),
])
def test_problems_name_secret_and_key_never_the_value(store: SqliteStore, ref: SecretEnv, words: list[str]) -> None:
    with pytest.raises(SecretError) as info:
        secret_env(store, "rg1", Container(env_secrets=(ref,)))
    text = str(info.value)
    assert all(w in text for w in words), text
    assert VALUE not in text and b64(VALUE) not in text


def test_optional_references_and_other_groups(store: SqliteStore) -> None:
    c = Container(env_secrets=(SecretEnv("A", "db", "token", optional=True), SecretEnv("B", "nope", "k", True)))
    assert secret_env(store, "rg1", c) == ({}, {})
    with pytest.raises(SecretError, match="does not exist in resource group 'default'"):
        secret_env(store, "default", Container(env_secrets=(SecretEnv("PW", "db", "password"),)))
    with pytest.raises(SecretError, match="envFrom: secret 'nope'"):
        secret_env(store, "rg1", Container(env_from_secrets=(SecretEnvFrom("nope"),)))


def test_placeholders_in_names_and_undecodable_bytes(store: SqliteStore) -> None:
    c = Container(env_secrets=(SecretEnv("PW", "{{inputs.parameters.s}}", "{{inputs.parameters.k}}"),
                               SecretEnv("RAW", "weird", "bytes")))
    names = {"{{inputs.parameters.s}}": "db", "{{inputs.parameters.k}}": "password"}
    _, env = secret_env(store, "rg1", c, lambda text: names.get(text, text))
    assert env["PW"] == VALUE
    assert env["RAW"].encode("utf-8", "surrogateescape") == b"\xff\xfe"  # bytes pass through unchanged


def test_references_carry_no_values() -> None:
    c = Container(env_secrets=(SecretEnv("PW", "db", "password"),), env_from_secrets=(SecretEnvFrom("db", "P_", True),))
    assert references(c) == ["PW<-db/password", "P_*<-db/*?"]
    assert uses_secrets(c) and not uses_secrets(Container()) and not uses_secrets(None)
    with pytest.raises(SecretError, match="keeps no secrets"):
        secret_env(object(), "rg1", c)
