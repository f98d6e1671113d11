"""How metrics look: per metric last, min and max with their steps, and the best by the metric's goal.

Owns: the summary of a metric series and its table. "Best" follows the goal the template
declares (annotation ``orchestrator/metrics: "loss:min,roc_auc:max"``, read by
:meth:`~orchestrator.control.service.Service.metric_goals`); a metric without a goal gets no best,
only the steps of its minimum and its maximum. Used by the local and the ``--server`` commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.cli.tables import Col, note, print_table
from orchestrator.model import MetricPoint

ANNOTATION_EXAMPLE = 'metadata.annotations: {orchestrator/metrics: "f1:max,loss:min"}'


def summarize(points: Sequence[MetricPoint], goals: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Per metric, in first-logged order: last, min/max and the step each was first reached, the
    point count, the goal (``min``/``max``/None) and, with a goal, ``best`` and ``bestStep``."""
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        m = out.get(p.name)
        if m is None:
            m = out[p.name] = {"name": p.name, "goal": (goals or {}).get(p.name), "last": p.value,
                               "min": p.value, "minStep": p.step, "max": p.value, "maxStep": p.step, "count": 0}
        m["count"] += 1
        m["last"] = p.value
        if p.value < m["min"]:
            m["min"], m["minStep"] = p.value, p.step
        if p.value > m["max"]:
            m["max"], m["maxStep"] = p.value, p.step
    for m in out.values():
        goal = m["goal"]
        m["best"] = m[goal] if goal else None
        m["bestStep"] = m[goal + "Step"] if goal else None
    return list(out.values())


def _at(value: float | None, step: int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" + ("" if step is None else f" @{step}")


def print_metrics(summary: list[dict[str, Any]], bad_goals: Sequence[str] = (), declare: str = "") -> None:
    """The metrics table (``@N`` = at step N) and a note on metrics without a declared goal (how to
    declare one: ``declare``, else the template annotation)."""
    print_table("metrics (value @step)",
                [Col("metric", fold=12), Col("goal"), Col("last"), Col("min"), Col("max"), Col("best"),
                 Col("points", drop=1)],  # numbers never fold: the name folds, then points go
                [[m["name"], m["goal"] or "?", f"{m['last']:.6g}", _at(m["min"], m["minStep"]),
                  _at(m["max"], m["maxStep"]), _at(m["best"], m["bestStep"]), m["count"]] for m in summary])
    unknown = [m["name"] for m in summary if not m["goal"] and m["count"] > 1 and m["min"] != m["max"]]
    if unknown:
        note(f"no goal declared for {', '.join(unknown)}: min and max are shown, no best "
             f"({declare or 'declare it in the template: ' + ANNOTATION_EXAMPLE})")
    if bad_goals:
        note(f"ignored in orchestrator/metrics: {', '.join(repr(b) for b in bad_goals)} (use NAME:min or NAME:max)")
