"""CLI of sweeps: ``sweep FILE``, ``run`` of a Sweep document, ``sweeps list|show|stop|resume``,
``executions --sweep ID`` and ``sweeps show ID --plot FILE.png``; plus the hidden ``_sweep`` (the
background process of a sweep the REST API created).

Owns: argument parsing and printing of sweeps only (parsers import nothing heavy: ``--version`` builds them): progress lines while a sweep runs (trials
done/running/stopped/failed, best so far), the trial table (parameters, objective, status,
duration, the best marked), ``--json``. The plot is drawn by matplotlib (extra
``orchestrator[sweeps]``), imported only by ``--plot``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from orchestrator.cli.tables import Col


def _service(args: argparse.Namespace, *, create: bool = True) -> Any:
    from orchestrator.cli.commands import _service as service

    return service(args, create=create)


def _dump(obj: Any) -> None:
    from orchestrator.cli.commands import _dump as dump

    dump(obj)


def _table(title: str, columns: list[Any], rows: list[list[Any]]) -> None:
    from orchestrator.cli.tables import print_table

    print_table(title, columns, rows)


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("sweep", help="run a Sweep document (hyperparameter tuning) until it ends")
    s.add_argument("paths", nargs="+", metavar="PATH",
                   help="the Sweep file, plus template files or directories to register first")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    s.add_argument("--json", action="store_true", help="print the finished sweep as JSON")
    s.set_defaults(func=cmd_sweep)

    sw = sub.add_parser("sweeps", help="list sweeps, or show, stop or resume one")
    sws = sw.add_subparsers(dest="swcmd", metavar="SUBCOMMAND")
    sw.add_argument("--json", action="store_true", help="print as JSON")
    ls = sws.add_parser("list", help="list sweeps (newest first)", argument_default=argparse.SUPPRESS)
    ls.add_argument("--json", action="store_true", help="print as JSON")
    show = sws.add_parser("show", help="the trials of a sweep: parameters, objective, status, duration")
    show.add_argument("id", help="sweep id or unique id prefix")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.add_argument("--plot", metavar="FILE.png", help="draw objective per trial, best so far and parallel "
                      "coordinates to this file (needs orchestrator[sweeps])")
    stop = sws.add_parser("stop", help="stop a running sweep (its running trials end STOPPED)")
    stop.add_argument("id", help="sweep id or unique id prefix")
    stop.add_argument("--json", action="store_true", help="print as JSON")
    res = sws.add_parser("resume", help="continue a sweep after a crash, kill or stop")
    res.add_argument("id", help="sweep id or unique id prefix")
    res.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    res.add_argument("--json", action="store_true", help="print the finished sweep as JSON")
    sw.set_defaults(func=cmd_sweeps)

    hidden = sub.add_parser("_sweep")  # hidden: the background process of a sweep created by the API
    hidden.add_argument("--rg", required=True, help="its resource group")
    hidden.add_argument("id", help="sweep id")
    hidden.set_defaults(func=cmd_sweep_process)


class Progress:
    """One line per trial event, and a summary line after each trial."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.sweep_id = "ID"

    def __call__(self, e: dict[str, Any]) -> None:
        if e["event"] == "sweep-started":
            self.sweep_id = e["sweepId"]
        if self.quiet:
            return
        t = f"{time.monotonic() - self.t0:7.1f}s"
        kind = e["event"]
        if kind == "sweep-started":
            print(f"sweep {e['sweepId']}  {e['name']}", file=sys.stderr)
        elif kind == "trial-started":
            from orchestrator.plan.sampling import display

            params = " ".join(f"{k}={display(v)}" for k, v in e["parameters"].items())
            print(f"{t}  trial {e['trial']:>3} started  {e['executionId']}  {params}", file=sys.stderr)
        elif kind == "trial-terminated":
            print(f"{t}  trial {e['trial']:>3} {e['message']}", file=sys.stderr)
        elif kind == "trial-ended":
            obj = "-" if e["objective"] is None else f"{e['objective']:.6g}"
            print(f"{t}  trial {e['trial']:>3} {e['status']:<9} objective {obj}", file=sys.stderr)
        elif kind == "progress":
            best = "-" if e["best"] is None else f"{e['best']:.6g} (trial {e['bestTrial']})"
            done = e["completed"] + e["stopped"] + e["failed"]
            print(f"{t}  {done}/{e['total']} done: {e['completed']} completed, {e['stopped']} stopped, "
                  f"{e['failed']} failed, {e['running']} running; best {best}", file=sys.stderr)


