"""Jobs on kept threads (``orchestrator.run.kept``): they run, ``join`` waits for them, a thread
is reused by the next job instead of a new one being started, and a job that raises leaves its
thread serving the next jobs."""

from __future__ import annotations

import threading

import pytest

from orchestrator.run import kept


def _kept_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "kept"}


def test_jobs_run_join_and_reuse_threads() -> None:
    seen: list[tuple[int, str]] = []
    first = kept.run(lambda: seen.append((1, threading.current_thread().name)))
    assert first.join(10)
    before = _kept_threads()
    for k in range(2, 50):  # one after another: never more than the threads already kept
        assert kept.run(lambda k=k: seen.append((k, threading.current_thread().name))).join(10)
    assert _kept_threads() <= before
    assert [k for k, _ in seen] == list(range(1, 50)) and {n for _, n in seen} == {"kept"}


def test_concurrent_jobs_get_threads_of_their_own() -> None:
    gate = threading.Event()
    started = threading.Barrier(4, timeout=10)

    def wait() -> None:
        started.wait()  # all four run at once (a job queued behind another would time this out)
        gate.wait(10)

    jobs = [kept.run(wait) for _ in range(3)]
    started.wait()
    gate.set()
    assert all(j.join(10) for j in jobs)


def test_a_raising_job_leaves_its_thread_serving(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise RuntimeError("job failed")

    assert kept.run(boom).join(10)
    assert "job failed" in capsys.readouterr().err
    done = kept.Job(lambda: None)
    done.start()
    assert done.join(10) and done.started
    with pytest.raises(RuntimeError):
        done.start()  # a job runs once
