"""Robustness under hostile conditions, through the real CLI: output floods, concurrent writers on one
store (and the write lock while a large output is stored), a full disk (tmpfs in a user + mount
namespace) and an unusable home directory.

Every case runs real processes against a real SQLite file (see ``../shared/reference/reliability.md``
rows 4, 7 and 9 for the expected behaviour). Figures are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, template

MIB = 1 << 20
LOG_CAP = 10 * MIB  # the default ORCHESTRATOR_LOG_CAP
FLOOD_BYTES = 2 * 1024 * MIB
TERMINAL = {"COMPLETED", "DEAD", "STOPPED"}


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback (most recent call last)" not in text, text[-3000:]


def _chain_body(n: int, command: str = "true") -> str:
    tasks = "\n".join(f"      - {{name: s{i}, template: t{', dependencies: [s%d]' % (i - 1) if i else ''}}}"
                      for i in range(n))
    leaf = f"- name: t\n  container: {{image: alpine, command: [{command}]}}\n"
    return f"- name: main\n  dag:\n    tasks:\n{tasks}\n{leaf}"


def _integrity(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def _env(cli: Cli) -> dict[str, str]:
    env = dict(cli.env)
    env.pop("ORCHESTRATOR_LOG_CAP", None)  # the default cap is what is tested
    return env


# --------------------------------------------------------------------------------------------------
# 1. output flood (reliability row 7)
# --------------------------------------------------------------------------------------------------

FLOOD = """
- name: main
  container: {image: alpine, command: [head, -c, "2147483648", /dev/zero]}
"""


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _check_flood_execution(cli: Cli, ex_id: str) -> int:
    ex = cli.json("executions", "show", ex_id)
    assert ex["status"] == "COMPLETED", ex["statusMessage"]
    step = ex["steps"][0]
    assert step["state"] == "SUCCEEDED"
    log = Path(step["log"])
    size = log.stat().st_size
    assert LOG_CAP <= size <= LOG_CAP + 1024, size
    with open(log, "rb") as f:
        assert f.read(4096) == b"\0" * 4096
        f.seek(LOG_CAP)
        tail = f.read().decode()
    assert "log truncated" in tail and f"{FLOOD_BYTES - LOG_CAP} bytes dropped" in tail, tail
    # the read side copes with the truncated binary log
    p = cli("logs", ex_id, check=0)
    assert "log truncated" in p.stdout
    return size


def _child_pid(pid: int) -> int | None:
    """The first child of ``pid`` (the CLI under ``/usr/bin/time``), or None."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


@pytest.mark.slow
def test_output_flood_is_capped_and_runner_memory_stays_small(cli: Cli) -> None:
    f = cli.write("flood.yaml", template("flood-demo", FLOOD))
    cmd = [sys.executable, "-m", "orchestrator", "run", str(f), "-q", "--json", "--no-cache"]

    # One flood, the CLI's peak RSS measured three ways: /proc/<pid>/status VmHWM while it runs;
    # /usr/bin/time -f %M around it (max RSS from wait4), when installed; getrusage(RUSAGE_CHILDREN)
    # after it was reaped (a max over every reaped descendant, so an upper bound).
    time_bin = shutil.which("time", path="/usr/bin:/bin")
    rss_file = cli.tmp / "rss.txt"
    wrapper = [time_bin, "-f", "%M", "-o", str(rss_file)] if time_bin else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    with open(cli.tmp / "a.out", "w") as out, open(cli.tmp / "a.err", "w") as err:
        p = subprocess.Popen(wrapper + cmd, cwd=cli.tmp, env=_env(cli), stdout=out, stderr=err)
        hwm = 0
        cli_pid: int | None = None if time_bin else p.pid
        while p.poll() is None:
            cli_pid = cli_pid or _child_pid(p.pid)
            if cli_pid:
                hwm = max(hwm, _vm_hwm_kib(cli_pid) or 0)
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    err_a = (cli.tmp / "a.err").read_text()
    assert p.returncode == 0, err_a
    _no_traceback(err_a)
    size = _check_flood_execution(cli, json.loads((cli.tmp / "a.out").read_text())["id"])
    assert hwm > 0, "could not read VmHWM of the CLI process"
    assert hwm < 200 * 1024, f"runner VmHWM {hwm} KiB"
    if before < 200 * 1024:
        assert after < 200 * 1024, f"largest child RSS {after} KiB"
    rss_b: int | None = None
    if time_bin:
        rss_b = int(rss_file.read_text().split()[-1])
        assert rss_b < 200 * 1024, f"runner max RSS {rss_b} KiB"

    print(f"\n[flood] stored log {size / MIB:.2f} MiB of {FLOOD_BYTES / MIB:.0f} MiB; runner VmHWM "
          f"{hwm / 1024:.1f} MiB; max child RSS (getrusage) {after / 1024:.1f} MiB (before {before / 1024:.1f}); "
          f"/usr/bin/time %M {'n/a' if rss_b is None else f'{rss_b / 1024:.1f} MiB'}; wall {wall:.2f} s")


