"""Runs of the MLflow endpoint beyond each step's own: nested runs, ``runs/search``, how a step ended.

Owns, for one execution's :class:`~orchestrator.run.mlflow_protocol.Session`:

* nested runs: ``runs/create`` with the tag ``mlflow.parentRunId`` naming one of this execution's
  runs (``mlflow.start_run(nested=True)``) makes a child run ``<parent>-c<n>`` of the same step.
  What it logs lands in the execution under the child's name: metric ``<name>/<key>``, param tag
  ``param.<name>/<key>``, tag ``<name>/<key>`` (``<name>``: the run name, made unique among
  siblings); its ``mlflow.*`` system tags live with the run only. A ``runs/create`` without such a
  parent is refused: each step logs to the run made for it (``MLFLOW_RUN_ID``);
* ``runs/search`` over this execution's runs (the endpoint sees no other execution's): experiment
  ids, ``run_view_type``, ``max_results`` and a filter that is an ``AND`` of ``params.K = 'v'`` /
  ``!=``, the same for ``tags.K``, ``metrics.K <op> number`` (on the run's latest value) and
  ``attributes.{run_id,run_name,status} = | != 'v'``, and ``order_by`` items
  ``metrics.K|params.K|tags.K|attributes.{start_time,end_time,run_name,run_id,status} [ASC|DESC]``
  (runs without the key last); anything else answers ``INVALID_PARAMETER_VALUE``. One page;
* the run view a client reads (``runs/get``, search, ``metrics/get-history``): a step run shows what
  its step logged less its children's (plus the execution's tags no step logged), a child its own
  with the prefix taken off. Params stay one namespace per execution (tags ``param.<key>``): two
  steps cannot log one param with two values;
* :func:`end_step`: the runner's word on how a step ended: its run (and children) still RUNNING
  become FINISHED, FAILED (the step failed or crashed) or KILLED (stopped).

Imports: errors, model; used by :mod:`orchestrator.run.mlflow_protocol` and the endpoint.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.run.mlflow_protocol import Session

PARAM_PREFIX = "param."
SYSTEM = "mlflow."
_NAME_CHARS = re.compile(r"[^\w\-. ]+")
_CLAUSE = re.compile(
    r"""\s*(?P<entity>params?|tags?|metrics?|attributes?|run)\.(?P<key>`[^`]+`|"[^"]+"|[\w.\-]+)\s*"""
    r"""(?P<op>!=|<=|>=|=|<|>)\s*(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*""")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
ATTRIBUTES = {"run_id", "run_name", "status"}
ORDER_ATTRIBUTES = ATTRIBUTES | {"start_time", "end_time"}
_ORDER = re.compile(r"""\s*(?P<entity>params?|tags?|metrics?|attributes?|run)\.(?P<key>`[^`]+`|"[^"]+"|[\w.\-]+)"""
                    r"""(?:\s+(?P<dir>ASC|DESC))?\s*""", re.IGNORECASE)


def _err(code: str, message: str) -> Exception:
    from orchestrator.run.mlflow_protocol import MlflowError

    return MlflowError(code, message)


def _bad(message: str) -> Exception:
    return _err("INVALID_PARAMETER_VALUE", message)


# ------------------------------------------------------------------ nested runs
def create_run(s: Session, req: dict[str, Any]) -> dict[str, Any]:
    tags = {t.get("key"): str(t.get("value", "")) for t in req.get("tags") or [] if isinstance(t, dict)}
    parent = tags.get("mlflow.parentRunId")
    if not parent:
        raise _bad("a step logs to the run the orchestrator made for it (MLFLOW_RUN_ID): call "
                   "mlflow.start_run() without run_id to attach to it, and start_run(nested=True) inside it "
                   "for child runs; a run of its own (no parent) is not supported")
    if parent not in s.runs or s.runs[parent].get("parent"):
        raise _err("RESOURCE_DOES_NOT_EXIST", f"parent run {parent!r} is not a step run of execution {s.ex.id} "
                   "(children of child runs are not supported)")
    from orchestrator.run.mlflow_endpoint import new_run

    siblings = [r for r in s.runs.values() if r.get("parent") == parent]
    n = len(siblings) + 1
    wanted = str(req.get("run_name") or tags.get("mlflow.runName") or f"child-{n}")
    name = _NAME_CHARS.sub("_", wanted).strip(" .")[:100] or f"child-{n}"
    taken = {r["prefix"][:-1] for r in siblings}
    base, i = name, 1
    while name in taken:
        i += 1
        name = f"{base}-{i}"
    run_id = f"{parent}-c{n}"
    run = new_run(s.runs[parent]["node"])
    start = req.get("start_time")
    if isinstance(start, int) and not isinstance(start, bool):
        run["start"] = start
    run.update(parent=parent, prefix=name + "/", name=name,
               system=[{"key": k, "value": v} for k, v in tags.items() if isinstance(k, str) and k.startswith(SYSTEM)]
               + [{"key": "mlflow.runName", "value": name}] * ("mlflow.runName" not in tags))
    s.runs[run_id] = run
    user = [{"key": k, "value": v} for k, v in tags.items() if isinstance(k, str) and not k.startswith(SYSTEM)]
    if user:
        s.log(run_id, [], [], user)
    return {"run": view(s, run_id, *_execution_data(s))}