def is_sweep_file(path: str | None) -> bool:
    """Does ``path`` hold a ``Sweep`` document (``run FILE`` hands it to :func:`cmd_sweep`)?"""
    if not path or not path.endswith((".yaml", ".yml")):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1024 * 1024).decode("utf-8", "replace")
    except OSError:
        return False
    return re.search(r"^kind:\s*['\"]?Sweep['\"]?\s*$", head, re.M) is not None


def refuse_run_only_flags(args: argparse.Namespace, *, sweep_document: bool = False) -> None:
    """``run`` flags a sweep would ignore without a word are refused before anything is written:
    ``--no-cache`` (the sweep engine gives every trial the step cache: a trial whose parameters and
    inputs equal an earlier run's reuses its outputs and metrics) and, for our ``Sweep`` document
    (its values live in the document; an Azure ML sweep job takes them as inputs), ``-p``/``--artifact``."""
    from orchestrator.errors import UsageError

    if getattr(args, "no_cache", False):
        raise UsageError("--no-cache does not apply to a sweep: its trials always use the step cache "
                         "(a trial whose parameters and inputs equal an earlier run's reuses that run's "
                         "outputs and metrics)",
                         hint="run it without --no-cache; a trial with new values or inputs always runs")
    if sweep_document and (getattr(args, "param", None) or getattr(args, "artifact", None)):
        raise UsageError("-p/--artifact do not apply to a Sweep document",
                         hint="fix values in spec.trial.parameterBindings / inputArtifactBindings")


def cmd_sweep(args: argparse.Namespace) -> int:
    from orchestrator.control import sweeps
    from orchestrator.errors import UsageError, ValidationFailed
    from orchestrator.spec import validate_paths

    refuse_run_only_flags(args, sweep_document=True)
    paths = getattr(args, "paths", None) or [args.target]
    res = validate_paths(paths)
    if res.errors:
        raise ValidationFailed(res.errors)
    if len(res.sweeps) != 1:
        raise UsageError(f"expected one Sweep document in {', '.join(paths)}, found {len(res.sweeps)}",
                         hint="kind: Sweep, apiVersion: orchestrator/v1")
    svc = _service(args)
    if res.workflows:
        svc.register([w.source for w in res.workflows if w.source])
    return _finish(svc, args, lambda on: sweeps.run_sweep(svc, res.sweeps[0], on_event=on))


def _finish(svc: Any, args: argparse.Namespace, body: Any) -> int:
    from orchestrator.control import sweep_admin

    progress = Progress(getattr(args, "quiet", False) or args.json)
    try:
        row = body(progress)
    except KeyboardInterrupt:
        print("interrupted: the sweep's running trials were stopped", file=sys.stderr)
        print(f"  resume: orchestrator sweeps resume {progress.sweep_id}", file=sys.stderr)
        return 130
    if args.json:
        _dump(sweep_admin.sweep_json(svc, row.id))
    else:
        print_trials(sweep_admin.sweep_json(svc, row.id))
    return 0 if row.status == "COMPLETED" else 1


def cmd_sweeps(args: argparse.Namespace) -> int:
    from orchestrator.control import sweep_admin, sweeps

    cmd = getattr(args, "swcmd", None) or "list"
    if cmd == "resume":
        svc = _service(args, create=False)
        sid = sweep_admin.resolve_sweep_id(svc, args.id)
        return _finish(svc, args, lambda on: sweeps.resume_sweep(svc, sid, on_event=on))
    svc = _service(args, create=False)
    if cmd == "list":
        rows = sweep_admin.list_sweeps(svc)
        if args.json:
            _dump(rows)
            return 0
        print_list(rows)
        return 0
    sid = sweep_admin.resolve_sweep_id(svc, args.id)
    if cmd == "stop":
        row = sweep_admin.stop_sweep(svc, sid)
        if args.json:
            _dump(sweep_admin.sweep_json(svc, row.id, trials=False))
        else:
            print(f"sweep {row.id}: stop requested ({row.status})")
        return 0
    data = sweep_admin.sweep_json(svc, sid)
    if getattr(args, "plot", None):
        from orchestrator.cli.sweep_plot import plot

        plot(data, args.plot)
        if not args.json:
            print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        _dump(data)
    else:
        print_trials(data)
    return 0