# --------------------------------------------------------------------------------------------------
# 2. concurrent writers on one store (reliability row 9)
# --------------------------------------------------------------------------------------------------

WRITERS = 6  # run processes at once, each slot starting its next run as soon as the last one ended
ROUNDS = 3
READERS = 2
CHAIN = 20


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, d in events:
        now += d
        best = max(best, now)
    return best


def _epoch(iso: str) -> float:
    import datetime

    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


@pytest.mark.slow
def test_concurrent_writers_and_reader_on_one_store(cli: Cli) -> None:
    # Steps that last a little: runs got fast enough that overlap was left to chance.
    f = cli.write("chain.yaml", template("chain-20", _chain_body(CHAIN, "sleep, '0.03'")))
    base = [sys.executable, "-m", "orchestrator"]
    stop = threading.Event()
    reads: list[tuple[list[str], int, str, str]] = []
    runs: list[tuple[int, str, str]] = []

    def reader() -> None:
        seen: list[str] = []
        while not stop.is_set():
            args = ["executions", "--json"]
            if seen and len(reads) % 2:
                args = ["executions", "show", seen[len(reads) % len(seen)], "--json"]
            r = subprocess.run(base + args, cwd=cli.tmp, env=cli.env, capture_output=True, text=True, timeout=60)
            reads.append((args, r.returncode, r.stdout, r.stderr))
            if r.returncode == 0 and args[1] == "--json":
                seen = [e["id"] for e in json.loads(r.stdout)]

    def writer() -> None:
        for _ in range(ROUNDS):
            r = subprocess.run(base + ["run", str(f), "-q", "--no-cache", "--json"], cwd=cli.tmp, env=cli.env,
                               capture_output=True, text=True, timeout=120)
            runs.append((r.returncode, r.stdout, r.stderr))

    cli("init", check=0)  # the store exists before the race starts (creation is not the point here)
    t0 = time.perf_counter()
    readers = [threading.Thread(target=reader, daemon=True) for _ in range(READERS)]
    writers = [threading.Thread(target=writer, daemon=True) for _ in range(WRITERS)]
    for th in readers + writers:
        th.start()
    for th in writers:
        th.join(timeout=300)
    duration = time.perf_counter() - t0
    stop.set()
    for th in readers:
        th.join(timeout=60)

    assert len(runs) == WRITERS * ROUNDS
    for rc, out, err in runs:
        assert rc == 0, err
        assert "locked" not in err.lower(), err
        _no_traceback(out, err)
        assert json.loads(out)["status"] == "COMPLETED"
    assert reads, "the reader never ran"
    for args, rc, out, err in reads:
        assert rc == 0, (args, err)
        assert "locked" not in err.lower(), (args, err)
        _no_traceback(out, err)
        json.loads(out)

    db = sqlite3.connect(cli.home / "orchestrator.db")
    try:
        execs = db.execute("SELECT id, status, created_at, completion_time FROM executions").fetchall()
        per = dict(db.execute("SELECT execution_id, count(*) FROM steps WHERE kind='leaf' AND state='SUCCEEDED' "
                              "GROUP BY execution_id").fetchall())
        step_rows = db.execute("SELECT count(*) FROM steps").fetchone()[0]
        attempt_rows = db.execute("SELECT count(*) FROM step_attempts").fetchone()[0]
    finally:
        db.close()
    assert len(execs) == WRITERS * ROUNDS and all(e[1] == "COMPLETED" for e in execs), execs
    assert all(per.get(e[0]) == CHAIN for e in execs), per
    assert _integrity(cli.home / "orchestrator.db") == "ok"
    # the runs really wrote at the same time: executions (created .. completed) overlapping at one instant
    overlap = _max_overlap([(_epoch(e[2]), _epoch(e[3])) for e in execs])
    assert overlap >= 4, execs
    print(f"\n[writers] {WRITERS} writer slots x {ROUNDS} runs x {CHAIN} steps + {READERS} readers "
          f"({len(reads)} reads) in {duration:.2f} s; up to {overlap} executions in flight at once; "
          f"{step_rows} step rows + {attempt_rows} attempt rows upserted "
          f"({(step_rows + attempt_rows) / duration:.0f} rows/s); 0 locked errors, 0 tracebacks")


