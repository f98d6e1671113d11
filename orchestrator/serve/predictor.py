"""The model behind the endpoints: input tables -> a checked float matrix -> predictions.

Owns: :class:`Predictor` (the loaded estimator, its feature names and count) and the conversions
every protocol shares: rows (lists), records (dicts keyed by feature name) and columns (a dict of
equal-length lists) become one ``float64`` matrix in the model's feature order, with every problem
(ragged rows, unknown or missing columns, strings, NaN/inf, too many rows) raised as
:class:`BadInput` before the estimator sees it. Predictions come back as plain JSON-able lists.

Must not import: control, api, cli, run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from orchestrator.errors import UsageError
from orchestrator.serve.loading import LoadedModel

MAX_ROWS = 100_000
MAX_CELLS = 5_000_000


class BadInput(UsageError):
    """A request whose data does not fit the model (answered 400 in the protocol's error shape)."""

    code = "BAD_REQUEST"


def _number(v: Any, where: str) -> float:
    # bool is an int subclass: accepted as 0/1 like NumPy does; strings never are
    if isinstance(v, (int, float)):
        f = float(v)
        if not math.isfinite(f):
            raise BadInput(f"{where}: {v!r} is not a finite number")
        return f
    raise BadInput(f"{where}: {type(v).__name__} value {str(v)[:40]!r} is not a number")


class Predictor:
    """A loaded estimator plus the input contract derived from it."""

    def __init__(self, name: str, loaded: LoadedModel) -> None:
        self.name = name
        self.loaded = loaded
        self.estimator = loaded.estimator
        self.feature_names = loaded.feature_names
        self.n_features = loaded.n_features
        self._index = {n: i for i, n in enumerate(self.feature_names or ())}
        self._orders: dict[tuple[str, ...], list[int]] = {}
        self._fast = self._fast_path()

    def _fast_path(self) -> Any:
        """Whether predict can skip sklearn's per-call config/validation overhead (we validate)."""
        try:
            import sklearn
        except ImportError:
            return None
        # we check finiteness and shape ourselves; sklearn still checks the feature count
        sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
        # a model fitted on a DataFrame warns on every ndarray; we map columns by name ourselves
        warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
        return sklearn

    # ------------------------------------------------------------ inputs -> matrix

    def _width(self, n: int, where: str) -> None:
        if self.n_features is not None and n != self.n_features:
            raise BadInput(f"{where} has {n} values, the model expects {self.n_features} features")

    def _rows_cap(self, n: int) -> None:
        if n == 0:
            raise BadInput("no rows to predict")
        if n > MAX_ROWS:
            raise BadInput(f"{n} rows exceed the cap of {MAX_ROWS} per request")

    def from_rows(self, rows: Any, where: str = "instances") -> np.ndarray:
        """A list of rows (each a list of numbers in feature order) or of records (dicts)."""
        if not isinstance(rows, list):
            raise BadInput(f"{where} must be a list of rows")
        self._rows_cap(len(rows))
        if all(isinstance(r, dict) for r in rows):
            return self.from_records(rows, where)
        first = rows[0]
        if not isinstance(first, list):
            if self.n_features == 1 or (self.n_features is None and all(not isinstance(r, list) for r in rows)):
                rows = [[r] for r in rows]
                first = rows[0]
            else:
                raise BadInput(f"{where}[0] must be a list of {self.n_features} numbers or an object "
                               "keyed by feature name")
        width = len(first)
        self._width(width, f"{where}[0]")
        if width * len(rows) > MAX_CELLS:
            raise BadInput(f"the request holds more than {MAX_CELLS} values")
        try:
            x = np.array(rows, dtype=np.float64)
        except (ValueError, TypeError):
            x = None
        if x is None or x.ndim != 2 or x.shape[1] != width:
            return self._slow_rows(rows, width, where)
        if not np.isfinite(x).all() or _has_bad_scalar(rows):
            return self._slow_rows(rows, width, where)
        return x

    def _slow_rows(self, rows: Sequence[Any], width: int, where: str) -> np.ndarray:
        """Row by row, to say exactly which value is wrong."""
        out = np.empty((len(rows), width), dtype=np.float64)
        for i, r in enumerate(rows):
            if not isinstance(r, list):
                raise BadInput(f"{where}[{i}] is not a list")
            if len(r) != width:
                raise BadInput(f"{where}[{i}] has {len(r)} values, {where}[0] has {width}")
            for j, v in enumerate(r):
                out[i, j] = _number(v, f"{where}[{i}][{j}]")
        return out

    def _columns_order(self, keys: Sequence[str], where: str) -> list[int]:
        """For each model feature, the position of its column in ``keys`` (cached per column list:
        a client sends the same columns with every request)."""
        cached = self._orders.get(tuple(keys))
        if cached is not None:
            return cached
        order = self._order(keys, where)
        if len(self._orders) < 64:
            self._orders[tuple(keys)] = order
        return order

    def _order(self, keys: Sequence[str], where: str) -> list[int]:
        if self.feature_names is None:
            if self.n_features is not None and len(keys) != self.n_features:
                raise BadInput(f"{where} has {len(keys)} columns, the model expects {self.n_features}")
            return list(range(len(keys)))
        pos = {k: i for i, k in enumerate(keys)}
        if len(pos) != len(keys):
            raise BadInput(f"{where} names a column twice")
        unknown = [k for k in keys if k not in self._index]
        missing = [n for n in self.feature_names if n not in pos]
        if unknown or missing:
            parts = ([f"unknown columns {_few(unknown)}"] if unknown else []) + \
                    ([f"missing columns {_few(missing)}"] if missing else [])
            raise BadInput(f"{where}: " + "; ".join(parts))
        return [pos[n] for n in self.feature_names]

    def from_records(self, records: list[Any], where: str = "dataframe_records") -> np.ndarray:
        """A list of objects keyed by feature name."""
        if not isinstance(records, list):
            raise BadInput(f"{where} must be a list of objects")
        self._rows_cap(len(records))
        if not isinstance(records[0], dict):
            raise BadInput(f"{where}[0] must be an object keyed by feature name")
        keys = [str(k) for k in records[0]]
        order = self._columns_order(keys, f"{where}[0]")
        names = [keys[i] for i in order]
        rows = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise BadInput(f"{where}[{i}] must be an object keyed by feature name")
            if len(rec) != len(keys):
                self._columns_order([str(k) for k in rec], f"{where}[{i}]")
                raise BadInput(f"{where}[{i}] has {len(rec)} columns, {where}[0] has {len(keys)}")
            try:
                rows.append([rec[n] for n in names])
            except KeyError:
                self._columns_order([str(k) for k in rec], f"{where}[{i}]")
                raise BadInput(f"{where}[{i}] has other columns than {where}[0]") from None
        return self.from_rows(rows, where)

    def from_columns(self, columns: Any, where: str = "inputs") -> np.ndarray:
        """An object of equal-length lists keyed by feature name (TF-serving columnar format)."""
        if not isinstance(columns, dict) or not columns:
            raise BadInput(f"{where} must be an object of columns")
        keys = [str(k) for k in columns]
        order = self._columns_order(keys, where)
        cols = [columns[keys[i]] for i in order]
        n = len(cols[0]) if isinstance(cols[0], list) else -1
        for k, c in zip((keys[i] for i in order), cols):
            if not isinstance(c, list) or len(c) != n:
                raise BadInput(f"{where}[{k!r}] must be a list as long as the other columns")
        self._rows_cap(n)
        return self.from_rows([list(r) for r in zip(*cols)], where)

    def from_split(self, split: Any, where: str = "dataframe_split") -> np.ndarray:
        """pandas ``orient=split``: ``{"columns": [...], "data": [[...]], "index": [...]?}``."""
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise BadInput(f"{where} must be an object with a data list (and columns)")
        extra = set(split) - {"columns", "data", "index"}
        if extra:
            raise BadInput(f"{where} has unknown keys {_few(sorted(extra))}")
        columns = split.get("columns")
        x = self.from_rows(split["data"], f"{where}.data")
        if columns is None:
            return x
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadInput(f"{where}.columns must be a list of column names")
        if len(columns) != x.shape[1]:
            raise BadInput(f"{where}.columns names {len(columns)} columns, the rows have {x.shape[1]}")
        order = self._columns_order(columns, f"{where}.columns")
        return x if order == list(range(len(order))) else x[:, order]

    def from_matrix(self, x: np.ndarray, where: str) -> np.ndarray:
        """A 2-D float matrix built by a protocol (typed tensors): width, size and finiteness."""
        if x.ndim != 2:
            raise BadInput(f"{where} must have 2 dimensions (rows, features), it has {x.ndim}")
        self._rows_cap(x.shape[0])
        self._width(x.shape[1], f"each row of {where}")
        if not np.isfinite(x).all():
            raise BadInput(f"{where} holds a value that is not a finite number")
        return x

    def columns_matrix(self, names: Sequence[str], columns: Sequence[np.ndarray], where: str) -> np.ndarray:
        """Named 1-D columns (one per feature) -> the matrix in the model's feature order."""
        order = self._columns_order(list(names), where)
        n = len(columns[0])
        if any(len(c) != n for c in columns):
            raise BadInput(f"the columns of {where} do not have the same length")
        return self.from_matrix(np.column_stack([columns[i] for i in order]), where)

    # ------------------------------------------------------------ predict

    def predict(self, x: np.ndarray) -> list[Any]:
        """Predictions for a checked matrix, as a JSON-able list."""
        self._width(x.shape[1], "each row")
        try:
            y = self.estimator.predict(x)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"the model cannot predict this input ({type(exc).__name__}: {str(exc)[:200]})") from None
        out = np.asarray(y)
        return out.tolist()

    def output_datatype(self) -> str:
        """OIP datatype of the predictions (from the classes of a classifier, else FP64)."""
        classes = getattr(self.estimator, "classes_", None)
        if classes is not None:
            kind = np.asarray(classes).dtype.kind
            return {"i": "INT64", "u": "UINT64", "b": "BOOL", "f": "FP64"}.get(kind, "BYTES")
        return "FP64"


def _has_bad_scalar(rows: list[Any]) -> bool:
    """np.array converts numeric strings ("1.5"); a JSON string is never accepted as a number."""
    return any(isinstance(v, str) for r in rows for v in r)


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(repr(str(i))[:60] for i in items[:5])
    return shown + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
