"""The predictor process: ``python -m orchestrator.serve``. THIS CONTRACT IS STABLE (deployments build on it).

    python -m orchestrator.serve --model PATH --sha256 HEX --name NAME
        [--format auto|skops|pickle|mlflow] [--host 127.0.0.1] --port N [--ready-file FILE]
        [--max-body-bytes N] [--request-timeout SECONDS]

1. Verifies PATH's sha256 BEFORE any byte is deserialized: a file is hashed as is; a directory as
   the store hashes it (sha256 of the sorted ``relpath\\0sha256(file)\\n`` manifest, the artifact
   digest recorded at output time). The verified bytes are held in memory and only they are loaded
   (no re-open between check and load). Symlinks and special files in PATH are refused.
2. Loads the model: skops (only scikit-learn/NumPy/SciPy types trusted), an MLflow model directory
   (``MLmodel``; sklearn flavor in skops, pickle or cloudpickle format), or a pickle (``.pkl``,
   ``.pickle``, ``.joblib``; allowed only because the digest matched). ``--format skops`` refuses
   anything that would unpickle. Feature names come from the MLflow signature, the shipped
   ``model.json`` or ``feature_names_in_``.
3. Binds HOST:PORT (a loopback address only, exit 2 otherwise; ``--port 0`` picks an ephemeral port), then writes
   ``{"port": N, "pid": PID}`` atomically to ``--ready-file`` (and the same line on stdout).
4. Serves until SIGTERM/SIGINT: stops listening, finishes requests in hand, exits 0.

Endpoints: KServe V1 ``GET /v1/models``, ``GET /v1/models/NAME``, ``POST /v1/models/NAME:predict``
(``instances`` or ``inputs``: rows, records or columns) → ``{"predictions": [...]}``. Open
Inference Protocol V2: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/NAME``,
``/v2/models/NAME/ready``, ``POST /v2/models/NAME/infer`` (typed tensors: one ``[rows, features]``
tensor or one ``[rows]`` tensor per named feature) → ``outputs: [{"name": "predict", ...}]``.
MLflow scoring: ``GET /ping``, ``/health``, ``/version``, ``POST /invocations`` (JSON with exactly one
of ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``; or ``text/csv`` with a
header) → ``{"predictions": [...]}``. Bad input → 4xx JSON in the protocol's error shape (V1/V2:
``{"error": msg}``; MLflow: ``{"error_code", "message"}``); the process never dies of a request.

Exit codes: 0 stopped by signal; 2 usage; 3 refused (sha256 mismatch, unsafe content: one line
``error: ...`` on stderr, nothing deserialized); 4 the verified model cannot be loaded; 5 the
address cannot be bound.

Must not import: control, api, cli, run (this process serves one model and knows no store).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import tempfile

from orchestrator.errors import OrchestratorError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestrator.serve",
                                description="Serve one attested model over KServe V1, OIP V2 and MLflow scoring.")
    p.add_argument("--model", required=True, help="model file or directory")
    p.add_argument("--sha256", required=True, help="the attested digest of --model (64 hex digits)")
    p.add_argument("--name", required=True, help="model name in the URLs")
    p.add_argument("--format", default="auto", choices=("auto", "skops", "pickle", "mlflow"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ready-file", default=None)
    p.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024)
    p.add_argument("--request-timeout", type=float, default=15.0,
                   help="seconds a client may take to send one request (slower: 408)")
    return p


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_ready(path: str, port: int) -> None:
    line = json.dumps({"port": port, "pid": os.getpid()})
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".ready-")
    with os.fdopen(fd, "w") as f:
        f.write(line + "\n")
    os.replace(tmp, path)


async def _serve(args: argparse.Namespace, router_handle: object) -> int:
    from orchestrator.serve.httpserver import Limits, Server

    limits = Limits(max_body_bytes=args.max_body_bytes, request_timeout=args.request_timeout)
    server = Server(router_handle, limits)  # type: ignore[arg-type]
    try:
        port = await server.start(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})", file=sys.stderr)
        return 5
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        _write_ready(args.ready_file, port)
    try:
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    except OSError:  # nobody reads stdout: the ready file is the contract
        pass
    await stop.wait()
    await server.drain()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.name or "/" in args.name or len(args.name) > 256:
        print("error: --name must be 1-256 characters without '/'", file=sys.stderr)
        return 2
    if not _loopback(args.host):
        print(f"error: --host {args.host!r} is not a loopback address; the predictor listens on this "
              "machine only (the API server's /v2/inference/deployments proxy is the way in)", file=sys.stderr)
        return 2
    from orchestrator.serve.loading import load_path
    from orchestrator.serve.predictor import Predictor
    from orchestrator.serve.protocols import Router

    try:
        loaded = load_path(args.model, args.sha256, args.format)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code if exc.exit_code in (3, 4) else 4
    router = Router(Predictor(args.name, loaded))
    # The ~100,000 objects of scikit-learn/SciPy and the model live as long as the process: out of
    # the collector's sight, a full collection no longer walks them (~85 ms here) mid-request.
    gc.collect()
    gc.freeze()
    try:
        import uvloop  # optional: a faster event loop when installed
    except ImportError:
        uvloop = None
    if uvloop is not None and hasattr(uvloop, "run"):
        return int(uvloop.run(_serve(args, router.handle)))
    return asyncio.run(_serve(args, router.handle))


if __name__ == "__main__":
    sys.exit(main())
