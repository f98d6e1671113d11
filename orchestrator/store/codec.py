"""How the sqlite store encodes values in TEXT columns: compact JSON, and lists of pairs.

Owns nothing else; shared by the store's modules.
"""

from __future__ import annotations

import json
from typing import Any


def j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def pairs(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in json.loads(text or "[]"))
