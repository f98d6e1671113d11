"""The CLI's write-side command bodies: init, validate, register, run and the execution controls.

Owns: how a run looks on a terminal (progress lines on stderr, the outcome, the next command to
type: ``logs``, ``resume`` — or why a resume would only repeat the failure) and in ``--json``,
and how the CLI builds its :class:`Service` (``create`` for commands that write, the local
user's file access). Business rules live in :mod:`orchestrator.control.service` and below; the
read commands are in :mod:`orchestrator.cli.commands_read`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from orchestrator.cli.tables import STATE_STYLE, Col, print_table
from orchestrator.control.service import Service, locate_home
from orchestrator.errors import NotFound, UsageError
from orchestrator.model import Execution, Status, StepState

__all__ = ["STATE_STYLE", "cmd_executions", "cmd_run", "cmd_validate"]


def _service(args: argparse.Namespace, *, create: bool = True) -> Service:
    """The service of ``--home`` / the found home, in ``--resource-group``; ``create=False`` for reads."""
    rg = getattr(args, "resource_group_remote", None) or os.environ.get("ORCHESTRATOR_RESOURCE_GROUP") or "default"
    return Service(args.home, rg=rg, create=create, local_files=True)


def _table(title: str, columns: list[Any], rows: list[list[Any]]) -> None:
    print_table(title, columns, rows)


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ---------------------------------------------------------------------- init / validate / register
def cmd_init(args: argparse.Namespace) -> int:
    """Create the store: DIR/.orchestrator when DIR is given, else at --home / $ORCHESTRATOR_HOME, else
    ./.orchestrator. A DIR given beside --home / $ORCHESTRATOR_HOME wins, with a note that the other
    commands keep using the home those name."""
    choice = locate_home(args.home)
    named = choice.how in ("--home", "$ORCHESTRATOR_HOME")
    home = choice.path if named and args.dir is None else \
        (os.path.abspath(args.dir or ".") + os.sep + ".orchestrator")
    if named and args.dir is not None and os.path.realpath(home) != os.path.realpath(choice.path):
        print(f"note: {choice.how} names {choice.path}; the other commands use that store, not this one "
              f"(point {choice.how} at {home} to use it)", file=sys.stderr)
    existed = os.path.isfile(os.path.join(home, "orchestrator.db"))
    svc = Service(home, reap=False)
    print(f"{'store already exists' if existed else 'created store'} {svc.home}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from orchestrator.spec import validate_paths

    res = validate_paths(args.paths)
    problems = sorted(res.errors + res.warnings, key=lambda e: (e.file, e.line, e.col))
    if args.json:
        _dump({"ok": res.ok, "files": res.files, "errors": [e.to_dict() for e in res.errors],
               "warnings": [e.to_dict() for e in res.warnings],
               "executables": [w.executable_id for w in res.workflows],
               "sweeps": [s.name for s in res.sweeps]})
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
    """One stderr line per step state change (``[elapsed] step STATE message | last log line``)."""

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
    from orchestrator.cli.commands_sweeps import cmd_sweep, is_sweep_file

    if is_sweep_file(args.target) and not args.config:
        return cmd_sweep(args)
    from orchestrator.cli.commands_azureml import cmd_run_azureml, is_azureml_file

    if is_azureml_file(args.target) and not args.config:  # an Azure ML job file (job.yml / REST body .json)
        return cmd_run_azureml(args)
    svc = _service(args)
    plan = svc.plan(args.target, args.param, args.artifact, args.config)
    from orchestrator.run.executor import preflight

    preflight(plan.spec, str(plan.document.get("text", "")))  # exit 2 before anything is written
    ex = svc.create(plan)
    return _execute(svc, args, ex, plan, {})


def _execute(svc: Service, args: argparse.Namespace, ex: Execution, plan: Any, reuse: dict[str, Any],
             force: set[str] | None = None) -> int:
    if not args.quiet:
        extra = f"  (from {ex.parent_execution_id})" if ex.parent_execution_id else ""
        print(f"execution {ex.id}  executable {ex.executable_id}  scenario {ex.scenario_id}{extra}", file=sys.stderr)
    t0 = time.monotonic()
    try:
        status = svc.execute(ex, plan, jobs=max(1, args.jobs), on_event=Progress(args.quiet),
                             cache=not args.no_cache, reuse=reuse, force=force)
    except KeyboardInterrupt:
        try:
            now = svc.store.get_execution(svc.rg, ex.id).status.value
        except Exception:  # noqa: BLE001 - the store may be what is interrupted; the hint still holds
            now = "interrupted"
        print(f"interrupted: execution {ex.id} {now}", file=sys.stderr)
        print(f"  resume: orchestrator executions resume {ex.id}", file=sys.stderr)
        return 130
    ex = svc.store.get_execution(svc.rg, ex.id)
    if args.json:
        from orchestrator.cli.commands_read import execution_json

        _dump(execution_json(svc, ex))
    else:
        print(f"{ex.id} {status.value} in {time.monotonic() - t0:.2f}s")
        for a in svc.store.list_artifacts(svc.rg, execution_id=ex.id):
            print(f"  output {a.name} ({a.kind}) {a.url}  id={a.id}")
    if status == Status.STOPPED and _interrupted(ex):
        print(f"interrupted: execution {ex.id} STOPPED", file=sys.stderr)
        print(f"  resume: orchestrator executions resume {ex.id}", file=sys.stderr)
        return 130
    if status != Status.COMPLETED:
        if not args.json:
            print(f"  {ex.status_message}", file=sys.stderr)
        repeats = resume_repeats(svc, ex)
        if repeats:
            print(f"  no resume: {repeats}", file=sys.stderr)
            print(f"  run again: orchestrator run {_target(svc, ex)} -p NAME=VALUE ...  "
                  f"(the values it ran with: orchestrator executions show {ex.id})", file=sys.stderr)
        else:
            print(f"  logs:   orchestrator logs {ex.id}", file=sys.stderr)
            print(f"  resume: orchestrator executions resume {ex.id}", file=sys.stderr)
    return 0 if status == Status.COMPLETED else 1


def _interrupted(ex: Execution) -> bool:
    """The runner ended ``ex`` STOPPED because of Ctrl-C in this terminal (not ``executions stop``)."""
    try:
        from orchestrator.run.supervise import INTERRUPTED
    except ImportError:  # the runner that records it is not there: nothing was interrupted here
        return False
    return ex.status_message.startswith(INTERRUPTED)


def resume_repeats(svc: Service, ex: Execution) -> str:
    """Why ``resume`` would fail the same way, or "".

    A resume runs with the execution's own parameter values. When the failing step never
    started (its inputs, a placeholder or its ``when`` could not be resolved from those values)
    and the failure was no OS error nor a missing secret, a resume repeats it; a step that ran and exited non-zero, a
    stop, a deadline or a lost runner may well go through the next time.
    """
    from orchestrator.run.secrets import CREATE_SECRET

    if ex.status != Status.DEAD or CREATE_SECRET in ex.status_message:  # a missing secret: create it, then resume
        return ""
    for s in svc.store.list_steps(svc.rg, ex.id):
        if s.state == StepState.FAILED and s.attempt == 0 and s.exit_code is None and s.message \
                and ex.status_message.startswith(s.message) and "[Errno" not in s.message:
            return (f"step {s.node_id!r} never started, so the failure comes from the parameter values (or the "
                    "template) and `resume`, which runs with the same values, would repeat it")
    return ""


def _target(svc: Service, ex: Execution) -> str:
    """What to pass to ``run`` again: the template file it came from if it is still there, else the id."""
    try:
        path = str(svc.store.executable_document(svc.rg, ex.executable_id).get("file") or "")
    except NotFound:
        path = ""
    return path if path and os.path.isfile(path) and svc.store.executable_origin(svc.rg, ex.executable_id)[0] \
        is None else ex.executable_id


# ---------------------------------------------------------------------- executions
def cmd_executions(args: argparse.Namespace) -> int:
    sub = getattr(args, "excmd", None)
    if sub in (None, "list", "show"):
        from orchestrator.cli import commands_read

        return commands_read.cmd_executions(args)
    svc = _service(args, create=False)
    eid = svc.resolve_id("execution", args.id)
    if sub == "stop":
        ex = svc.stop(eid, wait=args.wait)
        print(f"{ex.id} {ex.status.value}" + (f": {ex.status_message}" if ex.status_message else ""))
        return 0 if ex.status.terminal else 1
    if sub == "explain":
        items = svc.explain(eid)
        if args.json:
            _dump(items)
        else:
            _table(f"cache decisions of {eid}", ["step", "state", Col("why", fold=20)],
                   [[i["step"], i["state"], i["note"]] for i in items])
        return 0
    if sub == "resume" and not svc.store.get_execution(svc.rg, eid).status.terminal:
        return _resume_suspended(svc, args, eid)
    ex, plan, reuse, force = svc.plan_resume(eid, getattr(args, "from_step", None))
    return _execute(svc, args, ex, plan, reuse, force)


def _resume_suspended(svc: Service, args: argparse.Namespace, eid: str) -> int:
    """``executions resume`` of a running execution: its suspended steps go on (Argo's ``argo resume``)."""
    from orchestrator.control.suspended import resume

    outputs: dict[str, str] = {}
    for item in getattr(args, "output", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"bad output parameter {item!r}", hint="use -o NAME=VALUE")
        outputs[key] = value
    steps = resume(svc, eid, getattr(args, "step", None), outputs)
    print(f"{eid}: resuming {', '.join(steps)}")
    return 0
