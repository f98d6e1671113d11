"""A deployment's predictor as a container of its own image (container executor, issue 13).

Owns: turning the KServe predictor container of a ServingTemplate into ``ENGINE run`` of its
``image`` when the container executor is chosen (``--executor`` / ``$ORCHESTRATOR_EXECUTOR``):
``command`` → ``--entrypoint`` (the image's when none), ``args`` after the image (``$(NAME)``
expanded from its env as Kubernetes does), its ``env``, ``PORT`` = the ``containerPort`` (KServe's
8080 by default) inside, published on ``127.0.0.1:<free port>`` of this machine (the port the
deployment's proxy forwards to), the bound model mounted read-only at ``/mnt/models`` (KServe's
storage initializer's place; ``STORAGE_URI``/``MODEL_DIR`` point there), labels
``orchestrator.deployment`` / ``orchestrator.token`` (what the next manager removes after a kill -9
of this one), its own user namespace where the engine gives one
(:func:`~orchestrator.run.container_pod.userns_args`), and its readiness (:func:`answers`: the
first byte of an HTTP answer, since the engine holds the published port before the server
listens). The manager supervises it like any predictor (:class:`~orchestrator.run.container.ContainerStep`:
stop = the engine's stop, then removal).
"""

from __future__ import annotations

import json
import os
from typing import Any

from orchestrator.control.deploy_launch import Launch, free_port
from orchestrator.errors import UsageError
from orchestrator.spec.image_ref import image_problem

MODEL_DIR = "/mnt/models"
KSERVE_PORT = 8080


def chosen() -> str:
    """The container executor's name when one is chosen, else ""."""
    choice = (os.environ.get("ORCHESTRATOR_EXECUTOR") or "local").strip().lower()
    return "" if choice == "local" or choice.startswith("ray") else choice  # Ray: predictors stay here


def container_launch(container: dict[str, Any], env: dict[str, str], resolve: Any, model_path: str, name: str,
                     configuration_id: str, deployment_id: str, token: str) -> Launch:
    from orchestrator.control.deploy_launch import _k8s_vars
    from orchestrator.plan.splice import render
    from orchestrator.run.container import LABEL_TOKEN, engine_env, find_engine
    from orchestrator.run.container_pod import userns_args

    image = str(container.get("image") or "")
    if not image:
        raise UsageError("the predictor container has no image: the container executor runs its image")
    problem = image_problem(image)
    if problem is not None:
        raise UsageError(f"the predictor container's image {image[:200]!r} is refused: {problem}",
                         hint="use a reference such as registry.example.com/team/image:1.0")
    engine = find_engine(chosen())
    inner = KSERVE_PORT
    ports = [p for p in container.get("ports") or [] if isinstance(p, dict) and p.get("containerPort")]
    if ports:
        try:
            inner = int(ports[0]["containerPort"])
        except (TypeError, ValueError):
            raise UsageError(f"containerPort {ports[0]['containerPort']!r} is not a number") from None
    port = free_port()
    inside = dict(env)
    inside.update({"PORT": str(inner), "MODEL_NAME": name, "K_CONFIGURATION": configuration_id})
    platform = {"PORT", "MODEL_NAME", "K_CONFIGURATION"}
    if model_path:
        inside.update({"STORAGE_URI": MODEL_DIR, "MODEL_DIR": MODEL_DIR})
        platform |= {"STORAGE_URI", "MODEL_DIR"}
    # $(NAME) is expanded in the template's own words before parameters are spliced (never after)
    command = [_k8s_vars(str(c), inside, frozenset(platform)) for c in container.get("command") or []]
    args = [_k8s_vars(str(a), inside, frozenset(platform)) for a in container.get("args") or []]
    rendered = render(command, args, None, resolve, set(inside), image)
    inside.update(rendered.env)
    words = rendered.argv
    cname = f"orch-dep-{token}"
    argv = [engine, "run", "--name", cname, "--label", f"orchestrator.deployment={deployment_id}",
            "--label", f"{LABEL_TOKEN}={token}", "--publish", f"127.0.0.1:{port}:{inner}", "--pull", "missing",
            *userns_args(os.path.basename(engine))]
    if model_path:
        argv += ["-v", f"{model_path}:{MODEL_DIR}:ro"]
    client = engine_env(engine)
    for k, v in inside.items():
        if not k or "*" in k or "=" in k:
            raise UsageError(f"environment variable name {k[:80]!r} cannot be passed to a container")
        argv += ["-e", k]
        client[k] = v
    if command:
        argv += ["--entrypoint", json.dumps(words[:len(command)])]
        words = words[len(command):]
    argv += [image, *words]
    from orchestrator.run.steps import TOKEN_VAR

    client[TOKEN_VAR] = token  # the client is tagged like any predictor process
    return Launch(argv, client, "container", port, model_name=name, configuration_id=configuration_id,
                  notes=[f"{os.path.basename(engine)} container of {image}, port {inner} published on 127.0.0.1:{port}"],
                  container_name=cname, engine=engine)


def remove_left(deployment_id: str) -> None:
    """The predictor containers of ``deployment_id`` a killed deployment manager left running
    (only when a container executor is chosen: host predictors cost nothing here)."""
    if chosen():
        from orchestrator.run.container_reap import remove_deployment

        remove_deployment(deployment_id)


def answers(port: int) -> bool:
    """Whether the predictor behind the published ``port`` answers an HTTP request. A TCP connect
    is not enough: the engine binds a published port before the container serves (podman's
    conmon holds it, and a connection made before the forwarding rules exist waits there
    forever; docker-proxy accepts, then closes), so readiness is the first byte of an answer."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.settimeout(1.0)
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return bool(s.recv(1))
    except OSError:
        return False
