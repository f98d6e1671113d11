"""Argo-semantics checks of one WorkflowTemplate that keep a local run faithful to Argo.

Owns: durations (``timeout``, ``activeDeadlineSeconds``: a literal must parse; a placeholder is
resolved when the step starts), ``retryStrategy`` (a ``limit`` that is neither a number nor a
placeholder; no ``limit`` means unlimited retries in Argo — a warning says so; ``expression``
must be a supported expression), and container images (recorded, not run: an image that varies
per item or per step gets a warning, since one host runs them all). Called by
:mod:`orchestrator.spec.semantic` with its checker; imports only spec helpers.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.spec import exprlang, hooks, placeholders
from orchestrator.spec.argo_extras import container_texts
from orchestrator.spec.build import parse_duration
from orchestrator.spec.image_ref import image_problem
from orchestrator.spec.schema import did_you_mean
from orchestrator.spec.shape import live

OPEN = "\x00open"  # among sibling steps/tasks: one was cut without a name, any name may exist
LOOPS = {"withItems", "withParam", "withSequence"}
EXPR_ROOTS = {"item", "inputs", "outputs", "workflow", "steps", "tasks"}
_IMAGE_NOTE = ("images are recorded, not run: every step runs on this host with its installed tools "
               "(no container executor)")


def check_durations(w: Any, ptr: str, t: dict[str, Any]) -> None:
    for fld in ("timeout", "activeDeadlineSeconds"):
        if fld not in t:
            continue
        value = t[fld]
        if isinstance(value, str) and "{{" in value:
            continue  # resolved when the step starts; an unparsable value fails the step then
        if parse_duration(value) is None:
            w.err(f"{ptr}/{fld}", "template.duration", f"{fld} {value!r} is not a duration",
                  "seconds (30), or a number with a unit: 30s, 5m, 1h")


def check_composite_limits(w: Any, ptr: str, t: dict[str, Any], scope: Any) -> None:
    """A steps/dag template: ``retryStrategy`` runs the whole call again (checked as a leaf's);
    ``timeout`` and ``activeDeadlineSeconds`` are refused, as Argo's validation refuses them."""
    for fld in ("activeDeadlineSeconds", "timeout"):
        if fld in t:
            w.err(f"{ptr}/{fld}", "template.leaf-only", f"Argo refuses {fld!r} on a steps/dag template: it bounds "
                  "only a container or script template (Argo: \"steps template doesn't support timeout field\", "
                  "\"activeDeadlineSeconds is only valid for leaf templates\")",
                  "put it on the container or script templates it calls; spec.activeDeadlineSeconds bounds "
                  "the whole run", key=True)
    check_retry(w, ptr, t, scope)


def check_retry(w: Any, ptr: str, t: dict[str, Any], scope: Any) -> None:
    r = t.get("retryStrategy")
    if not isinstance(r, dict) and r is not None:
        return
    r = r or {}
    rptr = f"{ptr}/retryStrategy"
    if "retryStrategy" in t and "limit" not in r:
        w.err(rptr, "retry.unlimited", "retryStrategy has no limit: Argo retries the step until it succeeds; "
              "a local run stops after ORCHESTRATOR_MAX_RETRIES retries (default 10000) and, without a backoff, "
              "waits at least ORCHESTRATOR_RETRY_MIN_DELAY s (default 1, doubling to 60) between attempts",
              "set limit; activeDeadlineSeconds and backoff.maxDuration still bound it", key=True,
              severity="warning")
    limit = r.get("limit")
    if limit is not None and not (isinstance(limit, str) and "{{" in limit) and not str(limit).strip().isdigit():
        w.err(f"{rptr}/limit", "retry.limit", f"retryStrategy.limit {limit!r} is not a whole number")
    if isinstance(limit, str) and "{{" in limit:
        w.check_text(f"{rptr}/limit", limit, scope)
    for fld in ("duration", "maxDuration", "cap"):
        value = (r.get("backoff") or {}).get(fld)
        if value is not None and parse_duration(value) is None:
            w.err(f"{rptr}/backoff/{fld}", "template.duration", f"backoff.{fld} {value!r} is not a duration")
    if "expression" in r:
        text = str(r["expression"])
        masked = placeholders.PLACEHOLDER.sub("true", text)  # placeholders are bound as literals
        for ex in placeholders.find(text):
            problem = scope(ex)
            if problem:
                w.err(f"{rptr}/expression", "placeholder.unknown", f"{{{{{ex}}}}}: {problem}")
        problem = w.expression_problem(masked, scope, retry=True)
        if problem:
            w.err(f"{rptr}/expression", "retry.expression", f"retryStrategy.expression: {problem}")


def check_image_refs(w: Any, ptr: str, t: dict[str, Any]) -> None:
    """Every ``image`` of a template (container, script, sidecars, a containerSet's) must be an
    image reference (``image.invalid``): an engine would read ``--privileged`` as its option."""
    found: list[tuple[str, Any]] = [(f"{ptr}/{k}/image", t[k].get("image")) for k in ("container", "script")
                                    if isinstance(t.get(k), dict) and "image" in t[k]]
    cset = t.get("containerSet") if isinstance(t.get("containerSet"), dict) else {}
    for key, items in (("sidecars", t.get("sidecars")), ("containerSet/containers", cset.get("containers"))):
        for j, c in enumerate(items if isinstance(items, list) else []):
            if isinstance(c, dict) and "image" in c:
                found.append((f"{ptr}/{key}/{j}/image", c.get("image")))
    for iptr, image in found:
        if not isinstance(image, str) or not image:
            continue  # the schema types it; "no image" is the container executor's own refusal
        problem = image_problem(image, placeholders=True)
        if problem is not None:
            # A leading '-' or whitespace would change an engine's command: an error. Another
            # malformed reference (a tutorial's '<DOCKER-IMAGE-REPO>') is refused when a container
            # executor runs it; here a warning, as AI Core accepts such a template and fails its pod.
            hostile = image.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in
                                                               placeholders.PLACEHOLDER.sub("x", image))
            w.err(iptr, "image.invalid", f"image {str(image)[:200]!r}: {problem}",
                  "use a reference such as registry.example.com/team/image:1.0",
                  severity="error" if hostile else "warning")


