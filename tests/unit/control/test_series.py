"""LTTB downsampling (control/series): sizes, endpoints, peaks kept, and small series untouched."""

from __future__ import annotations

import math
import random

from orchestrator.control.series import lttb


def test_small_series_are_kept_whole() -> None:
    assert lttb([0.0, 1.0, 2.0], [5.0, 6.0, 7.0], 1000) == [0, 1, 2]
    assert lttb([], [], 10) == []


def test_downsamples_to_the_threshold_keeping_the_ends_in_order() -> None:
    n = 100_000
    xs = [float(i) for i in range(n)]
    ys = [math.sin(i / 500) for i in range(n)]
    keep = lttb(xs, ys, 1000)
    assert len(keep) == 1000
    assert keep[0] == 0 and keep[-1] == n - 1
    assert keep == sorted(set(keep))


def test_keeps_an_isolated_spike() -> None:
    rng = random.Random(7)
    n = 20_000
    xs = [float(i) for i in range(n)]
    ys = [rng.random() * 0.01 for _ in range(n)]
    ys[12_345] = 50.0
    keep = lttb(xs, ys, 200)
    assert 12_345 in keep
    # a naive every-k-th sample would almost surely miss it
    assert 12_345 not in range(0, n, n // 200)
