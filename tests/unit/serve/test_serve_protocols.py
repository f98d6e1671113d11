"""orchestrator.serve.protocols: the three protocols' request shapes, their answers, and every bad
input answered 4xx in the protocol's own error shape (the router never raises)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.serve.loading import LoadedModel
from orchestrator.serve import predictor
from orchestrator.serve.predictor import Predictor
from orchestrator.serve.protocols import Router


@pytest.fixture(scope="module")
def names(breast_cancer: Any) -> list[str]:
    return [str(n) for n in breast_cancer.feature_names]


@pytest.fixture(scope="module")
def router(logreg: Any, names: list[str]) -> Router:
    return Router(Predictor("bc", LoadedModel(logreg, "skops", names, 30)))


@pytest.fixture(scope="module")
def rows(breast_cancer: Any) -> list[list[float]]:
    return [[float(v) for v in r] for r in breast_cancer.data[:3]]


@pytest.fixture(scope="module")
def expected(logreg: Any, breast_cancer: Any) -> list[int]:
    return [int(v) for v in logreg.predict(breast_cancer.data[:3])]


def call(router: Router, method: str, path: str, body: Any = None, ctype: str = "application/json") -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    resp = router.handle(method, path, ctype, raw)
    return resp.status, json.loads(resp.body) if resp.content_type == b"application/json" and resp.body.strip() else resp.body


def test_kserve_v1(router: Router, rows: list[list[float]], names: list[str], expected: list[int]) -> None:
    assert call(router, "GET", "/v1/models") == (200, {"models": ["bc"]})
    assert call(router, "GET", "/v1/models/bc") == (200, {"name": "bc", "ready": True})
    assert call(router, "POST", "/v1/models/bc:predict", {"instances": rows}) == (200, {"predictions": expected})
    records = [dict(zip(names, r)) for r in rows]
    assert call(router, "POST", "/v1/models/bc:predict", {"instances": records})[1]["predictions"] == expected
    columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    assert call(router, "POST", "/v1/models/bc:predict", {"inputs": columns})[1]["predictions"] == expected


def test_open_inference_protocol_v2(router: Router, rows: list[list[float]], names: list[str],
                                    expected: list[int]) -> None:
    assert call(router, "GET", "/v2/health/live") == (200, {"live": True})
    assert call(router, "GET", "/v2/health/ready")[0] == 200
    assert call(router, "GET", "/v2/models/bc/ready") == (200, {"name": "bc", "ready": True})
    meta = call(router, "GET", "/v2/models/bc")[1]
    assert meta["inputs"][0]["shape"] == [-1, 30] and meta["outputs"][0]["datatype"] == "INT64"
    flat = [v for r in rows for v in r]
    status, out = call(router, "POST", "/v2/models/bc/infer", {"id": "7", "inputs": [
        {"name": "x", "shape": [3, 30], "datatype": "FP64", "data": flat}]})
    assert status == 200 and out["id"] == "7" and out["outputs"] == [
        {"name": "predict", "shape": [3], "datatype": "INT64", "data": expected}]
    nested = call(router, "POST", "/v2/models/bc/infer", {"inputs": [
        {"name": "x", "shape": [3, 30], "datatype": "FP32", "data": rows}]})[1]
    assert nested["outputs"][0]["data"] == expected
    per_feature = [{"name": n, "shape": [3], "datatype": "FP64", "data": [r[i] for r in rows]}
                   for i, n in reversed(list(enumerate(names)))]  # any order: matched by name
    assert call(router, "POST", "/v2/models/bc/infer", {"inputs": per_feature})[1]["outputs"][0]["data"] == expected


def test_mlflow_scoring(router: Router, rows: list[list[float]], names: list[str], expected: list[int]) -> None:
    assert call(router, "GET", "/ping")[0] == 200 and call(router, "GET", "/health")[0] == 200
    split = {"dataframe_split": {"columns": names[::-1], "data": [r[::-1] for r in rows]}}
    assert call(router, "POST", "/invocations", split) == (200, {"predictions": expected})
    records = {"dataframe_records": [dict(zip(names, r)) for r in rows]}
    assert call(router, "POST", "/invocations", records)[1]["predictions"] == expected
    assert call(router, "POST", "/invocations", {"instances": rows, "params": {"x": 1}})[1]["predictions"] == expected
    assert call(router, "POST", "/invocations", {"inputs": rows}, "application/json; charset=utf-8")[1][
        "predictions"] == expected
    text = ",".join(names) + "\n" + "\n".join(",".join(repr(v) for v in r) for r in rows) + "\n"
    assert call(router, "POST", "/invocations", text.encode(), "text/csv")[1]["predictions"] == expected


BAD_V1 = [
    ({"instances": [[1.0, 2.0]]}, "30 features"),
    ({"instances": [["a"] * 30]}, "not a number"),
    ({"instances": [[1.0] * 30, [1.0] * 29]}, "has 29 values"),
    ({"instances": [[float("nan")] * 30]}, "finite"),
    ({"instances": []}, "no rows"),
    ({"instances": [{"nope": 1.0}]}, "unknown columns 'nope'"),
    ({"instances": [[1.0] * 30], "inputs": [[1.0] * 30]}, "exactly one"),
    ([1, 2], "JSON object"),
    ({"instances": [[True, None] + [1.0] * 28]}, "not a number"),
]


@pytest.mark.parametrize("body,needle", BAD_V1)
def test_v1_bad_input_is_400_with_error(router: Router, body: Any, needle: str) -> None:
    status, out = call(router, "POST", "/v1/models/bc:predict", body)
    assert status == 400 and set(out) == {"error"} and needle in out["error"]


BAD_V2 = [
    ({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [1.0] * 29}]}, "needs 30 values"),
    ({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": ["a"] * 30}]}, "not a numeric"),
    ({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "INT32", "data": [1.5] * 30}]}, "not of datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}, "30 features"),
    ({"inputs": [{"name": "x", "shape": [-1, 30], "datatype": "FP64", "data": []}]}, "non-negative"),
    ({"inputs": [{"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, "missing columns"),
    ({"inputs": []}, "non-empty"),
    ({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [1.0] * 30}],
      "outputs": [{"name": "proba"}]}, "only output"),
]


@pytest.mark.parametrize("body,needle", BAD_V2)
def test_v2_bad_input_is_400_with_error(router: Router, body: Any, needle: str) -> None:
    status, out = call(router, "POST", "/v2/models/bc/infer", body)
    assert status == 400 and set(out) == {"error"} and needle in out["error"]


def test_mlflow_bad_input_has_mlflow_error_shape(router: Router, names: list[str]) -> None:
    cases: list[tuple[Any, str, int]] = [
        ({"dataframe_split": {"columns": ["x"] + names[1:], "data": [[1.0] * 30]}}, "application/json", 400),
        ({"inputs": [[1.0] * 30], "instances": [[1.0] * 30]}, "application/json", 400),
        ([[1.0] * 30], "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b"a,b\n1,2\n", "text/csv", 400),
        (b"\xff\xfe", "text/csv", 400),
        ({"inputs": [[1.0] * 30]}, "application/xml", 415),
        ({"inputs": [[1.0] * 30]}, "application/json; charset=latin-1", 415),
    ]
    for body, ctype, want in cases:
        status, out = call(router, "POST", "/invocations", body, ctype)
        assert status == want and set(out) == {"error_code", "message"}, (body if len(str(body)) < 80 else ctype, out)


def test_unknown_models_paths_and_methods(router: Router) -> None:
    assert call(router, "GET", "/v1/models/other")[0] == 404
    assert call(router, "POST", "/v2/models/other/infer", {"inputs": []})[0] == 404
    assert call(router, "GET", "/v1/models/bc:predict")[0] == 405
    assert call(router, "POST", "/ping")[0] == 405
    status, out = call(router, "GET", "/nope")
    assert status == 404 and "error_code" in out


def test_row_cap(router: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictor, "MAX_ROWS", 4)
    assert call(router, "POST", "/v1/models/bc:predict", {"instances": [[0.0] * 30] * 4})[0] == 200
    status, out = call(router, "POST", "/v1/models/bc:predict", {"instances": [[0.0] * 30] * 5})
    assert status == 400 and "cap of 4" in out["error"]