def check_images(w: Any, templates: list[tuple[int, dict[str, Any]]]) -> None:
    """A warning where the image would change what runs: per item/parameter, or per step."""
    seen: dict[str, str] = {}
    for i, t in templates:
        check_image_refs(w, f"/spec/templates/{i}", t)
        for key in [k for k in ("container", "script") if k in t and not ("container" in t and "script" in t)]:
            c = t.get(key)
            if not isinstance(c, dict) or not isinstance(c.get("image"), str):
                continue
            image = c["image"]
            iptr = f"/spec/templates/{i}/{key}/image"
            if re.search(r"\{\{", image):
                w.err(iptr, "image.varies", f"the image {image!r} varies per item or parameter; {_IMAGE_NOTE}",
                      severity="warning")
            elif seen and image not in seen.values():
                first = next(iter(seen.values()))
                w.err(iptr, "image.varies", f"template {t.get('name')!r} uses image {image!r}, another uses "
                      f"{first!r}; {_IMAGE_NOTE}", severity="warning")
            seen.setdefault(str(t.get("name")), image)


def expression_problem(w: Any, text: str, scope: Any, retry: bool = False) -> str | None:
    """Why an expr-lang expression cannot be evaluated here (syntax, functions, names)."""
    try:
        tree = exprlang.parse(text)
    except exprlang.ExprLangError as exc:
        return exc.message
    for name in exprlang.names(tree):
        root = name.split(".")[0]
        if root in ("retries", "lastRetry") and retry:
            continue
        if root not in EXPR_ROOTS:
            return f"unknown name {name!r}"
        parts = name.split(".")
        if parts[:2] == ["inputs", "parameters"] and len(parts) == 2:
            continue
        problem = scope(name)
        if problem:
            return f"{name}: {problem}"
    return None


