"""Finding 4: Ray has no authentication, so ``serve`` refuses to start executions on it unless
the operator accepts the single-tenant trust model with ``ORCHESTRATOR_RAY_TRUSTED=1``."""

from __future__ import annotations

import pytest

from orchestrator.errors import UsageError
from orchestrator.run.executor import RAY_TRUSTED_VAR, check_server_executor
from tests.conftest import Cli


def test_serve_refuses_the_ray_executor_unless_trusted(cli: Cli) -> None:
    for how in ({"ORCHESTRATOR_EXECUTOR": "ray:127.0.0.1:1"}, {"ORCHESTRATOR_EXECUTOR": "ray"}):
        p = cli("serve", "--port", "0", check=2, env={**how, RAY_TRUSTED_VAR: "0"}, timeout=60)
        assert RAY_TRUSTED_VAR in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert "listening" not in p.stdout  # refused before the socket is bound


def test_the_server_check_passes_other_executors_and_trusted_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RAY_TRUSTED_VAR, raising=False)
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR", raising=False)
    check_server_executor()
    check_server_executor("podman")
    with pytest.raises(UsageError):
        check_server_executor("ray://10.0.0.5:10001")
    monkeypatch.setenv(RAY_TRUSTED_VAR, "yes")  # only "1" opts in
    with pytest.raises(UsageError):
        check_server_executor("ray")
    monkeypatch.setenv(RAY_TRUSTED_VAR, "1")
    check_server_executor("ray")
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "ray:127.0.0.1:6379")
    check_server_executor()


def test_the_scheduler_and_a_backfill_refuse_the_ray_executor_unless_trusted(cli: Cli) -> None:
    """They run templates synced from repositories others push to, as a server does: gated alike."""
    ray = {"ORCHESTRATOR_EXECUTOR": "ray:127.0.0.1:1"}
    cli("init", check=0)
    backfill = ("schedules", "backfill", "nosuchschedule", "--from", "2026-01-01T00:00:00Z",
                "--to", "2026-01-02T00:00:00Z")
    for args in (("scheduler", "--once"), ("scheduler", "--interval", "5"), backfill):
        p = cli(*args, check=2, env={**ray, RAY_TRUSTED_VAR: "0"}, timeout=60)
        assert RAY_TRUSTED_VAR in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert "started" not in p.stdout and "scheduler running" not in p.stderr and "nosuchschedule" not in p.stderr
    p = cli("scheduler", "--once", check=0, env={**ray, RAY_TRUSTED_VAR: "1"})  # no schedule: nothing runs
    assert "0 started" in p.stdout
    p = cli(*backfill, env={**ray, RAY_TRUSTED_VAR: "1"})
    assert p.returncode != 0 and "nosuchschedule" in p.stderr, p.stderr  # past the gate: the schedule is looked up
    assert RAY_TRUSTED_VAR not in p.stderr
