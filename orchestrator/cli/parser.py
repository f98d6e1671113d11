"""The argument parser of the ``orchestrator`` command: every command, option and help text.

Owns: the command-line surface (names, options, help, choices) and the rule that hidden
commands (``_execute``) never show in help or in "invalid choice" messages. Imports only the
standard library and the cli modules' ``add_parsers`` (which import nothing heavy): building
the parser is part of ``orchestrator --version``. :func:`parse` builds in full only the parser of
the command being run (the others are registered, names and help only).
"""

from __future__ import annotations

import argparse
import difflib
import os
from typing import Any, NoReturn

from orchestrator import __version__

# = orchestrator.model.Status (not imported: --version stays fast; a unit test keeps them equal)
STATUSES = ("UNKNOWN", "PENDING", "RUNNING", "COMPLETED", "DEAD", "STOPPING", "STOPPED")
JOBS = os.cpu_count() or 2


class Parser(argparse.ArgumentParser):
    """argparse, except that hidden (``_``-prefixed) choices are never listed and a near miss is named."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is None or value in action.choices:
            return
        shown = [str(c) for c in action.choices if not str(c).startswith("_")]
        near = difflib.get_close_matches(str(value), shown, 1)
        raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {', '.join(shown)})"
                                     + (f"; did you mean {near[0]!r}?" if near else ""))


def status(text: str) -> str:
    """``--status`` in any case."""
    return text.upper()


class _Fallback(Exception):
    """A light parse met an error or an exit it must not report itself: parse with the whole parser."""


class _Light(Parser):
    """A parser of :func:`parse`'s light passes: any error falls back to the whole parser."""

    def error(self, message: str) -> NoReturn:
        raise _Fallback(message)


