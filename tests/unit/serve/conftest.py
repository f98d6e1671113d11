"""Shared fixtures of the predictor tests: one small fitted model and a pickle that bites."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("sklearn", reason="the predictor serves scikit-learn models")
pytest.importorskip("skops", reason="skops is the predictor's safe format")


@pytest.fixture(scope="session")
def breast_cancer() -> Any:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer()


@pytest.fixture(scope="session")
def logreg(breast_cancer: Any) -> Any:
    """A 30-feature logistic regression fitted on a NumPy matrix (no feature names inside)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(solver="liblinear").fit(breast_cancer.data, breast_cancer.target)


@pytest.fixture(scope="session")
def logreg_skops(logreg: Any) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(logreg))
