"""`orchestrator serve` as a new user meets it: a missing extra and a busy port are one line, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import Cli


def test_serve_without_the_server_extra_says_how_to_install_it(cli: Cli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # As if fastapi and uvicorn were not installed: an import of either fails, find_spec finds nothing.
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['fastapi'] = None\nsys.modules['uvicorn'] = None\n")
    p = cli("serve", "--port", "0", check=2, env={**cli.env, "PYTHONPATH": str(site)})
    err = p.stderr.strip().splitlines()
    assert err and "pip install 'orchestrator[server]'" in err[0], p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_serve_on_a_port_in_use_names_it_and_suggests_port_0(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = cli("serve", "--port", str(port), check=2)
    assert f"127.0.0.1:{port}" in p.stderr and "--port 0" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
