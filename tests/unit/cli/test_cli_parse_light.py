"""``parser.parse`` (only the named command's parser built in full) behaves as the whole parser.

Same namespace, same help text, same error text and exit code, for every command and subcommand
(found by walking the whole parser) and for argument lists that could fool a guess of the command
(an option value that is a command's name, an abbreviated option, ``-h`` after the command).
"""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any

import pytest

from orchestrator.cli.parser import build, parse


def _outcome(fn: Any, argv: list[str]) -> tuple[Any, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: Any = vars(fn(argv))
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


def _paths(p: argparse.ArgumentParser, at: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [at]
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                out += _paths(sub, at + (name,))
    return out


COMMANDS = _paths(build())
ARGVS = [
    [], ["--version"], ["regster"], ["sweep"], ["sweep", "a.yaml", "b.yaml", "-q", "--json"],
    ["run", "x.yaml", "-p", "a=1", "--no-cache", "-j", "3"], ["run", "x.yaml", "--bogus"],
    ["--home", "sweep", "run", "x.yaml"], ["--home=run", "sweep", "s.yaml"], ["--ho", "h", "validate", "a.yaml"],
    ["--executor", "nope", "run", "x"], ["executions", "--status", "dEaD"], ["executions", "list", "--status", "finished"],
    ["executions", "show"], ["sweeps", "show", "abc", "--json"], ["sweeps", "resume", "abc", "-q"], ["_execute", "abc"],
    ["--server", "http://127.0.0.1:1", "executions"], ["logs", "e1", "-f"], ["sweep", "--version"], ["-h", "sweep"],
]


def test_the_walk_finds_nested_commands() -> None:
    assert ("sweeps", "show") in COMMANDS and ("executions", "rerun") in COMMANDS and len(COMMANDS) > 40


@pytest.mark.parametrize("argv", ARGVS, ids=[" ".join(a) or "(none)" for a in ARGVS])
def test_same_outcome_as_the_whole_parser(argv: list[str]) -> None:
    assert _outcome(parse, argv) == _outcome(lambda a: build().parse_args(a), argv)


def test_same_help_of_every_command() -> None:
    for path in COMMANDS:
        argv = [*path, "--help"]
        light, full = _outcome(parse, argv), _outcome(lambda a: build().parse_args(a), argv)
        assert light == full, path
        assert full[0] == ("exit", 0) and "usage: orchestrator" in full[1]
