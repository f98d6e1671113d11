"""Metric series for charts: every series of an execution, downsampled on the server.

Owns: splitting an execution's points into series (one per metric name and label set, in step
order, or logging order when a point has no step), Largest-Triangle-Three-Buckets downsampling
(Steinarsson 2013) to at most ``max_points`` per series, so a chart of a 100,000-point series gets
about a thousand points that keep its shape (first and last point, peaks), and the raw series as
CSV for download. Reads the store's scoped reads only (:meth:`metric_points` per metric for charts).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.model import MetricPoint
from orchestrator.store.codec import pairs

if TYPE_CHECKING:
    from orchestrator.control.service import Service

DEFAULT_POINTS = 1000
MAX_POINTS = 5000
MAX_SERIES = 200


def lttb(xs: Sequence[float], ys: Sequence[float], threshold: int) -> list[int]:
    """Indexes of the points LTTB keeps out of ``len(xs)`` (all of them when there are few)."""
    n = len(xs)
    if threshold >= n or threshold < 3:
        return list(range(n))
    keep = [0]
    every = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        lo = int(i * every) + 1
        hi = int((i + 1) * every) + 1
        nxt_lo, nxt_hi = hi, min(int((i + 2) * every) + 1, n)
        if nxt_lo >= nxt_hi:
            nxt_lo, nxt_hi = n - 1, n
        count = nxt_hi - nxt_lo
        avg_x = sum(xs[nxt_lo:nxt_hi]) / count
        avg_y = sum(ys[nxt_lo:nxt_hi]) / count
        ax, ay = xs[a], ys[a]
        best, best_area = lo, -1.0
        for j in range(lo, min(hi, n - 1)):
            area = abs((ax - avg_x) * (ys[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        keep.append(best)
        a = best
    keep.append(n - 1)
    return keep


def _key(p: MetricPoint) -> str:
    return p.name + ("" if not p.labels else " {" + ",".join(f"{k}={v}" for k, v in p.labels) + "}")


def series(svc: Service, execution_id: str, *, name: str | None = None,
           max_points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """``{"series": [{name, total, x, y}], "downsampled": bool}``: each series (a metric and one
    label set) in step order (x = step, or the point's position when a point has no step), at most
    ``max_points`` points each. Metric names come from the summaries kept at ingest."""
    max_points = max(3, min(int(max_points), MAX_POINTS))
    names = [m["name"] for m in svc.store.metric_summaries(svc.rg, execution_id)]
    out: list[dict[str, Any]] = []
    reduced = False
    for metric in names:
        if name is not None and metric != name:
            continue
        groups: dict[str | None, list[tuple[int | None, float]]] = {}
        for labels, step, value in svc.store.metric_points(svc.rg, execution_id, metric):
            groups.setdefault(labels or None, []).append((step, value))
        for labels, pts in groups.items():
            labs = pairs(labels) if labels else ()
            key = metric + ("" if not labs else " {" + ",".join(f"{k}={v}" for k, v in labs) + "}")
            if any(step is None for step, _ in pts):
                xs = [float(i) for i in range(len(pts))]
            else:
                xs = [float(step) for step, _ in pts]  # type: ignore[arg-type]
            ys = [float(v) for _, v in pts]
            keep = lttb(xs, ys, max_points)
            reduced = reduced or len(keep) < len(xs)
            out.append({"name": key, "total": len(xs), "x": [xs[i] for i in keep], "y": [ys[i] for i in keep]})
            if len(out) >= MAX_SERIES:
                return {"series": out, "downsampled": reduced}
    return {"series": out, "downsampled": reduced}


def raw_csv(svc: Service, execution_id: str, name: str | None = None) -> str:
    """Every point (of one metric, or all) as CSV: name, labels, step, value, timestamp."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "labels", "step", "value", "timestamp"])
    for p in svc.store.get_metrics(svc.rg, execution_id):
        if name is None or p.name == name or _key(p) == name:
            w.writerow([p.name, ";".join(f"{k}={v}" for k, v in p.labels), "" if p.step is None else p.step,
                        repr(float(p.value)), p.timestamp])
    return buf.getvalue()
