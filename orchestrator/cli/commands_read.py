"""The CLI's read commands: ``executions [list|show]``, ``logs``, ``metrics`` and ``artifacts``.

Owns: what a stored execution looks like on a terminal and in ``--json`` — the parameter values
and input artifacts it ran with, its steps, outputs and metrics — and the logs of its steps,
including the logs a cached step reused from an earlier execution. These commands never create
a store (:class:`~orchestrator.control.service.Service` with ``create=False``) and take any
unique id prefix.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from orchestrator.cli.commands import _dump, _service, _table
from orchestrator.cli.metrics_view import print_metrics, summarize
from orchestrator.cli.tables import Col
from orchestrator.control.inspect import log_source, run_inputs
from orchestrator.control.service import Service
from orchestrator.errors import NotFound
from orchestrator.model import Execution, StepRecord
from orchestrator.run import stepfiles


# ---------------------------------------------------------------------- executions
def execution_json(svc: Service, ex: Execution) -> dict[str, Any]:
    """Everything about one execution, as ``executions show --json`` and ``run --json`` print it."""
    arts = svc.store.list_artifacts(svc.rg, execution_id=ex.id)
    steps = svc.store.list_steps(svc.rg, ex.id)
    params, inputs = run_inputs(svc, ex)
    return {
        "id": ex.id, "status": ex.status.value, "statusMessage": ex.status_message,
        "scenarioId": ex.scenario_id, "executableId": ex.executable_id, "configurationId": ex.configuration_id,
        "configurationName": ex.configuration_name, "createdAt": ex.created_at, "startTime": ex.start_time,
        "completionTime": ex.completion_time, "targetStatus": ex.target_status,
        "parameters": params, "inputArtifacts": inputs,
        "outputArtifacts": [{"id": a.id, "name": a.name, "kind": a.kind, "url": a.url, "digest": a.digest}
                            for a in arts],
        "parentExecutionId": ex.parent_execution_id,
        "steps": [{"name": s.node_id, "kind": s.kind, "template": s.template, "state": s.state.value,
                   "exitCode": s.exit_code, "startedAt": s.started_at, "finishedAt": s.finished_at,
                   "attempts": s.attempt, "message": s.message, "log": s.log_path, "cache": s.cache_note}
                  for s in steps if s.kind == "leaf"],
        "attempts": [{"step": a.node_id, "attempt": a.attempt, "exitCode": a.exit_code, "startedAt": a.started_at,
                      "finishedAt": a.finished_at, "log": a.log_path, "message": a.message}
                     for a in svc.store.list_attempts(svc.rg, ex.id)],
        "metrics": summarize(svc.store.get_metrics(svc.rg, ex.id), svc.metric_goals(ex.executable_id)[0]),
    }


def cmd_executions(args: argparse.Namespace) -> int:
    svc = _service(args, create=False)
    if getattr(args, "excmd", None) == "show":
        return _show_execution(svc, svc.store.get_execution(svc.rg, svc.resolve_id("execution", args.id)), args.json)
    if args.schedule:
        return _by_schedule(svc, args)
    if getattr(args, "sweep", None):
        from orchestrator.cli.commands_sweeps import by_sweep

        return by_sweep(svc, args)
    rows = svc.store.list_executions(svc.rg, scenario_id=args.scenario, status=args.status,
                                     executable_id=args.executable, limit=args.limit)
    if args.json:
        _dump([{"id": e.id, "status": e.status.value, "executableId": e.executable_id, "scenarioId": e.scenario_id,
                "createdAt": e.created_at, "startTime": e.start_time, "completionTime": e.completion_time,
                "statusMessage": e.status_message} for e in rows])
        return 0
    _table("executions", ["id", Col("status"), Col("executable", fold=10), Col("scenario", drop=2),
                          Col("created", fold=10, drop=1), Col("duration")],
           [[e.id, e.status.value, e.executable_id, e.scenario_id, e.created_at[:19].replace("T", " "), _duration(e)]
            for e in rows])
    return 0


def _by_schedule(svc: Service, args: argparse.Namespace) -> int:
    """``executions --schedule ID``: the schedule's executions with their slots."""
    args.schedule = svc.resolve_id("schedule", args.schedule)  # an id or a unique prefix of one
    q = svc.store.query_executions(svc.rg, schedule_id=args.schedule, status=args.status)
    rows = svc.store.run_query(q, svc.store.EXECUTION_COLS, limit=args.limit)
    if args.json:
        _dump([{"id": r["id"], "status": r["status"], "executionScheduleId": r["execution_schedule_id"],
                "slot": r["schedule_slot"], "commitSha": r["commit_sha"], "createdAt": r["created_at"]}
               for r in rows])
        return 0
    _table(f"executions of schedule {args.schedule}", ["id", Col("status"), Col("slot", fold=10), "commit",
                                                        Col("created", fold=10, drop=1)],
           [[r["id"], r["status"], r["schedule_slot"] or "", (r["commit_sha"] or "")[:12], r["created_at"][:19]]
            for r in rows])
    return 0