def blob_output(size: int) -> str:
    """A one-step template whose output artifact ``bigblob`` is ``size`` zero bytes."""
    return f"""
- name: main
  outputs:
    artifacts:
      - {{name: blob, path: /tmp/out/blob.bin, globalName: bigblob}}
  container:
    image: alpine
    command: [sh, -c, 'head -c {size} /dev/zero > "$0"', "{{{{outputs.artifacts.blob.path}}}}"]
"""


HALF_GIB_OUTPUT = blob_output(512 * 1024 * 1024)


@pytest.mark.slow
def test_storing_a_large_output_does_not_hold_the_store_write_lock(cli: Cli) -> None:
    f = cli.write("half.yaml", template("half-gib", HALF_GIB_OUTPUT))
    cli("init", check=0)
    db = cli.home / "orchestrator.db"
    p = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(f), "-q", "--json"], cwd=cli.tmp,
                         env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    con = sqlite3.connect(db, timeout=0.05, isolation_level=None)
    longest, since, probes = 0.0, None, 0
    try:
        while p.poll() is None:
            t = time.monotonic()
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
                if since is not None:
                    longest, since = max(longest, t - since), None
            except sqlite3.OperationalError:
                since = since if since is not None else t
            probes += 1
            time.sleep(0.01)
        out, err = p.communicate()
    finally:
        con.close()
    if since is not None:
        longest = max(longest, time.monotonic() - since)
    try:
        assert p.returncode == 0, err
        assert json.loads(out)["outputArtifacts"][0]["url"].endswith("/bigblob")
        print(f"\n[write lock] longest time another process could not write while a 512 MiB output was "
              f"stored: {longest:.2f} s ({probes} probes)")
        assert longest < 0.5, f"write lock held for {longest:.2f} s"
    finally:
        shutil.rmtree(cli.home, ignore_errors=True)  # 1 GiB of step output and CAS blob


# --------------------------------------------------------------------------------------------------
# 3. disk full (reliability row 4): tmpfs mounts in a private user + mount namespace
# --------------------------------------------------------------------------------------------------

# Runs inside the namespace (where the tmpfs mounts exist): executes a plan of CLI calls and file
# operations and writes every result to a JSON file on the real disk, so the test asserts outside.
DRIVER = r'''
import errno, glob, json, os, sqlite3, subprocess, sys
plan = json.load(open(sys.argv[1]))
home = plan["home"]
results = []
for step in plan["steps"]:
    do = step["do"]
    if do == "cli":
        p = subprocess.run([sys.executable, "-m", "orchestrator", *step["args"]], cwd=plan["cwd"],
                           env={**os.environ, "ORCHESTRATOR_HOME": home}, capture_output=True, text=True,
                           timeout=120)
        results.append({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr})
    elif do == "fill":  # fill the filesystem, then give back room_kib KiB
        fd = os.open(step["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        block, size = b"\0" * 4096, 0
        while True:
            try:
                n = os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
            size += n
        os.ftruncate(fd, max(0, size - step["room_kib"] * 1024))
        os.close(fd)
        results.append({"filled": size})
    elif do == "rm":
        gone = [g for g in glob.glob(step["glob"], recursive=True) if os.path.isfile(g)]
        for g in gone:
            os.unlink(g)
        results.append({"removed": gone})
    elif do == "scan":  # regular files and bytes used under each directory
        out = {}
        for d in step["dirs"]:
            files = [os.path.join(r, n) for r, _, names in os.walk(d) for n in names]
            st = os.statvfs(d)
            out[d] = {"files": files, "used": (st.f_blocks - st.f_bfree) * st.f_frsize}
        results.append(out)
    elif do == "sql":
        con = sqlite3.connect(os.path.join(home, "orchestrator.db"))
        results.append({"rows": con.execute(step["query"]).fetchall()})
        con.close()
    elif do == "integrity":
        con = sqlite3.connect(os.path.join(home, "orchestrator.db"))
        results.append({"integrity": con.execute("PRAGMA integrity_check").fetchone()[0]})
        con.close()
json.dump(results, open(sys.argv[2], "w"))
'''


def _namespace_problem(tmp: Path) -> str | None:
    if not shutil.which("unshare"):
        return "unshare is not installed"
    d = tmp / "probe"
    d.mkdir()
    try:
        p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            'mount -t tmpfs -o size=1m tmpfs "$1" && touch "$1/x"', "sh", str(d)],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    return None if p.returncode == 0 else f"unshare/mount not permitted here: {p.stderr.strip()}"


