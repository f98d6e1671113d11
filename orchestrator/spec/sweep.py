"""The sweep model (:class:`SweepSpec`): what every sweep front end builds and the engine runs.

Owns: the frozen dataclasses every sweep front end produces and the engine
(:mod:`orchestrator.control.sweeps`) consumes; parsing of search-space distributions in all three
encodings (YAML ``{type: uniform, min_value: .., max_value: ..}``, the same in camelCase, and the
REST/SDK array form ``["uniform", [min, max]]``, lifecycle.md §1.3); the checks of combinations
Azure ML refuses (:func:`problems`, e.g. ``bayesian`` with ``loguniform``), returned as
front-end-neutral :class:`SweepProblem` values that each front end locates in its own file. The
``Sweep`` document itself (check, build, round trip) is :mod:`orchestrator.spec.sweep_kind`.

The model in one paragraph. A sweep runs *trials*; each trial is one execution of
``SweepSpec.trial`` (:class:`TrialTarget`): a registered executable id plus fixed parameter and
artifact bindings, plus the parameters the search space sets (``search_space`` names map to
template parameter names through ``TrialTarget.parameter_map``; identity when not mapped). An
Azure ML command job is turned (by ``spec/azure*``) into a registered executable whose template
parameters are the ``${{search_space.x}}``/``${{inputs.x}}`` names, so it is the same target.
``sampling`` picks values (:mod:`orchestrator.plan.sampling`), ``objective`` names the metric the
trial logs and its goal, ``early_termination`` (optional) stops trials on the primary metric's
reports (:mod:`orchestrator.plan.early_stop`), ``limits`` bound trials, concurrency and time.
Values of a trial's parameters are strings on the wire, like every AI Core parameter.

Must not import plan, store, control or anything above the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union


DISTRIBUTIONS = ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform",
                 "normal", "qnormal", "lognormal", "qlognormal")
ALGORITHMS = ("random", "grid", "bayesian")
POLICIES = ("bandit", "median_stopping", "truncation_selection")
# Which distributions each algorithm accepts (lifecycle.md §1.4, how-to-tune-hyperparameters.md).
ALLOWED = {"random": frozenset(DISTRIBUTIONS), "grid": frozenset({"choice"}),
           "bayesian": frozenset({"choice", "uniform", "quniform"})}
# Parameters of each distribution, YAML (snake) names; the first element is the REST array order.
ARGS = {"choice": ("values",), "randint": ("upper",), "uniform": ("min_value", "max_value"),
        "quniform": ("min_value", "max_value", "q"), "loguniform": ("min_value", "max_value"),
        "qloguniform": ("min_value", "max_value", "q"), "normal": ("mu", "sigma"),
        "qnormal": ("mu", "sigma", "q"), "lognormal": ("mu", "sigma"), "qlognormal": ("mu", "sigma", "q")}
MAX_TRIALS = 1000  # Azure: max_total_trials and max_concurrent_trials are 1..1000
DEFAULT_TIMEOUT = 5184000.0  # 60 days, Azure's default sweep timeout

Scalar = Union[str, int, float, bool, None]


@dataclass(frozen=True)
class SubSpace:
    """A dict value of a ``choice``: when picked, its entries are sampled too (nested space)."""

    items: tuple[tuple[str, "Distribution | Scalar"], ...]


@dataclass(frozen=True)
class Distribution:
    """One search-space entry. Fields that do not apply to ``type`` stay None.

    ``choice``: ``values`` (scalars or :class:`SubSpace`); ``randint``: ``upper`` (0 <= x < upper);
    ``uniform``/``loguniform``: ``min_value``/``max_value`` (log forms: exp of the uniform draw);
    ``normal``/``lognormal``: ``mu``/``sigma``; q-forms add ``q`` (round(x / q) * q).
    """

    type: str
    values: tuple["Scalar | SubSpace", ...] = ()
    upper: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    mu: float | None = None
    sigma: float | None = None
    q: float | None = None


@dataclass(frozen=True)
class Sampling:
    """``algorithm`` random|grid|bayesian; random also takes ``seed`` and ``rule`` random|sobol."""

    algorithm: str = "random"
    seed: int | None = None
    rule: str = "random"


@dataclass(frozen=True)
class Objective:
    """The metric a trial logs (every logged value is one report) and whether bigger is better."""

    primary_metric: str
    goal: str = "maximize"  # maximize | minimize


@dataclass(frozen=True)
class EarlyTermination:
    """An early-termination policy (lifecycle.md §1.6); every report of the primary metric is one
    interval, evaluation happens at intervals ``n`` with ``n % evaluation_interval == 0`` and
    ``n >= delay_evaluation``."""

    policy: str  # bandit | median_stopping | truncation_selection
    evaluation_interval: int = 1
    delay_evaluation: int = 0
    slack_factor: float | None = None
    slack_amount: float | None = None
    truncation_percentage: int | None = None
    exclude_finished_jobs: bool = False


@dataclass(frozen=True)
class SweepLimits:
    """``max_concurrent_trials`` None means "as many as ``max_total_trials``" (Azure's default).
    Times in seconds; ``trial_timeout`` None means none."""

    max_total_trials: int = MAX_TRIALS
    max_concurrent_trials: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    trial_timeout: float | None = None

    @property
    def concurrency(self) -> int:
        return self.max_concurrent_trials or self.max_total_trials


@dataclass(frozen=True)
class TrialTarget:
    """What one trial runs: a registered executable (optionally the scenario it is in, or a stored
    configuration to start from) with fixed bindings; the search space sets the rest.

    ``parameter_map``: (search-space name, template parameter name) where they differ.
    ``artifact_bindings``: (input artifact name, artifact id or URL).
    """

    executable_id: str
    scenario_id: str = ""
    configuration_id: str = ""
    parameter_bindings: tuple[tuple[str, str], ...] = ()
    artifact_bindings: tuple[tuple[str, str], ...] = ()
    parameter_map: tuple[tuple[str, str], ...] = ()

    def template_parameter(self, name: str) -> str:
        return dict(self.parameter_map).get(name, name)


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep, as every front end (our ``Sweep`` kind, Azure ML sweep YAML / REST) builds it."""

    name: str
    trial: TrialTarget
    search_space: tuple[tuple[str, Distribution], ...]
    objective: Objective
    sampling: Sampling = field(default_factory=Sampling)
    early_termination: EarlyTermination | None = None
    limits: SweepLimits = field(default_factory=SweepLimits)
    register_model: str = ""  # register the best trial's model under this name
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    source: str = ""
    digest: str = ""  # sha256 of the canonical document, set by the front end


@dataclass(frozen=True)
class SweepProblem:
    """A semantic problem of a :class:`SweepSpec`. ``path`` names the field in our ``Sweep`` kind's
    camelCase spelling under ``spec`` (e.g. ``("searchSpace", "lr")``); each front end maps it to
    its own pointer."""

    path: tuple[str, ...]
    rule: str
    message: str
    hint: str = ""


class DistributionError(Exception):
    """Internal: a malformed distribution, with the relative path of the bad part."""

    def __init__(self, path: tuple[str, ...], message: str, hint: str = "") -> None:
        super().__init__(message)
        self.path, self.message, self.hint = path, message, hint


def _snake(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def _num(raw: Any, path: tuple[str, ...], name: str, *, integer: bool = False) -> Any:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (isinstance(raw, float) and not math.isfinite(raw)):
        raise DistributionError(path + (name,), f"{name} must be a finite number, not {raw!r}")
    if integer and (not float(raw).is_integer()):
        raise DistributionError(path + (name,), f"{name} must be an integer, not {raw!r}")
    return int(raw) if integer else float(raw)


def parse_distribution(raw: Any, path: tuple[str, ...] = (), depth: int = 0) -> Distribution:
    """A distribution from ``{type, ...}`` (snake or camelCase keys) or ``["type", [args]]``.

    Raises :class:`DistributionError` naming the bad part (``path`` + the key inside).
    """
    if depth > 8:
        raise DistributionError(path, "search space nested too deeply (more than 8 levels)")
    if isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str) and isinstance(raw[1], list):
        kind, args = raw[0].lower(), raw[1]
        if kind not in DISTRIBUTIONS:
            raise DistributionError(path, f"unknown distribution {raw[0]!r}", "one of " + ", ".join(DISTRIBUTIONS))
        if kind == "choice":
            if len(args) != 1 or not isinstance(args[0], list):
                raise DistributionError(path, 'choice takes one list of values: ["choice", [[v1, v2]]]')
            fields: dict[str, Any] = {"type": kind, "values": args[0]}
        else:
            names = ARGS[kind]
            if len(args) != len(names):
                raise DistributionError(path, f"{kind} takes {len(names)} arguments ({', '.join(names)}), got {len(args)}")
            fields = {"type": kind, **dict(zip(names, args))}
    elif isinstance(raw, dict):
        fields = {_snake(str(k)): v for k, v in raw.items()}
        kind = str(fields.get("type", "")).lower()
        if kind not in DISTRIBUTIONS:
            raise DistributionError(path + ("type",), f"unknown distribution type {fields.get('type')!r}",
                                    "one of " + ", ".join(DISTRIBUTIONS))
        extra = sorted(set(fields) - set(ARGS[kind]) - {"type"})
        if extra:
            raise DistributionError(path + (extra[0],), f"{kind} has no parameter {extra[0]!r}",
                                    f"{kind} takes {', '.join(ARGS[kind])}")
    else:
        raise DistributionError(path, f"a search-space entry must be a distribution, not {type(raw).__name__}",
                                "e.g. {type: uniform, min_value: 0.01, max_value: 0.9}")
    for name in ARGS[kind]:
        if name not in fields:
            raise DistributionError(path, f"{kind} needs {name}", f"{kind} takes {', '.join(ARGS[kind])}")
    if kind == "choice":
        values = fields["values"]
        if not isinstance(values, list) or not values:
            raise DistributionError(path + ("values",), "choice needs a non-empty list of values")
        out: list[Scalar | SubSpace] = []
        for i, v in enumerate(values):
            if isinstance(v, dict):
                items = []
                for k, sub in v.items():
                    sub_path = path + ("values", str(i), str(k))
                    is_dist = isinstance(sub, dict) and "type" in sub or \
                        isinstance(sub, list) and len(sub) == 2 and isinstance(sub[0], str) and sub[0].lower() in DISTRIBUTIONS
                    items.append((str(k), parse_distribution(sub, sub_path, depth + 1) if is_dist else _scalar(sub, sub_path)))
                out.append(SubSpace(tuple(items)))
            else:
                out.append(_scalar(v, path + ("values", str(i))))
        return Distribution("choice", values=tuple(out))
    if kind == "randint":
        return Distribution("randint", upper=_num(fields["upper"], path, "upper", integer=True))
    nums = {n: _num(fields[n], path, n) for n in ARGS[kind]}
    return Distribution(kind, **nums)


def _scalar(v: Any, path: tuple[str, ...]) -> Scalar:
    if v is None or isinstance(v, (str, bool, int)) or isinstance(v, float) and math.isfinite(v):
        return v  # type: ignore[no-any-return]
    raise DistributionError(path, f"a choice value must be a string, number, boolean or mapping, not {type(v).__name__}")


def _dist_problems(name: str, d: Distribution, algorithm: str, path: tuple[str, ...]) -> list[SweepProblem]:
    out: list[SweepProblem] = []
    if d.type not in ALLOWED[algorithm]:
        out.append(SweepProblem(path, "sweep.sampling-distribution",
                                f"{algorithm} sampling does not accept {d.type} (parameter {name!r})",
                                f"{algorithm} accepts {', '.join(sorted(ALLOWED[algorithm]))}"
                                + ("; use random sampling" if algorithm != "random" else "")))
    if d.type == "randint" and (d.upper or 0) < 1:
        out.append(SweepProblem(path + ("upper",), "sweep.range", f"randint upper must be >= 1, got {d.upper}"))
    if d.min_value is not None and d.max_value is not None and d.min_value > d.max_value:
        out.append(SweepProblem(path + ("minValue",), "sweep.range",
                                f"min_value {d.min_value:g} is greater than max_value {d.max_value:g}"))
    if d.sigma is not None and d.sigma <= 0:
        out.append(SweepProblem(path + ("sigma",), "sweep.range", f"sigma must be > 0, got {d.sigma:g}"))
    if d.q is not None and d.q <= 0:
        out.append(SweepProblem(path + ("q",), "sweep.range", f"q must be > 0, got {d.q:g}"))
    if d.type in ("loguniform", "qloguniform") and d.max_value is not None and d.max_value > 700:
        out.append(SweepProblem(path + ("maxValue",), "sweep.range",
                                f"{d.type} samples exp(uniform(min, max)); max_value {d.max_value:g} overflows",
                                "min_value/max_value are natural logarithms of the bounds"))
    for i, v in enumerate(d.values):
        if isinstance(v, SubSpace):
            if algorithm != "random":
                out.append(SweepProblem(path + ("values", str(i)), "sweep.sampling-nested",
                                        f"{algorithm} sampling does not accept nested choices (parameter {name!r})",
                                        "use random sampling"))
            for k, sub in v.items:
                if isinstance(sub, Distribution):
                    out.extend(_dist_problems(k, sub, algorithm, path + ("values", str(i), k)))
    return out


def grid_size(space: tuple[tuple[str, Distribution], ...]) -> int:
    """Number of points of a grid (choices only)."""
    n = 1
    for _, d in space:
        n *= max(1, len(d.values))
    return n


def problems(spec: SweepSpec) -> list[SweepProblem]:
    """Every semantic problem of a sweep (combinations Azure ML refuses and impossible values)."""
    out: list[SweepProblem] = []
    algo = spec.sampling.algorithm
    if algo not in ALGORITHMS:
        return [SweepProblem(("samplingAlgorithm",), "sweep.sampling", f"unknown sampling algorithm {algo!r}",
                             "one of random, grid, bayesian")]
    if not spec.search_space:
        out.append(SweepProblem(("searchSpace",), "sweep.search-space", "the search space is empty"))
    for name, d in spec.search_space:
        out.extend(_dist_problems(name, d, algo, ("searchSpace", name)))
    if algo != "random" and (spec.sampling.seed is not None or spec.sampling.rule != "random"):
        out.append(SweepProblem(("samplingAlgorithm",), "sweep.sampling-option",
                                f"{algo} sampling takes no seed or rule", "only random sampling has seed and rule"))
    if spec.sampling.rule not in ("random", "sobol"):
        out.append(SweepProblem(("samplingAlgorithm", "rule"), "sweep.sampling-option",
                                f"unknown rule {spec.sampling.rule!r}", "random or sobol"))
    if algo == "bayesian" and spec.early_termination is not None:
        out.append(SweepProblem(("earlyTermination",), "sweep.bayesian-early-termination",
                                "bayesian sampling does not support early termination",
                                "remove earlyTermination or use random/grid sampling"))
    if spec.objective.goal not in ("maximize", "minimize"):
        out.append(SweepProblem(("objective", "goal"), "sweep.goal", f"goal must be maximize or minimize, not {spec.objective.goal!r}"))
    lim = spec.limits
    for key, value in (("maxTotalTrials", lim.max_total_trials), ("maxConcurrentTrials", lim.max_concurrent_trials)):
        if value is not None and not 1 <= value <= MAX_TRIALS:
            out.append(SweepProblem(("limits", key), "sweep.limits", f"{key} must be 1..{MAX_TRIALS}, got {value}"))
    for key, t in (("timeout", lim.timeout), ("trialTimeout", lim.trial_timeout)):
        if t is not None and not t > 0:
            out.append(SweepProblem(("limits", key), "sweep.limits", f"{key} must be > 0 seconds, got {t:g}"))
    et = spec.early_termination
    if et is not None:
        if et.policy not in POLICIES:
            out.append(SweepProblem(("earlyTermination", "type"), "sweep.policy", f"unknown policy {et.policy!r}",
                                    "one of " + ", ".join(POLICIES)))
        if et.evaluation_interval < 1 or et.delay_evaluation < 0:
            out.append(SweepProblem(("earlyTermination",), "sweep.policy",
                                    "evaluationInterval must be >= 1 and delayEvaluation >= 0"))
        if et.policy == "bandit" and (et.slack_factor is None) == (et.slack_amount is None):
            out.append(SweepProblem(("earlyTermination",), "sweep.bandit-slack",
                                    "bandit needs exactly one of slackFactor or slackAmount"))
        if et.policy == "bandit" and any(s is not None and s < 0 for s in (et.slack_factor, et.slack_amount)):
            out.append(SweepProblem(("earlyTermination",), "sweep.bandit-slack", "slack must be >= 0"))
        if et.policy == "truncation_selection" and not (et.truncation_percentage and 1 <= et.truncation_percentage <= 99):
            out.append(SweepProblem(("earlyTermination", "truncationPercentage"), "sweep.truncation",
                                    "truncation_selection needs truncationPercentage 1..99"))
    names = {n for n, _ in spec.search_space}
    fixed = {k for k, _ in spec.trial.parameter_bindings}
    both = sorted(names & fixed)
    if both:
        out.append(SweepProblem(("trial", "parameterBindings"), "sweep.binding-conflict",
                                f"parameter {both[0]!r} is both bound and in the search space",
                                "remove the fixed binding or the search-space entry"))
    return out