def _duration(e: Execution) -> str:
    return span(e.start_time, e.completion_time)


def span(start: str | None, end: str | None) -> str:
    """``12.3s`` from two stored (or AI API) instants; up to now while ``end`` is empty."""
    import datetime

    if not start:
        return ""
    parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    try:
        stop = parse(end) if end else datetime.datetime.utcnow()
        return f"{(stop - parse(start)).total_seconds():.1f}s"
    except ValueError:  # an instant in another shape (a server of another version): leave it out
        return ""


def _show_execution(svc: Service, ex: Execution, as_json: bool) -> int:
    data = execution_json(svc, ex)
    if as_json:
        _dump(data)
        return 0
    print(f"execution {ex.id}: {ex.status.value}" + (f"  (from {ex.parent_execution_id})" if ex.parent_execution_id
                                                      else ""))
    print(f"  executable {ex.executable_id}\n  scenario   {ex.scenario_id}")
    if ex.configuration_id:  # what `schedules create --configuration` and `deploy --configuration` take
        print(f"  configuration {ex.configuration_id}")
    if ex.status_message:
        print(f"message: {ex.status_message}")
    if data["parameters"]:
        _table("parameters", ["name", Col("value", fold=12), "source"],
               [[p["name"], p["value"], p["source"]] for p in data["parameters"]])
    if data["inputArtifacts"]:
        _table("input artifacts", [Col("name", fold=8), Col("kind", drop=1), Col("url", fold=24), "artifact"],
               [[a["key"], a["kind"] or "", a["url"] or "(deleted)",
                 a["artifactId"] + (f" = {a['reference']} v{a['modelVersion']}" if a.get("reference") else "")]
                for a in data["inputArtifacts"]])
    _table("steps", [Col("step", fold=10), Col("template", fold=8, drop=2), "state", Col("exit", drop=1),
                     "duration", Col("message", fold=10)],
           [[s["name"], s["template"], s["state"], s["exitCode"],
             f"{s['finishedAt'] - s['startedAt']:.2f}s" if s["finishedAt"] and s["startedAt"] else "",
             (s["message"] or "").splitlines()[0][:80] if s["message"] else ""] for s in data["steps"]])
    if data["outputArtifacts"]:
        _table("output artifacts", [Col("name", fold=8), Col("kind", drop=1), Col("url", fold=24), "id"],
               [[a["name"], a["kind"], a["url"], a["id"]] for a in data["outputArtifacts"]])
    if data["metrics"]:
        print_metrics(data["metrics"])
    return 0


# ---------------------------------------------------------------------- logs
def cmd_logs(args: argparse.Namespace) -> int:
    svc = _service(args, create=False)
    ex = svc.store.get_execution(svc.rg, svc.resolve_id("execution", args.id))

    def current() -> list[StepRecord]:
        return [s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]

    steps = current()
    if args.step and not any(s.node_id == args.step for s in steps):
        raise NotFound(f"execution {ex.id} has no step {args.step!r}",
                           hint="steps: " + ", ".join(s.node_id for s in steps))
    offsets: dict[str, int] = {}  # per log file: a retried step's next attempt starts at its own 0
    told: set[str] = set()
    while True:
        steps = [s for s in current() if not args.step or s.node_id == args.step]
        logs = _attempt_logs(svc, ex.id, steps)
        for s in steps:
            src = log_source(svc, s)
            if src is not s and s.node_id not in told:
                told.add(s.node_id)
                print(f"({s.node_id} is CACHED: its log is the one of execution {src.execution_id} step "
                      f"{src.node_id!r})", file=sys.stderr)
            paths = [src.log_path] if src is not s else logs.get(s.node_id, [])
            for n, path in enumerate(paths, start=1):
                if not path:
                    continue
                pos = offsets.get(path, 0)
                try:
                    with stepfiles.open_read(path) as f:
                        f.seek(pos)
                        data = f.read()
                except FileNotFoundError:
                    continue
                except stepfiles.NotRegular:  # a link or a FIFO the step put there: never followed
                    if path not in told:
                        told.add(path)
                        print(f"({s.node_id}: {stepfiles.REPLACED})", file=sys.stderr)
                    continue
                if not data:
                    continue
                if pos == 0 and len(paths) > 1:
                    sys.stdout.flush()
                    print(f"({s.node_id}: attempt {n})", file=sys.stderr, flush=True)
                prefix = "" if len(steps) == 1 else f"{s.node_id} | "
                for line in data.decode("utf-8", "replace").splitlines():
                    print(prefix + line)
                offsets[path] = pos + len(data)
        sys.stdout.flush()
        if not args.follow:
            return 0
        if svc.store.get_execution(svc.rg, ex.id).status.terminal and all(
                offsets.get(path, 0) >= _size(path) for paths in _attempt_logs(svc, ex.id, steps).values()
                for path in paths if path):
            return 0
        time.sleep(0.5)


