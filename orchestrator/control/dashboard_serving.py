"""Read side of the web dashboard's sweep and deployment pages.

Owns: the sweeps list (status, trials done/running/stopped, best so far), one sweep (its trials
with parameters, objective, status, duration, the best marked, trials an early-termination policy
stopped marked with the policy and the numbers it gave; the objective-per-trial and best-so-far
series and the parallel-coordinates rows the page charts), the deployments list, one deployment,
and the byte chunk of a deployment's predictor log a follower asks for from an offset (at most
:data:`orchestrator.control.dashboard.LOG_CHUNK`). Reads
only through scoped reads (another group's id is :class:`NotFound` as in the REST API). Must not
import api or cli (they call this).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from orchestrator.control import deploy
from orchestrator.control.dashboard import duration, read_chunk
from orchestrator.control.sweep_trials import INTERRUPTED
from orchestrator.spec.sweep_kind import from_document
from orchestrator.store.sweep_records import OPEN, SweepRecords, SweepRow, TrialRow

if TYPE_CHECKING:
    from orchestrator.control.service import Service

MAX_SWEEPS = 500
MAX_DEPLOYMENTS = 500
TRIALS_PAGE = 200  # trials per page of the table (the charts show every trial)
POLICY = re.compile(r"^early termination \((\w+)")
DEPLOYMENT_OPEN = ("UNKNOWN", "PENDING", "RUNNING", "STOPPING")


def has_sweeps(svc: Service) -> bool:
    return SweepRecords(svc.store).count(svc.rg) > 0


def has_deployments(svc: Service) -> bool:
    recs = deploy.records(svc)
    return recs.count(recs.query(svc.rg)) > 0


def stopped_by(t: TrialRow) -> str | None:
    """The early-termination policy that stopped this trial (its message holds the numbers), or None."""
    m = POLICY.match(t.status_message or "") if t.status == "STOPPED" else None
    return m.group(1) if m else None


def best_trial(trials: list[TrialRow], goal: str) -> TrialRow | None:
    """The best trial so far, by the engine's rule: COMPLETED ones first (policy-STOPPED ones only
    when none completed), by objective per goal, earlier wins ties."""
    scored = [t for t in trials if t.objective is not None and t.status in ("COMPLETED", "STOPPED")]
    pool = [t for t in scored if t.status == "COMPLETED"] or scored
    if not pool:
        return None
    sign = -1.0 if goal != "minimize" else 1.0
    return sorted(pool, key=lambda t: (sign * float(t.objective or 0.0), t.trial))[0]


def _counts(trials: list[TrialRow]) -> dict[str, int]:
    """Trials by outcome; an attempt a crash or stop interrupted (run again by ``resume``, its
    newest execution counted instead) is ``interrupted``, never a failed or stopped trial."""
    out = {"done": 0, "running": 0, "stopped": 0, "failed": 0, "interrupted": 0, "total": len(trials)}
    for t in trials:
        if t.message == INTERRUPTED and t.status in ("DEAD", "STOPPED"):
            out["interrupted"] += 1
        elif t.status == "COMPLETED":
            out["done"] += 1
        elif t.status == "STOPPED":
            out["stopped"] += 1
        elif t.status == "DEAD":
            out["failed"] += 1
        elif t.status in ("UNKNOWN", "PENDING", "RUNNING", "STOPPING"):
            out["running"] += 1
    return out


def _summary(row: SweepRow, trials: list[TrialRow]) -> dict[str, Any]:
    spec = from_document(row.document, row.name)
    best = best_trial(trials, spec.objective.goal)
    return {"id": row.id, "name": row.name, "status": row.status, "message": row.status_message,
            "targetStatus": row.target_status, "created": row.created_at,
            "duration": duration(row.start_time, row.completion_time), "executable": spec.trial.executable_id,
            "metric": spec.objective.primary_metric, "goal": spec.objective.goal,
            "algorithm": spec.sampling.algorithm, "policy": spec.early_termination.policy
            if spec.early_termination else "", "limit": spec.limits.max_total_trials,
            "concurrency": spec.limits.concurrency, "counts": _counts(trials),
            "best": None if best is None else {"executionId": best.execution_id, "trial": best.trial,
                                               "value": best.objective},
            "open": row.status in OPEN, "modelVersion": row.model_version}


def list_sweeps(svc: Service) -> list[dict[str, Any]]:
    """The group's sweeps, newest first, each with its trial counts and best so far."""
    records = SweepRecords(svc.store)
    return [_summary(r, records.trials(svc.rg, r.id)) for r in records.list(svc.rg, limit=MAX_SWEEPS)]


