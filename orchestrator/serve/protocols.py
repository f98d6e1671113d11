"""The three wire protocols the predictor speaks, as one pure ``(method, path, headers, body)`` router.

Owns: KServe V1 (``/v1/models[/<name>]``, ``/v1/models/<name>:predict`` with ``instances`` or
``inputs``), the Open Inference Protocol V2 (``/v2``, ``/v2/health/live|ready``,
``/v2/models/<name>[/ready]``, ``/v2/models/<name>/infer`` with typed tensors) and MLflow's scoring
server (``/ping``, ``/health``, ``/version``, ``/invocations`` with ``dataframe_split``,
``dataframe_records``, ``instances``, ``inputs`` or ``text/csv``). Every failure is answered in the
error shape of the protocol the path belongs to (V1/V2: ``{"error": ...}``; MLflow:
``{"error_code": ..., "message": ...}``); nothing a request holds can raise out of :func:`handle`.
No sockets here: :mod:`orchestrator.serve.httpserver` feeds it.

Must not import: control, api, cli, run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator import __version__
from orchestrator.serve.predictor import BadInput, Predictor

JSON = b"application/json"
V2_NUMERIC = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
              "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
              "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MAX_CSV_FIELD = 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def error(family: str, status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    """An error in the shape of the protocol family (``v1``, ``v2``, ``mlflow``)."""
    if family == "mlflow":
        return Response(status, _dump({"error_code": code, "message": message}))
    return Response(status, _dump({"error": message}))


def family_of(path: str) -> str:
    if path.startswith("/v1/") or path == "/v1":
        return "v1"
    if path.startswith("/v2/") or path == "/v2":
        return "v2"
    return "mlflow"


class Router:
    """Routes one request to the predictor; holds no per-request state."""

    def __init__(self, predictor: Predictor) -> None:
        self.p = predictor
        self.name = predictor.name
        self.ready = True

    # ------------------------------------------------------------ entry

    def handle(self, method: str, path: str, content_type: str, body: bytes) -> Response:
        family = family_of(path)
        try:
            return self._route(method, path, content_type, body, family)
        except BadInput as exc:
            return error(family, 400, exc.message)
        except RecursionError:
            return error(family, 400, "the JSON body is nested too deeply")
        except MemoryError:
            return error(family, 413, "the request needs more memory than the predictor allows")
        except Exception as exc:  # noqa: BLE001 - the predictor never dies of a request
            return error(family, 500, f"internal error while predicting ({type(exc).__name__})",
                         "INTERNAL_ERROR")

    def _route(self, method: str, path: str, ctype: str, body: bytes, family: str) -> Response:
        if family == "v1":
            return self._v1(method, path, body)
        if family == "v2":
            return self._v2(method, path, body)
        if path in ("/ping", "/health"):
            return self._only(method, "GET", family) or Response(200, b"\n")
        if path == "/version":
            return self._only(method, "GET", family) or Response(200, __version__.encode(), b"text/plain")
        if path == "/invocations":
            return self._only(method, "POST", family) or self._invocations(ctype, body)
        return error(family, 404, f"no such endpoint: {path[:100]}", "ENDPOINT_NOT_FOUND")

    @staticmethod
    def _only(method: str, allowed: str, family: str) -> Response | None:
        if method == allowed or (allowed == "GET" and method == "HEAD"):
            return None
        return error(family, 405, f"method {method} is not allowed here (use {allowed})", "METHOD_NOT_ALLOWED")

    def _model(self, name: str, family: str) -> Response | None:
        if name == self.name:
            return None
        return error(family, 404, f"model {name[:100]!r} is not served here (this predictor serves {self.name!r})",
                     "RESOURCE_DOES_NOT_EXIST")

    # ------------------------------------------------------------ KServe V1

    def _v1(self, method: str, path: str, body: bytes) -> Response:
        if path == "/v1/models":
            return self._only(method, "GET", "v1") or Response(200, _dump({"models": [self.name]}))
        if not path.startswith("/v1/models/"):
            return error("v1", 404, f"no such endpoint: {path[:100]}")
        rest = path[len("/v1/models/"):]
        if rest.endswith(":predict"):
            name = rest[:-len(":predict")]
            bad = self._model(name, "v1") or self._only(method, "POST", "v1")
            if bad:
                return bad
            doc = _json_object(body, "v1")
            keys = [k for k in ("instances", "inputs") if k in doc]
            if len(keys) != 1:
                raise BadInput("the body must hold exactly one of \"instances\" or \"inputs\"")
            data = doc[keys[0]]
            x = self.p.from_columns(data, keys[0]) if isinstance(data, dict) else self.p.from_rows(data, keys[0])
            return Response(200, _dump({"predictions": self.p.predict(x)}))
        if ":" in rest or "/" in rest:
            return error("v1", 404, f"no such endpoint: {path[:100]}")
        return self._model(rest, "v1") or self._only(method, "GET", "v1") or \
            Response(200, _dump({"name": self.name, "ready": self.ready}))

    # ------------------------------------------------------------ Open Inference Protocol V2

    def _v2(self, method: str, path: str, body: bytes) -> Response:
        if path in ("/v2", "/v2/"):
            return self._only(method, "GET", "v2") or Response(200, _dump(
                {"name": "orchestrator-predictor", "version": __version__, "extensions": []}))
        if path == "/v2/health/live":
            return self._only(method, "GET", "v2") or Response(200, _dump({"live": True}))
        if path == "/v2/health/ready":
            return self._only(method, "GET", "v2") or Response(200 if self.ready else 503,
                                                               _dump({"live": True, "ready": self.ready}))
        if not path.startswith("/v2/models/"):
            return error("v2", 404, f"no such endpoint: {path[:100]}")
        parts = path[len("/v2/models/"):].split("/")
        name, rest = parts[0], parts[1:]
        bad = self._model(name, "v2")
        if bad:
            return bad
        if rest[:1] == ["versions"]:
            return error("v2", 404, f"model {self.name!r} has no versions; use /v2/models/{self.name}/...")
        if not rest or rest == [""]:
            return self._only(method, "GET", "v2") or Response(200, _dump(self._metadata()))
        if rest == ["ready"]:
            return self._only(method, "GET", "v2") or Response(200 if self.ready else 503, _dump(
                {"name": self.name, "ready": self.ready}))
        if rest == ["infer"]:
            return self._only(method, "POST", "v2") or self._infer(body)
        return error("v2", 404, f"no such endpoint: {path[:100]}")

    def _metadata(self) -> dict[str, Any]:
        width = self.p.n_features if self.p.n_features is not None else -1
        meta: dict[str, Any] = {
            "name": self.name, "versions": [], "platform": f"sklearn_{self.p.loaded.fmt}",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, width]}],
            "outputs": [{"name": "predict", "datatype": self.p.output_datatype(), "shape": [-1]}]}
        if self.p.feature_names:
            meta["parameters"] = {"feature_names": self.p.feature_names}
        return meta

    def _infer(self, body: bytes) -> Response:
        doc = _json_object(body, "v2")
        tensors = doc.get("inputs")
        if not isinstance(tensors, list) or not tensors:
            raise BadInput("\"inputs\" must be a non-empty list of tensors")
        wanted = doc.get("outputs")
        if wanted is not None:
            if not isinstance(wanted, list) or any(not isinstance(o, dict) or o.get("name") != "predict"
                                                   for o in wanted):
                raise BadInput("the only output of this model is \"predict\"")
        arrays = [_tensor(t, i) for i, t in enumerate(tensors)]
        if len(arrays) == 1 and arrays[0][1].ndim == 2:
            x = self.p.from_matrix(arrays[0][1].astype(np.float64, copy=False), f"inputs[0] ({arrays[0][0]!r})")
        else:
            cols = []
            for name, a in arrays:
                if a.ndim == 2 and a.shape[1] == 1:
                    a = a[:, 0]
                if a.ndim != 1:
                    raise BadInput(f"tensor {name!r}: with several input tensors each must be one "
                                   "feature column of shape [rows] or [rows, 1]")
                cols.append(a.astype(np.float64, copy=False))
            x = self.p.columns_matrix([n for n, _ in arrays], cols, "inputs")
        preds = self.p.predict(x)
        out: dict[str, Any] = {"model_name": self.name, "outputs": [
            {"name": "predict", "shape": [len(preds)], "datatype": _datatype(preds), "data": preds}]}
        if isinstance(doc.get("id"), str):
            out["id"] = doc["id"]
        return Response(200, _dump(out))

    # ------------------------------------------------------------ MLflow scoring server

    def _invocations(self, ctype: str, body: bytes) -> Response:
        mime, _, params = ctype.partition(";")
        mime = mime.strip().lower()
        charset = params.strip().lower().replace(" ", "")
        if charset and charset not in ("charset=utf-8", "charset=utf8"):
            return error("mlflow", 415, f"unsupported content type parameter {params.strip()[:60]!r} "
                         "(only charset=utf-8)", "UNSUPPORTED_MEDIA_TYPE")
        if mime == "text/csv":
            x = self._csv(body)
        elif mime == "application/json":
            doc = _json_object(body, "mlflow")
            keys = [k for k in MLFLOW_KEYS if k in doc]
            extra = set(doc) - set(MLFLOW_KEYS) - {"params"}
            if len(keys) != 1 or extra:
                raise BadInput("the body must hold exactly one of " + ", ".join(MLFLOW_KEYS)
                               + (f" (unknown keys: {', '.join(sorted(extra)[:5])})" if extra else ""))
            if not isinstance(doc.get("params", {}), dict):
                raise BadInput("params must be an object")
            # a scikit-learn model's predict takes no params: MLflow ignores them too (with a warning)
            key, data = keys[0], doc[keys[0]]
            if key == "dataframe_split":
                x = self.p.from_split(data)
            elif key == "dataframe_records":
                x = self.p.from_records(data)
            elif isinstance(data, dict):
                x = self.p.from_columns(data, key)
            else:
                x = self.p.from_rows(data, key)
        else:
            return error("mlflow", 415, f"unsupported content type {mime[:60]!r} "
                         "(application/json or text/csv)", "UNSUPPORTED_MEDIA_TYPE")
        return Response(200, _dump({"predictions": self.p.predict(x)}))

    def _csv(self, body: bytes) -> np.ndarray:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("the CSV body is not UTF-8 text") from None
        csv.field_size_limit(MAX_CSV_FIELD)
        try:
            rows = [r for r in csv.reader(io.StringIO(text)) if r]
        except csv.Error as exc:
            raise BadInput(f"the CSV body cannot be parsed ({exc})") from None
        if len(rows) < 2:
            raise BadInput("the CSV body needs a header row and at least one data row")
        header = [h.strip() for h in rows[0]]
        order = self.p._columns_order(header, "the CSV header")  # noqa: SLF001 - same package
        out = []
        for line, r in enumerate(rows[1:], start=2):
            if len(r) != len(header):
                raise BadInput(f"CSV line {line} has {len(r)} fields, the header has {len(header)}")
            try:
                out.append([float(r[i]) for i in order])
            except ValueError:
                raise BadInput(f"CSV line {line} holds a value that is not a number") from None
        return self.p.from_rows(out, "the CSV body")


def _json_object(body: bytes, family: str) -> dict[str, Any]:
    if not body:
        raise BadInput("the request has no body (a JSON object is expected)")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(doc, dict):
        raise BadInput("the body must be a JSON object")
    return doc


def _flatten(data: list[Any], depth: int = 0) -> list[Any]:
    if depth > 8:
        raise BadInput("tensor data is nested too deeply")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v, depth + 1) if isinstance(v, list) else [v])
    return out


def _tensor(t: Any, i: int) -> tuple[str, np.ndarray]:
    """One OIP input tensor -> (name, array shaped as declared); every field is checked."""
    if not isinstance(t, dict):
        raise BadInput(f"inputs[{i}] must be a tensor object")
    name, shape, dtype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
    if not isinstance(name, str) or not name:
        raise BadInput(f"inputs[{i}].name must be a non-empty string")
    if not isinstance(shape, list) or not shape or len(shape) > 2 or \
            any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape):
        raise BadInput(f"tensor {name!r}: shape must be [rows] or [rows, features] of non-negative integers")
    if dtype not in V2_NUMERIC:
        raise BadInput(f"tensor {name!r}: datatype {str(dtype)[:20]!r} is not a numeric type "
                       f"({', '.join(V2_NUMERIC)})")
    if not isinstance(data, list):
        raise BadInput(f"tensor {name!r}: data must be a list")
    flat = _flatten(data)
    size = math.prod(shape)
    if len(flat) != size:
        raise BadInput(f"tensor {name!r}: shape {shape} needs {size} values, data holds {len(flat)}")
    want_bool, want_int = dtype == "BOOL", dtype.startswith(("INT", "UINT"))
    for v in flat:
        if isinstance(v, bool) != want_bool or not isinstance(v, (int, float)) or \
                (want_int and isinstance(v, float)):
            raise BadInput(f"tensor {name!r}: value {str(v)[:40]!r} is not of datatype {dtype}")
    try:
        arr = np.array(flat, dtype=V2_NUMERIC[dtype]).reshape(shape)
    except (OverflowError, ValueError):
        raise BadInput(f"tensor {name!r}: a value does not fit datatype {dtype}") from None
    return name, arr


def _datatype(preds: list[Any]) -> str:
    if preds and all(isinstance(v, bool) for v in preds):
        return "BOOL"
    if preds and all(isinstance(v, int) and not isinstance(v, bool) for v in preds):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in preds):
        return "FP64"
    return "BYTES"
