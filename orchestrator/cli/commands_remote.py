"""The read and run commands against a server (``--server URL`` or ``ORCHESTRATOR_SERVER``).

Owns: ``run``, ``executions [list|show|stop]``, ``logs``, ``metrics`` and ``artifacts`` over the
AI API v2, printing what the local commands print (tables or ``--json``), so a team can share one
store; ``compare`` and ``models`` are in :mod:`orchestrator.cli.commands_remote_models`, ``sweeps`` in
:mod:`orchestrator.cli.commands_remote_sweeps`; ids are taken whole or as a unique prefix
(:mod:`orchestrator.cli.remote_ids`). ``run`` takes a registered executable id, creates the configuration
(and artifacts for URL bindings) on the server, starts the execution and follows it to its end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from orchestrator.cli.client import Client
from orchestrator.cli.remote_ids import resolve_remote
from orchestrator.errors import UsageError

REMOTE = frozenset({"run", "executions", "logs", "metrics", "artifacts", "compare", "models", "deploy",
                    "deployments", "sweeps", "configurations"})
TERMINAL = ("COMPLETED", "DEAD", "STOPPED")


def _client(args: argparse.Namespace) -> Client:
    return Client.from_options(args.server, getattr(args, "resource_group_remote", None))


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _table(title: str, columns: list[Any], rows: list[list[Any]]) -> None:
    from orchestrator.cli.commands import _table as table

    table(title, columns, rows)


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad {what} {item!r}", hint="use -p name=value / --artifact name=ID|URL")
        out.append((key, value))
    return out


def _find_executable(c: Client, executable_id: str) -> dict[str, Any]:
    for sc in c.call("GET", "/v2/lm/scenarios")["resources"]:
        for exe in c.call("GET", f"/v2/lm/scenarios/{sc['id']}/executables")["resources"]:
            if exe["id"] == executable_id:
                return dict(exe)
    raise UsageError(f"the server has no executable {executable_id!r}",
                     hint="register it on the server (`orchestrator register`, `serve --workflows` or git sync)")


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands_azureml import cmd_run_remote, is_azureml_file

    c = _client(args)
    if is_azureml_file(args.target) and not args.config:  # checked and run by the server (same machine)
        return cmd_run_remote(c, args)
    from orchestrator.cli.commands_sweeps import is_sweep_file, refuse_run_only_flags

    if is_sweep_file(args.target) and not args.config:  # our Sweep kind: POST /v2/lm/sweeps, then follow it
        refuse_run_only_flags(args, sweep_document=True)
        from orchestrator.spec.yamlsafe import load_file

        docs, errs = load_file(args.target)
        if errs or len(docs) != 1:
            raise UsageError(f"{args.target} must hold exactly one Sweep document",
                             hint="check it with: orchestrator validate FILE")
        return follow_sweep(c, args, c.call("POST", "/v2/lm/sweeps", docs[0].data)["id"])
    if args.config or not args.target or args.target.endswith((".yaml", ".yml")):
        raise UsageError("with --server, run takes a registered executable id",
                         hint="register the template on the server first")
    exe = _find_executable(c, args.target)
    artifacts = []
    for key, value in _pairs(args.artifact, "artifact binding"):
        if "://" in value:
            kind = next((a.get("kind") for a in exe["inputArtifacts"] if a["name"] == key), None) or "other"
            value = c.call("POST", "/v2/lm/artifacts", {"name": key, "kind": kind, "url": value,
                                                        "scenarioId": exe["scenarioId"]})["id"]
        artifacts.append({"key": key, "artifactId": value})
    cfg = c.call("POST", "/v2/lm/configurations", {
        "name": f"{exe['id']}-cli", "scenarioId": exe["scenarioId"], "executableId": exe["id"],
        "parameterBindings": [{"key": k, "value": v} for k, v in _pairs(args.param, "parameter")],
        "inputArtifactBindings": artifacts})
    ex = c.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]})
    return follow_execution(c, args, ex["id"], exe["id"])


def follow_execution(c: Client, args: argparse.Namespace, execution_id: str, executable_id: str) -> int:
    """Print an execution's status changes until it ends, then its outcome (as the local ``run``)."""
    ex = {"id": execution_id}
    if not args.quiet:
        print(f"execution {ex['id']}  executable {executable_id}  on {c.base}", file=sys.stderr)
    t0 = time.monotonic()
    last = ""
    while True:
        state = c.call("GET", f"/v2/lm/executions/{ex['id']}", **{"$select": "status"})
        if state["status"] != last and not args.quiet:
            print(f"[{time.monotonic() - t0:8.2f}s] {state['status']}", file=sys.stderr, flush=True)
            last = state["status"]
        if state["status"] in TERMINAL:
            break
        time.sleep(0.5)
    full = c.call("GET", f"/v2/lm/executions/{ex['id']}")
    if args.json:
        _dump(full)
    else:
        print(f"{full['id']} {full['status']} in {time.monotonic() - t0:.2f}s")
        for a in full.get("outputArtifacts", []):
            print(f"  output {a['name']} ({a['kind']}) {a['url']}  id={a['id']}")
        if full["status"] != "COMPLETED" and full.get("statusMessage"):
            print(f"  {full['statusMessage']}", file=sys.stderr)
    return 0 if full["status"] == "COMPLETED" else 1


