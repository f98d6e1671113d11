"""Safe model loading: verify the bytes, then deserialize only those bytes.

Owns: reading a model artifact (one file, or a directory such as an MLflow model or the shipped
``model/`` folder) into memory with size caps, checking its sha256 exactly as the store records it
(a file: sha256 of its bytes; a directory: sha256 of the ``relpath\\0filedigest\\n`` manifest, see
:func:`orchestrator.store.artifacts.tree_digest`) BEFORE any byte is deserialized, and then
loading the model from the verified in-memory copy (never re-opening the file: what was checked is
what is loaded). Formats: skops (non-executable; only types from scikit-learn, NumPy and SciPy
are trusted), MLflow model directories (``MLmodel`` with a skops, pickle or cloudpickle sklearn
flavor), and pickle (``.pkl``/``.pickle``/``.joblib``) only because the caller-supplied digest
matched. Never imports mlflow; symlinks and special files in a model are refused.

Must not import: control, api, cli, run (serve sits beside run).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickle
import stat
import sys
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ArtifactError

MAX_MODEL_BYTES = 2 * 1024**3  # all files of a model together
MAX_FILES = 10_000
MAX_MLMODEL_BYTES = 1024 * 1024
FORMATS = ("auto", "skops", "pickle", "mlflow")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TRUSTED_SKOPS_MODULES = ("sklearn.", "numpy.", "scipy.")


class ModelRefused(ArtifactError):
    """The model's bytes do not match the attested digest, or its content is not safe to load."""

    exit_code = 3
    http_status = 403
    code = "MODEL_REFUSED"


class ModelUnloadable(ArtifactError):
    """The verified model cannot be loaded (unknown format, corrupt file, missing library)."""

    exit_code = 4
    code = "MODEL_UNLOADABLE"


@dataclass(frozen=True)
class VerifiedModel:
    """A model's files held in memory after their digest was checked."""

    root: str
    is_dir: bool
    files: dict[str, bytes]  # relative path -> bytes ("" -> the bytes of a single-file model)
    sha256: str


@dataclass
class LoadedModel:
    """What the predictor serves: the estimator and what is known about its inputs."""

    estimator: Any
    fmt: str  # skops | pickle | mlflow-skops | mlflow-pickle
    feature_names: list[str] | None = None
    n_features: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _read_regular(path: str, budget: int) -> bytes:
    """Bytes of one regular file (not a symlink, fifo or device), at most ``budget`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ModelRefused(f"model file {path} is not a regular file")
        if st.st_size > budget:
            raise ModelRefused(f"model is larger than the {MAX_MODEL_BYTES} byte cap")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > budget:
                raise ModelRefused(f"model is larger than the {MAX_MODEL_BYTES} byte cap")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_verified(path: str | os.PathLike[str], sha256: str) -> VerifiedModel:
    """Read a model file or directory into memory and check it against ``sha256``.

    Raises:
        ModelRefused: the digest differs, the path holds a symlink or special file, or a cap is hit.
        ModelUnloadable: the path does not exist.
    """
    expected = sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ModelRefused("--sha256 must be 64 hexadecimal digits")
    root = os.path.abspath(os.fspath(path))
    try:
        st = os.lstat(root)
    except OSError as exc:
        raise ModelUnloadable(f"model path {root} cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise ModelRefused(f"model path {root} is a symlink")
    try:
        if stat.S_ISREG(st.st_mode):
            data = _read_regular(root, MAX_MODEL_BYTES)
            model = VerifiedModel(root, False, {"": data}, hashlib.sha256(data).hexdigest())
        elif stat.S_ISDIR(st.st_mode):
            model = _read_dir(root)
        else:
            raise ModelRefused(f"model path {root} is neither a file nor a directory")
    except OSError as exc:
        raise ModelRefused(f"model path {root} cannot be read safely ({exc.strerror})") from None
    if model.sha256 != expected:
        raise ModelRefused(f"sha256 mismatch for {root}: the file holds {model.sha256}, "
                           f"the attested digest is {expected}; the model was not loaded")
    return model


def _read_dir(root: str) -> VerifiedModel:
    files: dict[str, bytes] = {}
    budget = MAX_MODEL_BYTES
    for top, dirs, names in os.walk(root, followlinks=False):
        for d in dirs:
            if os.path.islink(os.path.join(top, d)):
                raise ModelRefused(f"model directory {root} contains a symlink "
                                   f"({os.path.relpath(os.path.join(top, d), root)})")
        for n in names:
            p = os.path.join(top, n)
            rel = os.path.relpath(p, root)
            if len(files) >= MAX_FILES:
                raise ModelRefused(f"model directory {root} holds more than {MAX_FILES} files")
            if os.path.islink(p):
                raise ModelRefused(f"model directory {root} contains a symlink ({rel})")
            data = _read_regular(p, budget)
            budget -= len(data)
            files[rel] = data
    manifest = hashlib.sha256()
    for rel in sorted(files):
        manifest.update(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n".encode())
    return VerifiedModel(root, True, files, manifest.hexdigest())


# ---------------------------------------------------------------- formats


def detect_format(model: VerifiedModel) -> tuple[str, str]:
    """``(format, relative path of the serialized estimator)`` of a verified model."""
    if not model.is_dir:
        data = model.files[""]
        if data[:4] == b"PK\x03\x04":
            return "skops", ""
        if data[:1] == b"\x80" or model.root.endswith(PICKLE_SUFFIXES):
            return "pickle", ""
        raise ModelUnloadable(f"{model.root} is neither a skops archive nor a pickle",
                              hint="save the model with skops.io.dump (or mlflow.sklearn.save_model)")
    if "MLmodel" in model.files:
        return "mlflow", "MLmodel"
    top = sorted(r for r in model.files if os.sep not in r)
    for suffix, fmt in ((".skops", "skops"),) + tuple((s, "pickle") for s in PICKLE_SUFFIXES):
        hits = [r for r in top if r.endswith(suffix)]
        if len(hits) > 1:
            raise ModelUnloadable(f"model directory {model.root} holds several {suffix} files "
                                  f"({', '.join(hits[:4])}); pass the file itself")
        if hits:
            return fmt, hits[0]
    raise ModelUnloadable(f"model directory {model.root} holds no MLmodel, .skops or .pkl file "
                          f"(it holds: {', '.join(top[:8]) or 'nothing'})")


def _import_sklearn() -> None:
    """Import scikit-learn's core without pandas: ``sklearn.utils.fixes`` imports pandas when it
    is installed (about 0.3 s of CPU here) only to keep a module attribute nothing uses. pandas is
    hidden for that one import and importable again right after, for code that really needs it."""
    if "sklearn.utils" in sys.modules or "pandas" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment] - makes `import pandas` raise ImportError
    try:
        import sklearn.utils  # noqa: F401
    except ImportError:
        pass
    finally:
        del sys.modules["pandas"]


def _skops_io() -> Any:
    """``skops.io``, imported without its default trust list.

    skops builds that list at import time with ``sklearn.utils.all_estimators()``, which imports
    every scikit-learn module (about 0.7 s of a 2 s start-up here). We do not use the list: every
    type a file needs is vetted by :func:`_vet_types` instead, so the discovery is skipped.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    _import_sklearn()
    try:
        import sklearn.utils as sku
    except ImportError:
        sku = None
    original = getattr(sku, "all_estimators", None)
    if sku is not None and original is not None:
        sku.all_estimators = lambda *a, **k: []
    try:
        import skops.io as sio
    except ImportError:
        raise ModelUnloadable("loading a skops model needs the skops package",
                              hint="pip install 'orchestrator[serve]'") from None
    finally:
        if sku is not None and original is not None:
            sku.all_estimators = original
    return sio


