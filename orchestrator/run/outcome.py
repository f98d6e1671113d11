"""What happens when a step process ends: outputs, the attempt record, retry or final state.

Owns: the completion of one leaf attempt (metrics ingestion, ``outputs.result``, output
parameters and artifacts stored outside the write lock then registered with the SUCCEEDED state in
one transaction, the step-cache entry), the classification of a failure (``failure`` vs ``error``
for ``retryPolicy``: a signal the runner did not send is a ``failure``, as a container exiting
128+n is to Argo, and is named ``killed by SIGSEGV (signal 11)``), the retry decision with its
backoff, and the small helpers the runner needs to know which failures a ``depends`` handles. A
full disk is not a step failure: it ends the execution (:mod:`orchestrator.run.diskfull`).
Functions over the runner's state; called only by :mod:`orchestrator.run.runner`.
"""

from __future__ import annotations

import functools
import heapq
import re
import signal
import time
from typing import Any

from orchestrator.errors import OrchestratorError, StoreError
from orchestrator.model import Attempt, StepState
from orchestrator.plan.graph import Graph, Node
from orchestrator.run import caching, diskfull, ingest, limits, locks, mlflow_endpoint, retrybound, stepfiles
from orchestrator.run.prepare import Prepared, collect_outputs, register
from orchestrator.run.steps import StepProcess, StepResult, log_tail
from orchestrator.spec import expr

RESULT_CAP = 256 * 1024
HANDLES_FAILURE = ("Failed", "Completed", "Errored", "AnySucceeded", "AllFailed")
_EXPR_RESULT = re.compile(r"""(?:tasks|steps)(?:\.([A-Za-z0-9_-]+)|\[['"]([^'"]+)['"]\])\.outputs\.result""")
_RESULT_REF = re.compile(r"\{\{\s*(?:tasks|steps)\.([^.{}]+)\.outputs\.result\s*\}\}")


@functools.lru_cache(maxsize=1024)
def failure_refs(depends: str) -> frozenset[tuple[str]]:
    """Tasks whose failure a ``depends`` expression explicitly accepts (parsed, not substring)."""
    return frozenset((task,) for task, result in expr.depends_refs(expr.parse(depends))
                     if result in HANDLES_FAILURE)


def result_refs(graph: Graph) -> set[str]:
    """Names of steps/tasks whose ``outputs.result`` (their output) something references."""
    names: set[str] = set()
    calls = [c for t in graph.spec.templates.values() for c in [*(t.dag or ()), *(c for g in t.steps or () for c in g)]]
    for c in calls:  # every template's calls: loops and recursive levels add nodes at run time
        texts = [c.when, c.with_param, *(a.value for a in c.parameters), *(v for _k, v in c.with_sequence or ())]
        for text in texts:
            if "result" in text:
                names.update(_RESULT_REF.findall(text))
    for t in graph.spec.templates.values():  # outputs of steps/dag templates (valueFrom.parameter/expression)
        for o in t.output_parameters:
            for text in (o.value or "", o.value_from_path):
                if "result" in text:
                    names.update(_RESULT_REF.findall(text))
    for t in graph.spec.templates.values():
        texts = [o.expression for o in t.output_parameters] + [o.value_from_parameter for o in t.output_parameters] \
            + [a.from_expression for a in t.output_artifacts]
        names.update(a or b for text in texts for a, b in _EXPR_RESULT.findall(text))
        names.update(n for text in texts for n in _RESULT_REF.findall(text))
    return names


def result_of(log_path: str) -> str:
    """Argo's ``outputs.result``: what the step printed (stdout and stderr, merged), trimmed; a log
    the step replaced (a link, a FIFO) raises :class:`~orchestrator.run.stepfiles.NotRegular`."""
    try:
        text = stepfiles.read_text(log_path, RESULT_CAP)
    except OSError:
        return ""
    lines = text.splitlines()
    return "\n".join(line for line in lines if not line.startswith("[orchestrator]")).strip()


class Running:
    __slots__ = ("proc", "prep", "tail", "deadline", "attempt", "why")

    def __init__(self, proc: StepProcess, prep: Prepared, tail: ingest.Tail, deadline: float | None,
                 attempt: int, why: str = "") -> None:
        self.proc, self.prep, self.tail, self.deadline, self.attempt = proc, prep, tail, deadline, attempt
        self.why = why  # what the deadline is, for the kill message


