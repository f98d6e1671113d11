"""Settling a leaf from recorded outputs: step-cache hits, resume/rerun reuse, cache entries.

Owns: looking up a leaf's cache key (:mod:`orchestrator.run.caching`) or its resume record, checking
that the recorded outputs still exist, applying them (output parameters, artifact paths and
digests, re-registration of ``globalName`` outputs for this execution) in one transaction with
the CACHED state, and writing a cache entry after a step succeeded (non-global outputs are kept
content-addressed in the object store's ``.cache`` space, so no step directory is needed later).
Functions over the runner's state; called only by :mod:`orchestrator.run.runner`.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from orchestrator.errors import ArtifactError
from orchestrator.model import StepState
from orchestrator.plan.graph import Node
from orchestrator.plan.resolve import ResolveError
from orchestrator.run import caching
from orchestrator.run.prepare import Prepared, register
from orchestrator.spec.build import parse_duration
from orchestrator.store.artifacts import tree_digest


def digest_of(r: Any, path: Path) -> str:
    key = str(path)
    if key not in r.path_digests and getattr(r.executor, "direct_inputs", False):
        remote = r.objects.deferred_remote(path)  # its worker downloads it: keyed by the bucket's listing
        if remote is not None:
            r.path_digests[key] = remote_fingerprint(*remote)
    if key not in r.path_digests:
        try:
            r.objects.fetch(path)  # a bucket's input: its bytes make the cache key
        except ArtifactError:
            pass  # not hashable then (no cache key); preparing the step reports the failure
        r.path_digests[key] = tree_digest(path)
    return r.path_digests[key]


def remote_fingerprint(target: Any, path: str) -> str:
    """A cache-key digest of a bucket artifact without downloading it: its objects' keys, sizes and
    ETags (a changed object changes it; the same bytes stored locally key differently)."""
    import hashlib

    from orchestrator.store import objects_s3

    try:
        found = objects_s3.listing(target, path)
    except ArtifactError:
        return ""
    return "s3-" + hashlib.sha256(json.dumps([target.endpoint_url, target.bucket, found]).encode()).hexdigest()


def try_recorded(r: Any, node: Node) -> bool:
    """Settle a leaf from a resume record or a cache hit; False = it must run.

    A resumed step is reused only if its key (definition + inputs) is the one recorded when it
    ran, so a template changed since cannot mix old outputs into new steps. A step that
    ``rerun --from`` selects always runs (and refills the cache).
    """
    nid = node.id
    if node.template.memoize is not None and r.cache and nid not in r.reuse and nid not in r.force:
        return _memoized(r, node)
    wanted = nid in r.reuse or (r.cache and caching.cacheable(node))
    comps = caching.try_components(r.ctx, node, lambda p: digest_of(r, p)) if wanted else None
    if comps is not None and getattr(getattr(r, "executor", None), "engine", None):
        # In its image, a step is not the step the host ran (the image is only recorded there):
        # outputs of `--executor podman` and of host runs never answer each other.
        comps["executor"] = "container"
    comps_json = caching.canonical(comps) if comps is not None else ""  # encoded once: key and explain
    key = caching.key_of_canonical(comps_json) if comps is not None else ""
    if nid in r.reuse:
        source, rec, recorded_key = r.reuse[nid]
        if recorded_key and recorded_key != key:
            r.keys[nid] = (key, comps_json, f"not reused: step or inputs changed since execution {source}")
        elif apply_recorded(r, node, rec, f"reused from execution {source}", (source, nid)):
            return True
    if nid in r.force:
        why = "re-run: its steps/dag call is retried" if nid in r.retried_inner else "re-run on request (--from)"
        r.keys[nid] = (key if r.cache and caching.cacheable(node) else "", comps_json, why)
        return False
    if not (r.cache and caching.cacheable(node)):
        note = "cache disabled for this run (--no-cache)" if not r.cache else \
            caching.not_cacheable_because(node)
        r.keys[nid] = ("", "", note)
        return False
    if not key:
        return False
    r.keys[nid] = (key, comps_json, "miss: no cache entry with this key")
    entry = r.store.cache_get(r.rg, key)
    if entry is None:
        return False
    src_ex, src_node, outputs = entry
    if apply_recorded(r, node, json.loads(outputs), f"hit: outputs of execution {src_ex} step {src_node!r}",
                      (src_ex, src_node)):
        return True
    r.keys[nid] = (key, r.keys[nid][1], "miss: the cache entry's outputs are gone")
    return False


def memo_entry(r: Any, node: Node) -> tuple[str, tuple[str, str, str] | None]:
    """Argo's ``memoize`` of ``node``'s template: (its key — the ``key`` text resolved in the
    template's scope, in the cache named by ``cache.configMap.name`` —, the entry recorded for it
    within ``maxAge`` or None). Raises ResolveError when the key does not resolve."""
    assert node.template.memoize is not None
    key_text, max_age, cache = node.template.memoize
    key = "memoize:" + caching.key_of_canonical(json.dumps([cache, r.ctx.declared_path(node, key_text)]))
    seconds = parse_duration(max_age) if max_age else None
    since = ""
    if seconds is not None:
        t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
        since = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    r.keys[node.id] = (key, "", f"memoize miss: no entry for this key in cache {cache!r}"
                       + (f" within {max_age}" if max_age else ""))
    return key, r.store.cache_get(r.rg, key, since)


def _memoized(r: Any, node: Node) -> bool:
    """A memoized leaf: settled from the outputs recorded for its key; on a miss it runs and records them."""
    try:
        _key, entry = memo_entry(r, node)
    except ResolveError as exc:
        r.fail(node.id, f"memoize.key: {exc}")
        return True
    if entry is None:
        return False
    src_ex, src_node, outputs = entry
    return apply_recorded(r, node, json.loads(outputs), f"memoized: outputs of execution {src_ex} step {src_node!r}",
                          (src_ex, src_node))


def apply_recorded(r: Any, node: Node, rec: dict[str, Any], note: str,
                   source: tuple[str, str] | None = None) -> bool:
    """Settle ``node`` from recorded outputs; ``source`` (execution, step) also brings its metrics."""
    d = r.ctx.data[node.id]
    arts: dict[str, Path] = {}
    urls = dict(rec.get("urls") or {})
    try:
        for name, loc in (rec.get("artifacts") or {}).items():
            path = _recorded_path(r, node.id, name, urls.get(name) or loc)  # a bucket's URL wins
            if path is None:
                return False
            arts[name] = path
    except ArtifactError:
        return False
    d.out_params = dict(rec.get("parameters") or {})
    d.out_artifacts = arts
    d.out_digests = dict(rec.get("digests") or {})
    for name, path in arts.items():
        if name in d.out_digests:
            r.path_digests[str(path)] = d.out_digests[name]
    r.urls[node.id] = urls
    key, comps, _ = r.keys.get(node.id, ("", "", ""))
    r.keys[node.id] = (key, comps, note)
    globals_ = {a.name: a.global_name for a in node.template.output_artifacts if a.global_name}
    todo = [(globals_[n], u) for n, u in urls.items()
            if n in globals_ and r.global_outputs.setdefault(globals_[n], node.id) == node.id]
    if source is not None:
        r.store.copy_step_metrics(r.rg, source[0], source[1], r.ex.id, node.id)
    if not todo:
        r.settle(node.id, StepState.CACHED, note)
        return True
    r.drain()
    with r.store.transaction():
        names = {g: n for n, g in globals_.items()}
        for global_name, url in todo:
            register(r, global_name, url, d.out_digests.get(names[global_name], ""),
                     int((rec.get("sizes") or {}).get(names[global_name], 0)))
        r.settle(node.id, StepState.CACHED, note)
        r.flush()
    return True


def _recorded_path(r: Any, nid: str, name: str, loc: str) -> Path | None:
    """Where a recorded output is for the steps after it (None: gone). A bucket's artifact, with an
    executor whose nodes download their inputs themselves (Ray), is checked in its bucket and
    deferred to them, not downloaded here; otherwise its bytes must be on this machine."""
    if "://" not in loc:
        path = Path(loc)
        return path if path.exists() else None
    if getattr(r.executor, "direct_inputs", False) and r.objects.remote_of(r.rg, loc) is not None:
        r.objects.check(r.rg, loc)
        return r.objects.defer(r.rg, loc, Path(r.workdir) / "inputs" / "recorded" / f"{nid}.{name}")
    path = r.objects.local_path(r.rg, loc)
    return path if path.exists() else None


def cache_put(r: Any, node: Node, prep: Prepared) -> None:
    key = r.keys.get(node.id, ("", "", ""))[0]
    if not key:
        return
    d = r.ctx.data[node.id]
    rec: dict[str, Any] = {"parameters": d.out_params, "artifacts": {}, "digests": {}, "urls": {}, "sizes": {}}
    for a in node.template.output_artifacts:
        if a.name not in d.out_artifacts:
            continue
        path = d.out_artifacts[a.name]
        if a.global_name:
            url, digest = f"ai://default/{r.ex.id}/{a.global_name}", d.out_digests[a.name]
            size = int(prep.pushed[a.name]["size"]) if a.name in prep.pushed else \
                sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
            rec["urls"][a.name] = url
        else:
            url, digest, size = r.objects.store_output(r.rg, path, f"{key}/{a.name}", prep.step_dir, space=".cache")
            d.out_digests[a.name] = digest
        rec["artifacts"][a.name] = url
        rec["digests"][a.name] = digest
        rec["sizes"][a.name] = size
        r.path_digests[str(path)] = digest
    r.dirty_cache.append((key, node.id, json.dumps(rec)))  # committed with the step's SUCCEEDED
