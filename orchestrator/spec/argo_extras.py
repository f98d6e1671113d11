"""Argo-semantics checks of template features beyond the core: ``memoize``, ``initContainers``,
``dag.target`` and ``daemon``.

Owns: ``memoize`` (a key with placeholders of the template's scope, a ``maxAge`` that is a duration;
a warning that Argo keeps the cache in a ConfigMap its controller writes, which AI Core does not
document), ``initContainers`` (placeholders rendered like the main container's), ``dag.target``
(written-out names must be tasks of the DAG; a placeholder is resolved when the DAG starts) and
``daemon`` (a container or script template; its readiness probe goes to 127.0.0.1). Called by :mod:`orchestrator.spec.semantic` with
its checker; imports only spec helpers.
"""

from __future__ import annotations

from typing import Any

from orchestrator.spec.build import parse_duration
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.shape import live

MEMO_NOTE = ("Argo keeps the memoization cache in a ConfigMap its controller writes; AI Core does not document "
             "it (unconfirmed there). Here the key is looked up in this store's step cache")


def check_memoize(w: Any, ptr: str, t: dict[str, Any], leaf: bool) -> None:
    memo = t.get("memoize")
    if not isinstance(memo, dict):
        return
    mptr = f"{ptr}/memoize"
    if "suspend" in t:
        w.err(mptr, "memoize.kind", "a suspend template has nothing to memoize", key=True)
        return
    w.check_text(f"{mptr}/key", memo.get("key"), (lambda ex: w.leaf_scope(t, ex)) if leaf else
                 w.call_scope(t, {"name": "\x00memo"}, {}, None))
    age = memo.get("maxAge")
    if age not in (None, "") and parse_duration(age) is None:
        w.err(f"{mptr}/maxAge", "template.duration", f"memoize.maxAge {age!r} is not a duration",
              "seconds (30), or a number with a unit: 30s, 5m, 1h")
    w.err(mptr, "memoize.unconfirmed", MEMO_NOTE, key=True, severity="warning")


def check_init_containers(w: Any, ptr: str, t: dict[str, Any], scope: Any) -> None:
    """Init containers run one at a time before the main container, with the step's paths."""
    for j, c in live(t.get("initContainers")):
        container_texts(w, f"{ptr}/initContainers/{j}", c, scope)


def container_texts(w: Any, cptr: str, c: dict[str, Any], scope: Any) -> None:
    """Placeholders of one extra container's command, args and env values."""
    for fld in ("command", "args"):
        for k, a in enumerate(c.get(fld) or []):
            w.check_text(f"{cptr}/{fld}/{k}", a, scope)
    for k, e in live(c.get("env")):
        w.check_text(f"{cptr}/env/{k}/value", e.get("value"), scope)


def check_dag_target(w: Any, ptr: str, t: dict[str, Any], tasks: set[str], scope: Any) -> None:
    target = (t.get("dag") or {}).get("target")
    if target is None:
        return
    tptr = f"{ptr}/dag/target"
    text = str(target)
    if "{{" in text:
        w.check_text(tptr, text, scope)
        return
    for name in text.split():
        if name not in tasks:
            w.err(tptr, "dag.target", f"target {name!r} is not a task of this DAG", did_you_mean(name, sorted(tasks)))


def check_daemon(w: Any, ptr: str, t: dict[str, Any]) -> None:
    """A daemon is a container or script step (kept running until its caller ends); its probe is
    tried on 127.0.0.1 (a ``host`` is not used)."""
    if t.get("daemon") is not True:
        return
    if not ("container" in t or "script" in t):
        w.err(f"{ptr}/daemon", "daemon.kind", "only a container or script template can be a daemon", key=True)
    probe = (t.get("container") or t.get("script") or {}).get("readinessProbe")
    if isinstance(probe, dict) and isinstance(probe.get("httpGet"), dict) and probe["httpGet"].get("host"):
        w.err(f"{ptr}/container/readinessProbe/httpGet/host", "daemon.probe-host", "the readiness probe goes "
              "to 127.0.0.1 here (the step runs on this host); host is not used", key=True, severity="warning")
