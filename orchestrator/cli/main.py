"""Command-line entry point: thin commands over :mod:`orchestrator.control.service`.

Owns: argument parsing, exit codes (0 ok, 1 validation errors / DEAD execution, 2 usage or
binding error, 3 store error), ``file:line:col`` error lines, progress lines while a run goes,
tables for people (rich) and ``--json`` for machines. Imports are lazy so ``--version`` stays
fast; no business logic lives here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from orchestrator import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orchestrator", description="Validate and run SAP AI Core / Argo "
                                "workflow templates locally.")
    p.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    p.add_argument("--home", help="state directory (default $ORCHESTRATOR_HOME or ./.orchestrator)")
    p.add_argument("--server", default=os.environ.get("ORCHESTRATOR_SERVER") or None, metavar="URL",
                   help="run the read and run commands against this server (or $ORCHESTRATOR_SERVER); "
                   "token from $ORCHESTRATOR_TOKEN or $ORCHESTRATOR_TOKEN_FILE")
    p.add_argument("--resource-group", dest="resource_group_remote", default=None, metavar="RG",
                   help="resource group to work in, locally or on the server (default $ORCHESTRATOR_RESOURCE_GROUP "
                   "or 'default')")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    v = sub.add_parser("validate", help="validate templates (files or directories)")
    v.add_argument("paths", nargs="+")
    v.add_argument("--json", action="store_true")

    r = sub.add_parser("register", help="validate and register templates as executables")
    r.add_argument("paths", nargs="+")

    run = sub.add_parser("run", help="run a template file or a registered executable")
    run.add_argument("target", nargs="?", help="template file or executable id")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--artifact", action="append", default=[], metavar="KEY=URL|ID")
    run.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2,
                     help="steps run in parallel (default: number of CPUs)")
    run.add_argument("--config", help="a Configuration document (orchestrator/v1)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run.add_argument("--json", action="store_true", help="print the final execution as JSON")
    run.add_argument("--no-cache", action="store_true", help="do not use or fill the step cache")

    ex = sub.add_parser("executions", help="list executions, or show one")
    exs = ex.add_subparsers(dest="excmd", metavar="SUBCOMMAND")
    for name in ("list", None):
        target = exs.add_parser("list", help="list executions") if name else ex
        target.add_argument("--scenario")
        target.add_argument("--status")
        target.add_argument("--executable")
        target.add_argument("--limit", type=int, default=50)
        target.add_argument("--json", action="store_true")
    show = exs.add_parser("show", help="steps, times, artifacts and metrics of one execution")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    stop = exs.add_parser("stop", help="stop a running execution (RUNNING -> STOPPING -> STOPPED)")
    stop.add_argument("id")
    stop.add_argument("--wait", type=float, default=30.0, help="seconds to wait for STOPPED (default 30)")
    explain = exs.add_parser("explain", help="why each step was a cache hit or miss")
    explain.add_argument("id")
    explain.add_argument("--json", action="store_true")
    for name, helptext in (("resume", "run again only the steps that did not complete"),
                           ("rerun", "re-run one step and everything downstream of it")):
        rp = exs.add_parser(name, help=helptext)
        rp.add_argument("id")
        if name == "rerun":
            rp.add_argument("--from", dest="from_step", required=True, metavar="STEP")
        rp.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
        rp.add_argument("--no-cache", action="store_true", help="do not use or fill the step cache")
        rp.add_argument("-q", "--quiet", action="store_true")
        rp.add_argument("--json", action="store_true")

    lg = sub.add_parser("logs", help="print the logs of an execution")
    lg.add_argument("id")
    lg.add_argument("--step")
    lg.add_argument("-f", "--follow", action="store_true")

    m = sub.add_parser("metrics", help="metrics of an execution")
    m.add_argument("id")
    m.add_argument("--json", action="store_true")

    a = sub.add_parser("artifacts", help="list artifacts, or show one")
    aas = a.add_subparsers(dest="artcmd", metavar="SUBCOMMAND")
    for name in ("list", None):
        target = aas.add_parser("list", help="list artifacts") if name else a
        target.add_argument("--execution")
        target.add_argument("--kind")
        target.add_argument("--scenario")
        target.add_argument("--json", action="store_true")
    ashow = aas.add_parser("show", help="one artifact")
    ashow.add_argument("id")
    ashow.add_argument("--json", action="store_true")

    from orchestrator.cli import commands_api

    commands_api.add_parsers(sub)
    from orchestrator.cli import commands_sync  # repos, apps, sync, schedules, scheduler, executions --schedule

    commands_sync.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.cmd:
        _parser().print_help()
        return 2
    from orchestrator.cli import commands
    from orchestrator.errors import OrchestratorError, ValidationFailed

    try:
        handler = getattr(args, "func", None) or getattr(commands, "cmd_" + args.cmd)
        if args.server:
            from orchestrator.cli import commands_remote

            if args.cmd not in commands_remote.REMOTE:
                raise commands_remote.UsageError(f"{args.cmd} does not work with --server",
                                                 hint="unset ORCHESTRATOR_SERVER or run it on the server")
            handler = getattr(commands_remote, "cmd_" + args.cmd)
        return int(handler(args))
    except ValidationFailed as exc:
        for e in sorted(exc.errors, key=lambda e: (e.file, e.line, e.col)):
            print(e.format(), file=sys.stderr)
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 2 if args.cmd == "run" else exc.exit_code
    except OrchestratorError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))
