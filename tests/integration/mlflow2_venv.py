"""A cached virtual environment with the MLflow 2.x client, for the tests that log from a step with it.

The 3.x client is in the test environment itself; 2.x cannot share it. :func:`mlflow2_python` builds
``~/.cache/orchestrator-tests/mlflow2-venv-<key>`` once (``key``: this Python's version and the
requirements below) with ``mlflow-skinny<3`` and what ``mlflow.sklearn`` needs in 2.x (scikit-learn,
pandas; cloudpickle, its default format, comes with mlflow-skinny), and reuses it in later runs: after
the first build the cost is one ``stat``. A file lock keeps two pytest processes from building it at
once; a build that did not finish (no ``.complete`` marker) is removed and made again.
``ORCHESTRATOR_TEST_CACHE`` moves the cache folder. The test is skipped only when the package registry
cannot be reached (the reason says so); a failing install with a reachable registry fails the test.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REQUIREMENTS = ("mlflow-skinny>=2.9,<3", "scikit-learn>=1.3", "pandas>=2")
BUILD_TIMEOUT = 900


def cache_root() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_TEST_CACHE") or Path.home() / ".cache" / "orchestrator-tests")


def venv_dir() -> Path:
    key = hashlib.sha256(repr((sys.version_info[:2], REQUIREMENTS)).encode()).hexdigest()[:12]
    return cache_root() / f"mlflow2-venv-{key}"


def _index_url() -> str:
    """The index pip installs from: PIP_INDEX_URL, pip's configured index, or pip's default."""
    url = os.environ.get("PIP_INDEX_URL", "")
    if not url:
        got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True, check=False)
        url = got.stdout.strip() if got.returncode == 0 else ""
    if not url:
        from pip._internal.models.index import PyPI  # pip's default index, named by pip itself

        url = PyPI.simple_url
    return url.rstrip("/")


def _registry_unreachable() -> str | None:
    """Why the package registry cannot be reached, or None when it answers."""
    url = f"{_index_url()}/mlflow-skinny/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: reachable
    except (OSError, ValueError) as exc:
        return f"the package registry ({url}) is unreachable: {exc}"


def _build(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    why = _registry_unreachable()
    if why:
        pytest.skip(f"cannot build the MLflow 2.x test venv: {why}")
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, timeout=120)
    py = target / "bin" / "python"
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
                         capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if res.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        why = _registry_unreachable()
        if why:
            pytest.skip(f"cannot build the MLflow 2.x test venv: {why}")
        pytest.fail(f"pip install {' '.join(REQUIREMENTS)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    check = subprocess.run([str(py), "-c", "import mlflow, sklearn, pandas; print(mlflow.__version__)"],
                           capture_output=True, text=True, timeout=120, check=False)
    if check.returncode != 0 or not check.stdout.startswith("2."):
        shutil.rmtree(target, ignore_errors=True)
        pytest.fail(f"the MLflow 2.x venv does not import mlflow 2.x:\n{check.stdout}\n{check.stderr}")
    (target / ".complete").write_text(check.stdout)


def mlflow2_python() -> Path:
    """The python of the cached MLflow 2.x venv, built on first use."""
    target = venv_dir()
    py = target / "bin" / "python"
    if (target / ".complete").is_file() and py.exists():
        return py
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building it: wait for it
        try:
            if not ((target / ".complete").is_file() and py.exists()):
                _build(target)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return py
