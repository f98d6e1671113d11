"""The MLflow tracking REST protocol over our store, for the steps of ONE execution.

Owns: the framework-free core of the MLflow-compatible endpoint every step gets (issue 14 item 5):
``Session.handle(method, path, query, body, auth) -> (status, JSON object | bytes)``. A session is
scoped to one execution by its bearer credential; each leaf step is one MLflow run whose id is the
step's token (``<execution id>-<sha1(node id)[:10]>``, valid for MLflow's run-id pattern). Paths
and bodies follow MLflow's ``service.proto`` as the 2.x and 3.x clients send them (GET requests
carry their fields as query parameters). Mapping:

* experiment = the execution's scenario: every experiment name resolves to it (the name asked for
  is kept as the execution tag ``experiment``), so ``set_experiment(NAME)`` + ``start_run()`` attach;
* params = execution tags ``param.<key>`` (immutable as in MLflow; not ``extra_parameters``, which
  a resume binds against the template; ``compare`` shows them as parameters), tags = execution tags,
  metrics = our metrics (one transaction per request, node id = the step); a run's status is the
  step's own view (the execution's status is the runner's, never written here);
* nested runs, ``runs/search``, the run view and how the runner ends a step's run:
  :mod:`orchestrator.run.mlflow_runs`;
* artifacts (``mlflow-artifacts`` proxy) and logged models: :mod:`orchestrator.run.mlflow_models`.

Errors answer MLflow's shape ``{"error_code", "message"}`` with its HTTP status; 5xx only for a busy
store (the client retries 5xx for minutes). Imports: store, errors; no web framework.
"""

from __future__ import annotations

import datetime
import functools
import hmac
import json
import math
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.errors import NotFound, OrchestratorError, StoreError
from orchestrator.model import Execution, MetricPoint
from orchestrator.run import mlflow_runs
from orchestrator.store import Store
from orchestrator.store.artifacts import ObjectStore

MAX_JSON = 8 * 1024 * 1024
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
BATCH_LIMITS = {"metrics": 1000, "params": 100, "tags": 100}
BATCH_TOTAL = 1000
PARAM_PREFIX = "param."
_KEY = re.compile(r"^[\w\-. /]{1,250}\Z")  # \Z: "$" also matches before a final "\n"
_PREFIX = re.compile(r"^/(?:ajax-)?api/[23]\.0/")
STATUS = {"ENDPOINT_NOT_FOUND": 404, "RESOURCE_DOES_NOT_EXIST": 404, "INVALID_PARAMETER_VALUE": 400,
          "RESOURCE_ALREADY_EXISTS": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
          "BAD_REQUEST": 400, "INTERNAL_ERROR": 500, "REQUEST_LIMIT_EXCEEDED": 429}
Reply = tuple[int, Any]


class MlflowError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def reply(self) -> Reply:
        return STATUS.get(self.code, 400), {"error_code": self.code, "message": self.message}


