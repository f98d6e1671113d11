"""Reaching a Ray cluster before ``ray.init``: a bounded first contact and the driver's token mode.

Owns: the first contact with the cluster's address (``$ORCHESTRATOR_RAY_CONNECT_TIMEOUT`` seconds,
default 15), so that a wrong address is a clear error naming it instead of Ray's 13 minutes of
retries, and putting the driver in the cluster's token-authentication mode. Ray 2.60's ``ray
start --head`` turns token auth on when ``~/.ray/auth_token`` exists, but a driver given an
explicit address never does (``ray.init`` reads only ``RAY_AUTH_MODE``): it then gets ~20 s of
``InvalidAuthToken`` and a vague failure. And a driver in token mode against a cluster without it
hangs (the workers cannot answer it). So the GCS is asked one unauthenticated question, and
``RAY_AUTH_MODE`` follows its answer (``token`` with this machine's token, else ``disabled``),
or the run is refused at once saying what to do. Imports Ray's generated gRPC stubs only here.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from orchestrator.errors import OrchestratorError, UsageError

TIMEOUT_VAR = "ORCHESTRATOR_RAY_CONNECT_TIMEOUT"
AUTH_MODE_VAR = "RAY_AUTH_MODE"


def timeout() -> float:
    """Seconds the first contact with the cluster may take (``$ORCHESTRATOR_RAY_CONNECT_TIMEOUT``)."""
    text = os.environ.get(TIMEOUT_VAR, "").strip() or "15"
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise UsageError(f"{TIMEOUT_VAR}={text!r} is not a number of seconds in (0, 3600]")
    return value


def token_available() -> bool:
    """Whether a Ray token is there for this process: ``$RAY_AUTH_TOKEN``, the file
    ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` (the places Ray's token loader reads)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    named = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def reach(target: str) -> float:
    """Before ``ray.init``: the bounded first contact with ``target`` (:func:`probe`; "" or ``auto``:
    Ray finds the cluster itself); the bound, in seconds."""
    wait = timeout()
    if target and target != "auto":
        probe(target, wait)
    return wait


def hint(wait: float) -> str:
    """What to check when ``ray.init`` failed after :func:`reach` went through."""
    token = os.environ.get(AUTH_MODE_VAR, "").strip().lower() == "token"
    return ((f"{AUTH_MODE_VAR}=token: this machine's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) "
             "must be the cluster's (`ray get-auth-token` on the head prints it); " if token else "")
            + f"check the address, or start a cluster with `ray start --head --node-ip-address 127.0.0.1` "
            f"({TIMEOUT_VAR}={wait:g})")


def probe(address: str, seconds: float) -> None:
    """The first contact with the cluster at ``address`` (a GCS ``HOST:PORT`` or a Ray Client
    server ``ray://HOST:PORT``), bounded by ``seconds``, before ``ray.init`` (whose retries take
    minutes): an unreachable address is a clear error naming it. The server is asked one
    unauthenticated question (the GCS its cluster id, a Ray Client server a ping): one with token
    authentication refuses it, and the driver is put in the server's mode (``RAY_AUTH_MODE=token``
    with this machine's token, ``disabled`` otherwise) or refused at once with what to do (never
    20 s of ``InvalidAuthToken`` and a vague failure)."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2, ray_client_pb2_grpc
    except ImportError:  # another Ray: its own connection decides about tokens
        _tcp(address, seconds)
        return
    client = address.startswith("ray://")
    channel = grpc.insecure_channel(address.split("://", 1)[-1])
    try:
        if client:
            ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING), timeout=seconds)
        else:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(gcs_service_pb2.GetClusterIdRequest(),
                                                                              timeout=seconds)
        needs_token = False
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            _unreachable(address, seconds, str(exc.details() if callable(getattr(exc, "details", None)) else exc))
        needs_token = code == grpc.StatusCode.UNAUTHENTICATED  # else it answered: Ray's connection decides
    finally:
        channel.close()
    _match_auth(address, needs_token)


def _match_auth(address: str, needs_token: bool) -> None:
    mode = os.environ.get(AUTH_MODE_VAR)
    hint_token = ("give this machine the cluster's token: RAY_AUTH_TOKEN=..., a file named by RAY_AUTH_TOKEN_PATH, or "
                  "~/.ray/auth_token (`ray get-auth-token` on the head node prints it)")
    if needs_token:
        if mode is not None and mode.strip().lower() != "token":
            raise UsageError(f"the Ray cluster at {address} uses token authentication, but {AUTH_MODE_VAR}={mode}",
                             hint=f"unset {AUTH_MODE_VAR} (or set it to token) and {hint_token}")
        if not token_available():
            raise UsageError(f"the Ray cluster at {address} uses token authentication and this machine has no "
                             "Ray token", hint=hint_token)
        _set_mode("token")
    elif mode is None:
        _set_mode("disabled")  # a token file must not turn token mode on against an open cluster
    elif mode.strip().lower() == "token":
        raise UsageError(f"{AUTH_MODE_VAR}=token, but the Ray cluster at {address} does not use token "
                         "authentication (its workers could not answer this driver)",
                         hint=f"unset {AUTH_MODE_VAR}, or start the cluster with {AUTH_MODE_VAR}=token")


def _set_mode(mode: str) -> None:
    """``RAY_AUTH_MODE`` for this process and the runners it starts; Ray caches its config when
    imported, so it is made to read the variable again."""
    os.environ[AUTH_MODE_VAR] = mode
    if "ray" in sys.modules:
        try:
            from ray._raylet import Config

            Config.initialize("")
        except Exception:  # noqa: BLE001 - a Ray without this private hook reads the variable at ray.init
            pass


def _tcp(address: str, seconds: float) -> None:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except (OSError, ValueError) as exc:
        _unreachable(address, seconds, "timed out" if isinstance(exc, TimeoutError)
                     else (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__))


def _unreachable(address: str, seconds: float, reason: str) -> None:
    raise OrchestratorError(f"cannot connect to the Ray cluster at {address} within {seconds:g} s: "
                            f"{reason.splitlines()[0][:200] if reason else 'no answer'}",
                            hint="check the address (the head's GCS port, 6379 by default, as `ray start "
                            "--head` printed it; ray://HOST:10001 for Ray Client), or start a cluster with "
                            f"`ray start --head --node-ip-address 127.0.0.1`; {TIMEOUT_VAR} sets the wait")
