"""Command-line entry point: thin commands over :mod:`orchestrator.control.service`.

Owns: dispatch and exit codes (0 ok, 1 validation errors / DEAD execution, 2 usage or binding
error, 3 store error, 130 interrupted), and the one-line error output. The parser is in
:mod:`orchestrator.cli.parser`; command bodies are imported only once a command runs, so
``--version`` stays fast; no business logic lives here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from orchestrator.cli.parser import build, parse


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return its exit code."""
    args = parse(argv)
    if not args.cmd:
        build().print_help()
        return 2
    from orchestrator.errors import OrchestratorError, ValidationFailed

    try:
        _executor_env(args)
        handler = getattr(args, "func", None)
        if handler is None:  # the core commands; others bring their handler (and imports) themselves
            from orchestrator.cli import commands, commands_read

            handler = getattr(commands, "cmd_" + args.cmd, None) or getattr(commands_read, "cmd_" + args.cmd)
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
        return exc.exit_code
    except OrchestratorError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _executor_env(args: Any) -> None:
    """``--executor`` / ``--pull`` reach every runner this process starts (in-process or background)."""
    import os

    if getattr(args, "executor", None):
        if args.executor.startswith("ray"):  # no Ray: say so now, before an execution is created
            from orchestrator.run.executor import check_ray

            check_ray(args.executor)
        elif args.executor != "local":  # no engine: say so now, before an execution is created
            from orchestrator.run.container import find_engine

            find_engine(args.executor)
        os.environ["ORCHESTRATOR_EXECUTOR"] = args.executor
    if getattr(args, "pull", None):
        os.environ["ORCHESTRATOR_PULL_POLICY"] = args.pull


def dump(obj: Any) -> None:
    """Print ``obj`` as indented JSON."""
    print(json.dumps(obj, indent=2, default=str))