def follow_sweep(c: Client, args: argparse.Namespace, sweep_id: str) -> int:
    """Print a server-side sweep's progress (status, trials, best) until it ends, then its outcome."""
    if not args.quiet:
        print(f"sweep {sweep_id}  on {c.base}", file=sys.stderr)
    t0, last = time.monotonic(), ""
    while True:
        data = c.call("GET", f"/v2/lm/sweeps/{sweep_id}")
        now = f"{data['status']}  trials {data['trialCount']}" + (
            "" if data["bestValue"] is None else f"  best {data['objective']['primaryMetric']} {data['bestValue']:.6g}")
        if now != last and not args.quiet:
            print(f"[{time.monotonic() - t0:8.2f}s] {now}", file=sys.stderr, flush=True)
            last = now
        if data["status"] in TERMINAL:
            break
        time.sleep(0.5)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(f"sweep {data['id']} {data['status']} in {time.monotonic() - t0:.2f}s: {data['trialCount']} trial(s)"
              + ("" if data["bestExecutionId"] is None else
                 f", best {data['bestExecutionId']} {data['objective']['primaryMetric']} {data['bestValue']:.6g}"))
        if data["statusMessage"]:
            print(f"  {data['statusMessage']}", file=sys.stderr)
    return 0 if data["status"] == "COMPLETED" else 1



def cmd_executions(args: argparse.Namespace) -> int:
    c = _client(args)
    sub = getattr(args, "excmd", None)
    if sub in ("show", "stop"):
        args.id = resolve_remote(c, "execution", args.id)
    if sub == "show":
        return _show(c, args)
    if sub == "stop":
        c.call("PATCH", f"/v2/lm/executions/{args.id}", {"targetStatus": "STOPPED"})
        deadline = time.monotonic() + args.wait
        while True:
            st = c.call("GET", f"/v2/lm/executions/{args.id}", **{"$select": "status"})["status"]
            if st in TERMINAL or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print(f"{args.id} {st}")
        return 0 if st in TERMINAL else 1
    if sub:
        raise UsageError(f"executions {sub} is not available with --server", hint="run it on the server")
    if getattr(args, "sweep", None):  # the sweep's trials, as locally
        from orchestrator.cli.commands_remote_sweeps import _with_trials
        from orchestrator.cli.commands_sweeps import print_sweep_executions

        return print_sweep_executions(_with_trials(c, f"/v2/lm/sweeps/{resolve_remote(c, 'sweep', args.sweep)}"), args)
    rows = c.call("GET", "/v2/lm/executions", scenarioId=args.scenario, status=args.status,
                  executableIds=args.executable, executionScheduleId=getattr(args, "schedule", None),
                  top=args.limit)["resources"]
    if args.json:
        _dump(rows)
        return 0
    from orchestrator.cli.commands_read import span
    from orchestrator.cli.tables import Col

    _table("executions", ["id", Col("status"), Col("executable", fold=10), Col("scenario", drop=2),
                          Col("created", fold=10, drop=1), Col("duration")],  # as the local list
           [[e["id"], e["status"], e.get("executableId", ""), e["scenarioId"], e["createdAt"][:19].replace("T", " "),
             span(e.get("startTime"), e.get("completionTime"))] for e in rows])
    return 0


