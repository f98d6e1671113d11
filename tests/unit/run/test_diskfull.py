"""Recognising a full disk (items 23/24 helpers): real SQLITE_FULL, real ENOSPC, signal names."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from orchestrator.errors import StoreError
from orchestrator.run import diskfull
from orchestrator.run.outcome import exit_text
from orchestrator.store.sqlite import SqliteStore


def _sqlite_full(tmp_path: Path) -> sqlite3.Error:
    con = sqlite3.connect(tmp_path / "tiny.db")
    con.execute("CREATE TABLE t(x BLOB)")
    con.execute("PRAGMA max_page_count=3")  # the database cannot grow past 3 pages: SQLITE_FULL
    try:
        for _ in range(10):
            con.execute("INSERT INTO t VALUES (zeroblob(4000))")
    except sqlite3.Error as exc:
        return exc
    finally:
        con.close()
    raise AssertionError("no SQLITE_FULL")


def test_a_full_database_is_a_full_disk_even_wrapped_by_the_store(tmp_path: Path) -> None:
    raw = _sqlite_full(tmp_path)
    assert diskfull.no_space(raw)
    try:
        raise StoreError("store write failed: database or disk is full") from raw
    except StoreError as wrapped:
        assert diskfull.no_space(wrapped)
        assert diskfull.reason(wrapped) == "no space left on device while writing to the store"
    store = SqliteStore(str(tmp_path / "orchestrator.db"))
    try:
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count={pages}")  # no room for one more page
        with pytest.raises(StoreError) as info, store.transaction() as db:
            db.execute("INSERT INTO resource_groups(id, created_at) VALUES (?, 'now')", ("g" * 100_000,))
        assert diskfull.no_space(info.value), info.value
    finally:
        store.close()


def test_enospc_from_writing_a_file(tmp_path: Path) -> None:
    try:
        with open("/dev/full", "wb", buffering=0) as f:  # every write: ENOSPC
            f.write(b"x")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        assert diskfull.no_space(exc)
        with pytest.raises(diskfull.DiskFull, match="^no space left on device while storing the outputs"):
            diskfull.check(exc, "storing the outputs of step 'main'")
    assert not diskfull.no_space(OSError(errno.EACCES, "Permission denied"))
    assert not diskfull.no_space(StoreError("store write failed: database is locked"))
    diskfull.check(ValueError("no"), "anything")  # not a full disk: nothing raised


def test_the_reserve_is_made_only_with_room_and_freed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diskfull, "RESERVE_BYTES", 64 * 1024)
    diskfull.ensure_reserve(tmp_path)
    reserve = tmp_path / diskfull.RESERVE
    assert reserve.stat().st_size == 64 * 1024 and reserve.stat().st_blocks * 512 >= 64 * 1024  # not sparse
    assert diskfull.release_reserve(tmp_path) and not reserve.exists()
    assert not diskfull.release_reserve(tmp_path)
    monkeypatch.setattr(diskfull, "RESERVE_BYTES", 1 << 62)  # more than any disk: never attempted
    diskfull.ensure_reserve(tmp_path)
    assert not reserve.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("code", "text"), [
    (0, "failed with exit code 0"), (3, "failed with exit code 3"), (139, "failed with exit code 139"),
    (-11, "was killed by SIGSEGV (signal 11)"), (-6, "was killed by SIGABRT (signal 6)"),
    (-9, "was killed by SIGKILL (signal 9)"), (-200, "was killed by signal 200"),
])
def test_exit_text_names_signals(code: int, text: str) -> None:
    assert exit_text(code) == text
