"""Which way each metric of an executable is better, as its template declares it.

Owns: reading the ``orchestrator/metrics`` annotation (``"loss:min,roc_auc:max"``) from the stored
WorkflowTemplate: the workflow's own ``metadata.annotations`` win over a template's. Metrics with
no declared goal get none (the CLI then shows minimum and maximum, never a "best").
"""

from __future__ import annotations

from orchestrator.errors import NotFound
from orchestrator.spec.yamlsafe import load_bytes
from orchestrator.store.sqlite import SqliteStore

METRICS_ANNOTATION = "orchestrator/metrics"


def metric_goals(store: SqliteStore, rg: str, executable_id: str) -> tuple[dict[str, str], list[str]]:
    """Goals (``min``/``max``) from the ``orchestrator/metrics`` annotation (``"loss:min,roc_auc:max"``)
    of the executable's WorkflowTemplate (a template's own annotation counts where that is
    silent), and the entries that are not ``name:min|max``."""
    try:
        doc = store.executable_document(rg, executable_id)
    except NotFound:
        return {}, []
    docs, _ = load_bytes(str(doc["text"]).encode(), executable_id)
    data = next((d.data for d in docs if d.index == doc.get("index", 0)), None)
    if not isinstance(data, dict):
        return {}, []
    metas = [t.get("metadata") for t in (data.get("spec") or {}).get("templates") or [] if isinstance(t, dict)]
    goals: dict[str, str] = {}
    bad: list[str] = []
    for meta in [*metas, data.get("metadata")]:  # the workflow's annotation last: it wins
        text = ((meta or {}).get("annotations") or {}).get(METRICS_ANNOTATION) if isinstance(meta, dict) else None
        for item in str(text or "").split(","):
            name, _, goal = item.strip().rpartition(":")
            goal = {"min": "min", "minimize": "min", "max": "max", "maximize": "max"}.get(goal.strip().lower(), "")
            if name.strip() and goal:
                goals[name.strip()] = goal
            elif item.strip():
                bad.append(item.strip())
    return goals, bad