def check_composite_outputs(w: Any, ptr: str, t: dict[str, Any]) -> None:
    """Outputs of a steps/dag template come from its steps/tasks (any of them: evaluated at its end)."""
    children: dict[str, dict[str, Any]] = {}
    for group in t.get("steps") or []:
        for _j, s in live(group if isinstance(group, list) else []):
            children[str(s["name"])] = s
    for _j, task in live((t.get("dag") or {}).get("tasks")):
        children[str(task["name"])] = task
    if None in [x for g in t.get("steps") or [] if isinstance(g, list) for x in g]:
        children[OPEN] = {}
    scope = w.call_scope(t, {"name": "\x00outputs"}, children, None)
    for j, o in w.io(t, "outputs", "parameters"):
        optr = f"{ptr}/outputs/parameters/{j}"
        vf = o.get("valueFrom") or {}
        if "path" in vf:
            w.err(f"{optr}/valueFrom/path", "param.no-source",
                     "a steps/dag template has no files: use valueFrom.parameter or valueFrom.expression")
        elif not ({"parameter", "expression"} & set(vf)) and "value" not in o:
            w.err(optr, "param.no-source",
                     f"output parameter {o['name']!r} needs valueFrom.parameter or valueFrom.expression")
        w.check_text(f"{optr}/valueFrom/parameter", vf.get("parameter"), scope)
        w.check_text(f"{optr}/value", o.get("value"), scope)
        if "expression" in vf:
            problem = w.expression_problem(str(vf["expression"]), scope)
            if problem:
                w.err(f"{optr}/valueFrom/expression", "placeholder.expression", problem)
    for j, a in w.io(t, "outputs", "artifacts"):
        aptr = f"{ptr}/outputs/artifacts/{j}"
        if "fromExpression" in a:
            problem = w.expression_problem(str(a["fromExpression"]), scope)
            if problem:
                w.err(f"{aptr}/fromExpression", "placeholder.expression", problem)
        elif a.get("from"):
            w.check_text(f"{aptr}/from", a["from"], scope)
        elif not a.get("optional"):
            w.err(aptr, "artifact.no-source", f"output artifact {a['name']!r} of a steps/dag template "
                     "needs from or fromExpression")


def check_call_extras(w: Any, ptr: str, t: dict[str, Any], call: dict[str, Any],
                      siblings: dict[str, dict[str, Any]], scope: Any) -> None:
    """Exit hooks (``onExit``, ``hooks.exit``) and loops (``withParam``, ``withSequence``) of a call."""
    hook = (call.get("hooks") or {}).get("exit") or {}
    if "onExit" in call or hook:
        hptr = f"{ptr}/onExit" if "onExit" in call else f"{ptr}/hooks/exit/template"
        if "onExit" in call and hook:
            w.err(hptr, "hook.several", "use onExit or hooks.exit, not both")
        target = call.get("onExit") or hook.get("template")
        if target not in w.templates and not w.any_template:
            w.err(hptr, "ref.template", f"template {target!r} does not exist",
                  did_you_mean(str(target), list(w.templates)))
        own = w.call_scope(t, {**call, "name": "\x00hook"}, {**siblings, str(call["name"]): call}, None)
        for j, a in live((hook.get("arguments") or {}).get("parameters")):
            w.check_text(f"{ptr}/hooks/exit/arguments/parameters/{j}/value", a.get("value"), own)
        for j, a in live((hook.get("arguments") or {}).get("artifacts")):
            w.check_text(f"{ptr}/hooks/exit/arguments/artifacts/{j}/from", a.get("from"), own)
            if not a.get("from"):
                w.err(f"{ptr}/hooks/exit/arguments/artifacts/{j}", "arg.artifact-source",
                      "an artifact argument needs 'from'")
    hooks.check_call(w, ptr, t, call, siblings)
    loops = sorted(LOOPS & set(call))
    if len(loops) > 1:
        w.err(f"{ptr}/{loops[1]}", "loop.several", f"use one of {', '.join(loops)}, not several", key=True)
    if "withParam" in call:
        w.check_text(f"{ptr}/withParam", call["withParam"], scope)
        if "{{" not in str(call["withParam"]) and not _json_list(str(call["withParam"])):
            w.err(f"{ptr}/withParam", "loop.param", "withParam must be a JSON list or a placeholder whose value is one",
                  "for a list written in YAML use withItems")
    for k, v in (call.get("withSequence") or {}).items():
        w.check_text(f"{ptr}/withSequence/{k}", v, scope)
    if isinstance(call.get("withSequence"), dict) and not ({"count", "end"} & set(call["withSequence"])):
        w.err(f"{ptr}/withSequence", "loop.sequence", "withSequence needs count or end")


