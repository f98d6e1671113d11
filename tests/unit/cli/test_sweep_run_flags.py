"""``run`` flags a sweep would silently ignore are refused (exit 2) before anything is written:
``--no-cache`` for our ``Sweep`` document and for an Azure ML sweep job (the engine gives every
trial the step cache), ``-p`` for a ``Sweep`` document. A command job keeps ``--no-cache``."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import REPO, Cli


def test_no_cache_on_a_sweep_is_refused_before_a_store_exists(cli: Cli) -> None:
    shutil.copytree(REPO / "tests" / "fixtures" / "azureml" / "basics", cli.tmp / "basics")
    for target in ("basics/hello-sweep.yml", str(REPO / "workflows" / "sklearn-sweep.yaml")):
        p = cli("run", target, "--no-cache", check=2)
        assert "--no-cache does not apply to a sweep" in p.stderr, p.stderr
        assert not cli.home.exists()  # nothing written
    p = cli("run", str(REPO / "workflows" / "sklearn-sweep.yaml"), "-p", "n-estimators=5", check=2)
    assert "-p/--artifact do not apply to a Sweep document" in p.stderr and not cli.home.exists()
    # a command job takes --no-cache as any run does
    p = cli("run", "basics/hello-world.yml", "--no-cache", "-q", check=0)
    assert cli.home.exists()