def _in_namespace(cli: Cli, setup: str, steps: list[dict[str, Any]],
                  env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run ``setup`` (shell, ``$H`` = the home) then the plan, inside ``unshare -rm``; return the results."""
    problem = _namespace_problem(cli.tmp)
    if problem:
        pytest.skip(problem)
    driver = cli.write("ns_driver.py", DRIVER)
    plan = cli.write("ns_plan.json", json.dumps({"home": str(cli.home), "cwd": str(cli.tmp), "steps": steps}))
    result = cli.tmp / "ns_result.json"
    result.unlink(missing_ok=True)
    script = f'set -e\n{setup}\nexec "$PY" "$DRIVER" "$PLAN" "$RESULT"\n'
    env = {**_env(cli), "H": str(cli.home), "PY": sys.executable, "DRIVER": str(driver), "PLAN": str(plan),
           "RESULT": str(result), **(env or {})}
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], cwd=cli.tmp,
                       env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and result.exists(), f"namespace driver failed ({p.returncode}):\n{p.stderr}"
    return json.loads(result.read_text())


BIG_OUTPUT = blob_output(16 * 1024 * 1024)

SMALL_OUTPUT = """
- name: main
  outputs:
    artifacts:
      - {name: blob, path: /tmp/out/small.bin, globalName: smallblob}
  container:
    image: alpine
    command: [sh, -c, 'head -c 1024 /dev/urandom > "$0"', "{{outputs.artifacts.blob.path}}"]
"""


def test_disk_full_for_artifacts_registers_nothing(cli: Cli) -> None:
    big = cli.write("big.yaml", template("big-out", BIG_OUTPUT))
    small = cli.write("small.yaml", template("small-out", SMALL_OUTPUT))
    cli.home.mkdir()
    real_execs = cli.tmp / "real-executions"
    real_execs.mkdir()
    h = str(cli.home)
    objects, cas = f"{h}/objects", f"{h}/cas"
    # The home (store, objects, cas: one filesystem, outputs are hard links to CAS blobs) on a 4 MiB
    # tmpfs; the step directories on the real disk, so the step itself can write its 16 MiB output.
    setup = ('mount -t tmpfs -o size=4m tmpfs "$H"\nmkdir "$H/executions"\n'
             'mount --bind "$REAL_EXECS" "$H/executions"')
    r = _in_namespace(cli, setup, [
        {"do": "cli", "args": ["run", str(big), "-q", "--json"]},
        {"do": "cli", "args": ["artifacts", "--json"]},
        {"do": "scan", "dirs": [objects, cas]},
        {"do": "sql", "query": "SELECT url FROM artifacts UNION ALL SELECT 'cache:' || execution_id FROM step_cache"},
        {"do": "integrity"},
        {"do": "cli", "args": ["run", str(small), "-q", "--json"]},
        {"do": "cli", "args": ["artifacts", "--json"]},
        {"do": "integrity"},
    ], env={"REAL_EXECS": str(real_execs)})
    run_big, arts_after_big, scan, rows, integ1, run_small, arts_end, integ2 = r
    for x in (run_big, arts_after_big, run_small, arts_end):
        _no_traceback(x["stdout"], x["stderr"])
    # (a) the execution is DEAD with the reason; nothing was registered, cached or left on the disk
    assert run_big["rc"] == 1, run_big["stderr"]
    ex = json.loads(run_big["stdout"])
    assert ex["status"] == "DEAD"
    assert ex["statusMessage"] == "no space left on device while storing the outputs of step 'main'", ex["statusMessage"]
    assert [s["state"] for s in ex["steps"]] == ["FAILED"]
    assert ex["outputArtifacts"] == []
    assert json.loads(arts_after_big["stdout"]) == []
    assert rows["rows"] == []
    for d in (objects, cas):
        assert scan[d]["files"] == [], f"partial output left in {d}: {scan[d]['files']}"
    assert integ1["integrity"] == "ok"
    # a later small run in the same home works, and registers exactly its own output
    assert run_small["rc"] == 0, run_small["stdout"] + run_small["stderr"]
    ex2 = json.loads(run_small["stdout"])
    assert ex2["status"] == "COMPLETED"
    arts = json.loads(arts_end["stdout"])
    assert [a["url"] for a in arts] == [f"ai://default/{ex2['id']}/smallblob"], arts
    assert integ2["integrity"] == "ok"
    print(f"\n[disk full, artifacts] DEAD: {ex['statusMessage'].splitlines()[0][:120]}")


LOUD = """
- name: main
  container: {image: alpine, command: [head, -c, "4194304", /dev/zero]}
"""


@pytest.mark.parametrize("case", ["db-grows", "db-cannot-open", "log-fills-disk"])
def test_disk_full_for_the_store_is_a_clear_error(cli: Cli, case: str) -> None:
    one = cli.write("one.yaml", template("chain-1", _chain_body(1)))
    many = cli.write("many.yaml", template("chain-20", _chain_body(CHAIN)))
    loud = cli.write("loud.yaml", template("loud-4m", LOUD))
    cli.home.mkdir()
    h = str(cli.home)
    if case == "log-fills-disk":
        # the database (~170 KiB) fits; the step's 4 MiB of log does not
        setup = 'mount -t tmpfs -o size=2m tmpfs "$H"'
        prelude: list[dict[str, Any]] = []
        failing = ["run", str(loud), "-q", "--no-cache"]
        free = {"do": "rm", "glob": f"{h}/executions/**/attempt-*.log"}
    else:
        setup = 'mount -t tmpfs -o size=1m tmpfs "$H"'
        room = 40 if case == "db-grows" else 0  # KiB left after the store exists (silent steps write no log file)
        prelude = [{"do": "cli", "args": ["run", str(one), "-q"]},
                   {"do": "fill", "path": f"{h}/filler", "room_kib": room}]
        failing = ["run", str(many), "-q", "--no-cache"]
        free = {"do": "rm", "glob": f"{h}/filler"}
    r = _in_namespace(cli, setup, prelude + [
        {"do": "cli", "args": failing},
        free,
        {"do": "cli", "args": ["executions", "--json"]},
        {"do": "cli", "args": ["run", str(one), "-q", "--no-cache", "--json"]},
        {"do": "integrity"},
    ])
    if prelude:
        assert r[0]["rc"] == 0, r[0]["stderr"]
        r = r[2:]
    fail, _, listing, later, integ = r
    for x in (fail, listing, later):
        _no_traceback(x["stdout"], x["stderr"])
    err = fail["stderr"]
    assert fail["rc"] in (1, 3), (fail["rc"], err)
    if fail["rc"] == 3:
        head = err.strip().splitlines()[0]
        assert head.startswith("error:") and "store" in head, err
        assert any(w in err for w in ("full", "No space", "I/O")), err
    # once there is room again: every execution is terminal (a lost runner is reaped), with a reason
    assert listing["rc"] == 0, listing["stderr"]
    execs = json.loads(listing["stdout"])
    assert all(e["status"] in TERMINAL for e in execs), execs
    assert all(e["statusMessage"] for e in execs if e["status"] != "COMPLETED"), execs
    if fail["rc"] == 1:
        assert any(e["status"] == "DEAD" for e in execs), execs
    assert later["rc"] == 0, later["stderr"]
    assert json.loads(later["stdout"])["status"] == "COMPLETED"
    assert integ["integrity"] == "ok"
    print(f"\n[disk full, {case}] exit {fail['rc']}: {err.strip().splitlines()[0] if err.strip() else ''}; "
          f"afterwards {[(e['status'], e['statusMessage'][:60]) for e in execs if e['status'] != 'COMPLETED']}")


# --------------------------------------------------------------------------------------------------
# 4. unusable store path
# --------------------------------------------------------------------------------------------------

def _one_clear_line(p: subprocess.CompletedProcess[str]) -> None:
    assert p.returncode != 0
    _no_traceback(p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.strip().startswith("hint:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr


@pytest.mark.parametrize("where", ["file/home", "file"])
@pytest.mark.parametrize("command", ["run", "executions"])
def test_home_under_a_regular_file_is_a_clear_error(cli: Cli, where: str, command: str) -> None:
    f = cli.write("one.yaml", template("chain-1", _chain_body(1)))
    (cli.tmp / "file").write_text("not a directory\n")
    home = cli.tmp / where
    args = ["run", str(f), "-q"] if command == "run" else ["executions"]
    p = cli(*args, env={"ORCHESTRATOR_HOME": str(home)})
    _one_clear_line(p)
    assert str(home) in p.stderr or "directory" in p.stderr.lower(), p.stderr
    assert (cli.tmp / "file").read_text() == "not a directory\n"


def test_read_only_home_is_a_clear_store_error(cli: Cli) -> None:
    f = cli.write("one.yaml", template("chain-1", _chain_body(1)))
    cli("run", str(f), "-q", check=0)
    setup = 'mount --bind "$H" "$H"\nmount -o remount,bind,ro "$H"'
    (run,) = _in_namespace(cli, setup, [{"do": "cli", "args": ["run", str(f), "-q", "--no-cache"]}])
    assert run["rc"] == 3, run
    _one_clear_line(subprocess.CompletedProcess([], run["rc"], run["stdout"], run["stderr"]))
    assert "store" in run["stderr"]