def complete(r: Any, nid: str, result: StepResult) -> None:
    run = r.running.pop(nid)
    node = r.graph.nodes[nid]
    locks.release(r, node)
    for s in r.scopes(node):
        r.scope_running[s] -= 1
    d = r.ctx.data[nid]
    d.exit_code = result.exit_code
    r.track_end(nid, run.attempt, run.tail)
    problem = ""
    if result.no_space:  # the step's log could not be written: the disk is full, for everything
        raise diskfull.DiskFull("no space left on device while " + result.no_space % repr(nid))
    if result.exit_code == 0 and not result.killed:
        note = f"{run.tail.rejected} invalid tracking lines ignored" if run.tail.rejected else ""
        try:
            if node.call is not None and node.call.name in r.want_result:
                d.out_params["result"] = result_of(run.prep.log_path)
            pending: list[tuple[str, str, str, int]] = []
            if node.template.output_artifacts or node.template.output_parameters:
                pending = collect_outputs(r, node, run.prep)  # blobs, outside any transaction
            if caching.cacheable(node) and r.cache:
                r.cache_put(node, run.prep)
            attempt_row(r, nid, run, result, "succeeded")
            if pending:
                # The artifact rows and the step's final state commit together, so a failure
                # never leaves a half-registered output.
                r.drain()
                with r.store.transaction():
                    for global_name, url, digest, size in pending:
                        register(r, global_name, url, digest, size)
                    r.settle(nid, StepState.SUCCEEDED, note)
                    r.flush()
            else:
                r.settle(nid, StepState.SUCCEEDED, note)
            mlflow_endpoint.step_ended(r, run.prep.spec.token, "FINISHED")
            return
        except (OrchestratorError, OSError) as exc:
            if isinstance(exc, StoreError):
                raise
            diskfull.check(exc, f"storing the outputs of step {nid!r}")
            d.out_artifacts.clear()
            problem, kind = f"step {nid!r} succeeded but its outputs failed: {exc}", "error"
    elif result.killed:
        problem, kind = f"step {nid!r} was killed: {result.killed}", "failure"
    elif result.error:
        problem, kind = f"step {nid!r} failed: {result.error}", "error"
    else:
        # A signal the runner did not send (SIGSEGV, SIGABRT, the OOM killer's SIGKILL) is a failed
        # main container to Argo (exit 128+n): ``OnFailure`` retries it, like any non-zero exit.
        problem, kind = f"step {nid!r} {exit_text(result.exit_code)}", "failure"
    last = log_tail(run.prep.log_path)
    tail = f"; last log lines:\n{last}" if last else ""
    attempt_row(r, nid, run, result, problem + tail)
    # The step's MLflow run (if it left it RUNNING): KILLED when stopped, FAILED when it crashed.
    mlflow_endpoint.step_ended(r, run.prep.spec.token, "KILLED" if result.killed and r.stopped else "FAILED")
    if result.killed and r.stopped:
        return r.settle(nid, StepState.STOPPED, "stopped by request")
    d.last_retry = {"exitCode": "" if result.exit_code is None else str(result.exit_code),
                    "status": "Failed" if kind == "failure" else "Error",
                    "duration": f"{max(0.0, (result.finished or 0) - (result.started or 0)):.0f}",
                    "message": problem[:1000]}
    delay, note = retry_delay(r, node, kind, result, run)
    if delay is None:
        tries = run.attempt - r.attempt_base.get(nid, 0)  # within its call's current attempt
        return r.fail(nid, problem + (f" (after {tries} attempts)" if tries > 1 else "")
                      + (f"; {note}" if note else "") + tail, kind)
    if note:
        _log_note(run.prep.log_path, note)
    r.record(nid, StepState.RUNNING, f"attempt {run.attempt} failed; retrying in {delay:g} s"
             + (f" ({note})" if note else ""))
    heapq.heappush(r.delayed, (time.monotonic() + delay, node.order, nid))


def attempt_row(r: Any, nid: str, run: Running, result: StepResult, message: str) -> None:
    r.changed()
    r.dirty_attempts.append(Attempt(r.ex.id, nid, run.attempt, result.exit_code, result.started,
                                    result.finished, run.prep.log_path, message))


def exit_text(code: int) -> str:
    """``failed with exit code 3``, or for a negative code ``was killed by SIGSEGV (signal 11)``."""
    if code >= 0:
        return f"failed with exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"was killed by signal {-code}"
    return f"was killed by {name} (signal {-code})"


def retry_delay(r: Any, node: Node, kind: str, result: StepResult, run: Running) -> tuple[float | None, str]:
    """Seconds until the next attempt (None when the failure is final) and a note for the log. A
    step the runner killed itself (a deadline, a stop) is never retried (Argo #3244: a step that
    timed out is not retried either). No ``limit`` means no limit, as in Argo: retried until it
    succeeds, bounded by ``backoff.maxDuration``, the workflow's ``activeDeadlineSeconds`` and
    :mod:`orchestrator.run.retrybound` (a floor delay, a safety cap on attempts)."""
    strategy, problem = limits.retry_strategy(r, node)
    if strategy is None or r.halted(node, admit=False) or result.killed:
        return None, problem
    attempt = r.attempts.get(node.id, 1) - r.attempt_base.get(node.id, 0)  # within its call's attempt
    delay, bound = retrybound.next_delay(strategy, attempt, kind, time.monotonic() - r.first_start[node.id])
    if delay is not None and strategy.expression:
        ok, why = limits.retry_expression(r, node, strategy.expression, kind, result, run)
        if not ok:
            return None, why
    return delay, bound or problem


def _log_note(path: str, note: str) -> None:
    stepfiles.note(path, note)
