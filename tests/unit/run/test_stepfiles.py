"""stepfiles: a step's log/tracking file is read or appended only when it is a regular file with one
link; a symlink, a hardlink, a FIFO or a directory is refused without following it or blocking."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.run import ingest, stepfiles
from orchestrator.run.outcome import result_of
from orchestrator.run.steps import _LazyLog, log_tail

SECRET = b"host secret\n"


def _bounded(fn: Callable[[], Any], timeout: float = 10) -> Any:
    """``fn()`` in a thread; fails (instead of hanging the suite) when it does not return in time."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the test's thread
            out["error"] = exc

    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "blocked (a FIFO opened without O_NONBLOCK?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    p = tmp_path / "victim.txt"
    p.write_bytes(SECRET)
    return p


def _replace(kind: str) -> Callable[[Path, Path], str]:
    """Puts ``kind`` (a symlink or hardlink to the victim, a FIFO, a directory) at the log's path."""

    def make(tmp_path: Path, victim: Path) -> str:
        p = tmp_path / "attempt-1.log"
        {"symlink": lambda: p.symlink_to(victim), "hardlink": lambda: os.link(victim, p),
         "fifo": lambda: os.mkfifo(p), "directory": p.mkdir}[kind]()
        return str(p)

    make.__name__ = kind
    return make


_symlink, _hardlink, _fifo, _directory = (_replace(k) for k in ("symlink", "hardlink", "fifo", "directory"))
REPLACEMENTS = [_symlink, _hardlink, _fifo, _directory]


def test_regular_file_reads_and_appends_as_before(tmp_path: Path) -> None:
    p = tmp_path / "attempt-1.log"
    p.write_bytes(b"one\ntwo\n")
    assert stepfiles.read_text(str(p), 5) == "one\nt"
    assert stepfiles.read_bytes(str(p), 100, offset=4) == (b"two\n", 8)
    assert stepfiles.size(str(p)) == 8
    with stepfiles.open_append(str(p)) as f:
        f.write(b"three\n")
    stepfiles.note(str(p), "a note")
    assert p.read_bytes() == b"one\ntwo\nthree\n[orchestrator] a note\n"
    assert result_of(str(p)) == "one\ntwo\nthree"
    assert log_tail(str(p), 2) == "three\n[orchestrator] a note"


def test_missing_file_is_not_found_and_note_creates_it(tmp_path: Path) -> None:
    p = tmp_path / "attempt-1.log"
    with pytest.raises(FileNotFoundError):
        stepfiles.read_text(str(p), 10)
    assert stepfiles.size(str(p)) == 0
    assert result_of(str(p)) == "" and log_tail(str(p)) == ""
    stepfiles.note(str(p), "created")
    assert p.read_bytes() == b"[orchestrator] created\n"


@pytest.mark.parametrize("replace", REPLACEMENTS, ids=lambda f: f.__name__)
def test_replaced_file_is_refused_never_followed(tmp_path: Path, victim: Path,
                                                  replace: Callable[[Path, Path], str]) -> None:
    path = replace(tmp_path, victim)
    with pytest.raises(stepfiles.NotRegular) as info:
        _bounded(lambda: stepfiles.read_text(path, 100))
    assert isinstance(info.value, OrchestratorError)
    with pytest.raises(stepfiles.NotRegular):
        _bounded(lambda: stepfiles.open_append(path, create=True))
    with pytest.raises(stepfiles.NotRegular):
        _bounded(lambda: result_of(path))
    assert _bounded(lambda: log_tail(path)) == stepfiles.REPLACED
    assert _bounded(lambda: stepfiles.size(path)) == 0
    _bounded(lambda: stepfiles.note(path, "appended through the link"))
    log = _LazyLog(path)
    _bounded(lambda: log.write(b"step output\n"))  # dropped: never written through the link
    log.close()
    assert victim.read_bytes() == SECRET


def test_fifo_with_a_writer_is_refused_too(tmp_path: Path) -> None:
    p = tmp_path / "tracking-1.jsonl"
    os.mkfifo(p)
    reader = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # a reader: an O_NONBLOCK write-open succeeds
    writer = os.open(p, os.O_WRONLY | os.O_NONBLOCK)  # a writer: a read-open succeeds
    try:
        with pytest.raises(stepfiles.NotRegular):
            _bounded(lambda: stepfiles.open_append(str(p)))
        with pytest.raises(stepfiles.NotRegular):
            _bounded(lambda: stepfiles.read_text(str(p), 10))
    finally:
        os.close(writer)
        os.close(reader)


@pytest.mark.parametrize("replace", [_symlink, _hardlink, _fifo], ids=lambda f: f.__name__)
def test_ingest_ignores_a_replaced_tracking_file(tmp_path: Path, replace: Callable[[Path, Path], str]) -> None:
    victim = tmp_path / "other.jsonl"
    victim.write_text('{"t": "tag", "name": "secret", "value": "another group\'s value"}\n')
    path = replace(tmp_path, victim)
    assert _bounded(lambda: ingest.read(ingest.Tail(path), "ex1")) is None


def test_ingest_reads_a_regular_tracking_file(tmp_path: Path) -> None:
    p = tmp_path / "tracking-1.jsonl"
    p.write_text('{"t": "tag", "name": "k", "value": "v"}\n')
    end, items = ingest.read(ingest.Tail(str(p)), "ex1") or (0, [])
    assert end == p.stat().st_size and items == [(0, "tag", ("k", "v"))]