def _trial(t: TrialRow, best: TrialRow | None) -> dict[str, Any]:
    took = round(t.finished_at - t.started_at, 2) if t.finished_at and t.started_at else None
    return {"trial": t.trial, "executionId": t.execution_id, "status": t.status, "parameters": t.parameters,
            "objective": t.objective, "reports": len(t.reports), "duration": took,
            "message": t.status_message, "policy": stopped_by(t), "interrupted": t.message == INTERRUPTED,
            "best": best is not None and t.execution_id == best.execution_id}


def _sweep_rows(svc: Service, sweep_id: str) -> tuple[dict[str, Any], list[TrialRow], TrialRow | None, list[str]]:
    """A sweep's summary, its trials, its best trial (per goal) and its parameter names."""
    records = SweepRecords(svc.store)
    row = records.get(svc.rg, sweep_id)  # NotFound first
    trials = records.trials(svc.rg, sweep_id)
    summary = _summary(row, trials)
    return summary, trials, best_trial(trials, summary["goal"]), sorted({k for t in trials for k in t.parameters})


def sweep(svc: Service, sweep_id: str, *, page: int = 1, per_page: int = TRIALS_PAGE) -> dict[str, Any]:
    """One sweep: its summary, one page of its trials (by trial index; a re-run of an index after
    its newest execution) and the parameter names."""
    summary, trials, best, names = _sweep_rows(svc, sweep_id)
    pages = max(1, -(-len(trials) // per_page))
    page = min(max(1, page), pages)
    shown = trials[(page - 1) * per_page:page * per_page]
    return {**summary, "trials": [_trial(t, best) for t in shown], "parameters": names, "page": page,
            "pages": pages, "perPage": per_page}


def sweep_chart(svc: Service, sweep_id: str) -> dict[str, Any]:
    """What the sweep page charts, column-wise (compact with 10,000 trials): per trial execution in
    trial order its index, objective, status and stopping policy, the best so far (over COMPLETED
    trials, per goal); and for parallel coordinates one row per scored trial (parameters, then the
    objective) with its status; ``best`` is the best trial's index among them."""
    summary, trials, best, names = _sweep_rows(svc, sweep_id)
    pick = max if summary["goal"] != "minimize" else min
    best_so_far: list[float | None] = []
    current: float | None = None
    for t in trials:
        if t.objective is not None and t.status == "COMPLETED":
            current = t.objective if current is None else pick(current, t.objective)
        best_so_far.append(current)
    scored = [t for t in trials if t.objective is not None]
    return {"id": summary["id"], "status": summary["status"], "open": summary["open"], "metric": summary["metric"],
            "goal": summary["goal"], "parameters": names, "counts": summary["counts"],
            "trial": [t.trial for t in trials], "value": [t.objective for t in trials],
            "trialStatus": [t.status for t in trials], "policy": [stopped_by(t) for t in trials],
            "bestSoFar": best_so_far,
            "best": None if best is None else {"trial": best.trial, "executionId": best.execution_id,
                                               "value": best.objective},
            "rows": [[t.parameters.get(p) for p in names] + [t.objective] for t in scored],
            "rowStatus": [t.status for t in scored],
            "rowBest": next((i for i, t in enumerate(scored) if best and t.execution_id == best.execution_id), None)}


def list_deployments(svc: Service) -> list[dict[str, Any]]:
    recs = deploy.records(svc)
    return recs.listing(recs.query(svc.rg), limit=MAX_DEPLOYMENTS, offset=0)


def deployment(svc: Service, deployment_id: str) -> dict[str, Any]:
    row = dict(deploy.get(svc, deployment_id))
    row["open"] = row["status"] in DEPLOYMENT_OPEN
    row["duration"] = duration(row.get("start_time"), row.get("completion_time"))
    return row


def deployment_log_chunk(svc: Service, deployment_id: str, offset: int) -> dict[str, Any]:
    """The predictor log's bytes from ``offset`` (at most :data:`LOG_CHUNK`), the next offset and
    whether more may come (the deployment is not in a final state)."""
    row = deploy.get(svc, deployment_id)
    text, offset, size = read_chunk(row["log_path"], offset)
    ended = row["status"] not in DEPLOYMENT_OPEN
    return {"text": text, "offset": offset, "done": ended and offset >= size, "status": row["status"],
            "message": row["status_message"] or ""}
