"""Benchmark: the built-in predictor (``python -m orchestrator.serve``) vs ``mlflow models serve``.

Both serve the SAME MLflow model directory (a 30-feature logistic regression on scikit-learn's
breast-cancer data, saved by ``mlflow.sklearn.save_model`` in skops format with a signature),
side by side in one run on this machine:

1. the floor: the in-process ``model.predict`` of one row (what no server can beat);
2. start-up, command to first ready: from ``Popen`` to the first 200 of ``GET /ping`` (the same
   probe for both; median of ``--starts`` starts);
3. load: a one-row ``POST /invocations`` (``dataframe_split``, the payload MLflow documents; the
   same bytes for both) at 1 and 10 connections for ``--seconds`` each with ``wrk`` (Debian
   package; ``--client python`` or no ``wrk`` → a small keep-alive Python client), req/s and
   p50/p99; plus our KServe V1 ``:predict`` as a second row, and the HTTP-stack alternative we
   did not choose: the same router as a bare ASGI app under uvicorn (httptools + uvloop). All
   servers run at once; ``--rounds`` rounds interleave every case and the median round (by req/s)
   is reported. Any non-2xx answer fails the run.

Targets (issue 16): ours ≥ 3× MLflow's req/s at 10 connections, p99 ≤ 20 ms, start-up ≤ 2 s.

    .venv/bin/python bench/bench_serve.py [--seconds 10] [--rounds 3] [--starts 3] [--client wrk|python]

Needs the dev extras (scikit-learn, skops, pandas, mlflow-skinny with fastapi + uvicorn, which is
what ``mlflow models serve`` runs on). Prints a markdown table and writes
``bench/results/serve.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_model(tmp: Path) -> tuple[Path, Any, list[float], list[str]]:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    d = load_breast_cancer()
    names = [str(n) for n in d.feature_names]
    frame = pd.DataFrame(d.data, columns=names)
    model = LogisticRegression(max_iter=10000).fit(frame.values, d.target)
    path = tmp / "model"
    mlflow.sklearn.save_model(model, str(path), serialization_format="skops",
                              skops_trusted_types=["sklearn.linear_model._logistic.LogisticRegression"],
                              signature=infer_signature(frame, model.predict(frame.values)))
    return path, model, [float(v) for v in d.data[0]], names


def floor(model: Any, row: list[float], n: int = 3000) -> dict[str, float]:
    import numpy as np

    x = np.array([row])
    for _ in range(200):
        model.predict(x)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        model.predict(x)
        samples.append(time.perf_counter() - t)
    samples.sort()
    return {"p50_ms": samples[n // 2] * 1e3, "p99_ms": samples[int(n * 0.99)] * 1e3,
            "max_rps_one_core": 1 / statistics.mean(samples)}


# The HTTP-stack alternative: the same router (same parsing, same predict) behind uvicorn
# (httptools + uvloop) as a bare ASGI app, to show what the stack alone costs.
ASGI_PEER = """
import sys, uvicorn
from orchestrator.serve.loading import load_path
from orchestrator.serve.predictor import Predictor
from orchestrator.serve.protocols import Router
router = Router(Predictor("bc", load_path(sys.argv[1], sys.argv[2])))
async def app(scope, receive, send):
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    ctype = dict(scope["headers"]).get(b"content-type", b"").decode()
    r = router.handle(scope["method"], scope["path"], ctype, body)
    await send({"type": "http.response.start", "status": r.status, "headers": [(b"content-type", r.content_type)]})
    await send({"type": "http.response.body", "body": r.body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False, lifespan="off")
"""


def commands(kind: str, model: Path, port: int) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    from orchestrator.store.artifacts import tree_digest

    if kind == "ours":
        return ([sys.executable, "-m", "orchestrator.serve", "--model", str(model), "--sha256", tree_digest(model),
                 "--name", "bc", "--port", str(port)], env)
    if kind == "uvicorn":
        return [sys.executable, "-c", ASGI_PEER, str(model), tree_digest(model), str(port)], env
    bindir = str(Path(sys.executable).parent)  # mlflow starts `uvicorn` from PATH
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return [str(Path(bindir) / "mlflow"), "models", "serve", "-m", str(model), "-p", str(port), "-h", "127.0.0.1",
            "--env-manager", "local"], env


def get(port: int, path: str) -> int:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return 0


def start(kind: str, model: Path, logs: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    port = free_port()
    argv, env = commands(kind, model, port)
    log = open(logs / f"{kind}-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while get(port, "/ping") != 200:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server exited ({proc.returncode}); see {log.name}")
        if time.perf_counter() - t0 > 120:
            raise SystemExit(f"{kind} server not ready after 120 s; see {log.name}")
        time.sleep(0.01)
    return proc, port, time.perf_counter() - t0


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system, children included) used so far by every process of a group:
    a start-up figure that other sessions on a shared machine do not inflate."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), after the state
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
    except ProcessLookupError:
        proc.wait()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def wrk(port: int, path: str, body: str, conns: int, seconds: float, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%")}


def pyclient(port: int, path: str, body: str, conns: int, seconds: float, tmp: Path) -> dict[str, float]:
    raw = body.encode()
    lat: list[list[float]] = [[] for _ in range(conns)]
    errors: list[int] = []
    end = time.perf_counter() + seconds

    def loop(i: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (t := time.perf_counter()) < end:
            c.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
            lat[i].append(time.perf_counter() - t)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(conns)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise SystemExit(f"non-200 answers: {errors[:5]}")
    allv = sorted(v for xs in lat for v in xs)
    return {"rps": len(allv) / seconds, "p50_ms": allv[len(allv) // 2] * 1e3, "p99_ms": allv[int(len(allv) * 0.99)] * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every load case (median)")
    ap.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "serve.json"))
    args = ap.parse_args()
    load = wrk if args.client == "wrk" else pyclient
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model_dir, model, row, names = build_model(tmp)
    result: dict[str, Any] = {"client": args.client, "seconds": args.seconds, "floor": floor(model, row)}
    split = json.dumps({"dataframe_split": {"columns": names, "data": [row]}})
    v1 = json.dumps({"instances": [row]})
    result["startup_s"] = {}
    for kind in ("ours", "mlflow"):
        times, cpu = [], []
        for _ in range(args.starts):
            proc, _, took = start(kind, model_dir, tmp)
            cpu.append(group_cpu(proc.pid))
            stop(proc)
            times.append(took)
        result["startup_s"][kind] = {"median": statistics.median(times), "all": times,
                                     "cpu_median": statistics.median(cpu)}
    # all servers up at once (an idle server costs nothing); rounds interleave every case, each
    # round starting at another case, and the median round is reported: load from other sessions
    # then hits every server alike instead of whichever happened to run during a busy minute
    servers = {kind: start(kind, model_dir, tmp) for kind in ("ours", "uvicorn", "mlflow")}
    try:
        cases = [(kind, label, path, body, conns)
                 for kind, label, path, body in (("ours", "invocations", "/invocations", split),
                                                 ("ours", "v1", "/v1/models/bc:predict", v1),
                                                 ("uvicorn", "invocations", "/invocations", split),
                                                 ("mlflow", "invocations", "/invocations", split))
                 for conns in (1, 10)]
        for kind, _, path, body, _ in cases[::2]:
            load(servers[kind][1], path, body, 10, 2, tmp)  # warm-up
        samples: dict[str, list[dict[str, float]]] = {}
        for r in range(args.rounds):
            for i in range(len(cases)):
                kind, label, path, body, conns = cases[(i + r * 3) % len(cases)]
                samples.setdefault(f"{kind} {label} c{conns}", []).append(
                    load(servers[kind][1], path, body, conns, args.seconds, tmp))
    finally:
        for proc, _, _ in servers.values():
            stop(proc)
    result["rounds"] = samples
    result["load"] = {}
    for kind, label, _, _, conns in cases:
        key = f"{kind} {label} c{conns}"
        runs = sorted(samples[key], key=lambda v: v["rps"])
        result["load"][key] = runs[len(runs) // 2]
    ours, theirs = result["load"]["ours invocations c10"], result["load"]["mlflow invocations c10"]
    result["ratio_rps_c10"] = ours["rps"] / theirs["rps"]
    result["targets"] = {"rps_ratio_ge_3": result["ratio_rps_c10"] >= 3,
                         "p99_le_20ms": max(v["p99_ms"] for k, v in result["load"].items() if k.startswith("ours")) <= 20,
                         "startup_le_2s": result["startup_s"]["ours"]["median"] <= 2}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["targets"]))
    print(f"\nfloor (in-process predict of one row): p50 {result['floor']['p50_ms']:.3f} ms, "
          f"p99 {result['floor']['p99_ms']:.3f} ms, {result['floor']['max_rps_one_core']:.0f}/s on one core")
    su = result["startup_s"]
    print(f"start-up to first ready (median of {args.starts}): ours {su['ours']['median']:.2f} s "
          f"(CPU {su['ours']['cpu_median']:.2f} s), mlflow {su['mlflow']['median']:.2f} s "
          f"(CPU {su['mlflow']['cpu_median']:.2f} s); load average {os.getloadavg()[0]:.1f}\n")
    print("| server / endpoint | connections | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for k, v in result["load"].items():
        kind, label, c = k.split()
        print(f"| {kind} {label} | {c[1:]} | {v['rps']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |")
    print(f"\nours / mlflow req/s at 10 connections (/invocations): {result['ratio_rps_c10']:.1f}x  "
          f"(client: {args.client}; results: {args.out})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
