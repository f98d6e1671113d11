"""DESIGN.md §3: imports point down. import-linter checks the contracts in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    p = subprocess.run([str(exe)], cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_version_imports_nothing_heavy() -> None:
    code = ("import sys, orchestrator.cli.main as c\n"
            "try:\n    c.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('yaml', 'networkx', 'jsonschema', 'rich', 'sqlite3') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in p.stdout + "\n" and "HEAVY=," not in p.stdout, p.stdout