def _show(c: Client, args: argparse.Namespace) -> int:
    """``executions show`` over the AI API: status, configuration (its bindings), outputs, metrics."""
    ex = c.call("GET", f"/v2/lm/executions/{args.id}")
    metrics = c.call("GET", "/v2/lm/metrics", executionIds=args.id)["resources"]
    ex["metrics"] = metrics[0].get("metrics", []) if metrics else []
    if args.json:
        _dump(ex)
        return 0
    print(f"execution {ex['id']}: {ex['status']}  executable {ex.get('executableId')}  scenario {ex['scenarioId']}")
    cfg: dict[str, Any] = {}
    if ex.get("configurationId"):
        print(f"  configuration {ex['configurationId']}")
        cfg = c.call("GET", f"/v2/lm/configurations/{ex['configurationId']}")
    if ex.get("statusMessage"):
        print(f"message: {ex['statusMessage']}")
    if cfg.get("parameterBindings"):
        _table("parameters", ["name", "value"], [[b["key"], b["value"]] for b in cfg["parameterBindings"]])
    if cfg.get("inputArtifactBindings"):
        _table("input artifacts", ["name", "artifact"],
               [[b["key"], b["artifactId"]] for b in cfg["inputArtifactBindings"]])
    if ex.get("outputArtifacts"):
        _table("output artifacts", ["name", "kind", "url", "id"],
               [[a["name"], a["kind"], a["url"], a["id"]] for a in ex["outputArtifacts"]])
    _print_metrics(c, args.id, ex["metrics"], tags=[])
    return 0


def _print_metrics(c: Client, execution_id: str, metrics: list[dict[str, Any]], tags: list[dict[str, Any]]) -> None:
    """The metrics table with the template's goals (annotation ``orchestrator/metrics``, read through
    ``/v2/lm/compare``), then the tags, as the local commands print them."""
    from orchestrator.cli.metrics_view import print_metrics, summarize
    from orchestrator.model import MetricPoint

    points = [MetricPoint(execution_id, m["name"], m["value"], m["timestamp"], m.get("step")) for m in metrics]
    if points:
        goals = c.call("GET", "/v2/lm/compare", executionIds=execution_id).get("goals") or {}
        print_metrics(summarize(points, goals))
    if tags:
        _table("tags", ["name", "value"], [[t["name"], t["value"]] for t in tags])


def cmd_logs(args: argparse.Namespace) -> int:
    c = _client(args)
    args.id = resolve_remote(c, "execution", args.id)
    seen = 0
    while True:
        lines = c.call("GET", f"/v2/lm/executions/{args.id}/logs")["data"]["result"]
        for line in lines[seen:]:
            if not args.step or line["msg"].startswith(args.step + " | "):
                print(line["msg"])
        seen = len(lines)
        sys.stdout.flush()
        if not args.follow:
            return 0
        if c.call("GET", f"/v2/lm/executions/{args.id}", **{"$select": "status"})["status"] in TERMINAL:
            lines = c.call("GET", f"/v2/lm/executions/{args.id}/logs")["data"]["result"]
            for line in lines[seen:]:
                print(line["msg"])
            return 0
        time.sleep(0.5)


def cmd_metrics(args: argparse.Namespace) -> int:
    c = _client(args)
    args.id = resolve_remote(c, "execution", args.id)
    res = c.call("GET", "/v2/lm/metrics", executionIds=args.id)["resources"]
    data = res[0] if res else {"executionId": args.id, "metrics": [], "tags": [], "customInfo": []}
    if args.json:
        _dump(data)
        return 0
    if not data["metrics"]:
        print(f"no metrics for execution {args.id}")
    _print_metrics(c, args.id, data["metrics"], data.get("tags") or [])
    return 0


def cmd_artifacts(args: argparse.Namespace) -> int:
    c = _client(args)
    if getattr(args, "artcmd", None) == "show":
        args.id = resolve_remote(c, "artifact", args.id)
        a = c.call("GET", f"/v2/lm/artifacts/{args.id}")
        if args.json:
            _dump(a)
        else:
            for k, v in a.items():
                print(f"{k:>14}: {v}")
        return 0
    if args.execution:
        args.execution = resolve_remote(c, "execution", args.execution)
    rows = c.call("GET", "/v2/lm/artifacts", executionId=args.execution, kind=args.kind,
                  scenarioId=args.scenario)["resources"]
    if args.json:
        _dump(rows)
        return 0
    _table("artifacts", ["id", "name", "kind", "url", "execution"],
           [[a["id"], a["name"], a["kind"], a["url"], a.get("executionId", "")] for a in rows])
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from orchestrator.cli import commands_remote_models

    return commands_remote_models.cmd_compare(args)


def cmd_models(args: argparse.Namespace) -> int:
    from orchestrator.cli import commands_remote_models

    return commands_remote_models.cmd_models(args)

def cmd_deploy(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands_deploy import remote_deploy

    return remote_deploy(args)


def cmd_deployments(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands_deploy import remote_deployments

    return remote_deployments(args)


def cmd_sweeps(args: argparse.Namespace) -> int:
    from orchestrator.cli import commands_remote_sweeps

    return commands_remote_sweeps.cmd_sweeps(args)


def cmd_configurations(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands_configurations import remote

    return remote(_client(args), args)
