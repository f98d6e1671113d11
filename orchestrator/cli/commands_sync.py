"""CLI commands for git sync and schedules: ``repos``, ``apps``, ``sync``, ``schedules``, ``scheduler``.

Owns: their argument parsers (registered by :func:`add_parsers` from :mod:`orchestrator.cli.main`),
and how their results look (tables, ``--json``, ``file:line:col`` lines for rejected files).
Business rules live in :mod:`orchestrator.control.service` and below. Credentials are read from an
environment variable (``--password-env``), never from argv, and never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.control.service import Service


def add_parsers(sub: Any) -> None:
    """Add this module's subcommands to the CLI's subparsers (each sets ``func``)."""
    r = sub.add_parser("repos", help="git repositories templates are synced from")
    rs = r.add_subparsers(dest="repocmd", metavar="SUBCOMMAND")
    ra = rs.add_parser("add", help="register a repository (absolute path, file:// or https:// URL)")
    ra.add_argument("name", help="a name for the repository")
    ra.add_argument("url", help="absolute path, file:// or https:// URL")
    ra.add_argument("--username", help="user name for https")
    ra.add_argument("--password-env", metavar="VAR", help="environment variable holding the password or token")
    rl = rs.add_parser("list", help="list repositories")
    rl.add_argument("--json", action="store_true", help="print the list as JSON")
    rd = rs.add_parser("delete", help="forget a repository (no application may use it)")
    rd.add_argument("name", help="repository name")
    r.set_defaults(func=cmd_repos, json=False)

    a = sub.add_parser("apps", help="applications: a directory of a repository at a revision")
    as_ = a.add_subparsers(dest="appcmd", metavar="SUBCOMMAND")
    aa = as_.add_parser("add", help="sync DIR of a repository at BRANCH|TAG|SHA")
    aa.add_argument("name", help="a name for the application")
    aa.add_argument("--repo", required=True, help="repository name (`orchestrator repos add`)")
    aa.add_argument("--path", default=".", help="directory inside the repository (default: its root)")
    aa.add_argument("--revision", default="HEAD", help="branch, tag or full commit SHA (default HEAD)")
    aa.add_argument("--resource-group", dest="rg", help="resource group the objects go to (default: default)")
    al = as_.add_parser("list", help="list applications and their last sync")
    al.add_argument("--json", action="store_true", help="print the list as JSON")
    st = as_.add_parser("status", help="every file of an application with its sync result")
    st.add_argument("name", help="application name")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    ad = as_.add_parser("delete", help="forget an application (what it registered stays)")
    ad.add_argument("name", help="application name")
    a.set_defaults(func=cmd_apps, json=False)

    s = sub.add_parser("sync", help="sync one application (or all) from git now")
    s.add_argument("app", nargs="?", help="application name (default: all)")
    s.add_argument("--force", action="store_true", help="re-validate even if the commit did not change")
    s.add_argument("--json", action="store_true", help="print the reports as JSON")
    s.set_defaults(func=cmd_sync)

    sc = sub.add_parser("schedules", help="execution schedules (cron)")
    scs = sc.add_subparsers(dest="schedcmd", metavar="SUBCOMMAND")
    c = scs.add_parser("create", help="run a configuration on a cron")
    c.add_argument("--name", required=True, help="schedule name")
    c.add_argument("--cron", required=True, help="5 fields, 6 with seconds first, or @hourly/@daily/...")
    c.add_argument("--configuration", required=True, metavar="ID|NAME",
                   help="configuration id, unique id prefix or name (`orchestrator configurations` lists them)")
    c.add_argument("--timezone", default="UTC", help="IANA time zone of the cron (default UTC)")
    c.add_argument("--start", help="ISO 8601 instant (default: its creation time)")
    c.add_argument("--end", help="ISO 8601 instant after which nothing runs")
    c.add_argument("--catchup", default="latest", choices=["none", "latest", "all"],
                   help="slots missed while nothing ran: none, the latest, or all (default latest)")
    c.add_argument("--max-catchup", type=int, default=1, help="at most this many missed slots (default 1)")
    c.add_argument("--concurrency", default="Allow", choices=["Allow", "Forbid", "Replace"],
                   help="when the previous run still runs (default Allow)")
    c.add_argument("--slot-parameter", help="template parameter that receives the slot time")
    c.add_argument("--inactive", action="store_true", help="create it inactive")
    c.add_argument("--json", action="store_true", help="print the schedule as JSON")
    ls = scs.add_parser("list", help="list schedules")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    for name, text in (("show", "one schedule, its slots and executions"), ("activate", "resume new runs"),
                       ("deactivate", "stop new runs (running ones go on)"),
                       ("delete", "delete (running executions go on)")):
        p = scs.add_parser(name, help=text)
        p.add_argument("id", help="schedule id")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    b = scs.add_parser("backfill", help="start every slot in a range that has no execution yet")
    b.add_argument("id", help="schedule id")
    b.add_argument("--from", dest="frm", required=True, metavar="INSTANT", help="first slot (ISO 8601)")
    b.add_argument("--to", required=True, metavar="INSTANT", help="last slot (ISO 8601)")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.add_argument("--even-if-inactive", action="store_true",
                   help="backfill an INACTIVE schedule too (refused without it: deactivated means no new runs)")
    sc.set_defaults(func=cmd_schedules, json=False)

    d = sub.add_parser("scheduler", help="run the scheduler (standalone; `serve` runs it too)")
    d.add_argument("--once", action="store_true", help="one tick, then exit")
    d.add_argument("--interval", type=float, default=10.0, help="seconds between ticks (default 10)")
    d.set_defaults(func=cmd_scheduler)


def _service(args: argparse.Namespace, *, create: bool = True) -> Service:
    from orchestrator.cli.commands import _service as service

    return service(args, create=create)


def _dump(obj: Any) -> None:
    from orchestrator.cli.commands import _dump as dump

    dump(obj)


def _table(title: str, columns: list[Any], rows: list[list[Any]]) -> None:
    from orchestrator.cli.commands import _table as table

    table(title, columns, rows)


def _usage(message: str, *, hint: str | None = None) -> Exception:
    """A UsageError, imported when needed (this module is imported to build the parser: --version)."""
    from orchestrator.errors import UsageError

    return UsageError(message, hint=hint)


def _instant(text: str, what: str) -> datetime:
    from orchestrator.spec.schedule import parse_instant

    parsed = parse_instant(text)
    if parsed is None:
        raise _usage(f"{what} {text!r} is not an ISO 8601 instant with a time zone",
                         hint='e.g. "2025-01-31T02:00:00Z"')
    return parsed


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- repos / apps / sync
def cmd_repos(args: argparse.Namespace) -> int:
    svc = _service(args, create=args.repocmd == "add")
    if args.repocmd == "add":
        password = None
        if args.password_env:
            password = os.environ.get(args.password_env)
            if not password:
                raise _usage(f"environment variable {args.password_env} is empty or not set")
        url = args.url
        if "://" not in url and not os.path.isabs(url) and os.path.isdir(url):
            url = os.path.abspath(url)  # your own command line: a relative path is the folder you mean
        repo = svc.add_repository(args.name, url, username=args.username, password=password)
        print(f"repository {repo['name']} added ({repo['url']})" + (" with credentials" if password else ""))
        return 0
    if args.repocmd == "delete":
        svc.store.delete_repository(args.name)
        print(f"repository {args.name} deleted")
        return 0
    rows = svc.store.list_repositories()
    if args.json:
        _dump(rows)
    else:
        _table("repositories", ["name", "url", "status", "message"],
               [[r["name"], r["url"], r["status"], r["message"] or ""] for r in rows])
    return 0


def cmd_apps(args: argparse.Namespace) -> int:
    svc = _service(args, create=args.appcmd == "add")
    if args.appcmd == "add":
        from orchestrator.control import syncing
        app = syncing.add_application(svc.store, args.name, repository=args.repo, path=args.path,
                                      revision=args.revision, rg=args.rg or svc.rg, create_group=True)
        print(f"application {app['name']} added: {app['repository']}:{app['path']} at {app['revision']} "
              f"-> resource group {app['rg']}; run `orchestrator sync {app['name']}`")
        return 0
    if args.appcmd == "delete":
        svc.store.delete_application(args.name)
        print(f"application {args.name} deleted")
        return 0
    if args.appcmd == "status":
        app = svc.store.get_application(args.name)
        files = svc.store.application_files(args.name)
        ok = app["sync_status"] in ("SYNCED", "NEVER")
        if args.json:
            _dump({**_camel(app), "files": [_camel(f) for f in files]})
            return 0 if ok else 1
        print(f"application {app['name']}: {app['sync_status']} at {(app['last_commit'] or '-')[:12]} "
              f"(last sync {app['last_sync_at'] or 'never'})" + (f"\n  {app['message']}" if app["message"] else ""))
        _print_files(files)
        return 0 if ok else 1
    rows = svc.store.list_applications()
    if args.json:
        _dump([_camel(r) for r in rows])
    else:
        _table("applications", ["name", "repository", "path", "revision", "rg", "status", "commit", "last sync"],
               [[r["name"], r["repository"], r["path"], r["revision"], r["rg"], r["sync_status"],
                 (r["last_commit"] or "")[:12], (r["last_sync_at"] or "")[:19]] for r in rows])
    return 0


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    """A store row with the camelCase keys of every other ``--json`` (``sync_status`` -> ``syncStatus``)."""
    import re

    return {"resourceGroup" if k == "rg" else re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): v
            for k, v in row.items()}


def _print_files(files: list[dict[str, Any]]) -> None:
    for f in files:
        objs = ", ".join(f"{o['kind']} {o['name']}" for o in f["objects"])
        print(f"  {f['status']:<8} {f['path']}" + (f"  ({objs})" if objs else ""))
        if f.get("note"):
            print(f"           {f['note']}")
        for e in f["errors"]:
            print("           " + e.replace("\n", "\n           "))


def cmd_sync(args: argparse.Namespace) -> int:
    svc = _service(args)
    reports = svc.sync(args.app, force=args.force)
    if args.json:
        _dump([r.__dict__ for r in reports])
    else:
        for r in reports:
            print(f"{r.application}: {r.status} {r.message} ({r.duration:.2f}s)")
            if r.status != "UNCHANGED":
                _print_files([f for f in r.files if f["status"] != "valid" or f.get("note")])
            for g in r.gone:
                print(f"  gone: {g} (its executions stay)")
    return 0 if all(r.status != "ERROR" and all(f["status"] == "valid" for f in r.files) for r in reports) else 1


# ---------------------------------------------------------------------- schedules
def _schedule_json(row: dict[str, Any]) -> dict[str, Any]:
    keys = {"configuration_id": "configurationId", "max_catchup": "maxCatchup", "slot_parameter": "slotParameter",
            "last_slot": "lastSlot", "created_at": "createdAt", "modified_at": "modifiedAt"}
    return {keys.get(k, k): v for k, v in row.items() if k not in ("rg", "deleted_at")}


def cmd_schedules(args: argparse.Namespace) -> int:
    from orchestrator.plan.cron import Schedule

    svc = _service(args, create=False)
    sub = args.schedcmd
    if sub == "create":
        start = _fmt(_instant(args.start, "--start")) if args.start else None
        end = _fmt(_instant(args.end, "--end")) if args.end else None
        Schedule("new", args.cron, args.timezone, _instant(start, "start") if start else None,
                 _instant(end, "end") if end else None, catchup=args.catchup, max_catchup=args.max_catchup,
                 concurrency=args.concurrency)  # validates before anything is written
        from orchestrator.control.ids import resolve_configuration

        configuration = resolve_configuration(svc.store, svc.rg, args.configuration)
        row = svc.store.create_schedule(svc.rg, name=args.name, cron=args.cron, configuration_id=configuration,
                                        start=start, end=end, status="INACTIVE" if args.inactive else "ACTIVE",
                                        timezone=args.timezone, catchup=args.catchup, max_catchup=args.max_catchup,
                                        concurrency=args.concurrency, slot_parameter=args.slot_parameter)
        _dump(_schedule_json(row)) if args.json else print(f"schedule {row['id']} created ({row['cron']} "
                                                           f"{row['timezone']})")
        return 0
    if sub == "backfill":  # refused before anything is looked up
        _check_ray_trusted("a backfill")
    if sub in ("activate", "deactivate", "delete", "backfill", "show"):  # an id or a unique prefix of one
        args.id = svc.resolve_id("schedule", args.id)
    if sub in ("activate", "deactivate"):
        row = svc.store.update_schedule(svc.rg, args.id, status="ACTIVE" if sub == "activate" else "INACTIVE")
        _dump(_schedule_json(row)) if args.json else print(f"schedule {row['id']} {row['status']}")
        return 0
    if sub == "delete":
        svc.store.delete_schedule(svc.rg, args.id)
        print(f"schedule {args.id} deleted; running executions go on")
        return 0
    if sub == "backfill":
        report = svc.backfill(args.id, _instant(args.frm, "--from"), _instant(args.to, "--to"),
                              even_if_inactive=args.even_if_inactive)
        if args.json:
            _dump(report.__dict__)
        else:
            for sid, slot, eid in report.started:
                print(f"{slot} started {eid}")
            for sid, slot, why in report.failed:
                print(f"{slot} failed: {why}", file=sys.stderr)
            print(f"{len(report.started)} started, {report.conflicts} already had an execution, "
                  f"{len(report.failed)} failed")
        return 0 if not report.failed else 1
    if sub == "show":
        row = svc.store.get_schedule(svc.rg, args.id)
        slots = svc.store.slot_records(svc.rg, args.id)
        runs = svc.store.schedule_slot_executions(svc.rg, args.id)
        if args.json:
            _dump({**_schedule_json(row), "slots": slots,
                   "executions": [{"slot": s, "id": e, "status": st} for s, e, st in runs]})
            return 0
        shown = _schedule_json(row)
        if not shown.get("start"):  # the scheduler starts from the creation time
            shown["start"] = f"{row['created_at']} (its creation time)"
        for k, v in shown.items():
            print(f"{k:>16}: {v if v is not None else ''}")
        _table("slots", ["slot", "outcome", "execution", "reason"],
               [[s["slot"], s["outcome"], s["execution_id"] or "", s["reason"] or ""] for s in slots[-50:]])
        return 0
    rows = svc.store.list_schedules(svc.rg, limit=1000)
    if args.json:
        _dump([_schedule_json(r) for r in rows])
    else:
        _table("execution schedules", ["id", "name", "cron", "timezone", "status", "configuration", "last slot"],
               [[r["id"], r["name"], r["cron"], r["timezone"], r["status"], r["configuration_id"],
                 r["last_slot"] or ""] for r in rows])
    return 0


def _check_ray_trusted(who: str) -> None:
    """The scheduler runs templates synced from repositories others push to: the Ray executor
    only when the operator trusts them all (as ``serve``)."""
    from orchestrator.run.executor import check_server_executor

    check_server_executor(who=who)


def cmd_scheduler(args: argparse.Namespace) -> int:
    _check_ray_trusted("the scheduler")
    svc = _service(args)
    if args.once:
        report = svc.scheduler_tick()
        print(f"{len(report.started)} started, {len(report.skipped)} skipped, {len(report.failed)} failed, "
              f"{report.conflicts} claimed elsewhere")
        return 0
    if args.interval <= 0:
        raise _usage("--interval must be positive")
    print(f"scheduler running every {args.interval:g}s (Ctrl-C stops it)", file=sys.stderr)
    stop = threading.Event()
    try:
        svc.scheduler_loop(stop, args.interval)
    finally:
        stop.set()
    return 0
