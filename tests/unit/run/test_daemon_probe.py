"""A daemon's exec probe under Ray is refused before the run; the sandbox prefix an exec probe reuses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.run import daemons, sandbox


def test_the_ray_executor_refuses_an_exec_probe_before_the_run() -> None:
    def leaf(daemon: str | None) -> SimpleNamespace:
        return SimpleNamespace(template=SimpleNamespace(name="server", daemon=daemon))

    probe = '{"exec": {"command": ["true"]}}'
    r = SimpleNamespace(executor=SimpleNamespace(name="ray"), graph=SimpleNamespace(leaves=lambda: [leaf(probe)]))
    with pytest.raises(daemons.ProbeRefused) as exc:
        daemons.refuse_exec_probes(r)
    assert exc.value.code == "UNSUPPORTED" and "server" in str(exc.value)
    daemons.refuse_exec_probes(SimpleNamespace(executor=SimpleNamespace(name="local"),
                                               graph=SimpleNamespace(leaves=lambda: [leaf(probe)])))
    daemons.refuse_exec_probes(SimpleNamespace(executor=SimpleNamespace(name="ray"), graph=SimpleNamespace(
        leaves=lambda: [leaf('{"httpGet": {"port": 80}}'), leaf(None)])))


def test_the_sandbox_prefix_is_exactly_what_wrap_added() -> None:
    argv = sandbox.wrap(["sh", "-c", "x"], [("/h", "/t"), ("--", "--")], "/w", "/c")
    assert sandbox.prefix(argv) + ["sh", "-c", "x"] == argv
    assert sandbox.prefix(["sh", "-c", "x"]) == []
