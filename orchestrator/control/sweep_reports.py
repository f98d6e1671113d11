"""Live primary-metric reports of running sweep trials.

Owns: reading the values of one metric a trial has logged so far, in order, while it runs: the
tracking files its steps append to (``orchestrator.tracking``; ``<workdir>/steps/*/tracking-*.jsonl``,
read incrementally with a byte offset per file, complete lines only) and, for metrics that reach
the store another way (the MLflow endpoint, SAP's tracking API), the store's metric history. The
runner ingests tracking files into the store only every few seconds; an early-termination policy
must see each report when it happens. Untrusted lines are parsed leniently: a bad line is skipped.
"""

from __future__ import annotations

import glob
import json
import math
import os

from orchestrator.run import stepfiles
from orchestrator.store.sqlite import SqliteStore

MAX_READ = 4 * 1024 * 1024


class ReportTail:
    """The primary metric's values of one trial execution, as they are logged."""

    def __init__(self, workdir: str, metric: str) -> None:
        self.pattern = os.path.join(glob.escape(workdir), "steps", "*", "tracking-*.jsonl")
        self.metric = metric
        self.offsets: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}
        self.values: list[tuple[str, int, float]] = []  # (timestamp, order, value)

    def poll(self) -> bool:
        """Read what was appended since the last poll; True when new values arrived."""
        new = False
        for path in sorted(glob.glob(self.pattern)):
            off = self.offsets.get(path, 0)
            try:  # never through a link or FIFO the trial's step put at its tracking file's name
                chunk = stepfiles.read_bytes(path, MAX_READ, off)[0]
            except (OSError, stepfiles.NotRegular):
                continue
            if not chunk:
                continue
            self.offsets[path] = off + len(chunk)
            data = self.partial.pop(path, b"") + chunk
            lines = data.split(b"\n")
            if lines[-1]:
                self.partial[path] = lines[-1][:MAX_READ]
            for line in lines[:-1]:
                try:
                    rec = json.loads(line)
                    if rec.get("t") != "metric" or rec.get("name") != self.metric:
                        continue
                    value = float(rec["value"])
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue
                if math.isfinite(value):
                    self.values.append((str(rec.get("timestamp", "")), len(self.values), value))
                    new = True
        if new:
            self.values.sort()
        return new

    def series(self) -> list[float]:
        return [v for _, _, v in self.values]


def stored_series(store: SqliteStore, rg: str, execution_id: str, metric: str) -> list[float]:
    """The metric's values in the store, in the order they were recorded."""
    return [m.value for m in store.get_metrics(rg, execution_id) if m.name == metric]
