"""The command-line surface: every option explains itself, hidden commands stay hidden, statuses match."""

from __future__ import annotations

import argparse

import pytest

from orchestrator.cli.parser import STATUSES, build
from orchestrator.model import Status


def _parsers(p: argparse.ArgumentParser, path: str = "orchestrator") -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(path, p)]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _parsers(sub, f"{path} {name}")
    return out


def test_every_option_and_argument_of_every_command_has_a_help_text() -> None:
    missing = [f"{path}: {a.option_strings or a.dest}" for path, p in _parsers(build()) for a in p._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []


def test_statuses_are_the_model_statuses() -> None:
    assert STATUSES == tuple(s.value for s in Status)


def test_status_any_case_and_unknown_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert build().parse_args(["executions", "--status", "dEaD"]).status == "DEAD"
    with pytest.raises(SystemExit):
        build().parse_args(["executions", "list", "--status", "finished"])
    assert "choose from UNKNOWN, PENDING, RUNNING, COMPLETED, DEAD, STOPPING, STOPPED" in capsys.readouterr().err


def test_hidden_execute_is_parsed_but_never_offered(capsys: pytest.CaptureFixture[str]) -> None:
    assert build().parse_args(["_execute", "abc"]).id == "abc"
    assert "_execute" not in build().format_help()
    with pytest.raises(SystemExit):
        build().parse_args(["regster"])
    err = capsys.readouterr().err
    assert "_execute" not in err and "did you mean 'register'?" in err
