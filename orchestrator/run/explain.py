"""``orchestrator executions explain``: why each step of an execution hit or missed the step cache.

Owns: the per-step verdict (hit, reused, miss with the inputs that changed since the last run of
the same step, not run). Reads the store only; the key's components come from
:mod:`orchestrator.run.caching`.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.run.caching import diff


def explain(store: Any, rg: str, execution_id: str) -> list[dict[str, object]]:
    ex = store.get_execution(rg, execution_id)
    out: list[dict[str, object]] = []
    for s in store.list_steps(rg, ex.id):
        if s.kind != "leaf":
            continue
        item: dict[str, object] = {"step": s.node_id, "state": s.state.value, "key": s.cache_key,
                                   "note": s.cache_note, "changes": []}
        if s.state.value in ("SKIPPED", "OMITTED", "PENDING"):
            item["note"] = f"not run ({s.state.value.lower()})"
        elif s.cache_inputs and not s.cache_note.startswith(("hit", "reused")):
            prev = store.previous_components(rg, ex.executable_id, s.node_id, ex.id)
            if prev is None:
                item["note"] = "miss: no earlier run of this step"
            else:
                changes = diff(json.loads(prev[1]), json.loads(s.cache_inputs))
                item["changes"] = changes
                item["note"] = (f"miss: differs from execution {prev[0]} in " + "; ".join(changes) if changes
                                else f"miss: same inputs as execution {prev[0]}, whose step did not succeed")
        out.append(item)
    return out
