"""Step cache: keys, entries and explanations.

Owns: the cache key of a leaf step — sha256 over its *resolved* definition (image, command, args,
env, script source, working dir, declared outputs), its input parameter values and the digests
of its input artifacts — computed with declared container paths in place of per-run host paths
(and ``{{workflow.name}}`` kept symbolic), so the key is stable across executions. Also the
per-step "why did it hit or miss" explanation by diffing the key's components with the last
earlier run of the same step. Declared paths enter the key with their placeholders substituted.
A step that reads secrets is not cacheable (:mod:`orchestrator.run.secrets` says why), nor is an exit
handler (``onExit``, exit hooks: they run every time, as in Argo); a secret reader's key
still lists the secret *references* (never values) so a resume notices when they change.
Pure functions plus store calls; no processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.plan.graph import Node
from orchestrator.plan.resolve import Context, ResolveError
from orchestrator.run.secrets import references, uses_secrets
from orchestrator.spec import placeholders

OPT_OUT = "orchestrator/cache"  # template metadata annotation: "false" disables caching
# Per-run values kept symbolic in the key. Not "status": an onExit handler that sees Failed is
# not the same step as one that saw Succeeded.
VOLATILE = {"name", "uid", "creationTimestamp", "duration"}


def cacheable(node: Node) -> bool:
    """Whether the step cache may serve or store this step: not when its template opts out, and
    never when it reads secrets (see :mod:`orchestrator.run.secrets` for why)."""
    if uses_secrets(node.template.container) or _claims(node) or _exit_handler(node):
        return False
    return dict(node.template.annotations).get(OPT_OUT, "true").lower() not in ("false", "no", "0", "off")


def _exit_handler(node: Node) -> bool:
    """Part of an ``onExit`` handler or an exit hook: it runs every time, as in Argo (a notification
    answered from the cache would silently not be sent)."""
    return node.handler or bool(node.hook_of)


def _claims(node: Node) -> bool:
    c = node.template.container
    return c is not None and any(m.kind == "claim" for m in c.mounts)


def not_cacheable_because(node: Node) -> str:
    """Why :func:`cacheable` is False for ``node`` (the note ``executions explain`` shows)."""
    if uses_secrets(node.template.container):
        return "not cached: the step reads secrets (a key must not depend on their values)"
    if _claims(node):
        return "not cached: the step mounts a volumeClaimTemplates volume (shared state no key covers)"
    if _exit_handler(node):
        return "not cached: an exit handler runs every time, as in Argo"
    return f"cache disabled by the template annotation {OPT_OUT}"


def components(ctx: Context, node: Node, digest_of: Callable[[Path], str]) -> dict[str, Any]:
    """What the step's key is made of (input params and artifacts must already be resolved)."""
    t = node.template
    assert t.container is not None
    d = ctx.data[node.id]
    declared: dict[str, str] = {}
    decl = lambda text: ctx.declared_path(node, text)  # noqa: E731
    for a in t.input_artifacts:
        declared[f"inputs.artifacts.{a.name}"] = decl(a.path)
    for a in t.output_artifacts:
        declared[f"outputs.artifacts.{a.name}"] = decl(a.path)
    for o in t.output_parameters:
        declared[f"outputs.parameters.{o.name}"] = decl(o.value_from_path)

    def canon(ex: str) -> str:
        parts = ex.split(".")
        if parts[0] == "workflow" and len(parts) == 2 and parts[1] in VOLATILE:
            return "{{" + ex + "}}"
        return ctx.leaf(node, declared, ex)

    sub: Callable[[str], str] = lambda text: placeholders.substitute(text, canon)  # noqa: E731
    c = t.container
    comp: dict[str, Any] = {
        # The step's identity is part of the key: two identical steps of one workflow are still
        # two steps (a chain of `true` must run every link), and a hit always means "this step".
        "executable": ctx.graph.spec.executable_id,
        "step": node.id,
        "image": c.image,
        "command": [sub(x) for x in c.command],
        "args": [sub(x) for x in c.args],
        "env": {k: sub(v) for k, v in c.env},
        "source": sub(c.source) if c.source is not None else None,
        "workingDir": c.working_dir,
        "outputs": sorted([f"artifact:{a.name}:{a.path}:{a.global_name}" for a in t.output_artifacts]
                          + [f"parameter:{o.name}:{o.value_from_path}:{o.value}" for o in t.output_parameters]),
        "parameters": dict(sorted(d.params.items())),
        "inputs": {name: digest_of(path) for name, path in sorted(d.in_artifacts.items())},
    }
    if uses_secrets(c):
        comp["secrets"] = references(c)  # references only: values never enter a key or explain
    # Argo features a step may use: only present when used, so other steps keep their keys.
    for key, others in (("containerSet", t.before_main), ("sidecars", t.sidecars)):
        if others:
            comp[key] = [{"name": n, "image": x.image, "command": [sub(v) for v in x.command],
                          "args": [sub(v) for v in x.args], "env": {k: sub(v) for k, v in x.env}} for n, x in others]
    if c.mounts:
        comp["volumes"] = [f"{m.name}:{m.path}:{m.kind}:{m.secret}:{m.sub_path}" for m in c.mounts]
    raw = {a.name: [a.raw, a.mode] for a in t.input_artifacts if a.raw is not None or a.mode is not None}
    if raw:
        comp["raw"] = raw
    return comp


def canonical(comp: dict[str, Any]) -> str:
    """The components as the JSON text the key is the sha256 of (also what is stored for explain)."""
    return json.dumps(comp, sort_keys=True, separators=(",", ":"))


def key_of(comp: dict[str, Any]) -> str:
    return key_of_canonical(canonical(comp))


def key_of_canonical(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def try_components(ctx: Context, node: Node, digest_of: Callable[[Path], str]) -> dict[str, Any] | None:
    try:
        return components(ctx, node, digest_of)
    except (ResolveError, OSError):
        return None


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two component dicts."""
    out: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        name = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, name + "."))
        elif prefix == "inputs.":  # artifact digests: "inputs.model: 93e999a36560… → 0e46e9ecd113…"
            out.append(f"{name}: {_digest(a)} → {_digest(b)}")
        elif k == "source":
            out.append(f"{name}: edited")
        else:
            out.append(f"{name}: {_short(a)} → {_short(b)}")
    return out


def _digest(v: Any) -> str:
    return "none" if v is None else f"{str(v)[:12]}…"


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
