"""``orchestrator logs`` of a retried step: every attempt's log in order, each under an
``(STEP: attempt N)`` note (only the last attempt was shown, hiding the output of the failure
that caused the retry), and ``logs -f`` reads the next attempt's file from its start (it went on
at the previous file's size, so the new attempt's first lines were lost). Real runs, real CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Cli, template


def _retrying(flag: str, pause: str) -> str:
    return template("retrylog", f"""\
        - name: main
          retryStrategy: {{limit: 1, retryPolicy: Always}}
          container:
            image: python:3.11
            command: [sh, -c]
            args: ["if [ -e {flag} ]; then echo SECOND-FIRST; echo second done; else touch {flag}; for i in $(seq 1 40); do echo first attempt line $i; done; sleep {pause}; exit 1; fi"]
""")


def test_logs_show_every_attempt_and_follow_reads_each_from_its_start(cli: Cli) -> None:
    cli.write("done.yaml", _retrying(str(cli.tmp / "flag-a"), "0"))
    ex = cli.run_json("done.yaml")
    assert ex["status"] == "COMPLETED"
    p = cli("logs", ex["id"], check=0)
    assert p.stdout.splitlines() == [f"first attempt line {i}" for i in range(1, 41)] + ["SECOND-FIRST", "second done"]
    assert "(main: attempt 1)" in p.stderr and "(main: attempt 2)" in p.stderr

    cli.write("slow.yaml", _retrying(str(cli.tmp / "flag-b"), "3"))
    run = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "-q", "slow.yaml"], cwd=cli.tmp,
                           env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        started: list[Path] = []
        while not started:
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
            started = [p for p in (cli.home / "executions").glob("*/steps/main/attempt-1.log") if ex["id"] not in str(p)]
        eid = started[0].parents[2].name
        followed = cli("logs", eid, "-f", check=0, timeout=60)
    finally:
        run.wait(timeout=60)
    assert followed.stdout.splitlines()[-2:] == ["SECOND-FIRST", "second done"], followed.stdout