# ------------------------------------------------------------------ the client's view of a run
Latest = dict[tuple[Any, str], Any]  # (step, metric) -> its last point
Tags = list[tuple[Any, str, str]]  # (step or None, name, value)


def _execution_data(s: Session) -> tuple[Latest, Tags]:
    points, tags = s.store.step_tracking(s.rg, s.ex.id)
    latest: Latest = {}
    for node, p in points:
        latest[(node, p.name)] = p
    return latest, tags


def _owns(prefix: str, children: list[str], name: str) -> str | None:
    """``name`` as the run of ``prefix`` sees it, or None when it is not that run's."""
    if prefix:
        return name[len(prefix):] if name.startswith(prefix) else None
    return None if any(name.startswith(c) for c in children) else name


def view(s: Session, run_id: str, latest: Latest, tags: Tags) -> dict[str, Any]:
    """The run object (``runs/get``, ``runs/search``): what its step logged (a child: under its name),
    and the execution's tags no step logged."""
    from orchestrator.run.mlflow_protocol import iso_to_ms

    run = s.runs[run_id]
    node, prefix = run["node"], run.get("prefix", "")
    children = [r["prefix"] for r in s.runs.values() if r.get("prefix") and r["node"] == node]
    metrics, params, out_tags = [], [], []
    for (n, k), p in latest.items():
        key = _owns(prefix, children, k) if n == node else None
        if key is not None:
            metrics.append({"key": key, "value": p.value, "timestamp": iso_to_ms(p.timestamp), "step": p.step or 0})
    for n, k, v in tags:
        if n is not None and n != node:
            continue
        if k.startswith(PARAM_PREFIX):
            key = _owns(prefix, children, k[len(PARAM_PREFIX):])
            if key is not None:
                params.append({"key": key, "value": v})
        else:
            key = _owns(prefix, children, k)
            if key is not None:
                out_tags.append({"key": key, "value": v})
    out_tags += run.get("system", [])
    if run.get("parent"):
        out_tags = [t for t in out_tags if t["key"] != "mlflow.parentRunId"]
        out_tags.append({"key": "mlflow.parentRunId", "value": run["parent"]})
    out: dict[str, Any] = {"info": s.run_info(run_id), "data": {"metrics": metrics, "params": params, "tags": out_tags},
                           "inputs": {}}
    if run["outputs"]:
        out["outputs"] = {"model_outputs": run["outputs"]}
    return out


def get_run(s: Session, req: dict[str, Any]) -> dict[str, Any]:
    run_id, _ = s.run_of(req)
    return {"run": view(s, run_id, *_execution_data(s))}


def history(s: Session, run_id: str, key: str) -> list[dict[str, Any]]:
    """The points of ``run_id``'s metric ``key`` (``metrics/get-history``)."""
    from orchestrator.run.mlflow_protocol import iso_to_ms

    run = s.runs[run_id]
    stored = run.get("prefix", "") + key
    return [{"key": key, "value": p.value, "timestamp": iso_to_ms(p.timestamp), "step": p.step or 0}
            for node, p in s.store.step_tracking(s.rg, s.ex.id)[0] if node == run["node"] and p.name == stored]