def _json_list(text: str) -> bool:
    import json

    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def check_suspend(w: Any, ptr: str, t: dict[str, Any]) -> None:
    """A suspend template waits for its ``duration`` or, without one, until it is resumed
    (``orchestrator executions resume ID``, Argo's ``argo resume``). Its output parameters are
    ``valueFrom.supplied`` (set when it is resumed) or have a ``value``."""
    s = t.get("suspend") if isinstance(t.get("suspend"), dict) else {}
    value = s.get("duration")
    if value is None or str(value).strip() == "":
        pass  # waits for a resume
    elif "{{" in str(value):
        w.check_text(f"{ptr}/suspend/duration", value, lambda ex: w.leaf_scope(t, ex))
    elif parse_duration(value) is None:
        w.err(f"{ptr}/suspend/duration", "template.duration", f"suspend.duration {value!r} is not a duration")
    for j, o in w.io(t, "outputs", "parameters"):
        vf = o.get("valueFrom") or {}
        if "value" in o or ("supplied" in vf and not ({"path", "parameter", "expression"} & set(vf))):
            continue
        w.err(f"{ptr}/outputs/parameters/{j}", "param.no-source", f"output parameter {o['name']!r} of a suspend "
              "template needs valueFrom.supplied (set when it is resumed) or a value")
    for j, _a in w.io(t, "outputs", "artifacts"):
        w.err(f"{ptr}/outputs/artifacts/{j}", "artifact.no-source", "a suspend template has no files: "
              "it cannot output an artifact")


def check_security_context(w: Any, ptr: str, t: dict[str, Any]) -> None:
    """``securityContext`` is recorded: a step runs as the orchestrator's user, so a context that asks
    for more (root, privileges, capabilities) or less than that gets a warning."""
    for where in ("securityContext", "container/securityContext", "script/securityContext"):
        ctx: Any = t
        for part in where.split("/"):
            ctx = ctx.get(part) if isinstance(ctx, dict) else None
        if not isinstance(ctx, dict) or not ctx:
            continue
        asks = [k for k in ("privileged", "allowPrivilegeEscalation") if ctx.get(k) is True]
        asks += ["runAsUser: 0"] if ctx.get("runAsUser") == 0 else []
        asks += ["capabilities.add"] if isinstance(ctx.get("capabilities"), dict) and ctx["capabilities"].get("add") else []
        w.err(f"{ptr}/{where}", "security.context", "securityContext is recorded, not applied: the step runs as "
              "this process's user" + (f" (asks for more: {', '.join(asks)})" if asks else ""),
              "AI Core applies it in the pod", key=True, severity="warning")