def print_list(rows: list[dict[str, Any]]) -> None:
    """The sweeps table (also of ``--server``: the rows are the AI API's sweep resources)."""
    _table("sweeps", ["id", Col("name", fold=10), Col("status"), Col("trials"), Col("best"),
                      Col("created", drop=1), Col("source", fold=12, drop=2)],
           [[r["id"], r["name"], r["status"], str(r["trialCount"]),
             "" if r["bestValue"] is None else f"{r['bestValue']:.6g}", r["createdAt"][:19].replace("T", " "),
             r["source"]]
            for r in rows])


def print_trials(data: dict[str, Any]) -> None:
    """A sweep's trials table, stop reasons and best trial (``data``: a sweep with its ``trials``)."""
    from orchestrator.plan.sampling import display

    obj = data["objective"]
    names = sorted({k for t in data["trials"] for k in t["parameters"]})
    rows = []
    for t in data["trials"]:
        dur = "" if t["duration"] is None else f"{t['duration']:.2f}s"
        val = "" if t["objective"] is None else f"{t['objective']:.6g}"
        status = t["status"] + (" (interrupted)" if t.get("interrupted") else "")  # resume runs it again
        rows.append([("* " if t["best"] else "  ") + str(t["trial"]), t["executionId"], status, val, dur,
                     *[display(t["parameters"].get(n, "")) for n in names]])
    _table(f"sweep {data['id']} {data['name']}: {data['status']}  ({obj['primaryMetric']}, {obj['goal']})",
           ["trial", Col("execution", drop=3), Col("status"), Col("objective"), Col("duration", drop=2),
            *[Col(n, fold=8) for n in names]], rows)
    if data["statusMessage"]:
        print(f"  {data['statusMessage']}", file=sys.stderr)
    for t in data["trials"]:
        if t["status"] == "STOPPED" and t["statusMessage"]:
            print(f"  trial {t['trial']}: {t['statusMessage']}", file=sys.stderr)
    if data["bestExecutionId"]:
        print(f"best: trial execution {data['bestExecutionId']}  {obj['primaryMetric']} {data['bestValue']:.6g}"
              + (f"  model {data['modelVersion']}" if data["modelVersion"] else ""))


def by_sweep(svc: Any, args: argparse.Namespace) -> int:
    """``executions --sweep ID``: the trial executions of one sweep."""
    from orchestrator.control import sweep_admin

    return print_sweep_executions(sweep_admin.sweep_json(svc, sweep_admin.resolve_sweep_id(svc, args.sweep)), args)


def print_sweep_executions(data: dict[str, Any], args: argparse.Namespace) -> int:
    """The trial executions of sweep ``data`` (a sweep with its ``trials``, local or from a server),
    filtered by ``--status`` and ``--limit``."""
    trials = [t for t in data["trials"] if not args.status or t["status"] == args.status][: args.limit or None]
    if args.json:
        _dump([{"id": t["executionId"], "status": t["status"], "sweepId": data["id"], "trial": t["trial"],
                "parameters": t["parameters"], "objective": t["objective"], "statusMessage": t["statusMessage"]}
               for t in trials])
        return 0
    _table(f"executions of sweep {data['id']}", ["id", Col("status"), Col("trial"), Col("objective")],
           [[t["executionId"], t["status"], str(t["trial"]), "" if t["objective"] is None else f"{t['objective']:.6g}"]
            for t in trials])
    return 0


def cmd_sweep_process(args: argparse.Namespace) -> int:
    from orchestrator.control import sweep_admin
    from orchestrator.control.service import Service

    svc = Service(args.home, rg=args.rg, create=False)
    row = sweep_admin.run_background(svc, args.id)
    return 0 if row.status == "COMPLETED" else 1
