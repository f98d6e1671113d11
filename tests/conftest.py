"""Shared test helpers: a CLI runner with an isolated ORCHESTRATOR_HOME and a template builder."""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the package once, before any worker starts.

    The tests start thousands of ``python -m orchestrator`` processes; with PYTHONDONTWRITEBYTECODE
    set (as in some CI images) none of them writes a .pyc, so each one compiled every module it
    imports again (about half of a CLI process's CPU time). Only the xdist controller (or the
    single process without ``-n``) does it; an unwritable tree is simply left as it is.
    """
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(REPO / "orchestrator", quiet=2)


def template(name: str, templates: str, *, params: str = "", extra_meta: str = "", entrypoint: str = "main",
             annotations: str = "", spec_extra: str = "") -> str:
    """A valid AI Core WorkflowTemplate around the given ``templates:`` YAML block (indented 4)."""
    body = textwrap.dedent(templates).strip("\n")
    body = textwrap.indent(body, "    ")
    ptext = ""
    if params:
        ptext = "  arguments:\n    parameters:\n" + textwrap.indent(textwrap.dedent(params).strip("\n"), "      ") + "\n"
    ann = textwrap.indent(textwrap.dedent(annotations).strip("\n"), "    ") + "\n" if annotations else ""
    return (f"apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata:\n  name: {name}\n"
            f"  annotations:\n    scenarios.ai.sap.com/name: test\n    executables.ai.sap.com/name: {name}\n{ann}"
            f"  labels:\n    scenarios.ai.sap.com/id: test-scenario\n    ai.sap.com/version: \"1.0\"\n{extra_meta}"
            f"spec:\n  entrypoint: {entrypoint}\n{spec_extra}{ptext}  templates:\n{body}\n")


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.env = {**os.environ, "ORCHESTRATOR_HOME": str(self.home)}

    def __call__(self, *args: str, check: int | None = None, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=self.tmp, text=True,
                           capture_output=True, env={**self.env, **(env or {})}, timeout=timeout)
        if check is not None and p.returncode != check:
            raise AssertionError(f"exit {p.returncode} != {check}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def json(self, *args: str, check: int | None = 0, **kw: Any) -> Any:
        return json.loads(self(*args, "--json", check=check, **kw).stdout)

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def run_json(self, *args: str, check: int | None = 0, **kw: Any) -> Any:
        return self.json("run", "-q", *args, check=check, **kw)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def s3() -> Any:
    """A real S3-compatible server (moto, a subprocess on loopback) for the whole session, with
    credentials enforced: see tests/s3server.py. Skipped when moto is not installed."""
    pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    from tests import s3server

    server = s3server.start()
    try:
        yield server
    finally:
        server.stop()