def check_mounts(w: Any, ptr: str, t: dict[str, Any], volumes: set[str]) -> None:
    """``volumeMounts`` name a volume of ``spec.volumes`` and an absolute path."""
    for key in ("container", "script"):
        c = t.get(key)
        for j, m in live((c or {}).get("volumeMounts") if isinstance(c, dict) else None):
            mptr = f"{ptr}/{key}/volumeMounts/{j}"
            if str(m.get("name")) not in volumes:
                w.err(f"{mptr}/name", "volume.unknown", f"no volume {m.get('name')!r} in spec.volumes",
                      did_you_mean(str(m.get("name")), sorted(volumes)))
            path = str(m.get("mountPath", ""))
            if not path.startswith("/") or ".." in path.split("/") or path.strip("/") == "":
                w.err(f"{mptr}/mountPath", "volume.path", f"mountPath {path!r} must be an absolute path below /")
            sub = str(m.get("subPath", "") or "")
            if sub.startswith("/") or ".." in sub.split("/"):
                w.err(f"{mptr}/subPath", "volume.path", f"subPath {sub!r} must stay inside the volume")


def check_synchronization(w: Any, ptr: str, t: dict[str, Any], leaf: bool, scope: Any = None) -> None:
    """Mutexes are held by a whole execution, by one step, or by a steps/dag call while it runs; a
    name may hold placeholders of the template's scope (resolved when the lock is taken)."""
    sync = t.get("synchronization")
    if not isinstance(sync, dict):
        return
    found = [("mutex", sync["mutex"])] if isinstance(sync.get("mutex"), dict) else []
    found += [(f"mutexes/{j}", m) for j, m in enumerate(sync.get("mutexes") or []) if isinstance(m, dict)]
    for where, m in found:
        if "{{" in str(m.get("name", "")):
            w.check_text(f"{ptr}/synchronization/{where}/name", str(m["name"]),
                         scope or (lambda ex: w.workflow_ref(ex.split(".")) if ex.startswith("workflow.")
                                   else "only workflow variables here"))


def check_sidecars(w: Any, ptr: str, t: dict[str, Any], scope: Any) -> None:
    """Placeholders of ``sidecars`` (rendered like the main container's); a sidecar gets the step's
    paths and volumes, and no secrets of its own."""
    for j, c in live(t.get("sidecars")):
        sptr = f"{ptr}/sidecars/{j}"
        container_texts(w, sptr, c, scope)
        for k, e in live(c.get("env")):
            if "valueFrom" in e:
                w.err(f"{sptr}/env/{k}/valueFrom", "sidecar.env", "a sidecar's env takes no valueFrom locally",
                      "pass the value with value: or read it in the main container", key=True)
        for fld in ("envFrom", "volumeMounts"):
            if c.get(fld):
                w.err(f"{sptr}/{fld}", "sidecar.unsupported", f"{fld} of a sidecar is not supported yet "
                      "(a sidecar sees the main container's paths and volumes)", key=True)


def check_container_set(w: Any, ptr: str, t: dict[str, Any], scope: Any) -> None:
    """A containerSet needs a container named ``main`` (it decides the step) and known, acyclic
    ``dependencies``; the others run one at a time before main, in dependency order."""
    cset = t.get("containerSet") if isinstance(t.get("containerSet"), dict) else {}
    items = list(live(cset.get("containers")))
    names = {str(c.get("name")) for _j, c in items}
    if "main" not in names:
        w.err(f"{ptr}/containerSet", "containerset.main", "a containerSet needs a container named 'main' "
              "(it decides the step and holds its outputs)", key=True)
    graph: dict[str, list[str]] = {}
    for j, c in items:
        cptr = f"{ptr}/containerSet/containers/{j}"
        for k, d in enumerate(c.get("dependencies") or []):
            if str(d) not in names:
                w.err(f"{cptr}/dependencies/{k}", "containerset.dependency", f"no container {d!r} in this set",
                      did_you_mean(str(d), sorted(names)))
            graph.setdefault(str(d), []).append(str(c.get("name")))
        container_texts(w, cptr, c, scope)
    from orchestrator.spec.graphs import find_cycle

    cycle = find_cycle(graph)
    if cycle:
        w.err(f"{ptr}/containerSet", "containerset.cycle", f"dependency cycle: {' -> '.join(cycle)}", key=True)
