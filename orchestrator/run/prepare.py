"""Preparing a leaf node to run and collecting its outputs afterwards.

Owns: the per-step directory (it is the step's HOME and TMPDIR; ``fs/`` holds the declared
absolute paths of artifacts and output parameters and stands for the image's root: it is the
step's cwd when it declares paths and has no ``workingDir``, so ``result.txt`` written relative to
Argo's default WORKDIR ``/`` is ``/result.txt``; plus the log and the tracking file), materialising input
artifacts, building argv/env in one substitution pass (no shell is ever built; a value placed in
shell or Python code goes through :mod:`orchestrator.plan.splice`, which hoists it into a variable
or escapes it for its literal), placeholders in declared paths (artifact ``path:``,
``valueFrom.path``, ``workingDir``) substituted and then kept inside the step directory by
``resolve_inside``, the explicit step environment with the step's secrets
(:mod:`orchestrator.run.secrets`), the optional mount-namespace sandbox that shows ``fs/app/data`` at
``/app/data``, and after success: output parameters and content-addressed output artifacts. The step
directory's file-system helpers (names, link safety, image copies, sandbox binds) live in
:mod:`orchestrator.run.stepdir` and are re-exported here.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import ArtifactError
from orchestrator.model import Container, Execution
from orchestrator.plan import splice
from orchestrator.plan.graph import Graph, Node
from orchestrator.plan.resolve import Context
from orchestrator.run import attest, mlflow_endpoint, stepfiles
from orchestrator.run.secrets import secret_env, secret_files
from orchestrator.run.stepdir import (IMAGE_MAX_BYTES, IMAGE_MAX_FILES, copy_from_image, host_path, in_image, real_dir,
                                      safe_name)
from orchestrator.run.stepdir import no_link as _no_link
from orchestrator.run.stepdir import sandbox_binds as _binds
from orchestrator.run.steps import TOKEN_VAR, StepSpec
from orchestrator.spec import placeholders
from orchestrator.store import Store
from orchestrator.store.artifacts import ObjectStore, resolve_inside

__all__ = ["IMAGE_MAX_BYTES", "IMAGE_MAX_FILES", "MAX_OUTPUT_PARAM", "PASSTHROUGH", "Prepared", "RunnerLike",
           "base_env", "collect_outputs", "copy_from_image", "host_path", "in_image", "prepare_leaf", "real_dir",
           "register", "safe_name"]

PASSTHROUGH = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONPATH", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
               "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SSL_CERT_FILE", "SSL_CERT_DIR")
MAX_OUTPUT_PARAM = 256 * 1024


class RunnerLike(Protocol):
    ctx: Context
    objects: ObjectStore
    workdir: Path
    sandbox: tuple[bool, str]
    ex: Execution
    store: Store
    rg: str
    graph: Graph
    global_outputs: dict[str, str]
    base_env: dict[str, str]
    made_dirs: set[str]  # step directories known to exist
    path_digests: dict[str, str]  # host path -> its tree digest, when known


@dataclass
class Prepared:
    spec: StepSpec
    step_dir: Path
    log_path: str
    tracking_path: str
    paths: dict[str, str]  # "inputs.artifacts.x" -> host path, ...
    image: dict[str, str] = field(default_factory=dict)  # output artifact -> its path in the "image" (the host)
    sidecars: list[StepSpec] = field(default_factory=list)  # started with the step, killed when it ends
    before: list[tuple[str, StepSpec]] = field(default_factory=list)  # containerSet: run one by one before main
    volumes: list[tuple[str, str, bool]] = field(default_factory=list)  # (host dir, mount path, read-only)
    # A remote executor's worker reaches buckets itself: input name -> (S3 target, key, host path)
    # not downloaded here; output name -> what the worker uploaded ({"digest", "size", "keys", ...}).
    remote: dict[str, tuple[Any, str, Path]] = field(default_factory=dict)
    pushed: dict[str, dict[str, Any]] = field(default_factory=dict)


_base_env: tuple[object, dict[str, str]] = ((), {})  # (the environment it was built from, it)


def base_env() -> dict[str, str]:
    """What every step's environment starts from: the runner's variables that pass through."""
    global _base_env
    # Built once per state of the environment (a C-level snapshot of its raw items is compared):
    # decoding and filtering every variable costs a runner ~0.2 ms, as much as the rest of a step's env.
    raw = getattr(os.environ, "_data", None)
    snap = tuple(raw.items()) if isinstance(raw, dict) else None
    if snap is not None and snap == _base_env[0]:
        return dict(_base_env[1])
    extra = [v for v in os.environ.get("ORCHESTRATOR_STEP_ENV_PASSTHROUGH", "").split(",") if v]
    env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH or k.startswith("LC_") or k in extra}
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONUNBUFFERED"] = "1"
    if snap is not None:
        _base_env = (snap, dict(env))
    return env


def prepare_leaf(r: RunnerLike, node: Node, attempt: int = 1) -> Prepared:
    """Build one attempt of a leaf; its inputs must already be resolved (``ctx.call_inputs``)."""
    ctx = r.ctx
    d = ctx.data[node.id]
    d.attempt = attempt - r.attempt_base.get(node.id, 0)  # {{retries}}: within its call's attempt
    t = node.template
    assert t.container is not None
    step_dir = r.workdir / "steps" / safe_name(node.id)
    # The runner's helper thread usually made it already: then no syscall at all (a mkdir that
    # only finds EEXIST still queues on the parent directory's lock behind the helper's mkdirs).
    if str(step_dir) not in r.made_dirs:
        try:
            os.mkdir(step_dir)
        except FileNotFoundError:
            step_dir.mkdir(parents=True)
        except FileExistsError:
            pass
    # A retry starts from clean declared paths, not the failed attempt's leftovers; a link the step
    # left at fs/ or volumes/ (it can write its directory) is removed, never followed.
    real_dir(step_dir / "fs", wipe=attempt > 1)
    real_dir(step_dir / "volumes", wipe=False)
    paths: dict[str, str] = {}
    declared: list[tuple[str, Path, bool]] = []  # (declared path, host path, is_dir)
    materialised: list[tuple[str, Path, Path]] = []  # (name, source, copy): for the attestation file
    direct = bool(getattr(getattr(r, "executor", None), "direct_inputs", False))
    remote_in: dict[str, tuple[Any, str, Path]] = {}
    decl = lambda text: ctx.declared_path(node, text)  # noqa: E731 - placeholders in paths, then containment
    for a in t.input_artifacts:
        if a.name not in d.in_artifacts and a.raw is not None:  # raw.data: written as the file
            where = decl(a.path)
            dest = host_path(step_dir, where)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(a.raw, encoding="utf-8")
            if a.mode is not None:
                os.chmod(dest, a.mode & 0o777)
            paths[f"inputs.artifacts.{a.name}"] = str(dest)
            declared.append((where, dest, False))
            continue
        if a.name not in d.in_artifacts:
            continue
        where = decl(a.path)
        dest = host_path(step_dir, where)
        bucket = r.objects.deferred_remote(d.in_artifacts[a.name]) if direct else None
        if bucket is not None:  # the executor's worker downloads it (never this machine)
            dest.parent.mkdir(parents=True, exist_ok=True)
            remote_in[a.name] = (bucket[0], bucket[1], dest)
            paths[f"inputs.artifacts.{a.name}"] = str(dest)
            declared.append((where, dest, where.endswith("/")))
            continue
        src = r.objects.fetch(d.in_artifacts[a.name])  # a bucket's input is downloaded once, here
        if not src.exists():
            raise ArtifactError(f"input artifact {a.name!r}: {src} does not exist")
        r.objects.materialize(src, Path(str(dest) + ("/" if where.endswith("/") else "")))
        if a.mode is not None and dest.is_file():
            os.chmod(dest, a.mode & 0o777)
        paths[f"inputs.artifacts.{a.name}"] = str(dest)
        declared.append((where, dest, dest.is_dir()))
        materialised.append((a.name, src, dest))
    image: dict[str, str] = {}
    for a in t.output_artifacts:
        where = decl(a.path)
        dest = host_path(step_dir, where)
        # Argo does not pre-create an output path: the step makes a file or a directory there.
        # Only a path ending in "/" is a directory before the step starts; for the rest the
        # parent exists (and is what the sandbox shows), so either kind can be written.
        if where.endswith("/"):
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
        paths[f"outputs.artifacts.{a.name}"] = str(dest)
        if in_image(where):
            # It exists in the "image" (the host runs the step): Argo saves what is there, so the
            # step sees it unshadowed and an unwritten path is collected from it afterwards.
            image[a.name] = os.path.normpath(where)
            continue
        declared.append((where, dest, where.endswith("/")))
    for o in t.output_parameters:
        if o.value_from_path:
            where = decl(o.value_from_path)
            dest = host_path(step_dir, where)
            dest.parent.mkdir(parents=True, exist_ok=True)
            paths[f"outputs.parameters.{o.name}"] = str(dest)
            declared.append((where, dest, False))
    resolve = lambda ex: ctx.leaf(node, paths, ex)  # noqa: E731
    sub = lambda text: placeholders.substitute(text, resolve)  # noqa: E731
    c = t.container
    token = f"{r.ex.id}-{hashlib.sha1(node.id.encode()).hexdigest()[:10]}"
    log_path = str(step_dir / (f"attempt-{attempt}.log"))
    tracking = str(step_dir / f"tracking-{attempt}.jsonl")  # per attempt: a retry never re-reads
    for own in (log_path, tracking, step_dir / "script"):
        _no_link(Path(own))
    env = dict(r.base_env)
    from_secrets, key_secrets = secret_env(r.store, r.rg, c, sub)  # ({}, {}) without secret references
    env.update(from_secrets)  # envFrom first; env entries override it (as in Kubernetes)
    env.update({k: sub(v) for k, v in c.env})
    env.update(key_secrets)
    if "MLFLOW_TRACKING_URI" not in env:  # the step's MLflow run on the runner's endpoint (issue 14)
        env.update(mlflow_endpoint.step_env(r, token, node.id))
    # One directory per step is HOME, TMPDIR and cwd: each mkdir costs on a busy disk.
    env.update({"HOME": str(step_dir), "TMPDIR": str(step_dir),
                "ORCHESTRATOR_EXECUTION_ID": r.ex.id, "ORCHESTRATOR_STEP": node.id,
                "ORCHESTRATOR_TRACKING_FILE": tracking, TOKEN_VAR: token})
    if materialised:  # which inputs the platform vouches for (the scoring script loads only those)
        env[attest.ENV_VAR] = attest.write_step_attestations(r, materialised, step_dir)
    # Values placed in shell code travel as variables of their own (plan.splice), never as code.
    token_items = splice.USER_ITEMS.set(bool(node.has_item and node.call is not None and node.call.with_param))
    try:
        done = splice.render(c.command, c.args, c.source, resolve, env, t.name)
    finally:
        splice.USER_ITEMS.reset(token_items)
    argv = done.argv
    if done.script is not None:
        script = step_dir / "script"
        script.write_text(done.script, encoding="utf-8", errors="surrogateescape")
        # Executable, as Argo stages it: ``command: [sh, -c]`` runs the path itself as a command.
        os.chmod(script, 0o755)
        n = len(c.command) or 1
        argv = argv[:n] + [str(script)] + argv[n:]
    if not argv:
        raise ArtifactError(f"template {t.name!r} has no command")
    env.update(done.env)
    working_dir = decl(c.working_dir) if c.working_dir else ""
    cwd = step_dir
    root = ""  # the image's WORKDIR stand-in: the step's fs/ (its "/"), when it declares paths
    if not working_dir and (declared or image):
        root = str(step_dir / "fs")
        os.makedirs(root, exist_ok=True)
        cwd = Path(root)
    header = ""
    volumes = _volumes(r, node, step_dir)
    if volumes and r.sandbox == (False, "not needed"):  # the run planned none: no artifact paths
        from orchestrator.run import sandbox

        r.sandbox = sandbox.available()
    if volumes and not r.sandbox[0] and not getattr(getattr(r, "executor", None), "mounts_volumes", False):
        raise ArtifactError(f"template {t.name!r} mounts volumes ({', '.join(m for _h, m in volumes)}), which "
                            f"needs the sandbox (user namespaces): {r.sandbox[1] or 'disabled'}")
    binds: list[tuple[str, str]] | None = None
    if (declared or volumes) and r.sandbox[0]:
        from orchestrator.run import sandbox

        if working_dir:
            host_path(step_dir, working_dir).mkdir(parents=True, exist_ok=True)
            declared.append((working_dir, host_path(step_dir, working_dir), True))
        binds = _binds(step_dir, declared) + volumes
        argv = sandbox.wrap(argv, binds, str(step_dir), working_dir or root)
    elif declared:
        header = (f"[orchestrator] no sandbox ({r.sandbox[1] or 'disabled'}): declared paths such as "
                  f"{declared[0][0]} are only reachable through {{{{inputs/outputs.artifacts.NAME.path}}}}\n")
    if working_dir and not (declared and r.sandbox[0]):
        cwd = host_path(step_dir, working_dir)
        cwd.mkdir(parents=True, exist_ok=True)
    spec = StepSpec(argv, env, str(cwd), log_path, token, header=header)
    sides = [_sidecar(r, node, k, name, side, resolve, step_dir, attempt, binds, token)
             for k, (name, side) in enumerate(t.sidecars)]
    before = [(name, _sidecar(r, node, 100 + k, name, other, resolve, step_dir, attempt, binds, token))
              for k, (name, other) in enumerate(t.before_main)]
    ro = {"/" + m.path.strip("/"): m.read_only or m.kind == "secret" for m in c.mounts}
    return Prepared(spec, step_dir, log_path, tracking, paths, image, sides, before,
                    [(h, m, ro.get(m, False)) for h, m in volumes], remote_in)


def _sidecar(r: RunnerLike, node: Node, k: int, name: str, side: Container, resolve: Callable[[str], str],
             step_dir: Path, attempt: int, binds: list[tuple[str, str]] | None, token: str) -> StepSpec:
    """A sidecar (or another container of a containerSet) of the step: rendered like the main
    container (values never become code), in the step's directory and, when the step is
    sandboxed, with the same paths and volumes."""
    env = dict(r.base_env)
    env.update({k2: placeholders.substitute(v, resolve) for k2, v in side.env})
    env.update({"HOME": str(step_dir), "TMPDIR": str(step_dir), TOKEN_VAR: f"{token}-sc{k}"})
    done = splice.render(side.command, side.args, None, resolve, env, f"{node.template.name} sidecar {name}")
    if not done.argv:
        raise ArtifactError(f"sidecar {name!r} of template {node.template.name!r} has no command")
    env.update(done.env)
    argv = done.argv
    if binds is not None:
        from orchestrator.run import sandbox

        argv = sandbox.wrap(argv, binds, str(step_dir), "")
    kind = "sidecar" if k < 100 else "container"
    return StepSpec(argv, env, str(step_dir), str(step_dir / f"{kind}-{safe_name(name)}-{attempt}.log"),
                    f"{token}-sc{k}")


def _volumes(r: RunnerLike, node: Node, step_dir: Path) -> list[tuple[str, str]]:
    """``volumeMounts``: (host directory, mount path) binds. An emptyDir is a fresh directory per
    step (per pod, in Argo); a secret volume holds its keys as files (``run.secrets``); a
    ``volumeClaimTemplates`` volume is one directory of the execution, shared by its steps."""
    c = node.template.container
    out: list[tuple[str, str]] = []
    made: dict[str, Path] = {}
    for m in c.mounts if c is not None else ():
        if m.name not in made and m.kind == "claim":  # one per execution, shared by its steps
            made[m.name] = r.workdir / "volumes" / safe_name(m.name)
            made[m.name].mkdir(parents=True, exist_ok=True)
        elif m.name not in made:
            vol = step_dir / "volumes" / safe_name(m.name)
            real_dir(vol, wipe=True)  # a retry starts from an empty volume
            vol.mkdir(parents=True)
            if m.kind == "secret":
                secret_files(r.store, r.rg, m, str(vol))
            made[m.name] = vol
        host = resolve_inside(made[m.name], m.sub_path, strict_root=True) if m.sub_path else made[m.name]
        host.mkdir(parents=True, exist_ok=True)
        out.append((str(host), "/" + m.path.strip("/")))
    return out


def collect_outputs(r: RunnerLike, node: Node, prep: Prepared) -> list[tuple[str, str, str, int]]:
    """Read output parameters and store output artifacts (blobs) of a succeeded step.

    Returns the ``(globalName, url, digest, size)`` registrations still to be written: the caller
    writes them with the step's final state in one short transaction (no file I/O under the
    store's write lock).
    """
    pending: list[tuple[str, str, str, int]] = []
    d = r.ctx.data[node.id]
    t = node.template
    for o in t.output_parameters:
        if o.value is not None and not o.value_from_path:
            d.out_params[o.name] = o.value
            continue
        try:  # a link the step left is followed only inside its directory; never a FIFO
            data = stepfiles.read_output(str(prep.step_dir), prep.paths[f"outputs.parameters.{o.name}"],
                                         MAX_OUTPUT_PARAM)
        except stepfiles.NotRegular as exc:
            raise ArtifactError(f"output parameter {o.name!r}: {exc}") from None
        if data is None:
            if o.default is not None:
                d.out_params[o.name] = o.default
                continue
            raise ArtifactError(f"output parameter {o.name!r}: the step did not write {o.value_from_path}")
        d.out_params[o.name] = data.decode("utf-8", "replace").rstrip("\n")
    for o in t.output_parameters:
        if o.global_name and o.name in d.out_params:
            r.ctx.global_params[o.global_name] = d.out_params[o.name]
    for a in t.output_artifacts:
        p = Path(prep.paths[f"outputs.artifacts.{a.name}"])
        if a.name in prep.image and (not p.exists() or (p.is_dir() and not any(p.iterdir()))):
            copy_from_image(prep.image[a.name], p)
        up = prep.pushed.get(a.name)  # already in the `default` bucket: a remote worker uploaded it
        if up is None and (not p.exists() or (p.is_dir() and not any(p.iterdir()))):
            if a.optional:
                continue
            raise ArtifactError(f"output artifact {a.name!r}: nothing was written to {a.path}")
        d.out_artifacts[a.name] = p
        if a.global_name:
            r.ctx.global_artifacts[a.global_name] = p
            first = r.global_outputs.setdefault(a.global_name, node.id)
            if first != node.id:
                raise ArtifactError(f"globalName {a.global_name!r} is produced twice in this execution "
                                    f"(by {first!r} and {node.id!r}); the second would overwrite the first",
                                    hint="give each output its own globalName")
            if up is not None:  # a later step reads it from the bucket (deferred, as an input is)
                url, digest, size = f"ai://default/{r.ex.id}/{a.global_name}", str(up["digest"]), int(up["size"])
                r.objects.deferred[str(p)] = (r.rg, url)
                r.urls.setdefault(node.id, {})[a.name] = url  # where a resume finds it (not p: empty here)
                r.path_digests[str(p)] = digest
                d.out_digests[a.name] = digest
                pending.append((a.global_name, url, digest, size))
                continue
            url, digest, size = r.objects.store_output(r.rg, p, f"{r.ex.id}/{a.global_name}", prep.step_dir)
            d.out_digests[a.name] = digest
            pending.append((a.global_name, url, digest, size))
    return pending


def register(r: RunnerLike, global_name: str, url: str, digest: str, size: int) -> None:
    """Register an output artifact of this execution (kind/description/labels from annotations)."""
    m = r.graph.spec.artifact_meta.get(global_name)
    r.store.create_artifact(
        r.rg, name=(m.name if m and m.name else global_name), kind=m.kind if m else "other", url=url,
        scenario_id=r.ex.scenario_id, description=m.description if m else "",
        labels=m.labels if m else (), execution_id=r.ex.id, digest=digest, size=size)