def bad(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def ms_to_iso(ms: Any) -> str:
    return _iso(ms) if isinstance(ms, int) and not isinstance(ms, bool) else _iso_any(ms)


@functools.lru_cache(maxsize=4096)  # a batch's points mostly share their timestamp
def _iso(ms: int) -> str:
    return _iso_any(ms)


def _iso_any(ms: Any) -> str:
    try:
        t = float(ms) / 1000.0 if ms not in (None, "") else time.time()
    except (TypeError, ValueError):
        raise bad(f"timestamp {ms!r} is not a number of milliseconds") from None
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_to_ms(text: str) -> int:
    try:
        d = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        try:
            d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return 0
    return int(d.timestamp() * 1000)


def _key(k: Any, what: str) -> str:
    if not isinstance(k, str) or not _KEY.match(k) or ".." in k.split("/") or k.startswith("/"):
        raise bad(f"invalid {what} name {k!r}: up to 250 of letters, digits, _ - . space / (MLflow's rule)")
    return k


class Session:
    """The MLflow view of one execution; thread-safe (one lock around its store connection)."""

    def __init__(self, store_factory: Callable[[], Store], objects: ObjectStore, execution: Execution,
                 token: str, staging: Path, runs: dict[str, dict[str, Any]] | None = None) -> None:
        self._factory = store_factory
        self._store: Store | None = None
        self.objects, self.ex, self.token = objects, execution, token
        self.rg, self.experiment_id = execution.resource_group, execution.scenario_id
        self.staging = staging
        self.runs = {} if runs is None else runs  # run id -> mlflow_endpoint.new_run(node)
        self.lock = threading.Lock()
        self._last = 0
        from orchestrator.run import mlflow_models

        self.models = mlflow_models.Models(self)

    @property
    def store(self) -> Store:
        if self._store is None:  # opened on the first request: a run that never logs pays nothing
            self._store = self._factory()
        return self._store

    def close(self) -> None:
        with self.lock:
            try:
                self.models.flush_all()
            finally:
                if self._store is not None:
                    self._store.close()
                    self._store = None
                shutil.rmtree(self.staging, ignore_errors=True)  # what was kept is in the object store

    def step_ended(self, run_id: str) -> None:
        """Store what the ended step's run and its children logged as files (the runner calls this)."""
        with self.lock:
            for rid, run in list(self.runs.items()):
                if rid == run_id or run.get("parent") == run_id:
                    try:
                        self.models.flush_run(rid)
                    except Exception:  # noqa: BLE001 - the step's outcome is the runner's; stop() retries
                        pass

    def add_run(self, run_id: str, node_id: str) -> None:
        from orchestrator.run.mlflow_endpoint import add_run

        add_run(self.runs, run_id, node_id)

    # ------------------------------------------------------------------ dispatch
    def handle(self, method: str, path: str, query: dict[str, str], body: bytes | BinaryIO | None,
               auth: str | None, length: int | None = None) -> Reply:
        """Answer one request; ``path`` starts at ``/api/...`` (any mount prefix stripped)."""
        if not auth or not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            return MlflowError("UNAUTHENTICATED", "missing or wrong bearer credential for this "
                               "execution's MLflow endpoint (MLFLOW_TRACKING_TOKEN)").reply()
        try:
            with self.lock:
                return self._dispatch(method.upper(), path, query, body, length)
        except MlflowError as exc:
            return exc.reply()
        except NotFound as exc:
            return MlflowError("RESOURCE_DOES_NOT_EXIST", str(exc)).reply()
        except StoreError as exc:  # busy or failing store: 503, which the client retries with backoff
            return 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": str(exc)}
        except (OrchestratorError, OSError) as exc:
            return bad(str(exc)).reply()
        except Exception as exc:  # noqa: BLE001 - a bug answers at once: a 5xx would be retried for minutes
            return 400, {"error_code": "INTERNAL_ERROR",
                         "message": f"orchestrator MLflow endpoint: {type(exc).__name__}: {exc}"}

    def _dispatch(self, method: str, path: str, query: dict[str, str], body: bytes | BinaryIO | None,
                  length: int | None) -> Reply:
        m = _PREFIX.match(path)
        if not m:
            raise MlflowError("ENDPOINT_NOT_FOUND", f"{method} {path} is not an MLflow API path")
        rest = path[m.end():]
        if rest.startswith("mlflow-artifacts/"):
            return self.models.artifacts(method, rest[len("mlflow-artifacts/"):], query, body, length)
        if not rest.startswith("mlflow/"):
            raise MlflowError("ENDPOINT_NOT_FOUND", f"{method} {path} is not an MLflow API path")
        route = rest[len("mlflow/"):]
        if isinstance(body, (bytes, bytearray)) or body is None:
            req = self._json(method, query, body)
        else:
            raise bad("JSON endpoints take a JSON body")
        fn = _ROUTES.get((method, route))
        if fn is not None:
            return 200, fn(self, req)
        if route.startswith(("logged-models", "registered-models", "model-versions")):
            return 200, self.models.route(method, route, req)
        raise MlflowError("ENDPOINT_NOT_FOUND", f"MLflow API {method} {route} is not supported by the "
                          "orchestrator's tracking endpoint (supported: runs get/create (nested)/search/"
                          "update/log-*/set-tag, experiments get/get-by-name/create, metrics/get-history, "
                          "artifacts, logged models, model registration)")

    @staticmethod
    def _json(method: str, query: dict[str, str], body: bytes | None) -> dict[str, Any]:
        if method == "GET" or not body:
            return dict(query)
        if len(body) > MAX_JSON:
            raise bad(f"request body over {MAX_JSON} bytes")
        try:
            req = json.loads(body)
        except (ValueError, RecursionError):
            raise MlflowError("BAD_REQUEST", "request body is not JSON") from None
        if not isinstance(req, dict):
            raise MlflowError("BAD_REQUEST", "request body must be a JSON object")
        return req

    # ------------------------------------------------------------------ runs
    def run_of(self, req: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        run_id = req.get("run_id") or req.get("run_uuid")
        if not isinstance(run_id, str) or not run_id:
            raise bad("missing run_id")
        run = self.runs.get(run_id)
        if run is None:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"run {run_id!r} is not a run of execution "
                              f"{self.ex.id} (each step's run is its MLFLOW_RUN_ID)")
        return run_id, run

    def artifact_uri(self, run_id: str) -> str:
        return f"mlflow-artifacts:/{self.experiment_id}/{run_id}/artifacts"

    def run_info(self, run_id: str) -> dict[str, Any]:
        run = self.runs[run_id]
        info = {"run_id": run_id, "run_uuid": run_id, "run_name": run.get("name") or run["node"], "experiment_id": self.experiment_id,
                "user_id": "", "status": run["status"], "start_time": run["start"],
                "artifact_uri": self.artifact_uri(run_id), "lifecycle_stage": "active"}
        if run["end"] is not None:
            info["end_time"] = run["end"]
        return info

    def update_run(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id, run = self.run_of(req)
        status = req.get("status")
        if status:
            if status not in ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"):
                raise bad(f"invalid run status {status!r}")
            # The step's own view of its run; the execution's status is the runner's alone.
            run["status"] = status
            if status in ("FINISHED", "FAILED", "KILLED"):
                run["end"] = int(req.get("end_time") or time.time() * 1000)
                self.models.flush_run(run_id)
        return {"run_info": self.run_info(run_id)}

    def log(self, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
        """Store one request's points, params and tags in one transaction."""
        run = self.runs[run_id]
        prefix = run.get("prefix", "")  # a nested run's keys are namespaced by its name (mlflow_runs)
        items: list[tuple[str, Any]] = []
        seen: set[tuple[str, float, str, int]] | None = None
        for m in metrics:
            if not isinstance(m, dict):
                raise bad("a metric must be an object {key, value, timestamp, step}")
            key = prefix + _key(m.get("key"), "metric")
            try:
                value = float(m.get("value"))
                step = int(m.get("step") or 0)
            except (TypeError, ValueError):
                raise bad(f"metric {key!r}: value must be a number and step an integer") from None
            if not math.isfinite(value):
                raise bad(f"metric {key!r}: {value} is not stored (finite values only)")
            if not 0 <= step < 2**63:
                raise bad(f"metric {key!r}: step {step} out of range")
            point = MetricPoint(self.ex.id, key, value, ms_to_iso(m.get("timestamp")), step)
            if m.get("model_id"):
                # 3.x log_model re-logs the run's points of its step, tagged with the model: MLflow's
                # primary key (key, timestamp, step, value) makes that a no-op there, and here.
                if seen is None:
                    seen = {(p.name, p.value, p.timestamp, p.step or 0)
                            for p in self.store.get_metrics(self.rg, self.ex.id)}
                if (key, value, point.timestamp, step) in seen:
                    continue
            items.append(("metric", point))
        new_params: dict[str, str] = {}
        for p in params:
            key = prefix + _key(p.get("key") if isinstance(p, dict) else None, "param")
            value = str(p.get("value", ""))
            if len(value) > MAX_PARAM_VALUE:
                raise bad(f"param {key!r}: value longer than {MAX_PARAM_VALUE} characters")
            if new_params.get(key, value) != value:
                raise bad(f"param {key!r} logged twice with different values in one request")
            new_params[key] = value
        for t in tags:
            key = prefix + _key(t.get("key") if isinstance(t, dict) else None, "tag")
            value = str(t.get("value", ""))
            if len(value) > MAX_TAG_VALUE:
                raise bad(f"tag {key!r}: value longer than {MAX_TAG_VALUE} characters")
            items.append(("tag", (key, value)))
        store = self.store
        with store.transaction():
            if new_params:
                have = dict(store.get_tags(self.rg, self.ex.id)[0])
                for k, v in new_params.items():
                    old = have.get(PARAM_PREFIX + k)
                    if old is not None and old != v:
                        raise bad(f"param {k!r} was already logged with value {old!r}; MLflow params "
                                  f"cannot change (new value {v!r})")
                    items.append(("tag", (PARAM_PREFIX + k, v)))
            if items:
                # Watermark source per step: strictly increasing ends, so every request is stored.
                self._last = end = max(self._last + 1, time.time_ns())
                store.add_tracked(self.rg, self.ex.id, f"{run['node']}:mlflow", end,
                                  [(end - 1, kind, payload) for kind, payload in items])

    def log_one(self, req: dict[str, Any], kind: str) -> dict[str, Any]:
        run_id, _ = self.run_of(req)
        self.log(run_id, *[[req] if k == kind else [] for k in ("metrics", "params", "tags")])
        return {}

    def log_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id, _ = self.run_of(req)
        parts = {k: req.get(k) or [] for k in BATCH_LIMITS}
        for k, limit in BATCH_LIMITS.items():
            if not isinstance(parts[k], list):
                raise bad(f"{k} must be a list")
            if len(parts[k]) > limit:
                raise bad(f"a batch holds at most {limit} {k} (got {len(parts[k])}), as in MLflow")
        if sum(len(v) for v in parts.values()) > BATCH_TOTAL:
            raise bad(f"a batch holds at most {BATCH_TOTAL} items in total, as in MLflow")
        self.log(run_id, parts["metrics"], parts["params"], parts["tags"])
        return {}

    def delete_tag(self, req: dict[str, Any]) -> dict[str, Any]:
        raise bad("deleting tags is not supported: execution tags are append/overwrite only; "
                  "set_tag(key, '') to clear one")

    def metric_history(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id, _ = self.run_of(req)
        key = req.get("metric_key")
        if not isinstance(key, str) or not key:
            raise bad("missing metric_key")
        return {"metrics": mlflow_runs.history(self, run_id, key)}

    def log_inputs(self, req: dict[str, Any]) -> dict[str, Any]:
        self.run_of(req)
        return {}  # dataset lineage is the execution's input artifacts; MLflow dataset records are dropped

    def log_outputs(self, req: dict[str, Any]) -> dict[str, Any]:
        _, run = self.run_of(req)
        for o in req.get("models") or []:
            if isinstance(o, dict) and isinstance(o.get("model_id"), str):
                self.models.known(o["model_id"])
                run["outputs"].append({"model_id": o["model_id"], "step": int(o.get("step") or 0)})
        return {}

    # ------------------------------------------------------------------ experiments
    def experiment(self, name: str | None = None) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "name": name or self.experiment_id,
                "artifact_location": f"mlflow-artifacts:/{self.experiment_id}", "lifecycle_stage": "active",
                "tags": []}

    def _name_experiment(self, name: Any) -> str:
        if not isinstance(name, str) or not name or len(name) > 500:
            raise bad("experiment name must be a non-empty string")
        # Every name is this execution's scenario; the name asked for is kept as a tag.
        if self.runs:
            self.log(next(iter(self.runs)), [], [], [{"key": "experiment", "value": name}])
        return name

    def get_by_name(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"experiment": self.experiment(self._name_experiment(req.get("experiment_name")))}

    def create_experiment(self, req: dict[str, Any]) -> dict[str, Any]:
        self._name_experiment(req.get("name"))
        return {"experiment_id": self.experiment_id}

    def get_experiment(self, req: dict[str, Any]) -> dict[str, Any]:
        if str(req.get("experiment_id")) != self.experiment_id:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"experiment {req.get('experiment_id')!r} is not this "
                              f"execution's (its experiment is scenario {self.experiment_id!r})")
        return {"experiment": self.experiment()}


_ROUTES: dict[tuple[str, str], Callable[[Session, dict[str, Any]], dict[str, Any]]] = {
    ("GET", "runs/get"): mlflow_runs.get_run,
    ("POST", "runs/update"): Session.update_run,
    ("POST", "runs/create"): mlflow_runs.create_run,
    ("POST", "runs/search"): mlflow_runs.search_runs,
    ("POST", "runs/log-metric"): lambda s, req: s.log_one(req, "metrics"),
    ("POST", "runs/log-parameter"): lambda s, req: s.log_one(req, "params"),
    ("POST", "runs/set-tag"): lambda s, req: s.log_one(req, "tags"),
    ("POST", "runs/delete-tag"): Session.delete_tag,
    ("POST", "runs/log-batch"): Session.log_batch,
    ("POST", "runs/log-inputs"): Session.log_inputs,
    ("POST", "runs/outputs"): Session.log_outputs,
    ("POST", "runs/log-model"): lambda s, req: s.models.log_model_v2(req),
    ("GET", "metrics/get-history"): Session.metric_history,
    ("GET", "experiments/get-by-name"): Session.get_by_name,
    ("GET", "experiments/get"): Session.get_experiment,
    ("POST", "experiments/create"): Session.create_experiment,
}
