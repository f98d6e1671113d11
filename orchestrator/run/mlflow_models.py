"""Artifacts, logged models and model registration of the MLflow endpoint (one execution).

Owns: the ``mlflow-artifacts`` proxy (PUT/GET/list under ``<experiment>/<run id>/artifacts/...`` and
``<experiment>/models/<model id>/artifacts/...`` only, for this execution's runs and models; every
path through ``resolve_inside``; uploads streamed to disk with a cap), 3.x logged models
(``logged-models`` create/get/finalize, ``runs/outputs``), 2.x ``runs/log-model``, and the
registry calls ``log_model(registered_model_name=...)`` makes (recorded as the execution tag
``orchestrator/register-model-request.<artifact id>: NAME``, which the registry honours when the
execution completes: control.registry.register_on_success). A model becomes a ``model`` artifact
of the execution, stored content-addressed by :meth:`ObjectStore.store_output`, when it is
finalized READY (3.x) or recorded (2.x); what a run logged with ``log_artifact(s)`` becomes one
``other`` artifact ``mlflow-<step>`` when the run ends (or the endpoint stops). Staging files live
under ``<execution workdir>/mlflow``; stored objects under ``ai://default/<execution>/mlflow/``
``runs/<run id>`` (files) and ``models/<model id>`` or ``models/<run id>/<path>`` (models): no
URL is a prefix of another (storing one must not replace another). Imports: store, errors; used by
:mod:`orchestrator.run.mlflow_protocol` only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from orchestrator.errors import ArtifactError
from orchestrator.store.artifacts import resolve_inside

if TYPE_CHECKING:
    from orchestrator.run.mlflow_protocol import Reply, Session

MAX_FILE = int(os.environ.get("ORCHESTRATOR_MLFLOW_MAX_ARTIFACT", str(2 * 1024**3)))
CHUNK = 1024 * 1024
_NAME_FILTER = re.compile(r"name\s*=\s*'([^']*)'")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # control.registry.NAME_RE
# control.registry.REQUEST_TAG (run/ must not import control): + artifact id = model name. The
# registry takes models of COMPLETED executions only; register-on-success honours these requests.
REQUEST_TAG = "orchestrator/register-model-request."


def _err(code: str, message: str) -> Exception:
    from orchestrator.run.mlflow_protocol import MlflowError

    return MlflowError(code, message)


class Models:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.logged: dict[str, dict[str, Any]] = {}  # model id -> LoggedModel info
        self.artifact_of: dict[str, str] = {}  # model id or staging dir -> our artifact id
        self.flushed: set[str] = set()  # runs whose log_artifact files were stored
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------ artifact proxy
    def _scoped(self, rel: str) -> Path:
        """The staging path of ``rel`` if it belongs to one of this execution's runs or models."""
        parts = rel.strip("/").split("/")
        ok = len(parts) >= 3 and parts[0] == self.s.experiment_id and (
            (parts[1] in self.s.runs and parts[2] == "artifacts")
            or (parts[1] == "models" and len(parts) >= 4 and parts[2] in self.logged and parts[3] == "artifacts"))
        if not ok:
            raise _err("PERMISSION_DENIED", f"artifact path {rel!r} is not under a run or logged model of "
                       f"execution {self.s.ex.id}")
        try:
            return resolve_inside(self.s.staging, "/".join(parts))
        except ArtifactError as exc:
            raise _err("INVALID_PARAMETER_VALUE", str(exc)) from None

    def artifacts(self, method: str, rest: str, query: dict[str, str], body: bytes | BinaryIO | None,
                  length: int | None) -> Reply:
        if rest == "artifacts" and method == "GET":  # list
            rel = query.get("path", "")
            where = self._scoped(rel)
            files = []
            if where.is_dir():
                for e in sorted(os.scandir(where), key=lambda e: e.name):
                    if e.is_symlink():
                        continue
                    d = e.is_dir()
                    files.append({"path": e.name, "is_dir": d, **({} if d else {"file_size": e.stat().st_size})})
            return 200, {"files": files}
        if not rest.startswith("artifacts/"):
            raise _err("ENDPOINT_NOT_FOUND", f"mlflow-artifacts {method} {rest} is not supported "
                       "(multipart upload is not: unset MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD)")
        target = self._scoped(rest[len("artifacts/"):])
        if method == "PUT":
            self._upload(target, body, length)
            return 200, {}
        if method == "GET":
            if not target.is_file() or target.is_symlink():
                raise _err("RESOURCE_DOES_NOT_EXIST", f"artifact {rest[len('artifacts/'):]!r} does not exist")
            return 200, target
        raise _err("ENDPOINT_NOT_FOUND", f"mlflow-artifacts {method} is not supported (artifacts are kept)")

    def _upload(self, target: Path, body: bytes | BinaryIO | None, length: int | None) -> None:
        if isinstance(body, (bytes, bytearray)) or body is None:
            data = bytes(body or b"")
            if len(data) > MAX_FILE:
                raise _err("INVALID_PARAMETER_VALUE", f"artifact larger than {MAX_FILE} bytes")
            chunks: Any = [data]
        else:
            if length is None:
                raise _err("INVALID_PARAMETER_VALUE", "artifact upload needs a Content-Length")
            if length > MAX_FILE:
                raise _err("INVALID_PARAMETER_VALUE", f"artifact of {length} bytes is over the cap of {MAX_FILE} "
                           "(ORCHESTRATOR_MLFLOW_MAX_ARTIFACT)")
            chunks = _read(body, length)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".up-{secrets.token_hex(4)}-{target.name}")
        try:
            with open(tmp, "wb") as out:
                out.writelines(chunks)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()

    # ------------------------------------------------------------------ storing
    def _store(self, source: Path, name: str, kind: str, rel_url: str) -> str:
        s = self.s
        url, digest, size = s.objects.store_output(s.rg, source, rel_url, s.staging)
        art = s.store.create_artifact(s.rg, name=name, kind=kind, url=url, scenario_id=s.ex.scenario_id,
                                      description="logged with MLflow", execution_id=s.ex.id, digest=digest,
                                      size=size)
        return art.id

    def flush_run(self, run_id: str) -> None:
        """Store what a run logged with ``log_artifact(s)`` (models excluded) as one artifact."""
        if run_id in self.flushed:
            return
        src = self.s.staging / self.s.experiment_id / run_id / "artifacts"
        models = {Path(k) for k in self.artifact_of if "/" in k}
        if not src.is_dir():
            return
        rest = [p for p in src.iterdir() if p not in models and not p.name.startswith(".up-")]
        if not rest:
            return
        self.flushed.add(run_id)
        run = self.s.runs[run_id]
        node = run["node"] + (f"-{run['name']}" if run.get("parent") else "")
        if models & set(src.iterdir()):  # copy what is not a model into its own tree
            only = self.s.staging / ".runs" / run_id
            shutil.rmtree(only, ignore_errors=True)
            only.mkdir(parents=True)
            for p in rest:
                if p.is_dir():
                    shutil.copytree(p, only / p.name, symlinks=True)
                else:
                    shutil.copyfile(p, only / p.name, follow_symlinks=False)
            src = only
        self._store(src, f"mlflow-{node}", "other", f"{self.s.ex.id}/mlflow/runs/{run_id}")

    def flush_all(self) -> None:
        for run_id in list(self.s.runs):
            try:
                self.flush_run(run_id)
            except Exception:  # noqa: BLE001 - stopping with the run (maybe over a failing store): go on
                pass

    # ------------------------------------------------------------------ logged models (3.x)
    def known(self, model_id: str) -> dict[str, Any]:
        m = self.logged.get(model_id)
        if m is None:
            raise _err("RESOURCE_DOES_NOT_EXIST", f"logged model {model_id!r} is not a model of execution "
                       f"{self.s.ex.id}")
        return m

    def _reply_model(self, m: dict[str, Any]) -> dict[str, Any]:
        return {"model": {"info": m, "data": {"params": m.get("params", []), "metrics": []}}}

    def route(self, method: str, route: str, req: dict[str, Any]) -> dict[str, Any]:
        parts = route.split("/")
        if parts[0] == "logged-models":
            if method == "POST" and len(parts) == 1:
                return self.create(req)
            if method == "POST" and route == "logged-models/search":
                return self.search(req)
            if len(parts) == 2 and parts[1] != "search":
                m = self.known(parts[1])
                if method == "GET":
                    return self._reply_model(m)
                if method == "PATCH":
                    return self.finalize(m, str(req.get("status", "")))
            if len(parts) == 3 and parts[2] in ("tags", "params") and method in ("PATCH", "POST"):
                m = self.known(parts[1])
                key = "tags" if parts[2] == "tags" else "params"
                m[key] = [*m.get(key, []), *[x for x in req.get(key) or [] if isinstance(x, dict)]]
                return {} if key == "params" else self._reply_model(m)
        if parts[0] == "registered-models" and route == "registered-models/create" and method == "POST":
            return self.create_registered(req)
        if route == "model-versions/create" and method == "POST":
            return self.create_version(req)
        if route == "model-versions/get" and method == "GET":
            v = self.versions.get((str(req.get("name")), str(req.get("version"))))
            if v is None:
                raise _err("RESOURCE_DOES_NOT_EXIST", f"model version {req.get('name')}/{req.get('version')} "
                           "was not registered by this execution")
            return {"model_version": v}
        raise _err("ENDPOINT_NOT_FOUND", f"MLflow API {method} {route} is not supported by the orchestrator's "
                   "tracking endpoint (use `orchestrator models` for the registry)")

    def create(self, req: dict[str, Any]) -> dict[str, Any]:
        s = self.s
        run_id = req.get("source_run_id")
        if run_id:
            s.run_of({"run_id": run_id})
        model_id = "m-" + secrets.token_hex(16)
        now = int(time.time() * 1000)
        name = str(req.get("name") or "model")[:250]
        m = {"model_id": model_id, "experiment_id": s.experiment_id, "name": name,
             "artifact_uri": f"mlflow-artifacts:/{s.experiment_id}/models/{model_id}/artifacts",
             "creation_timestamp_ms": now, "last_updated_timestamp_ms": now, "status": "LOGGED_MODEL_PENDING",
             "tags": [t for t in req.get("tags") or [] if isinstance(t, dict)],
             "params": [p for p in req.get("params") or [] if isinstance(p, dict)],
             "model_type": str(req.get("model_type") or "")}
        if run_id:
            m["source_run_id"] = run_id
        self.logged[model_id] = m
        return self._reply_model(m)

    def search(self, req: dict[str, Any]) -> dict[str, Any]:
        """This execution's logged models; of the filter only ``name = '<name>'`` is understood
        (what ``register_model("runs:/<run>/<name>")`` sends); the client filters the run itself."""
        m = _NAME_FILTER.fullmatch(str(req.get("filter") or "").strip())
        if req.get("filter") and not m:
            raise _err("INVALID_PARAMETER_VALUE", "logged-models/search: only the filter name = '<name>' is "
                       "supported by the orchestrator's tracking endpoint")
        exps = req.get("experiment_ids") or [self.s.experiment_id]
        return {"models": [self._reply_model(x)["model"] for x in self.logged.values()
                           if x["experiment_id"] in exps and (not m or x["name"] == m[1])]}

    def finalize(self, m: dict[str, Any], status: str) -> dict[str, Any]:
        if status not in ("LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"):
            raise _err("INVALID_PARAMETER_VALUE", f"invalid logged model status {status!r}")
        mid = m["model_id"]
        if status == "LOGGED_MODEL_READY" and mid not in self.artifact_of:
            src = self.s.staging / self.s.experiment_id / "models" / mid / "artifacts"
            if not src.is_dir() or not any(src.iterdir()):
                raise _err("INVALID_PARAMETER_VALUE", f"logged model {mid!r} has no uploaded files")
            self.artifact_of[mid] = self._store(src, m["name"], "model", f"{self.s.ex.id}/mlflow/models/{mid}")
        m["status"] = status
        m["last_updated_timestamp_ms"] = int(time.time() * 1000)
        return self._reply_model(m)

    # ------------------------------------------------------------------ 2.x runs/log-model
    def log_model_v2(self, req: dict[str, Any]) -> dict[str, Any]:
        run_id, _ = self.s.run_of(req)
        try:
            model = json.loads(str(req.get("model_json") or ""))
            path = str(model["artifact_path"])
        except (ValueError, KeyError, TypeError):
            raise _err("INVALID_PARAMETER_VALUE", "model_json must be the MLmodel as JSON with artifact_path") from None
        rel = f"{self.s.experiment_id}/{run_id}/artifacts/{path}"
        src = self._scoped(rel)
        if not src.is_dir():
            raise _err("INVALID_PARAMETER_VALUE", f"model files of {path!r} were not uploaded first")
        if str(src) not in self.artifact_of:
            self.artifact_of[str(src)] = self._store(src, path.rsplit("/", 1)[-1], "model",
                                                     f"{self.s.ex.id}/mlflow/models/{run_id}/{path}")
        return {}

    # ------------------------------------------------------------------ registration
    def create_registered(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("name")
        if not isinstance(name, str) or not name:
            raise _err("INVALID_PARAMETER_VALUE", "missing registered model name")
        now = int(time.time() * 1000)
        return {"registered_model": {"name": name, "creation_timestamp": now, "last_updated_timestamp": now}}

    def _artifact_for(self, source: str, model_id: str | None) -> str:
        if model_id and model_id in self.artifact_of:
            return self.artifact_of[model_id]
        if source.startswith("models:/") and source[8:] in self.artifact_of:
            return self.artifact_of[source[8:]]
        if source.startswith("mlflow-artifacts:/"):
            try:
                p = str(self._scoped(source[len("mlflow-artifacts:/"):]))
            except Exception:  # noqa: BLE001 - answered below as not found
                p = ""
            if p in self.artifact_of:
                return self.artifact_of[p]
        raise _err("RESOURCE_DOES_NOT_EXIST", f"model source {source!r} is not a model this execution "
                   "logged (log it first with mlflow.<flavor>.log_model)")

    def create_version(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("name")
        if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
            raise _err("INVALID_PARAMETER_VALUE", f"registered model name {name!r}: 1-128 of letters, digits, "
                       "'.', '_', '-', starting with a letter or digit (the orchestrator registry's rule)")
        source = str(req.get("source") or "")
        artifact_id = self._artifact_for(source, req.get("model_id"))
        s = self.s
        tag = REQUEST_TAG + artifact_id
        asked = dict(s.store.get_tags(s.rg, s.ex.id)[0]).get(tag)
        if asked not in (None, name):
            raise _err("INVALID_PARAMETER_VALUE", f"model artifact {artifact_id} is already to be registered as "
                       f"{asked!r}; one name per logged model")
        s.log(next(iter(s.runs)), [], [], [{"key": tag, "value": name}])
        now = int(time.time() * 1000)
        v = {"name": name, "version": "pending", "creation_timestamp": now, "last_updated_timestamp": now,
             "source": source, "status": "READY", "run_id": str(req.get("run_id") or ""),
             "status_message": f"artifact {artifact_id} is registered as the next version of {name!r} "
                               f"when execution {s.ex.id} completes",
             "tags": req.get("tags") or []}
        if req.get("model_id"):
            v["model_id"] = req["model_id"]
        self.versions[(name, "pending")] = v
        return {"model_version": v}


def _read(stream: BinaryIO, length: int) -> Any:
    left = length
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise _err("INVALID_PARAMETER_VALUE", "artifact upload ended before Content-Length bytes")
        left -= len(chunk)
        yield chunk
