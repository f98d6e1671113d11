"""``resolve_inside(strict_root=True)`` (finding 3): a root or component a step could swap for a
symlink is refused, while the default keeps following links inside the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ArtifactError
from orchestrator.store.paths import resolve_inside


def test_a_symlinked_root_is_refused_only_when_strict(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "fs").symlink_to(outside)
    assert resolve_inside(tmp_path / "fs", "data/x") == outside / "data" / "x"  # other callers unchanged
    with pytest.raises(ArtifactError, match="symlink"):
        resolve_inside(tmp_path / "fs", "data/x", strict_root=True)


def test_a_symlinked_component_below_the_root_is_refused(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    (fs / "real").mkdir(parents=True)
    (fs / "link").symlink_to(fs / "real")  # even pointing inside: nothing is followed
    assert resolve_inside(fs, "real/new/file", strict_root=True) == fs / "real" / "new" / "file"
    with pytest.raises(ArtifactError, match="symlink"):
        resolve_inside(fs, "link/file", strict_root=True)
