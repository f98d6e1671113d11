"""The CLI's command bodies (presentation only): call the service, print tables or JSON.

Owns: how results look on a terminal (rich tables, progress lines on stderr) and in ``--json``.
Business rules live in :mod:`orchestrator.control.service` and below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.control.service import Service
from orchestrator.model import Execution, MetricPoint, Status, StepState

STATE_STYLE = {"SUCCEEDED": "green", "COMPLETED": "green", "FAILED": "red", "DEAD": "red", "RUNNING": "cyan",
               "SKIPPED": "yellow", "OMITTED": "yellow", "CACHED": "green", "STOPPED": "magenta"}


def _service(args: argparse.Namespace) -> Service:
    rg = getattr(args, "resource_group_remote", None) or os.environ.get("ORCHESTRATOR_RESOURCE_GROUP") or "default"
    return Service(args.home, rg=rg)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for c in columns:
        # ids and URLs are copied by people: never fold them
        table.add_column(c, overflow="fold", no_wrap=c in ("id", "url", "execution"))
    for r in rows:
        table.add_row(*[_styled(str(x)) if x is not None else "" for x in r])
    # Piped output (less, grep, CI logs) gets a wide table instead of rich's 80-column default.
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(table)


def _styled(text: str) -> str:
    from rich.markup import escape

    style = STATE_STYLE.get(text)
    return f"[{style}]{escape(text)}[/{style}]" if style else escape(text)


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ---------------------------------------------------------------------- validate / register
def cmd_validate(args: argparse.Namespace) -> int:
    from orchestrator.spec import validate_paths

    res = validate_paths(args.paths)
    problems = sorted(res.errors + res.warnings, key=lambda e: (e.file, e.line, e.col))
    if args.json:
        _dump({"ok": res.ok, "files": res.files, "errors": [e.to_dict() for e in res.errors],
               "warnings": [e.to_dict() for e in res.warnings],
               "executables": [w.executable_id for w in res.workflows]})
    else:
        for e in problems:
            print(e.format(), file=sys.stderr if e.severity == "error" else sys.stdout)
        print(f"{len(res.files)} file(s), {len(res.workflows)} template(s), {len(res.errors)} error(s), "
              f"{len(res.warnings)} warning(s)")
    return 0 if res.ok else 1


def cmd_register(args: argparse.Namespace) -> int:
    svc = _service(args)
    for spec in svc.register(args.paths):
        print(f"registered {spec.executable_id} (scenario {spec.scenario_id}, version {spec.version})")
    return 0


# ---------------------------------------------------------------------- run
class Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.width = 12

    def __call__(self, node: str, state: StepState, message: str, elapsed: float) -> None:
        if self.quiet:
            return
        self.width = max(self.width, min(len(node), 40))
        extra = ""
        if state.done and message:
            head, _, tail = message.partition("; last log lines:\n")
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            extra = "  " + head.splitlines()[0][:160] + (f" | {last[:160]}" if last else "")
        print(f"[{elapsed:8.2f}s] {node:<{self.width}} {state.value}{extra}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    svc = _service(args)
    plan = svc.plan(args.target, args.param, args.artifact, args.config)
    ex = svc.create(plan)
    return _execute(svc, args, ex, plan, {})


def _execute(svc: Service, args: argparse.Namespace, ex: Execution, plan: Any, reuse: dict[str, Any],
             force: set[str] | None = None) -> int:
    if not args.quiet:
        extra = f"  (from {ex.parent_execution_id})" if ex.parent_execution_id else ""
        print(f"execution {ex.id}  executable {ex.executable_id}  scenario {ex.scenario_id}{extra}", file=sys.stderr)
    t0 = time.monotonic()
    status = svc.execute(ex, plan, jobs=max(1, args.jobs), on_event=Progress(args.quiet),
                         cache=not args.no_cache, reuse=reuse, force=force)
    ex = svc.store.get_execution(svc.rg, ex.id)
    if args.json:
        _dump(_execution_json(svc, ex))
    else:
        print(f"{ex.id} {status.value} in {time.monotonic() - t0:.2f}s")
        for a in svc.store.list_artifacts(svc.rg, execution_id=ex.id):
            print(f"  output {a.name} ({a.kind}) {a.url}  id={a.id}")
    if status != Status.COMPLETED:
        if not args.json:
            print(f"  {ex.status_message}", file=sys.stderr)
        print(f"  logs:   orchestrator logs {ex.id}", file=sys.stderr)
        print(f"  resume: orchestrator executions resume {ex.id}", file=sys.stderr)
    return 0 if status == Status.COMPLETED else 1


def _resume(args: argparse.Namespace, from_step: str | None) -> int:
    svc = _service(args)
    ex, plan, reuse, force = svc.plan_resume(args.id, from_step)
    return _execute(svc, args, ex, plan, reuse, force)


# ---------------------------------------------------------------------- read side
def _execution_json(svc: Service, ex: Execution) -> dict[str, Any]:
    arts = svc.store.list_artifacts(svc.rg, execution_id=ex.id)
    steps = svc.store.list_steps(svc.rg, ex.id)
    return {
        "id": ex.id, "status": ex.status.value, "statusMessage": ex.status_message,
        "scenarioId": ex.scenario_id, "executableId": ex.executable_id, "configurationId": ex.configuration_id,
        "configurationName": ex.configuration_name, "createdAt": ex.created_at, "startTime": ex.start_time,
        "completionTime": ex.completion_time, "targetStatus": ex.target_status,
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
        "metrics": summarize(svc.store.get_metrics(svc.rg, ex.id)),
    }


def cmd_executions(args: argparse.Namespace) -> int:
    svc = _service(args)
    sub = getattr(args, "excmd", None)
    if sub == "show":
        return _show_execution(svc, args)
    if sub == "stop":
        ex = svc.stop(args.id, wait=args.wait)
        print(f"{ex.id} {ex.status.value}" + (f": {ex.status_message}" if ex.status_message else ""))
        return 0 if ex.status.terminal else 1
    if sub in ("resume", "rerun"):
        svc.close()
        return _resume(args, getattr(args, "from_step", None))
    if sub == "explain":
        items = svc.explain(args.id)
        if args.json:
            _dump(items)
        else:
            _table(f"cache decisions of {args.id}", ["step", "state", "why"],
                   [[i["step"], i["state"], i["note"]] for i in items])
        return 0
    rows = svc.store.list_executions(svc.rg, scenario_id=args.scenario, status=args.status,
                                     executable_id=args.executable, limit=args.limit)
    if args.json:
        _dump([{"id": e.id, "status": e.status.value, "executableId": e.executable_id, "scenarioId": e.scenario_id,
                "createdAt": e.created_at, "startTime": e.start_time, "completionTime": e.completion_time,
                "statusMessage": e.status_message} for e in rows])
        return 0
    _table("executions", ["id", "status", "executable", "scenario", "created", "duration"],
           [[e.id, e.status.value, e.executable_id, e.scenario_id, e.created_at[:19], _duration(e)] for e in rows])
    return 0


def _duration(e: Execution) -> str:
    import datetime

    if not e.start_time:
        return ""
    parse = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    end = parse(e.completion_time) if e.completion_time else datetime.datetime.utcnow()
    return f"{(end - parse(e.start_time)).total_seconds():.1f}s"


def _show_execution(svc: Service, args: argparse.Namespace) -> int:
    ex = svc.store.get_execution(svc.rg, args.id)
    data = _execution_json(svc, ex)
    if args.json:
        _dump(data)
        return 0
    print(f"execution {ex.id}: {ex.status.value}  executable {ex.executable_id}  scenario {ex.scenario_id}")
    if ex.status_message:
        print(f"message: {ex.status_message}")
    _table("steps", ["step", "template", "state", "exit", "duration", "message"],
           [[s["name"], s["template"], s["state"], s["exitCode"],
             f"{s['finishedAt'] - s['startedAt']:.2f}s" if s["finishedAt"] and s["startedAt"] else "",
             (s["message"] or "").splitlines()[0][:80] if s["message"] else ""] for s in data["steps"]])
    if data["outputArtifacts"]:
        _table("output artifacts", ["name", "kind", "url", "id"],
               [[a["name"], a["kind"], a["url"], a["id"]] for a in data["outputArtifacts"]])
    if data["metrics"]:
        _metrics_table(data["metrics"])
    return 0


def summarize(points: list[MetricPoint]) -> list[dict[str, Any]]:
    """Per metric: last, min, max, count and the step of the best (max) value."""
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        m = out.setdefault(p.name, {"name": p.name, "last": p.value, "min": p.value, "max": p.value,
                                    "count": 0, "bestStep": p.step})
        m["count"] += 1
        m["last"] = p.value
        m["min"] = min(m["min"], p.value)
        if p.value > m["max"] or m["count"] == 1:
            m["max"], m["bestStep"] = p.value, p.step
    return list(out.values())


def _metrics_table(summary: list[dict[str, Any]]) -> None:
    _table("metrics", ["metric", "last", "min", "max", "step of best", "points"],
           [[m["name"], f"{m['last']:.6g}", f"{m['min']:.6g}", f"{m['max']:.6g}",
             "" if m["bestStep"] is None else m["bestStep"], m["count"]] for m in summary])


def cmd_metrics(args: argparse.Namespace) -> int:
    svc = _service(args)
    points = svc.store.get_metrics(svc.rg, args.id)
    tags, info = svc.store.get_tags(svc.rg, args.id)
    if args.json:
        _dump({"executionId": args.id,
               "metrics": [{"name": p.name, "value": p.value, "timestamp": p.timestamp, "step": p.step,
                            "labels": [{"name": k, "value": v} for k, v in p.labels]} for p in points],
               "tags": [{"name": k, "value": v} for k, v in tags],
               "customInfo": [{"name": k, "value": v} for k, v in info]})
        return 0
    if not points:
        print(f"no metrics for execution {args.id}")
    else:
        _metrics_table(summarize(points))
    if tags:
        _table("tags", ["name", "value"], [list(t) for t in tags])
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    svc = _service(args)
    ex = svc.store.get_execution(svc.rg, args.id)
    steps = [s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"]
    if args.step:
        match = [s for s in steps if s.node_id == args.step]
        if not match:
            from orchestrator.errors import NotFound

            raise NotFound(f"execution {ex.id} has no step {args.step!r}",
                           hint="steps: " + ", ".join(s.node_id for s in steps))
        steps = match
    offsets: dict[str, int] = {}
    while True:
        for s in steps:
            if not s.log_path:
                continue
            pos = offsets.get(s.node_id, 0)
            try:
                with open(s.log_path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                text = data.decode("utf-8", "replace")
                prefix = "" if len(steps) == 1 else f"{s.node_id} | "
                for line in text.splitlines():
                    print(prefix + line)
                offsets[s.node_id] = pos + len(data)
        sys.stdout.flush()
        if not args.follow:
            return 0
        ex = svc.store.get_execution(svc.rg, ex.id)
        if ex.status.terminal and all(offsets.get(s.node_id, 0) >= _size(s.log_path) for s in steps):
            return 0
        time.sleep(0.5)
        steps = [s for s in svc.store.list_steps(svc.rg, ex.id) if s.kind == "leaf"
                 and (not args.step or s.node_id == args.step)]


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def cmd_artifacts(args: argparse.Namespace) -> int:
    svc = _service(args)
    if getattr(args, "artcmd", None) == "show":
        a = svc.store.get_artifact(svc.rg, args.id)
        data = {"id": a.id, "name": a.name, "kind": a.kind, "url": a.url, "scenarioId": a.scenario_id,
                "executionId": a.execution_id, "description": a.description, "digest": a.digest, "size": a.size,
                "labels": [{"key": k, "value": v} for k, v in a.labels], "createdAt": a.created_at}
        try:
            data["localPath"] = str(svc.objects.local_path(svc.rg, a.url))
        except Exception:  # noqa: BLE001 - display only
            data["localPath"] = None
        if args.json:
            _dump(data)
        else:
            for k, v in data.items():
                print(f"{k:>12}: {v}")
        return 0
    rows = svc.store.list_artifacts(svc.rg, execution_id=args.execution, kind=args.kind, scenario_id=args.scenario)
    if args.json:
        _dump([{"id": a.id, "name": a.name, "kind": a.kind, "url": a.url, "executionId": a.execution_id,
                "digest": a.digest, "size": a.size, "createdAt": a.created_at} for a in rows])
        return 0
    _table("artifacts", ["id", "name", "kind", "url", "execution", "size"],
           [[a.id, a.name, a.kind, a.url, a.execution_id or "", a.size] for a in rows])
    return 0


__all__ = ["cmd_validate", "cmd_run", "Path"]
