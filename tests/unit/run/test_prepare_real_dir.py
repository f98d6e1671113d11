"""``prepare.real_dir`` (finding 3): a link a step left at an entry of its directory is unlinked,
never followed; a real directory is wiped only on request."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.run.prepare import real_dir


def test_real_dir_unlinks_a_link_and_wipes_only_on_request(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    fs = tmp_path / "fs"
    fs.symlink_to(outside)
    real_dir(fs, wipe=True)
    assert not os.path.lexists(fs) and (outside / "keep").read_text() == "x"
    fs.mkdir()
    (fs / "left").write_text("y")
    real_dir(fs, wipe=False)
    assert (fs / "left").exists()
    real_dir(fs, wipe=True)
    assert not fs.exists()
