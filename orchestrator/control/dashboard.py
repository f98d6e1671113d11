"""Read side of the web dashboard: the executions page, one execution (steps, attempts, DAG,
inputs with lineage, outputs, cache explanation), its live state and its log tail.

Owns: the filters and paging of the executions page (status, scenario, executable, schedule, a
creation-time window, a free-text search, all bound, scoped to the service's resource group),
the DAG of an execution (the compiled graph's steps with composite nodes collapsed, each with
its stored state), and the log chunk a follower asks for from a byte offset. Reads only through
the store's scoped reads: another group's id is :class:`NotFound` here exactly as in the REST
API. Must not import api or cli (they call this).
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

from orchestrator.control.inspect import log_source, run_inputs
from orchestrator.errors import NotFound, UsageError
from orchestrator.model import Execution, StepRecord
from orchestrator.run import stepfiles

if TYPE_CHECKING:
    from orchestrator.control.service import Service

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE = 50
MAX_SEARCH = 200
LOG_CHUNK = 256 * 1024  # bytes one follow request returns at most
STATUSES = ("UNKNOWN", "PENDING", "RUNNING", "COMPLETED", "DEAD", "STOPPING", "STOPPED")
_DAG_CACHE: dict[tuple[str, str], dict[str, Any]] = {}


def _when(text: str | None, field: str, *, end: bool = False) -> str | None:
    """A ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM`` (UTC) bound as the store's ISO text, or None; a
    bare date as an ``end`` means the end of that day."""
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            moment = datetime.datetime.strptime(text.strip()[:19], fmt)
        except ValueError:
            continue
        if end and fmt == "%Y-%m-%d":
            return moment.strftime("%Y-%m-%dT23:59:59.999999Z")
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    raise UsageError(f"{field}: {text[:40]!r} is not a date", hint="use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")


def list_executions(svc: Service, *, status: str = "", scenario: str = "", executable: str = "",
                    schedule: str = "", since: str = "", until: str = "", search: str = "",
                    page: int = 1, per_page: int = DEFAULT_PAGE, sweep: str = "") -> dict[str, Any]:
    """One page of the group's executions, newest first, and how many match in all; ``sweep``
    keeps the trial executions of that sweep of the group (another group's sweep: NotFound)."""
    if status and status not in STATUSES:
        raise UsageError(f"unknown status {status[:20]!r}", hint="one of " + ", ".join(STATUSES))
    if per_page not in PAGE_SIZES:
        per_page = DEFAULT_PAGE
    if len(search) > MAX_SEARCH:
        raise UsageError(f"search text over {MAX_SEARCH} characters")
    q = svc.store.query_executions(svc.rg, scenario_id=scenario or None, executable_ids=[executable] if executable
                                   else None, schedule_id=schedule or None, status=status or None)
    lo, hi = _when(since, "from"), _when(until, "to", end=True)
    if sweep:
        from orchestrator.store.sweep_records import SweepRecords

        trial_ids = SweepRecords(svc.store).execution_ids(svc.rg, sweep)
        q.where.append(f"id IN ({','.join('?' * len(trial_ids))})" if trial_ids else "0")
        q.args.extend(trial_ids)
    if lo:
        q.where.append("created_at>=?")
        q.args.append(lo)
    if hi:
        q.where.append("created_at<=?")
        q.args.append(hi)
    q.search(("id", "executable_id", "configuration_name", "status_message", "scenario_id"), search or None, True)
    total = svc.store.count_query(q)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = svc.store.run_query(q, svc.store.EXECUTION_COLS, limit=per_page, offset=(page - 1) * per_page)
    for r in rows:
        r["duration"] = duration(r["start_time"], r["completion_time"])
    return {"rows": rows, "count": total, "page": page, "pages": pages, "per_page": per_page}


def facets(svc: Service) -> dict[str, list[Any]]:
    """The values the executions filters offer: scenarios, executables, schedules and sweeps
    (``(id, name)``, newest first) of the group."""
    from orchestrator.store.sweep_records import SweepRecords

    return {"scenarios": sorted(r["id"] for r in svc.store.list_scenarios(svc.rg)),
            "executables": sorted(e.id for e in svc.store.list_executables(svc.rg)),
            "schedules": sorted(r["id"] for r in svc.store.list_schedules(svc.rg, limit=500)),
            "sweeps": [(r.id, r.name) for r in SweepRecords(svc.store).list(svc.rg, limit=500)]}


def duration(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (or to now while running), None before the start."""
    if not start:
        return None
    try:
        a = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = (datetime.datetime.fromisoformat(end.replace("Z", "+00:00")) if end
             else datetime.datetime.now(datetime.timezone.utc))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 2)


def _step(s: StepRecord) -> dict[str, Any]:
    took = round(s.finished_at - s.started_at, 2) if s.started_at and s.finished_at else None
    return {"name": s.node_id, "template": s.template, "state": s.state.value, "exitCode": s.exit_code,
            "attempts": s.attempt, "duration": took, "message": (s.message or "").strip(), "cache": s.cache_note}


def execution(svc: Service, execution_id: str) -> dict[str, Any]:
    """Everything the execution page shows, in one scoped read of each kind."""
    ex = svc.store.get_execution(svc.rg, execution_id)
    params, inputs = run_inputs(svc, ex)
    for item in inputs:  # lineage: which execution produced the input artifact
        try:
            item["producer"] = svc.store.get_artifact(svc.rg, item["artifactId"]).execution_id
        except NotFound:
            item["producer"] = None
    outputs = [{"id": a.id, "name": a.name, "kind": a.kind, "url": a.url, "digest": a.digest, "size": a.size}
               for a in svc.store.list_artifacts(svc.rg, execution_id=ex.id)]
    models = [{"model": mv.model, "version": mv.version, "artifactId": mv.artifact_id, "aliases": list(mv.aliases)}
              for mv in svc.store.list_model_versions(svc.rg, execution_id=ex.id)]
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in svc.store.list_attempts(svc.rg, ex.id):
        attempts.setdefault(a.node_id, []).append({
            "attempt": a.attempt, "exitCode": a.exit_code, "message": (a.message or "").strip(),
            "duration": round(a.finished_at - a.started_at, 2) if a.started_at and a.finished_at else None})
    steps = [dict(_step(s), attemptList=attempts.get(s.node_id, []))
             for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]
    children = svc.store.run_query(_children(svc, ex.id), "id, status, created_at", limit=20)
    return {"ex": ex, "parameters": params, "inputs": inputs, "outputs": outputs, "models": models,
            "steps": steps, "explain": svc.explain(ex.id), "summaries": svc.store.metric_summaries(svc.rg, ex.id),
            "duration": duration(ex.start_time, ex.completion_time), "children": children}


def _children(svc: Service, execution_id: str) -> Any:
    """Executions resumed from this one (``parent_execution_id``)."""
    return svc.store.query_executions(svc.rg).eq("parent_execution_id", execution_id)


def live(svc: Service, execution_id: str) -> dict[str, Any]:
    """What the execution page polls: status and every step's state."""
    ex = svc.store.get_execution(svc.rg, execution_id)
    steps = [_step(s) for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]
    return {"id": ex.id, "status": ex.status.value, "terminal": ex.status.terminal, "message": ex.status_message,
            "duration": duration(ex.start_time, ex.completion_time), "steps": steps}


def dag(svc: Service, ex: Execution) -> dict[str, Any]:
    """The execution's steps as nodes and their dependencies as edges (composite enter/exit nodes
    collapsed), each node with its stored state; cached per executable version."""
    key = (svc.rg, ex.executable_id)
    try:
        digest = svc.store.get_executable(svc.rg, ex.executable_id).digest
    except NotFound:
        digest = ""
    shape = _DAG_CACHE.get(key)
    if shape is None or shape["digest"] != digest:
        shape = _shape(svc, ex.executable_id, digest)
        if len(_DAG_CACHE) > 256:
            _DAG_CACHE.clear()
        _DAG_CACHE[key] = shape
    steps = [s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]
    states = {s.node_id: s.state.value for s in steps}
    nodes = [{"id": n, "template": t, "state": states.get(n, "PENDING")} for n, t in shape["nodes"]]
    known = {n for n, _ in shape["nodes"]}
    nodes += [{"id": s.node_id, "template": s.template, "state": s.state.value} for s in steps
              if s.node_id not in known]
    return {"nodes": nodes, "edges": [list(e) for e in shape["edges"]]}


def _shape(svc: Service, executable_id: str, digest: str) -> dict[str, Any]:
    from orchestrator.plan.graph import LEAF, compile_workflow

    try:
        spec, _ = svc.load_executable(executable_id)
    except (NotFound, UsageError):
        return {"digest": digest, "nodes": [], "edges": []}
    graph = compile_workflow(spec)
    leaves = [n for n in graph.topo() if graph.nodes[n].kind == LEAF]
    edges: set[tuple[str, str]] = set()
    for leaf in leaves:  # next leaves reachable through enter/exit nodes only
        todo, seen = list(graph.succ.get(leaf, ())), set()
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if graph.nodes[n].kind == LEAF:
                edges.add((leaf, n))
            else:
                todo.extend(graph.succ.get(n, ()))
    return {"digest": digest, "nodes": [(n, graph.nodes[n].template.name) for n in leaves], "edges": sorted(edges)}


def log_chunk(svc: Service, execution_id: str, step: str, offset: int) -> dict[str, Any]:
    """The bytes of one step's log from ``offset`` (at most :data:`LOG_CHUNK`), the next offset,
    whether more may come (the step has not ended) and, for a CACHED step, where its log is from."""
    ex = svc.store.get_execution(svc.rg, execution_id)
    steps = {s.node_id: s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"}
    if step not in steps:
        raise NotFound(f"execution {ex.id} has no step {step[:80]!r}")
    own = steps[step]
    src = log_source(svc, own)
    text, offset, size = read_chunk(src.log_path, offset)
    ended = own.state.done or ex.status.terminal
    return {"text": text, "offset": offset, "done": ended and offset >= size,
            "from": None if src is own else f"{src.execution_id} {src.node_id}"}


def read_chunk(path: str | None, offset: int) -> tuple[str, int, int]:
    """A log file's text from byte ``offset`` (at most :data:`LOG_CHUNK`), the next offset and the
    file's size (nothing yet, or no file: ``("", offset, 0)``)."""
    if not path:
        return "", offset, 0
    try:
        data, size = stepfiles.read_bytes(path, LOG_CHUNK, max(0, offset))
    except (OSError, stepfiles.NotRegular):  # missing, or a link/FIFO the step put there: no log
        return "", offset, 0
    return data.decode("utf-8", "replace"), max(0, offset) + len(data), size


def explain_rows(items: list[dict[str, object]]) -> list[dict[str, object]]:
    """The cache explanation with its changes listed (display)."""
    return [{**i, "changes": list(i.get("changes") or [])} for i in items]


def as_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
