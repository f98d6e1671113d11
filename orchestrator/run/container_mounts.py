"""The mounts of a step's container: its declared paths, its volumes, and what is copied out.

Owns: the ``-v`` options that show a step's input artifacts read-only at their declared paths and
its output artifact / output parameter paths from the step directory, the outputs copied out of
the container after it exited instead (a path the image may already have: a mount would hide
it), the ``volumeMounts`` (emptyDir / secret directories :mod:`orchestrator.run.prepare` made in
the step directory), and the permissions that let the image's user — whoever it is, in its own
user namespace — write them (as a Kubernetes emptyDir is writable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.plan.graph import Node
from orchestrator.run.prepare import Prepared
from orchestrator.store.paths import refuse_links


def mounts(r: Any, node: Node, prep: Prepared) -> tuple[list[str], list[tuple[str, str]]]:
    """``-v`` options, and the outputs copied out of the container after it exited: a file whose
    directory is not private (``/tmp``, ``/mnt``) and a path the image may already have (one
    that exists on hosts, such as ``/etc/...``) are copied as Argo's executor copies them, so a
    mount never hides what the image has there."""
    t = node.template
    binds: dict[str, tuple[str, str]] = {}  # target -> (host, mode)
    copy_out: list[tuple[str, str]] = []
    in_image = set(prep.image)
    prep.image.clear()  # the host is not the image: nothing is collected from the host's paths

    def output(where: str, host: str, is_dir: bool, existing: bool) -> None:
        if existing:
            copy_out.append((where + ("/." if is_dir else ""), host))
        elif is_dir:
            binds[where] = (host, "rw")
        elif os.path.dirname(where).split("/")[1] in ("tmp", "mnt"):
            binds.setdefault(os.path.dirname(where), (str(Path(host).parent), "rw"))
        else:
            copy_out.append((where, host))

    for a in t.input_artifacts:
        host = prep.paths.get(f"inputs.artifacts.{a.name}")
        if host:
            binds[_norm(r.ctx.declared_path(node, a.path))] = (host, "ro")
    for a in t.output_artifacts:
        host = prep.paths.get(f"outputs.artifacts.{a.name}")
        if host:
            output(_norm(r.ctx.declared_path(node, a.path)), host, Path(host).is_dir(), a.name in in_image)
    for o in t.output_parameters:
        host = prep.paths.get(f"outputs.parameters.{o.name}")
        if host:
            output(_norm(r.ctx.declared_path(node, o.value_from_path or "")), host, False, False)
    out: list[str] = []
    for target, (host, mode) in sorted(binds.items(), key=lambda kv: kv[0].count("/")):
        if target == "/" or any(ch in target or ch in host for ch in ":,\n"):
            raise OrchestratorError(f"step {node.id!r}: declared path {target[:80]!r} cannot be mounted in a "
                                    "container (it is / or holds ':' ',' or a newline)")
        if mode == "rw":
            writable(host)
        out += ["-v", f"{host}:{target}:{mode}"]
    return out, copy_out


def volume_args(node: Node, prep: Prepared) -> list[str]:
    """``-v`` options of the step's ``volumeMounts`` (emptyDir / secret directories prepared in the
    step directory)."""
    out: list[str] = []
    workdir = prep.step_dir.parent.parent  # <workdir>/steps/<step>; claim volumes: <workdir>/volumes/<name>
    for host, target, read_only in prep.volumes:
        if any(ch in target or ch in host for ch in ":,\n"):
            raise OrchestratorError(f"step {node.id!r}: volume mount path {target[:80]!r} cannot be mounted")
        rel = os.path.relpath(host, workdir).split(os.sep)
        if rel[0] != "..":  # a step (this one's earlier container, another) may have swapped a dir for a link
            refuse_links(workdir / rel[0], rel[1:])
        writable(host)
        out += ["-v", f"{host}:{target}:{'ro' if read_only else 'rw'}"]
    return out


def writable(path: str) -> None:
    """A mounted output directory is writable by the image's user, whoever it is (as a Kubernetes
    emptyDir is); the store's home keeps it private to this machine's user."""
    try:
        if os.path.isdir(path):
            os.chmod(path, 0o777)
    except OSError:
        pass


def _norm(declared: str) -> str:
    return os.path.normpath("/" + declared.lstrip("/"))
