"""The Sweep kind (orchestrator/v1): schema + the combinations Azure ML refuses, each error located;
distributions in the YAML, camelCase and REST array encodings; the stored document round trip."""

from __future__ import annotations

from orchestrator.spec import load_trusted, validate_text
from orchestrator.spec.sweep import Distribution, DistributionError, SubSpace, parse_distribution
from orchestrator.spec.sweep_kind import from_document, to_document

DOC = """apiVersion: orchestrator/v1
kind: Sweep
metadata:
  name: tune
spec:
  trial:
    executableId: train
    parameterBindings:
    - {{key: epochs, value: "3"}}
  searchSpace:
    lr: {lr}
    boosting: {{type: choice, values: [gbdt, dart]}}
  samplingAlgorithm: {algo}
  objective: {{primaryMetric: acc, goal: maximize}}
{extra}"""


def errors(lr: str = "{type: uniform, min_value: 0.01, max_value: 0.9}", algo: str = "random",
           extra: str = "") -> list[tuple[int, str, str]]:
    res = validate_text(DOC.format(lr=lr, algo=algo, extra=extra).encode(), "s.yaml")
    return [(e.line, e.pointer, e.rule) for e in res.errors]


def test_a_valid_sweep_builds_into_a_frozen_spec() -> None:
    text = DOC.format(lr="[loguniform, [-6, -1]]", algo="{type: random, seed: 7, rule: sobol}",
                      extra="  earlyTermination: {type: bandit, slackFactor: 0.1, delayEvaluation: 2}\n"
                            "  limits: {maxTotalTrials: 20, maxConcurrentTrials: 2, trialTimeout: 60}\n"
                            "  registerModel: best-model\n")
    res = validate_text(text.encode(), "s.yaml")
    assert res.errors == []
    (spec,) = res.sweeps
    assert spec.trial.executable_id == "train" and spec.trial.parameter_bindings == (("epochs", "3"),)
    assert dict(spec.search_space)["lr"] == Distribution("loguniform", min_value=-6.0, max_value=-1.0)
    assert (spec.sampling.algorithm, spec.sampling.seed, spec.sampling.rule) == ("random", 7, "sobol")
    assert spec.early_termination is not None and spec.early_termination.delay_evaluation == 2
    assert spec.limits.concurrency == 2 and spec.limits.trial_timeout == 60.0
    assert spec.register_model == "best-model"
    assert from_document(to_document(spec)).search_space == spec.search_space
    assert load_trusted(text.encode(), "s.yaml").sweeps[0].limits == spec.limits


def test_bayesian_refuses_log_distributions_at_the_entry() -> None:
    assert errors(lr="{type: loguniform, min_value: -5, max_value: 0}", algo="bayesian") == [
        (11, "/spec/searchSpace/lr", "sweep.sampling-distribution")]


def test_grid_takes_choices_only_and_bayesian_no_early_termination() -> None:
    assert errors(algo="grid") == [(11, "/spec/searchSpace/lr", "sweep.sampling-distribution")]
    found = errors(algo="bayesian", extra="  earlyTermination: {type: median_stopping}\n")
    assert found == [(15, "/spec/earlyTermination", "sweep.bayesian-early-termination")]


def test_bandit_needs_exactly_one_slack_and_ranges_are_checked() -> None:
    assert errors(extra="  earlyTermination: {type: bandit}\n") == [
        (15, "/spec/earlyTermination", "sweep.bandit-slack")]
    assert errors(lr="{type: uniform, min_value: 2, max_value: 1}") == [
        (11, "/spec/searchSpace/lr/minValue", "sweep.range")]
    assert errors(lr="{type: qnormal, mu: 0, sigma: 1, q: 0}") == [(11, "/spec/searchSpace/lr/q", "sweep.range")]


def test_schema_errors_are_located_and_semantic_checks_wait_for_them() -> None:
    # the bandit without slack is not reported while the document does not match the schema
    found = errors(extra="  limits: {maxTotalTrials: 0}\n  earlyTermination: {type: bandit}\n")
    assert found == [(15, "/spec/limits/maxTotalTrials", "schema.minimum")]


def test_a_parameter_both_fixed_and_searched_is_refused() -> None:
    text = DOC.format(lr="{type: uniform, min_value: 0, max_value: 1}", algo="random", extra="").replace(
        "key: epochs", "key: lr")
    res = validate_text(text.encode(), "s.yaml")
    assert [e.rule for e in res.errors] == ["sweep.binding-conflict"]


def test_distribution_encodings_agree() -> None:
    yaml_form = parse_distribution({"type": "quniform", "min_value": 1, "max_value": 9, "q": 2})
    camel = parse_distribution({"type": "quniform", "minValue": 1, "maxValue": 9, "q": 2})
    rest = parse_distribution(["quniform", [1, 9, 2]])
    assert yaml_form == camel == rest
    nested = parse_distribution(["choice", [[{"kernel": "rbf", "C": ["uniform", [0, 1]]}, "linear"]]])
    assert isinstance(nested.values[0], SubSpace) and nested.values[1] == "linear"
    assert dict(nested.values[0].items)["C"] == Distribution("uniform", min_value=0.0, max_value=1.0)


def test_malformed_distributions_name_the_bad_part() -> None:
    for raw, path in ((["uniform", [0]], ("x",)), ({"type": "randint"}, ("x",)),
                      ({"type": "uniform", "min_value": 0, "max_value": 1, "upper": 3}, ("x", "upper")),
                      ({"type": "choice", "values": [[1]]}, ("x", "values", "0"))):
        try:
            parse_distribution(raw, ("x",))
        except DistributionError as exc:
            assert exc.path == path, raw
        else:
            raise AssertionError(f"accepted {raw!r}")