# ------------------------------------------------------------------ runs/search
def _unquote(text: str) -> str:
    if text[:1] in ("'", '"', "`") and text[-1:] == text[:1]:
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_filter(text: str) -> list[tuple[str, str, str, str]]:
    """``(entity, key, op, value)`` clauses of a filter this endpoint understands, or the error."""
    if not text.strip():
        return []
    out = []
    for part in _AND.split(text.strip()):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise _bad(f"runs/search: filter clause {part.strip()!r} is not supported by the orchestrator's "
                       "tracking endpoint (supported: an AND of params.K = 'v', tags.K != 'v', metrics.K > 0.5, "
                       "attributes.status|run_id|run_name = 'v')")
        entity = _entity(m["entity"])
        key, op, raw = _unquote(m["key"]), m["op"], m["value"]
        quoted = raw[:1] in ("'", '"')
        if entity == "metrics":
            if quoted:
                raise _bad(f"runs/search: metric {key!r} is compared with a number, not {raw}")
        elif op not in ("=", "!=") or not quoted:
            raise _bad(f"runs/search: {entity}.{key} supports = and != with a quoted string only")
        if entity == "attributes" and key not in ATTRIBUTES:
            raise _bad(f"runs/search: attribute {key!r} is not supported (supported: {', '.join(sorted(ATTRIBUTES))})")
        out.append((entity, key, op, _unquote(raw) if quoted else raw))
    return out


def _matches(run: dict[str, Any], clauses: list[tuple[str, str, str, str]]) -> bool:
    for entity, key, op, value in clauses:
        have = _value(run, entity, key)
        if entity == "metrics":
            if have is None:
                return False
            a, b = float(have), float(value)
            ok = {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        else:
            if have is None:
                return False
            ok = (str(have) == value) == (op == "=")
        if not ok:
            return False
    return True


def _entity(name: str) -> str:
    name = name.lower()
    return {"param": "params", "tag": "tags", "metric": "metrics", "attribute": "attributes",
            "run": "attributes"}.get(name, name)


def _value(run: dict[str, Any], entity: str, key: str) -> Any:
    if entity == "attributes":
        return run["info"].get(key)
    return next((x["value"] for x in run["data"][entity] if x["key"] == key), None)


def order(runs: list[dict[str, Any]], order_by: Any) -> list[dict[str, Any]]:
    """``runs`` sorted by ``order_by`` (MLflow's syntax, see the module docstring)."""
    if not isinstance(order_by, list):
        order_by = [order_by]
    keys = []
    for item in order_by:
        m = _ORDER.fullmatch(str(item))
        entity = _entity(m["entity"]) if m else ""
        key = _unquote(m["key"]) if m else ""
        if m is None or (entity == "attributes" and key not in ORDER_ATTRIBUTES):
            raise _bad(f"runs/search: order_by {str(item)[:100]!r} is not supported (supported: metrics.K, "
                       "params.K, tags.K, attributes.start_time|end_time|run_name|run_id|status, with ASC or DESC)")
        keys.append((entity, key, (m["dir"] or "ASC").upper() == "DESC"))
    for entity, key, desc in reversed(keys):  # stable sorts, last key first
        have = [r for r in runs if _value(r, entity, key) is not None]
        have.sort(key=lambda r: _value(r, entity, key), reverse=desc)  # noqa: B023 - used at once
        runs = have + [r for r in runs if _value(r, entity, key) is None]
    return runs


def search_runs(s: Session, req: dict[str, Any]) -> dict[str, Any]:
    clauses = parse_filter(str(req.get("filter") or ""))
    exps = req.get("experiment_ids") or []
    if isinstance(exps, str):
        exps = [exps]
    view_type = str(req.get("run_view_type") or "ACTIVE_ONLY")
    try:
        limit = int(req.get("max_results") or 1000)
    except (TypeError, ValueError):
        raise _bad("runs/search: max_results must be an integer") from None
    if s.experiment_id not in [str(e) for e in exps] or view_type == "DELETED_ONLY" or limit <= 0:
        return {"runs": []}
    latest, tags = _execution_data(s)
    runs = [r for r in (view(s, rid, latest, tags) for rid in list(s.runs)) if _matches(r, clauses)]
    if req.get("order_by"):
        runs = order(runs, req["order_by"])
    return {"runs": runs[:limit]}


# ------------------------------------------------------------------ how a step ended
def end_step(runs: dict[str, dict[str, Any]], run_id: str, state: str) -> None:
    """Mark ``run_id`` and its children FINISHED / FAILED / KILLED if they are still RUNNING."""
    now = int(time.time() * 1000)
    for rid, run in runs.items():
        if (rid == run_id or run.get("parent") == run_id) and run["status"] in ("RUNNING", "SCHEDULED"):
            run["status"], run["end"] = state, now
