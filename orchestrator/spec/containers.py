"""Semantic checks of one ``container`` / ``script`` template (a leaf of the workflow).

Owns: the command rule, placeholders in command/args/env/workingDir/source, environment variables
taken from elsewhere (``env[].valueFrom``, ``envFrom``) and the shell-splice warning.
Generic secrets (``valueFrom.secretKeyRef``, ``envFrom[].secretRef``) are accepted as AI Core
accepts them: whether a secret exists is known only when a run starts, never at validation.
The downward API (``fieldRef``, ``resourceFieldRef``) works on AI Core but not locally: a warning.
Called by :mod:`orchestrator.spec.semantic`; imports only the spec's own helpers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.spec.shape import live

SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash", "/usr/bin/env"}
Scope = Callable[[str], "str | None"]


class Checker(Protocol):
    """What the workflow checker offers a leaf check."""

    def err(self, ptr: str, rule: str, msg: str, hint: str = "", *, key: bool = False,
            severity: str = "error") -> None: ...

    def check_text(self, ptr: str, text: Any, scope: Scope) -> None: ...


def check_leaf(w: Checker, ptr: str, t: dict[str, Any], scope: Scope) -> None:
    """Every problem of the container or script of template ``t`` (at ``ptr``)."""
    key = "container" if "container" in t else "script"
    c = t[key]
    cptr = f"{ptr}/{key}"
    if not c.get("command") and key == "container":
        w.err(cptr, "container.no-command", "container has no command",
              "the image's ENTRYPOINT is not run locally (AI Core ignores it too): set command")
    for fld in ("command", "args"):
        for j, a in enumerate(c.get(fld) or []):
            w.check_text(f"{cptr}/{fld}/{j}", a, scope)
    check_env(w, cptr, c, scope)
    w.check_text(f"{cptr}/workingDir", c.get("workingDir"), scope)
    w.check_text(f"{cptr}/source", c.get("source"), scope)
    cmd = [str(x) for x in c.get("command") or []]
    if cmd and cmd[0] in SHELLS and "-c" in cmd + [str(x) for x in (c.get("args") or [])][:1]:
        for j, a in enumerate(c.get("args") or []):
            if re.search(r"\{\{\s*(workflow|inputs)\.parameters\.", str(a)):
                w.err(f"{cptr}/args/{j}", "security.shell-splice",
                      "a parameter is spliced into a shell command line (injection risk)",
                      "pass it through env: (value: \"{{...}}\") and use \"$VAR\" in the script",
                      severity="warning")


def check_env(w: Checker, cptr: str, c: dict[str, Any], scope: Scope) -> None:
    """``env`` values and references, ``envFrom`` secret references."""
    for j, e in live(c.get("env")):
        eptr = f"{cptr}/env/{j}"
        w.check_text(f"{eptr}/value", e.get("value"), scope)
        source = e.get("valueFrom") or {}
        ref = source.get("secretKeyRef")
        if isinstance(ref, dict):
            for fld in ("name", "key"):
                w.check_text(f"{eptr}/valueFrom/secretKeyRef/{fld}", ref.get(fld), scope)
        for kind in ("fieldRef", "resourceFieldRef"):
            if kind in source:
                w.err(f"{eptr}/valueFrom/{kind}", "env.unsupported-locally",
                      f"env {e.get('name')!r} takes its value from the pod ({kind}), which local runs do not set",
                      "AI Core sets it; locally the variable is absent", key=True, severity="warning")
    for j, item in live(c.get("envFrom")):
        ref = item.get("secretRef")
        if isinstance(ref, dict):
            w.check_text(f"{cptr}/envFrom/{j}/secretRef/name", ref.get("name"), scope)