def _attempt_logs(svc: Service, execution_id: str, steps: list[StepRecord]) -> dict[str, list[str]]:
    """Per step, the log file of each of its attempts in order (a retried step has several; the one
    running now is the step's own ``log_path``); a CACHED step's is the log it reused."""
    out: dict[str, list[str]] = {}
    for a in sorted(svc.store.list_attempts(svc.rg, execution_id), key=lambda a: (a.node_id, a.attempt)):
        if a.log_path and a.log_path not in out.setdefault(a.node_id, []):
            out[a.node_id].append(a.log_path)
    for s in steps:
        src = log_source(svc, s)
        if src is not s:
            out[s.node_id] = [src.log_path]
        elif s.log_path and s.log_path not in out.setdefault(s.node_id, []):
            out[s.node_id].append(s.log_path)
    return out


def _size(path: str) -> int:
    return stepfiles.size(path)


# ---------------------------------------------------------------------- metrics / artifacts
def cmd_metrics(args: argparse.Namespace) -> int:
    svc = _service(args, create=False)
    ex = svc.store.get_execution(svc.rg, svc.resolve_id("execution", args.id))
    points = svc.store.get_metrics(svc.rg, ex.id)
    tags, info = svc.store.get_tags(svc.rg, ex.id)
    goals, bad = svc.metric_goals(ex.executable_id)
    if args.json:
        _dump({"executionId": ex.id,
               "metrics": [{"name": p.name, "value": p.value, "timestamp": p.timestamp, "step": p.step,
                            "labels": [{"name": k, "value": v} for k, v in p.labels]} for p in points],
               "tags": [{"name": k, "value": v} for k, v in tags],
               "customInfo": [{"name": k, "value": v} for k, v in info],
               "goals": goals, "summary": summarize(points, goals)})
        return 0
    if not points:
        print(f"no metrics for execution {ex.id}")
    else:
        print_metrics(summarize(points, goals), bad, declare=_azureml_declare(svc, ex.executable_id))
    if tags:
        _table("tags", ["name", Col("value", fold=12)], [list(t) for t in tags])
    return 0


def _azureml_declare(svc: Service, executable_id: str) -> str:
    """For an executable made from an Azure ML job (which has no template to annotate): how to rank
    its runs by a metric anyway; "" for any other executable."""
    import json

    try:
        doc = json.loads(str(svc.store.executable_document(svc.rg, executable_id).get("text") or "{}"))
    except (NotFound, ValueError):
        return ""
    if "orchestrator/azureml-form" not in ((doc.get("metadata") or {}).get("annotations") or {}):
        return ""
    return (f"an Azure ML job declares no goals; rank its runs with: orchestrator compare --executable "
            f"{executable_id} --sort NAME:max (or a sweep job's objective)")


def cmd_artifacts(args: argparse.Namespace) -> int:
    svc = _service(args, create=False)
    if getattr(args, "artcmd", None) == "show":
        a = svc.store.get_artifact(svc.rg, svc.resolve_id("artifact", args.id))
        data = {"id": a.id, "name": a.name, "kind": a.kind, "url": a.url, "scenarioId": a.scenario_id,
                "executionId": a.execution_id, "description": a.description, "digest": a.digest, "size": a.size,
                "labels": [{"key": k, "value": v} for k, v in a.labels], "createdAt": a.created_at}
        try:
            remote = svc.objects.remote_of(svc.rg, a.url)  # a bucket's artifact: where it is, not downloaded
            data["localPath"] = None if remote else str(svc.objects.local_path(svc.rg, a.url))
            if remote:
                data["location"] = remote[0].url(remote[1])
        except Exception:  # noqa: BLE001 - display only
            data["localPath"] = None
        if args.json:
            _dump(data)
        else:
            for k, v in data.items():
                if v is not None:  # a bucket's artifact has no local path: say where it is, not "None"
                    print(f"{k:>12}: {v}")
        return 0
    execution = svc.resolve_id("execution", args.execution) if args.execution else None
    rows = svc.store.list_artifacts(svc.rg, execution_id=execution, kind=args.kind, scenario_id=args.scenario)
    if args.json:
        _dump([{"id": a.id, "name": a.name, "kind": a.kind, "url": a.url, "executionId": a.execution_id,
                "digest": a.digest, "size": a.size, "createdAt": a.created_at} for a in rows])
        return 0
    _table("artifacts", ["id", Col("name", fold=8), Col("kind", drop=1), Col("url", fold=16, drop=3), "execution",
                         Col("size", drop=2)],
           [[a.id, a.name, a.kind, a.url, a.execution_id or "", a.size] for a in rows])
    return 0
