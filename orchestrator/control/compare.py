"""Compare executions: one row per execution with its status, duration, every parameter and every
metric summary (last, and best by the metric's goal), the parameters that differ marked, the best
row named.

Owns: the compare use case (selection by ids, scenario or executable; ``--sort METRIC[:min|max]``
or the first declared goal; which row is best) over the summary rows the store keeps at ingest
(:mod:`orchestrator.store.experiment_records`): it never reads a metric series. Goals come from
:func:`orchestrator.control.goals.metric_goals`. Used by the CLI and the REST route alike.
Must not import: api, cli (they call this).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from orchestrator.control.goals import metric_goals
from orchestrator.errors import NotFound, UsageError
from orchestrator.store.sqlite import SqliteStore

MAX_ROWS = 10000
MAX_IDS = 1000
DEFAULT_LIMIT = 1000
GOALS = ("min", "max")


def open_store(home: str | None) -> SqliteStore:
    """The store of an existing home for compare's read, with dead runners reaped (as
    :class:`~orchestrator.control.service.Service` does for reads), without importing the service
    and through it the runner, planner and validator: about 100 ms of the 0.3 s CLI target."""
    from orchestrator.control.home import locate_home
    from orchestrator.run import reaper

    choice = locate_home(home)
    if not choice.has_store:
        raise choice.missing()
    store = SqliteStore(str(choice.path / "orchestrator.db"))
    reaper.reap(store)
    return store


def parse_sort(text: str | None) -> tuple[str, str | None] | None:
    """``METRIC`` or ``METRIC:min|max`` -> (metric, goal or None)."""
    if not text:
        return None
    name, sep, goal = text.rpartition(":")
    if not sep or goal.lower() not in GOALS:
        return text, None
    if not name:
        raise UsageError(f"bad sort {text!r}", hint="use METRIC or METRIC:min or METRIC:max")
    return name, goal.lower()


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.datetime.fromisoformat(start)
        b = datetime.datetime.fromisoformat(end)
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def compare(store: SqliteStore, rg: str, *, execution_ids: Sequence[str] = (), scenario_id: str | None = None,
            executable_id: str | None = None, sort: str | None = None, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The comparison, as the CLI's ``--json`` and ``GET /v2/lm/compare`` answer it.

    Rows are sorted best first by the sort metric's best value (rows without it last, then newest
    first); ``best`` is the first COMPLETED row that has the metric. Without ``sort`` the first
    metric with a declared goal is used; with no goal at all rows stay newest first and none is best.
    """
    if not (execution_ids or scenario_id or executable_id):
        raise UsageError("nothing to compare", hint="name executions, a scenario or an executable")
    if not 1 <= limit <= MAX_ROWS:
        raise UsageError(f"limit must be between 1 and {MAX_ROWS}, got {limit}")
    ids = list(dict.fromkeys(execution_ids))
    if len(ids) > MAX_IDS:
        raise UsageError(f"at most {MAX_IDS} execution ids at once, got {len(ids)}",
                         hint="select by scenario or executable instead")
    rows = store.compare_rows(rg, execution_ids=ids, scenario_id=scenario_id,
                              executable_id=executable_id, limit=limit)
    if ids:
        missing = sorted(set(ids) - {r["id"] for r in rows})
        if missing:
            raise NotFound(f"execution{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found "
                           f"in resource group {rg!r}")
    goals: dict[str, str] = {}
    for exe in dict.fromkeys(r["executableId"] for r in rows):
        for name, goal in metric_goals(store, rg, exe)[0].items():
            goals.setdefault(name, goal)
    metric_names: list[str] = []
    seen: set[str] = set()
    for r in rows:
        r["duration"] = _seconds(r["startTime"], r["completionTime"])
        metrics = {}
        for m in r["metrics"]:
            goal = goals.get(m["name"])
            m["goal"] = goal
            m["best"] = m[goal] if goal else None
            m["bestStep"] = m[goal + "Step"] if goal else None
            metrics[m.pop("name")] = m
        for name in metrics:
            if name not in seen:
                seen.add(name)
                metric_names.append(name)
        r["metrics"] = metrics
    params = sorted({p for r in rows for p in r["parameters"]})
    differing = [p for p in params if len({r["parameters"].get(p) for r in rows}) > 1]
    chosen = _sort_key(parse_sort(sort), goals, metric_names)
    best_id = None
    if chosen:
        metric, goal = chosen
        sign = 1.0 if goal == "min" else -1.0

        def value(r: dict[str, Any]) -> float | None:
            m = r["metrics"].get(metric)
            return None if m is None else float(m[goal])  # the series' min or max: its best that way

        rows.sort(key=lambda r: (value(r) is None, sign * (value(r) or 0.0)))
        best_id = next((r["id"] for r in rows if r["status"] == "COMPLETED" and value(r) is not None), None)
    for r in rows:
        r["best"] = r["id"] == best_id
    return {"count": len(rows), "parameters": params, "differingParameters": differing, "metrics": metric_names,
            "goals": {n: goals[n] for n in metric_names if n in goals},
            "sort": {"metric": chosen[0], "goal": chosen[1]} if chosen else None, "bestExecutionId": best_id,
            "executions": rows}


def _sort_key(sort: tuple[str, str | None] | None, goals: dict[str, str],
              metric_names: list[str]) -> tuple[str, str] | None:
    if sort is None:
        first = next((n for n in goals if n in metric_names), None)
        return (first, goals[first]) if first else None
    metric, goal = sort
    goal = goal or goals.get(metric)
    if goal is None:
        raise UsageError(f"metric {metric!r} has no declared goal",
                         hint=f"say which way is better: --sort {metric}:min or --sort {metric}:max")
    return metric, goal
