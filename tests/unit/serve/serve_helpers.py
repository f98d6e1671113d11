"""Helpers of the predictor tests: a pickle that bites, and sha256 of bytes."""

from __future__ import annotations

import builtins
import hashlib
import pickle
from pathlib import Path
from typing import Any


class Bite:
    """Unpickling this runs code: it writes ``marker`` (the proof a loader executed a pickle)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(Bite(marker))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