class _Registered:
    """The parser of a command that is not being run: takes every call and builds nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _Commands:
    """The subparsers action of :func:`build`, building in full only the commands in ``only``."""

    def __init__(self, sub: Any, only: frozenset[str]) -> None:
        self.sub, self.only = sub, only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name in self.only or self.only & set(kwargs.get("aliases", ())):
            return self.sub.add_parser(name, **kwargs)
        # registered by its name and help (so listed, and recognised), without its arguments nor -h
        self.sub.add_parser(name, add_help=False, **{k: kwargs[k] for k in ("help", "aliases") if k in kwargs})
        return _Registered()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """``build().parse_args(argv)``, with only the named command's parser built in full (building
    all of them costs ~35 ms of CPU, every command). A first pass, every command registered but
    empty, finds which command ``argv`` names; the second parses with that one built. Whatever
    those passes cannot finish themselves (an error, an ambiguity) is parsed by the whole parser,
    so messages and results are the same as ``build().parse_args(argv)``."""
    try:
        probe, _rest = build(only=frozenset(), cls=_Light).parse_known_args(argv)
        if probe.cmd:
            args = build(only=frozenset({probe.cmd}), cls=_Light).parse_args(argv)
            if args.cmd == probe.cmd:
                return args
    except _Fallback:
        pass
    return build().parse_args(argv)


def build(only: frozenset[str] | None = None, cls: type[Parser] = Parser) -> Parser:
    """The whole parser (subcommands of the other cli modules included); with ``only``, just the
    parsers of those commands in full (see :func:`parse`)."""
    p = cls(prog="orchestrator", description="Validate and run SAP AI Core / Argo workflow templates locally.")
    p.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    p.add_argument("--home", metavar="DIR",
                   help="the store directory (default: $ORCHESTRATOR_HOME, else the nearest .orchestrator "
                   "upward from here, else a new ./.orchestrator for commands that write)")
    p.add_argument("--server", default=os.environ.get("ORCHESTRATOR_SERVER") or None, metavar="URL",
                   help="run the read and run commands against this server (or $ORCHESTRATOR_SERVER); "
                   "token from $ORCHESTRATOR_TOKEN or $ORCHESTRATOR_TOKEN_FILE")
    p.add_argument("--resource-group", dest="resource_group_remote", default=None, metavar="RG",
                   help="resource group to work in, locally or on the server (default $ORCHESTRATOR_RESOURCE_GROUP "
                   "or 'default')")
    p.add_argument("--executor", type=executor_choice, default=None, metavar="EXECUTOR",
                   help="where steps run: on this host (local, the default) or each in a container of its image "
                   "(container = podman or docker, whichever is installed), or as Ray tasks on a Ray cluster "
                   "(ray = $RAY_ADDRESS or the local `ray start` cluster, ray://HOST:PORT, ray:HOST:PORT); for "
                   "run, sweep, schedule and serve (or $ORCHESTRATOR_EXECUTOR)")
    p.add_argument("--pull", choices=("IfNotPresent", "Always", "Never"), default=None,
                   help="image pull policy of the container executor, over the templates' imagePullPolicy "
                   "(or $ORCHESTRATOR_PULL_POLICY)")
    sub: Any = p.add_subparsers(dest="cmd", metavar="COMMAND")
    if only is not None:
        sub = _Commands(sub, only)

    i = sub.add_parser("init", help="create a store (.orchestrator) here, or at --home / $ORCHESTRATOR_HOME")
    i.add_argument("dir", nargs="?", default=None,
                   help="directory to create .orchestrator in (default: --home / $ORCHESTRATOR_HOME, else here)")

    v = sub.add_parser("validate", help="validate templates (files or directories)")
    v.add_argument("paths", nargs="+", metavar="PATH", help="template files or directories (recursive)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    r = sub.add_parser("register", help="validate and register templates as executables")
    r.add_argument("paths", nargs="+", metavar="PATH", help="template files or directories")

    run = sub.add_parser("run", help="run a template file or a registered executable")
    run.add_argument("target", nargs="?", help="template file or executable id")
    run.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a workflow parameter (repeatable)")
    run.add_argument("--artifact", action="append", default=[], metavar="NAME=PATH|URL|ID",
                     help="an input artifact: a file or folder path, a file:// or ai:// URL (a trailing / is a "
                     "folder), or an artifact id or unique id prefix (repeatable)")
    run.add_argument("-j", "--jobs", type=int, default=JOBS, help="steps run in parallel (default: number of CPUs)")
    run.add_argument("--config", metavar="FILE", help="a Configuration document (orchestrator/v1)")
    _run_flags(run)

    ex = sub.add_parser("executions", help="list executions, or show, stop, explain, resume or rerun one")
    exs = ex.add_subparsers(dest="excmd", metavar="SUBCOMMAND")
    _list_options(ex)
    # the same options after `list`; SUPPRESS keeps `executions --status X list` from losing X
    _list_options(exs.add_parser("list", help="list executions (newest first)", argument_default=argparse.SUPPRESS))
    show = exs.add_parser("show", help="parameters, input artifacts, steps, outputs and metrics of one execution")
    show.add_argument("id", help="execution id or unique id prefix")
    show.add_argument("--json", action="store_true", help="print the execution as JSON")
    stop = exs.add_parser("stop", help="stop a running execution (RUNNING -> STOPPING -> STOPPED)")
    stop.add_argument("id", help="execution id or unique id prefix")
    stop.add_argument("--wait", type=float, default=30.0, help="seconds to wait for STOPPED (default 30)")
    explain = exs.add_parser("explain", help="why each step was a cache hit or miss")
    explain.add_argument("id", help="execution id or unique id prefix")
    explain.add_argument("--json", action="store_true", help="print the decisions as JSON")
    for name, helptext in (("resume", "run again only the steps that did not complete"),
                           ("rerun", "re-run one step and everything downstream of it")):
        rp = exs.add_parser(name, help=helptext)
        rp.add_argument("id", help="execution id or unique id prefix")
        if name == "rerun":
            rp.add_argument("--from", dest="from_step", required=True, metavar="STEP", help="the step to re-run")
        else:  # a running execution: its suspended steps go on (Argo's `argo resume` / `argo node set`)
            rp.add_argument("--step", metavar="STEP", help="running execution: resume only this suspended step")
            rp.add_argument("-o", "--output", action="append", metavar="NAME=VALUE",
                            help="running execution: a valueFrom.supplied output parameter of the resumed step")
        rp.add_argument("-j", "--jobs", type=int, default=JOBS, help="steps run in parallel (default: number of CPUs)")
        _run_flags(rp)

    lg = sub.add_parser("logs", help="print the logs of an execution (reused logs of cached steps included)")
    lg.add_argument("id", help="execution id or unique id prefix")
    lg.add_argument("--step", help="only this step")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the execution ends")

    m = sub.add_parser("metrics", help="metrics of an execution (best value by the metric's goal)")
    m.add_argument("id", help="execution id or unique id prefix")
    m.add_argument("--json", action="store_true", help="print every point, tags, custom info and goals as JSON")

    a = sub.add_parser("artifacts", help="list artifacts, or show one")
    aas = a.add_subparsers(dest="artcmd", metavar="SUBCOMMAND")
    for target in (a, aas.add_parser("list", help="list artifacts", argument_default=argparse.SUPPRESS)):
        target.add_argument("--execution", metavar="ID", help="only outputs of this execution (id or prefix)")
        target.add_argument("--kind", choices=("model", "dataset", "resultset", "other"), help="only this kind")
        target.add_argument("--scenario", help="only this scenario")
        target.add_argument("--json", action="store_true", help="print the list as JSON")
    ashow = aas.add_parser("show", help="one artifact, with its local path")
    ashow.add_argument("id", help="artifact id or unique id prefix")
    ashow.add_argument("--json", action="store_true", help="print the artifact as JSON")

    from orchestrator.cli import commands_api, commands_experiments, commands_secrets, commands_sync
    from orchestrator.cli import commands_deploy

    commands_secrets.add_parsers(sub)
    commands_api.add_parsers(sub)
    commands_sync.add_parsers(sub)
    commands_experiments.add_parsers(sub)
    from orchestrator.cli import commands_ui

    commands_ui.add_parsers(sub)

    from orchestrator.cli import commands_sweeps

    commands_sweeps.add_parsers(sub)
    from orchestrator.cli import commands_azureml

    commands_azureml.add_parsers(sub)

    commands_deploy.add_parsers(sub)
    from orchestrator.cli import commands_registry

    commands_registry.add_parsers(sub)
    from orchestrator.cli import commands_objectstores

    commands_objectstores.add_parsers(sub)
    from orchestrator.cli import commands_configurations

    commands_configurations.add_parsers(sub)
    return p


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cache", action="store_true", help="do not use or fill the step cache")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print the final execution as JSON")


def _list_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", type=status, choices=STATUSES, metavar="STATUS",
                   help="only this status, any case: " + ", ".join(STATUSES))
    p.add_argument("--scenario", help="only this scenario id")
    p.add_argument("--executable", help="only this executable id")
    p.add_argument("--schedule", metavar="ID", help="only executions of this execution schedule")
    p.add_argument("--sweep", metavar="ID", help="only the trial executions of this sweep")
    p.add_argument("--limit", type=int, help="at most this many (default 50)",
                   **({} if p.argument_default is argparse.SUPPRESS else {"default": 50}))
    p.add_argument("--json", action="store_true", help="print the list as JSON")


def executor_choice(text: str) -> str:
    """``--executor``: local, container, podman, docker, ray, ray://HOST:PORT or ray:HOST:PORT."""
    import re

    value = text.strip()
    if value.lower() in ("local", "container", "podman", "docker", "ray"):
        return value.lower()
    if re.fullmatch(r"ray(://|:)[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}", value):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from local, container, podman, docker, "
                                     "ray, ray://HOST:PORT, ray:HOST:PORT)")
