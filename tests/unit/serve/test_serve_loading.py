"""orchestrator.serve.loading: the digest is checked before any byte is deserialized; only safe or
attested formats load; the digest of a directory is the one the store records."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.unit.serve.serve_helpers import evil_pickle, sha

from orchestrator.serve import loading
from orchestrator.serve.loading import ModelRefused, ModelUnloadable, load_path, read_verified
from orchestrator.store.artifacts import ObjectStore, tree_digest


def test_a_skops_file_loads_when_its_digest_matches(tmp_path: Path, logreg: Any, logreg_skops: bytes,
                                                    breast_cancer: Any) -> None:
    f = tmp_path / "m.skops"
    f.write_bytes(logreg_skops)
    got = load_path(f, sha(logreg_skops))
    assert got.fmt == "skops" and got.n_features == 30 and got.feature_names is None
    assert np.array_equal(got.estimator.predict(breast_cancer.data[:5]), logreg.predict(breast_cancer.data[:5]))


@pytest.mark.parametrize("fmt", ["auto", "pickle"])
def test_a_pickle_with_a_wrong_digest_is_never_unpickled(tmp_path: Path, fmt: str) -> None:
    marker = tmp_path / "marker"
    f = tmp_path / "model.pkl"
    f.write_bytes(evil_pickle(marker))
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        load_path(f, "0" * 64, fmt)
    assert not marker.exists()


def test_format_skops_refuses_a_pickle_even_with_its_digest(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = evil_pickle(marker)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(data)
    with pytest.raises(ModelRefused, match="pickle model, not skops"):
        load_path(tmp_path / "m", tree_digest(tmp_path / "m"), "skops")
    assert not marker.exists()


def test_an_attested_pickle_loads(tmp_path: Path, logreg: Any) -> None:
    data = pickle.dumps(logreg)
    f = tmp_path / "model.pkl"
    f.write_bytes(data)
    assert load_path(f, sha(data)).fmt == "pickle"


def test_skops_refuses_functions_and_foreign_types(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    blob = bytes(sio.dumps(FunctionTransformer(func=os.system)))
    f = tmp_path / "m.skops"
    f.write_bytes(blob)
    with pytest.raises(ModelRefused, match="not trusted") as info:
        load_path(f, sha(blob))
    assert "system" in str(info.value)


def test_directory_digest_is_the_store_manifest(tmp_path: Path, logreg_skops: bytes) -> None:
    src = tmp_path / "out" / "model"
    (src / "sub").mkdir(parents=True)
    (src / "model.skops").write_bytes(logreg_skops)
    (src / "model.json").write_text(json.dumps({"feature_names": [f"f{i}" for i in range(30)]}))
    (src / "sub" / "notes.txt").write_text("x")
    objects = ObjectStore(tmp_path / "home")
    url, digest, _ = objects.store_output("default", src, "ex1/model", tmp_path / "out")
    stored = objects.local_path("default", url)
    assert read_verified(stored, digest).sha256 == digest == tree_digest(src)
    got = load_path(stored, digest)
    assert got.fmt == "skops" and got.feature_names == [f"f{i}" for i in range(30)]
    (src / "sub" / "notes.txt").write_text("changed")  # a changed file anywhere changes the digest
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        read_verified(src, digest)


def test_symlinks_and_special_files_are_refused(tmp_path: Path, logreg_skops: bytes) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.skops").write_bytes(logreg_skops)
    (d / "link").symlink_to("/etc/hostname")
    with pytest.raises(ModelRefused, match="symlink"):
        read_verified(d, "0" * 64)
    (tmp_path / "top").symlink_to(d / "model.skops")
    with pytest.raises(ModelRefused, match="symlink"):
        read_verified(tmp_path / "top", sha(logreg_skops))
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ModelRefused, match="not a regular file|neither"):
        read_verified(tmp_path / "fifo", "0" * 64)


def test_bad_digest_text_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelRefused, match="64 hexadecimal"):
        read_verified(tmp_path, "abc")
    with pytest.raises(ModelUnloadable, match="cannot be read"):
        read_verified(tmp_path / "nope", "0" * 64)


def test_size_cap_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "MAX_MODEL_BYTES", 10)
    f = tmp_path / "m.skops"
    f.write_bytes(b"PK\x03\x04" + b"x" * 20)
    with pytest.raises(ModelRefused, match="byte cap"):
        read_verified(f, "0" * 64)


def test_unknown_files_say_what_the_directory_holds(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ModelUnloadable, match="weights.bin"):
        load_path(d, tree_digest(d))


def _mlflow_model(tmp_path: Path, logreg: Any, breast_cancer: Any, fmt: str) -> Path:
    """The directory ``mlflow.sklearn.save_model`` writes (MLflow 3.x layout), without importing
    mlflow (10 s here): MLmodel with a python_function and a sklearn flavor plus a signature."""
    import skops.io as sio

    path = tmp_path / f"mlflow-{fmt}"
    path.mkdir()
    data_file = "model.skops" if fmt == "skops" else "model.pkl"
    (path / data_file).write_bytes(bytes(sio.dumps(logreg)) if fmt == "skops" else pickle.dumps(logreg))
    columns = json.dumps([{"type": "double", "name": str(n), "required": True} for n in breast_cancer.feature_names])
    (path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n"
        f"    loader_module: mlflow.sklearn\n    model_path: {data_file}\n    predict_fn: predict\n"
        f"    python_version: 3.11.7\n  sklearn:\n    code: null\n    pickled_model: {data_file}\n"
        f"    serialization_format: {fmt}\n    sklearn_version: 1.9.1\n"
        "mlflow_version: 3.18.0\nmodel_uuid: 2b525c16891d4313b7e6b5d7129491c0\n"
        f"signature:\n  inputs: '{columns}'\n"
        "  outputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"int64\", \"shape\": [-1]}}]'\n"
        "  params: null\n")
    for name in ("conda.yaml", "python_env.yaml", "requirements.txt"):
        (path / name).write_text("# env\n")
    return path


@pytest.mark.parametrize("fmt", ["skops", "cloudpickle"])
def test_mlflow_model_directories_load_with_signature_names(tmp_path: Path, logreg: Any, breast_cancer: Any,
                                                            fmt: str) -> None:
    path = _mlflow_model(tmp_path, logreg, breast_cancer, fmt)
    got = load_path(path, tree_digest(path))
    assert got.fmt == ("mlflow-skops" if fmt == "skops" else "mlflow-pickle")
    assert got.feature_names == [str(n) for n in breast_cancer.feature_names]
    if fmt == "cloudpickle":
        with pytest.raises(ModelRefused, match="refused by --format"):
            load_path(path, tree_digest(path), "skops")
    else:  # an artifact holding the model one folder down (mlflow's artifact_path)
        outer = tmp_path / "outer"
        outer.mkdir()
        path.rename(outer / "model")
        assert load_path(outer, tree_digest(outer)).fmt == "mlflow-skops"


def test_an_mlflow_model_whose_pickle_was_swapped_is_refused(tmp_path: Path, logreg: Any,
                                                             breast_cancer: Any) -> None:
    path = _mlflow_model(tmp_path, logreg, breast_cancer, "cloudpickle")
    digest = tree_digest(path)
    marker = tmp_path / "marker"
    (path / "model.pkl").write_bytes(evil_pickle(marker))
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        load_path(path, digest)
    assert not marker.exists()