def _resolve(name: str) -> Any:
    """The object a dotted type name refers to (importing its module), or None."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _vet_types(names: list[str]) -> list[str]:
    """Which of ``names`` are refused: anything outside scikit-learn/NumPy/SciPy, and every
    function there except NumPy ufuncs (a class is only rebuilt from state; a function reference
    could be called by the model, e.g. ``FunctionTransformer(func=...)``)."""
    import numpy as np

    refused = []
    for name in names:
        obj = _resolve(name) if name.startswith(TRUSTED_SKOPS_MODULES) else None
        if not (isinstance(obj, type) or isinstance(obj, np.ufunc)):
            refused.append(name)
    return refused


def load_skops(data: bytes, where: str) -> Any:
    """A scikit-learn estimator from skops bytes: classes of scikit-learn/NumPy/SciPy only."""
    sio = _skops_io()
    try:
        untrusted = [str(t) for t in sio.get_untrusted_types(data=data)]
    except Exception as exc:  # noqa: BLE001 - any parse failure of the archive means the same here
        raise ModelUnloadable(f"{where} is not a valid skops archive ({type(exc).__name__})") from None
    foreign = _vet_types(untrusted)
    if foreign:
        raise ModelRefused(f"{where} needs types that are not trusted (only classes of scikit-learn, "
                           f"NumPy and SciPy are): {', '.join(sorted(foreign)[:5])}; refused")
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:  # noqa: BLE001
        raise ModelUnloadable(f"{where} cannot be loaded by skops ({type(exc).__name__}: {str(exc)[:200]})") from None


def load_pickle(data: bytes, where: str) -> Any:
    """Unpickle bytes whose digest the caller attested (this is the only reason it is allowed)."""
    try:
        return pickle.load(io.BytesIO(data))  # noqa: S301 - digest-attested bytes only
    except Exception as exc:  # noqa: BLE001
        raise ModelUnloadable(f"{where} cannot be unpickled ({type(exc).__name__}: {exc})") from None


def _mlmodel(model: VerifiedModel) -> dict[str, Any]:
    import yaml  # a core dependency; safe_load builds plain data only

    raw = model.files["MLmodel"]
    if len(raw) > MAX_MLMODEL_BYTES:
        raise ModelRefused(f"{model.root}/MLmodel is larger than {MAX_MLMODEL_BYTES} bytes")
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelUnloadable(f"{model.root}/MLmodel is not valid YAML ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise ModelUnloadable(f"{model.root}/MLmodel has no flavors")
    return doc


def _signature_names(doc: dict[str, Any]) -> list[str] | None:
    sig = doc.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("inputs"), str):
        return None
    try:
        cols = json.loads(sig["inputs"])
    except ValueError:
        return None
    names = [c.get("name") for c in cols if isinstance(c, dict)] if isinstance(cols, list) else []
    return names if names and all(isinstance(n, str) for n in names) else None


def _load_mlflow(model: VerifiedModel, allow_pickle: bool) -> LoadedModel:
    doc = _mlmodel(model)
    flavor = doc["flavors"].get("sklearn")
    if not isinstance(flavor, dict):
        raise ModelUnloadable(f"{model.root} is an MLflow model without a sklearn flavor "
                              f"(flavors: {', '.join(sorted(map(str, doc['flavors'])))})",
                              hint="the built-in predictor serves scikit-learn models")
    rel = str(flavor.get("pickled_model") or "")
    if rel not in model.files:
        raise ModelUnloadable(f"{model.root}/MLmodel names {rel!r}, which the model does not hold")
    fmt = str(flavor.get("serialization_format") or "cloudpickle")
    where = f"{model.root}/{rel}"
    if fmt == "skops":
        est = load_skops(model.files[rel], where)
    elif fmt in ("pickle", "cloudpickle"):
        if not allow_pickle:
            raise ModelRefused(f"{where} is a {fmt} file; refused by --format")
        est = load_pickle(model.files[rel], where)
    else:
        raise ModelUnloadable(f"{model.root}/MLmodel: unknown serialization_format {fmt!r}")
    return LoadedModel(est, f"mlflow-{'skops' if fmt == 'skops' else 'pickle'}", _signature_names(doc),
                       meta={"mlflow_version": doc.get("mlflow_version"),
                             "sklearn_version": flavor.get("sklearn_version")})


def _mlflow_root(model: VerifiedModel) -> VerifiedModel:
    """An artifact that holds one MLflow model one level down (``model/MLmodel``) is that model."""
    if not model.is_dir or "MLmodel" in model.files:
        return model
    nested = [r for r in model.files if r.count(os.sep) == 1 and r.endswith(os.sep + "MLmodel")]
    if len(nested) != 1:
        return model
    prefix = nested[0][:-len("MLmodel")]
    files = {r[len(prefix):]: b for r, b in model.files.items() if r.startswith(prefix)}
    return VerifiedModel(os.path.join(model.root, prefix.rstrip(os.sep)), True, files, model.sha256)


def load(model: VerifiedModel, fmt: str = "auto") -> LoadedModel:
    """Load a verified model. ``fmt`` restricts what is accepted (``skops`` never unpickles)."""
    if fmt not in FORMATS:
        raise ModelUnloadable(f"unknown --format {fmt!r} (one of {', '.join(FORMATS)})")
    model = _mlflow_root(model)
    found, rel = detect_format(model)
    _import_sklearn()
    if fmt != "auto" and fmt != found and not (fmt == "skops" and found == "mlflow"):
        raise ModelRefused(f"{model.root} is a {found} model, not {fmt}")
    if found == "mlflow":
        loaded = _load_mlflow(model, allow_pickle=fmt != "skops")
    else:
        where = os.path.join(model.root, rel) if rel else model.root
        est = load_skops(model.files[rel], where) if found == "skops" else load_pickle(model.files[rel], where)
        loaded = LoadedModel(est, found)
    if model.is_dir and "model.json" in model.files and loaded.feature_names is None:
        try:
            names = json.loads(model.files["model.json"]).get("feature_names")
        except (ValueError, AttributeError, UnicodeDecodeError):
            names = None
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            loaded.feature_names = names
    _describe(loaded, model.root)
    return loaded


def _describe(loaded: LoadedModel, where: str) -> None:
    est = loaded.estimator
    if not callable(getattr(est, "predict", None)):
        raise ModelUnloadable(f"{where} does not hold a model with a predict method "
                              f"(it holds a {type(est).__name__})")
    fitted = getattr(est, "feature_names_in_", None)
    if loaded.feature_names is None and fitted is not None:
        loaded.feature_names = [str(n) for n in fitted]
    n = getattr(est, "n_features_in_", None)
    loaded.n_features = int(n) if isinstance(n, int) or hasattr(n, "__index__") else None
    if loaded.feature_names is not None:
        if loaded.n_features is not None and len(loaded.feature_names) != loaded.n_features:
            loaded.feature_names = None  # stale metadata: trust the estimator
        else:
            loaded.n_features = len(loaded.feature_names)


def load_path(path: str | os.PathLike[str], sha256: str, fmt: str = "auto") -> LoadedModel:
    """Verify then load (the one entry point the predictor and the tests use)."""
    return load(read_verified(path, sha256), fmt)
