"""The Ray executor: each leaf step is a Ray task on a cluster, the runner and the store stay here.

Owns: the one place that imports ``ray`` (lazily, only when ``--executor ray…`` is chosen),
parsing the executor's address (``ray`` = ``$RAY_ADDRESS`` or the cluster ``ray start`` left on
this machine — never a new one; ``ray://HOST:PORT`` = Ray Client; ``ray:HOST:PORT`` = the GCS
address), connecting (``ray.init`` overwrites the SIGTERM handler: the runner's is put back),
the Ray options of a step (``num_cpus``/``num_gpus``/``memory`` and custom resources from the
template's ``resources`` and ``ai.sap.com/resourcePlan``, see :func:`task_options`), refusing
before the run what no node of the cluster can schedule, shipping a step's inputs as tar bytes
through Ray's object store (content-addressed: the same bytes are put once per execution), and
cancelling a task that waits for a node no alive node can be any more. The runner's handle of a
remote step (log pipe, relay, cancel) is :class:`~orchestrator.run.ray_step.RayStep`; a node or
worker that dies under a step is a step *error* (retried by ``OnError``/``Always``), never a hang.
The worker side is :mod:`orchestrator.run.ray_task` (stdlib only, shipped to the nodes by value).

The Ray options of a step and the refusal of what one task cannot run are
:mod:`orchestrator.run.ray_options`; the bounded first contact with the cluster and the driver's
token-authentication mode, :mod:`orchestrator.run.ray_connect`. :meth:`RayExecutor.preflight`
does what ``open`` refuses before ``run`` writes the execution.

Object stores that nodes reach themselves (S3, :mod:`orchestrator.store.objects_s3`): an input
artifact from an S3 object store secret is downloaded by the node (never by the driver), and a
``globalName`` output goes from the node to the group's ``default`` secret when that is a bucket
(:mod:`orchestrator.run.ray_s3`), content-addressed as the runner would
store it; the runner records what the node uploaded. Everything else travels through Ray as tar
bytes. The secret's credentials are in that step's task payload only (never its argv, env or log).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.plan.graph import Node
from orchestrator.run import attest, container_spec
from orchestrator.run.prepare import Prepared
from orchestrator.run.ray_options import (  # noqa: F401 - re-exported
    CompanionRefused,
    custom_resources,
    refuse_companions,
    task_options,
)
from orchestrator.run.ray_s3 import NODE_MODULES, remote_store_target, remote_transfers
from orchestrator.run.ray_relay import Relays
from orchestrator.run.ray_step import RayStep, pack_input, pack_rest
from orchestrator.run.steps import StepProcess, StepSpec

_ADDRESS = re.compile(r"ray(?:(://)|:)?(.*)\Z")
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
SIGNAL_TIMEOUT = 15.0  # s a stop's signal task may take to reach the step's node (a worker may start)
TAIL_WAIT = 10.0  # s the runner's end waits for its ended steps' cleanup on their nodes
UNPLACED_MAX = 512  # short steps' ray-N.json held before the runner's thread writes them itself
PENDING_CHECK = float(os.environ.get("ORCHESTRATOR_RAY_PENDING_CHECK", "10"))  # s before a waiting task is checked


def parse_address(choice: str) -> str | None:
    """``ray`` -> None ($RAY_ADDRESS or the local ``ray start`` cluster); ``ray://H:P`` -> itself;
    ``ray:H:P`` -> ``H:P``. Anything else is a usage error."""
    m = _ADDRESS.match(choice.strip())
    if not m:
        raise UsageError(f"not a Ray executor: {choice!r}")
    rest = m.group(2)
    if not rest:
        return None
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}", rest):
        raise UsageError(f"Ray address {rest!r} is not HOST:PORT", hint="e.g. --executor ray://127.0.0.1:10001")
    return ("ray://" if m.group(1) else "") + rest


def is_ray(choice: str) -> bool:
    return choice == "ray" or choice.startswith(("ray://", "ray:"))


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _host(address: str | None) -> str:
    addr = address or os.environ.get("RAY_ADDRESS", "")
    addr = addr.split("://", 1)[-1]
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


_connect_lock = threading.Lock()


def connect(address: str | None) -> Any:
    """``ray``, connected to the cluster at ``address`` (once per process). A loopback address
    stays loopback (Ray would otherwise resolve 127.0.0.1 to this host's outward address), and
    the SIGTERM handler in force before ``ray.init`` is put back."""
    with _connect_lock:
        if _host(address) in _LOOPBACK and "ray" not in __import__("sys").modules:
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # localhost -> 127.0.0.1
        try:
            import ray
        except ImportError as exc:
            raise UsageError("the Ray executor needs Ray", hint="pip install 'orchestrator[ray]'") from exc
        if ray.is_initialized():
            return ray
        target = address or os.environ.get("RAY_ADDRESS") or _latest(ray)
        from orchestrator.run import ray_connect

        wait = ray_connect.reach(target)
        if _host(target) in _LOOPBACK:  # also when ray was imported before the variable was set
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        try:
            ray.init(address=address or "auto", logging_level="warning", log_to_driver=False,
                     ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise OrchestratorError(f"cannot connect to the Ray cluster at {address or os.environ.get('RAY_ADDRESS') or 'auto'}: "
                                    f"{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}",
                                    hint=ray_connect.hint(wait)) from exc
        finally:
            if main and previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return ray


def _can_pump(ray: Any) -> bool:
    """Whether this Ray lets the runner's loop read a streaming task itself: a callback when an
    object exists (``ObjectRef._on_ready``) and a non-blocking look at the stream (2.50+); an older
    Ray gets a relay thread per running step."""
    try:
        from ray._private.object_ref_generator import ObjectRefGenerator
        from ray._raylet import CoreWorker
    except ImportError:
        return False
    return (hasattr(ray.ObjectRef, "_on_ready") and hasattr(ObjectRefGenerator, "_next_sync")
            and all(hasattr(CoreWorker, m) for m in ("peek_object_ref_stream", "is_object_ref_stream_finished")))


def _latest(ray: Any) -> str:
    """The address of the cluster ``ray start`` left on this machine (what ``auto`` finds), or ""."""
    try:
        return str(ray._private.utils.read_ray_address() or "")
    except Exception:  # noqa: BLE001 - a private helper of Ray: without it, "auto" decides alone
        return ""


class RayExecutor:
    """Runs leaves as Ray tasks (see the module docstring)."""

    name = "ray"

    direct_inputs = True  # S3 inputs are downloaded by the node (prepare_leaf leaves them to it)

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.ray: Any = None
        self.remote: Any = None
        self.client = False
        self.options: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, Any] = {}  # sha256 of an input's tar bytes -> its ObjectRef
        self.refs_lock = threading.Lock()
        self.steps: dict[int, RayStep] = {}  # id -> a step submitted and not finished yet
        self.grace = 3.0
        self.closed = threading.Event()
        self.signaller: Any = None
        self.tails: list[Any] = []  # tasks past their end item, still cleaning up on their node
        self.tails_lock = threading.Lock()
        self.writes: list[threading.Event] = []  # relays still writing a short step's ray-N.json
        self.relays = Relays()
        self.submitters: dict[tuple[tuple[str, Any], ...], Any] = {}  # options -> the task with them
        self.pump = False  # the runner's loop reads the streams itself (woken by Ray callbacks)
        self.unplaced: list[tuple[RayStep, dict[str, Any]]] = []  # short steps' ray-N.json, not written yet

    # ---------------------------------------------------------------- the seam
    def open(self, r: Any) -> None:
        from orchestrator.run import supervise

        self.grace = supervise.KILL_GRACE
        r.sandbox = (False, "ray executor")  # the step sees its declared paths through placeholders
        spec = r.graph.spec
        text = str(r.store.executable_document(r.rg, spec.executable_id).get("text", ""))
        refuse_companions(spec, text)
        self._leaf_options(r.graph, spec, text)
        self.ray = connect(self.address)
        self._check_feasible(r)
        from orchestrator.run import ray_node, ray_task

        import ray.cloudpickle as cp

        cp.register_pickle_by_value(ray_task)  # nodes need Python and Ray, not orchestrator
        cp.register_pickle_by_value(ray_node)
        for name in NODE_MODULES:  # bucket transfers on the node: Python, Ray and boto3
            cp.register_pickle_by_value(importlib.import_module(name))
        self.client = (self.address or os.environ.get("RAY_ADDRESS", "")).startswith("ray://")
        if self.client:  # Ray Client has no streaming generators: the log arrives at the step's end
            self.remote = self.ray.remote(max_retries=0)(ray_task.run_step_collected)
        else:
            self.remote = self.ray.remote(num_returns="streaming", max_retries=0)(ray_task.run_step)
        self.pump = not self.client and _can_pump(self.ray) and os.environ.get("ORCHESTRATOR_RAY_RELAY") != "1"
        self.signaller = self.ray.remote(num_cpus=0, max_retries=0)(ray_node.signal_step)
        threading.Thread(target=self._watch_pending, name="ray-pending", daemon=True).start()

    def _leaf_options(self, graph: Any, spec: Any, text: str) -> None:
        for node in graph.leaves():
            t = node.template
            if t.name in self.options:
                continue
            x = container_spec.template_extras(text, spec.doc_index, t.name, dict(t.labels))
            self.options[t.name] = task_options(x, custom_resources(text, spec.doc_index, t.name))

    def preflight(self, spec: Any, text: str) -> None:
        """What :meth:`open` refuses, before the execution is written (``run``: exit 2, nothing in
        the store): extra containers, an unreachable cluster, a resource no alive node has."""
        from orchestrator.plan.graph import compile_workflow

        refuse_companions(spec, text)
        self._leaf_options(compile_workflow(spec), spec, text)
        self.ray = connect(self.address)
        self._check_feasible(None)

    def signal(self, node_id: str, token: str, sig: int) -> bool:
        """Send ``sig`` to the step ``token``'s process group on node ``node_id`` (a task pinned
        there); False when the node did not answer in time or no such group runs there (yet)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            ref = self.signaller.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
                                         ).remote(token, int(sig))
            return bool(self.ray.get(ref, timeout=SIGNAL_TIMEOUT))
        except Exception:  # noqa: BLE001 - a dead node, a timeout: the caller cancels the task instead
            return False

    def companion(self, spec: StepSpec) -> StepProcess:
        """Never reached: :meth:`open` refuses templates with sidecars, initContainers or a containerSet."""
        raise CompanionRefused("sidecars, initContainers and containerSets do not run on the Ray executor",
                               hint="run this template with --executor local or podman")

    def _check_feasible(self, r: Any) -> None:
        for name, opts in self.options.items():
            problem = self.unschedulable(opts)
            if problem:
                raise container_spec.ResourceRefused(f"template {name!r} {problem}",
                                                     hint="lower the template's resources or add a node that has them")

    def unschedulable(self, opts: dict[str, Any]) -> str:
        """Why no alive node can ever run a task with ``opts`` ("" when one can)."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        need = {"CPU": opts["num_cpus"], "GPU": opts.get("num_gpus", 0), "memory": opts.get("memory", 0),
                **opts.get("resources", {})}
        if any(all(res.get(k, 0) >= v for k, v in need.items() if v) for res in nodes):
            return ""
        wanted = ", ".join(f"{k}={v:g}" for k, v in need.items() if v)
        return f"needs {wanted}; no node of the Ray cluster has that ({len(nodes)} node(s) alive)"

    def _watch_pending(self) -> None:
        """A task still waiting for a node after PENDING_CHECK seconds, which no alive node can hold
        any more (its node died before it started), is cancelled: the attempt fails as an error
        (retried by OnError) instead of waiting forever for a node that may never come."""
        while not self.closed.wait(PENDING_CHECK):
            self.flush_placed()  # the short steps' ray-N.json of the last PENDING_CHECK seconds
            now = time.monotonic()
            for step in list(self.steps.values()):
                if (step.gen is None or step.placed_at or step.done is None or step.done.is_set()
                        or now - step.submitted < PENDING_CHECK):
                    continue
                try:
                    problem = self.unschedulable(step.options)
                except Exception:  # noqa: BLE001 - the cluster is unreachable: the relay reports it
                    continue
                if problem:
                    step.unschedulable = f"the step's task cannot be scheduled: it {problem}"
                    step._cancel(step.gen, force=False)

    def submit(self, r: Any, node: Node, prep: Prepared, attempt: int) -> RayStep:
        prep.image.clear()  # the driver host is not the node's image: none of its files becomes an output
        spec = prep.spec
        step_dir = str(prep.step_dir)
        outputs = sorted({os.path.relpath(p, step_dir) for k, p in prep.paths.items() if k.startswith("outputs.")})
        inputs = [Path(p) for k, p in prep.paths.items() if k.startswith("inputs.artifacts.")]
        step = RayStep(spec)
        step.executor = self
        step.inputs = inputs
        step.not_shipped = {str(p) for p in inputs}  # inputs are never in the rest of the directory
        step.options = self.options.get(node.template.name, {"num_cpus": 1.0})
        step.info_path = os.path.join(step_dir, f"ray-{attempt}.json")
        fetch: list[Any] = []
        push: list[Any] = []
        target = remote_store_target(r, node)
        if target is not None or prep.remote:
            fetch, push = remote_transfers(r, node, prep, target)
            direct_in = {os.path.normpath(os.path.join(step_dir, f[3])) for f in fetch}
            step.inputs = [p for p in step.inputs if os.path.normpath(str(p)) not in direct_in]
            outputs = [o for o in outputs if o not in {p[2] for p in push}]
            names = {os.path.relpath(p, step_dir): k.split(".", 2)[2] for k, p in prep.paths.items()
                     if k.startswith("outputs.artifacts.")}
            step.prep, step.push_names = prep, {p[2]: names[p[2]] for p in push}
        step.payload = {"argv": list(spec.argv), "env": dict(spec.env), "cwd": spec.cwd, "driver_dir": step_dir,
                        "fetch": fetch, "push": push, "token": spec.token, "grace": self.grace, "log_cap": spec.log_cap,
                        "tracking": prep.tracking_path, "outputs": outputs, "input_dests": [],
                        "rewrite": ["script"] if os.path.isfile(os.path.join(step_dir, "script")) else []}
        if attest.ENV_VAR in spec.env:  # the attested inputs' paths: the node's copies, not the driver's
            step.payload["rewrite"].append(attest.FILE_NAME)
        self.steps[id(step)] = step
        return step

    def ship(self, step: RayStep) -> list[Any]:
        """The step's inputs as ObjectRefs: each input artifact content-addressed (put once), and the
        rest of its step directory (script, attestations, secret volumes) as one more tar."""
        step_dir = Path(step.payload["driver_dir"])
        args: list[Any] = []
        dests: list[str] = []
        for path in step.inputs:
            data, where = pack_input(path)
            args.append(self._put(data))
            dests.append(os.path.relpath(where, step_dir))
        rest = pack_rest(step_dir, step.not_shipped)
        if rest:
            args.append(self._put(rest))
            dests.append(".")
        step.payload["input_dests"] = dests
        return args

    def _put(self, data: bytes) -> Any:
        key = hashlib.sha256(data).hexdigest()
        with self.refs_lock:
            ref = self.refs.get(key)
            if ref is None:
                ref = self.refs[key] = self.ray.put(data)
            return ref

    def placed(self, step: RayStep, where: dict[str, Any]) -> None:
        """The task started on a node: which one, for ``ray-N.json`` in the step directory."""
        import json

        data = json.dumps({"node": where.get("node", ""), "host": where.get("host", ""),
                           "workdir": where.get("workdir", ""),
                           "orchestrator_imported": bool(where.get("orchestrator_imported"))}).encode()
        try:  # one write (json.dump writes piece by piece)
            fd = os.open(step.info_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError:
            pass

    def defer_placed(self, step: RayStep, where: dict[str, Any]) -> None:
        """A short step's placement (its start came with its end): written by :meth:`flush_placed`
        on the pending check's thread (every PENDING_CHECK seconds) or at the run's end, never on
        the path from one step's end to the next step's start (a file created per step: up to a
        millisecond on a busy disk); by the runner's thread only past UNPLACED_MAX of them."""
        with self.tails_lock:
            self.unplaced.append((step, where))
            many = len(self.unplaced) >= UNPLACED_MAX
        if many:
            self.flush_placed()

    def flush_placed(self) -> None:
        with self.tails_lock:
            todo, self.unplaced = self.unplaced, []
        for step, where in todo:
            self.placed(step, where)

    def submitter(self, options: dict[str, Any]) -> Any:
        """The remote task with a step's Ray options (``.options()`` built once per distinct set)."""
        key = tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in options.items()))
        task = self.submitters.get(key)
        if task is None:
            task = self.submitters[key] = self.remote.options(**options)
        return task

    def writing(self, done: threading.Event) -> None:
        """A relay writes a short step's ``ray-N.json`` after the step's end: :meth:`shutdown` waits."""
        with self.tails_lock:
            if len(self.writes) >= 64:
                self.writes = [e for e in self.writes if not e.is_set()]
            self.writes.append(done)

    def ended(self, gen: Any) -> None:
        """A step's task whose end item arrived: its node still kills what is left of the step's
        group and removes its directory; :meth:`shutdown` waits for that (bounded)."""
        if self.client:
            return
        with self.tails_lock:
            self.tails.append(gen)
            if len(self.tails) < 64:
                return
            tails, self.tails = self.tails, []
        try:
            _done, waiting = self.ray.wait([g.completed() for g in tails], num_returns=len(tails), timeout=0)
        except Exception:  # noqa: BLE001 - the cluster is gone: nothing left to wait for
            return
        left = {r.hex() for r in waiting}
        with self.tails_lock:
            self.tails += [g for g in tails if g.completed().hex() in left]

    def cancel(self, handle: StepProcess, reason: str, grace: float) -> None:
        handle.kill(reason, grace=grace)

    def shutdown(self) -> None:
        """Cancel what is still running (a runner that gives up), let the steps that ended finish
        their cleanup on their nodes (at most TAIL_WAIT seconds), drop this execution's inputs."""
        self.closed.set()
        for step in list(self.steps.values()):
            if step.gen is not None and step.done is not None and not step.done.is_set():
                step.force_kill()
        self.steps.clear()
        with self.tails_lock:
            tails, self.tails = self.tails, []
            writes, self.writes = self.writes, []
        for done in writes:
            done.wait(5.0)
        self.flush_placed()
        if tails:
            try:
                self.ray.wait([g.completed() for g in tails], num_returns=len(tails), timeout=TAIL_WAIT)
            except Exception:  # noqa: BLE001 - the cluster is gone: the next step on a node sweeps
                pass
        with self.refs_lock:
            self.refs.clear()
