"""``sweeps show ID --plot FILE.png``: one picture of a sweep.

Owns: the figure: left, the objective of each trial in trial order (completed, stopped and failed
marked apart, trials that ended without the metric as marks on the axis, a note when none
reported it; whole-number trial ticks) with the best-so-far curve (by the sweep's rule: completed
trials first); right, parallel coordinates of the parameters and the
objective (each trial one line, coloured by its objective; choice values on evenly spaced ticks).
matplotlib is the extra ``orchestrator[sweeps]``; it is imported here only, with the Agg backend
(no display needed).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import UsageError


def _axis(values: list[Any]) -> tuple[list[float], list[float], list[str]]:
    """Values of one parameter mapped to [0, 1], with tick positions and labels."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) == len(values) and nums:
        lo, hi = min(nums), max(nums)
        span = (hi - lo) or 1.0
        return [(float(v) - lo) / span for v in nums], [0.0, 1.0], [f"{lo:.3g}", f"{hi:.3g}"]
    cats = sorted({str(v) for v in values})
    pos = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return [pos[str(v)] for v in values], list(pos.values()), cats


def best_so_far(trials: list[dict[str, Any]], goal: str) -> tuple[list[int], list[float]]:
    """The best objective after each trial, by the sweep's own rule (its ``best``): over COMPLETED
    trials, or over policy-STOPPED ones only while none completed; (trial indexes, values)."""
    scored = [t for t in trials if t["objective"] is not None and t["status"] in ("COMPLETED", "STOPPED")]
    pool = sorted((t["trial"], t["objective"]) for t in scored if t["status"] == "COMPLETED") or \
        sorted((t["trial"], t["objective"]) for t in scored)
    best: list[float] = []
    for _, v in pool:
        best.append(v if not best else (max(best[-1], v) if goal == "maximize" else min(best[-1], v)))
    return [x for x, _ in pool], best


def plot(data: dict[str, Any], path: str) -> None:
    """Write the picture of sweep ``data`` (:func:`orchestrator.control.sweep_admin.sweep_json`) to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise UsageError("--plot needs matplotlib", hint="pip install 'orchestrator[sweeps]'") from None
    goal = data["objective"]["goal"]
    metric = data["objective"]["primaryMetric"]
    trials = data["trials"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    marks = {"COMPLETED": ("o", "tab:blue"), "STOPPED": ("x", "tab:orange"), "DEAD": ("v", "tab:red")}
    for status, (marker, colour) in marks.items():
        pts = [(t["trial"], t["objective"]) for t in trials if t["status"] == status and t["objective"] is not None]
        if pts:
            left.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=colour,
                         label=status.lower())
    unscored = [t["trial"] for t in trials if t["objective"] is None and t["status"] in ("DEAD", "STOPPED")
                and not t.get("interrupted")]  # an interrupted attempt was run again: not an outcome
    if unscored:  # trials that ended without reporting the metric: a mark on the axis, not nothing
        left.scatter(unscored, [0.0] * len(unscored), marker="|", s=200, color="tab:red", clip_on=False,
                     transform=left.get_xaxis_transform(), label=f"ended without {metric}")
    if trials:  # marks on the axis do not widen the data limits: every trial index is in view
        left.set_xlim(min(t["trial"] for t in trials) - 0.5, max(t["trial"] for t in trials) + 0.5)
    if not any(t["objective"] is not None for t in trials):
        left.set_yticks([])
        counts: dict[str, int] = {}
        for t in trials:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        why = f"no trial reported {metric}" + (" yet" if data.get("status") in ("PENDING", "RUNNING") else "")
        detail = ", ".join(f"{n} {st}" for st, n in sorted(counts.items())) or "no trials"
        for ax in (left, right):
            ax.text(0.5, 0.5, f"{why}\n({detail})", ha="center", va="center", transform=ax.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    xs, best = best_so_far(trials, goal)
    if xs:
        left.step(xs, best, where="post", color="tab:green", label="best so far")
    left.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # trials are whole numbers
    left.set_xlabel("trial")
    left.set_ylabel(f"{metric} ({goal})")
    left.set_title(f"sweep {data['name']}: objective per trial")
    if left.get_legend_handles_labels()[0]:
        left.legend(loc="best")
    done = [t for t in trials if t["objective"] is not None]
    names = sorted({k for t in done for k in t["parameters"]})
    if done:
        cols = [_axis([t["parameters"].get(n, "") for t in done]) for n in names]
        cols.append(_axis([t["objective"] for t in done]))
        objs = [t["objective"] for t in done]
        lo, hi = min(objs), max(objs)
        cmap = plt.get_cmap("viridis" if goal == "maximize" else "viridis_r")
        for i, t in enumerate(done):
            shade = (t["objective"] - lo) / ((hi - lo) or 1.0)
            right.plot(range(len(cols)), [c[0][i] for c in cols], color=cmap(shade), alpha=0.8,
                       linestyle="--" if t["status"] == "STOPPED" else "-")
        for x, (_, ticks, labels) in enumerate(cols):
            right.axvline(x, color="grey", linewidth=0.8)
            for y, label in zip(ticks, labels):
                right.annotate(label, (x, y), fontsize=7, ha="left", va="center", xytext=(3, 0),
                               textcoords="offset points")
        right.set_xticks(range(len(cols)), [*names, metric], rotation=20)
        right.set_yticks([])
    right.set_title("parallel coordinates (dashed: stopped early)")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
