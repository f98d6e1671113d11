"""What AI Core tolerates is accepted with a warning (or silently), never refused.

One test per tolerated form: legacy ServingTemplate fields and KFServing shapes (issue item 4),
YAML null where a list is expected (item 5), resource plan labels (item 7). Each asserts the exact
rule code, severity, ``line:col`` (computed from the text written) and JSON pointer.
Ids, labels and artifact annotations (items 1-3) are in test_rules.py.
"""

from __future__ import annotations

import pytest

LEGACY_SERVING = """\
apiVersion: ai.sap.com/v1alpha1
kind: ServingTemplate
metadata:
  name: legacy-serve
  labels:
    scenarios.ai.sap.com/id: demo-scenario
    ai.sap.com/version: "1.0.0"
  annotations:
    scenarios.ai.sap.com/name: Demo scenario
    executables.ai.sap.com/name: Legacy serving
spec:
  inputs:
    parameters:
      - name: plan
        default: starter
        type: string
    artifacts:
      - name: houseModel
  imagePullSecrets:
    - name: my-registry
  template:
    apiVersion: serving.kubeflow.org/v1alpha2
    metadata:
      labels: |
        ai.sap.com/resourcePlan: "{{inputs.parameters.plan}}"
    spec: |
      default:
        predictor:
          custom:
            container:
              name: kfserving-container
              image: example/house:1
              env:
                - name: STORAGE_URI
                  value: "{{inputs.artifacts.houseModel}}"
"""

SPEC = "/spec/template/spec"


# ------------------------------------------------------------------ item 4: legacy ServingTemplates


def test_legacy_serving_template_is_accepted_with_one_warning_per_legacy_form(spec) -> None:
    # The KFServing v1alpha2 shape SAP's 2208a migration script converts (st_v1alpha2.yaml).
    text = LEGACY_SERVING
    res, _ = spec.validate(text)
    assert res.errors == [] and res.ok and [w.executable_id for w in res.workflows] == ["legacy-serve"]
    assert all(w.severity == "warning" for w in res.warnings)
    got = sorted(((e.rule, e.line, e.col, e.pointer) for e in res.warnings), key=lambda x: (x[1], x[2]))
    assert got == [
        ("serving.legacy-field", *spec.pos(text, "imagePullSecrets:"), "/spec/imagePullSecrets"),
        ("serving.legacy-api-version", *spec.pos(text, "serving.kubeflow.org/v1alpha2"), "/spec/template/apiVersion"),
        ("serving.legacy-predictor", *spec.pos(text, "default:\n        predictor:"), SPEC),
        ("serving.legacy-predictor", *spec.pos(text, "custom:"), SPEC),
        ("serving.legacy-predictor", *spec.pos(text, "kfserving-container"), SPEC),
    ]
    api = spec.errors(res, "serving.legacy-api-version")[0]
    assert "serving.kserve.io/v1beta1" in api.hint  # names the modern field
    assert "predictor" in spec.errors(res, "serving.legacy-field")[0].hint


def test_serving_template_without_api_version_is_legacy_kfserving(spec) -> None:
    # SAP-samples aicore-multioutput-regression-restaurant-inspections serve.yaml has none.
    text = spec.edit(spec.VALID_SERVING, ("    apiVersion: serving.kserve.io/v1beta1\n", ""))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["serving.legacy-api-version"]
    err = spec.only(res, "serving.legacy-api-version")
    spec.assert_at(err, spec.pos(text, "metadata:\n      labels: |"), "/spec/template")
    assert err.severity == "warning" and res.ok


def test_description_on_a_serving_input_artifact_names_the_annotation(spec) -> None:
    text = spec.edit(spec.VALID_SERVING, ("      - name: houseModel\n",
                                          "      - name: houseModel\n        description: the model\n"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["serving.legacy-field"]
    err = spec.only(res, "serving.legacy-field")
    spec.assert_at(err, spec.pos(text, "description: the model"), "/spec/inputs/artifacts/0/description")
    assert "artifacts.ai.sap.com/houseModel.description" in err.hint
    assert err.severity == "warning" and res.ok


def test_description_on_argo_artifacts_is_accepted_silently(spec) -> None:
    # SAP-samples btp-industry-use-cases continuous-training-delivery.yaml documents its inputs so.
    text = spec.broken(("          - name: dataset\n            path: /app/input\n",
                        "          - name: dataset\n            description: raw rows\n            path: /app/input\n"),
                       ("            globalName: model\n",
                        "            globalName: model\n            description: the fitted model\n"))
    res, _ = spec.validate(text)
    assert res.errors == [] and res.warnings == [], spec.rules(res)


def test_unknown_placeholder_in_serving_text_is_still_an_error_at_its_own_line(spec) -> None:
    # AI Core renders the text and fails on an undeclared name ("'dict object' has no attribute").
    text = spec.edit(spec.VALID_SERVING, ("minReplicas: {{inputs.parameters.replicas}}",
                                          "minReplicas: {{inputs.parameters.minReplicas}}"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["placeholder.unknown"]
    err = spec.only(res, "placeholder.unknown")
    spec.assert_at(err, spec.pos(text, "{{inputs.parameters.minReplicas}}"), SPEC)
    assert err.severity == "error" and not res.ok


# ------------------------------------------------------------------ item 5: null where a list goes


@pytest.mark.parametrize("edit", [
    ("    - name: report\n      script:", "    - name: report\n      inputs:\n        artifacts:\n      script:"),
    ("  arguments:\n    parameters:\n      - name: alpha\n        value: \"0.5\"\n",
     "  arguments:\n    parameters:\n"),
    ("    - name: report\n      script:", "    - name: report\n      inputs:\n      outputs:\n      script:"),
], ids=["artifacts", "parameters", "inputs-and-outputs"])
def test_yaml_null_where_a_list_or_mapping_is_expected_is_empty(spec, edit: tuple[str, str]) -> None:
    # SAP-samples btp-industry-use-cases continuous-monitoring.yaml: "artifacts:" with nothing after it.
    text = spec.broken(edit)
    if "parameters:\n" in edit[1] and "alpha" not in edit[1]:
        text = text.replace("{{workflow.parameters.alpha}}", "0.5")
    res, _ = spec.validate(text)
    assert res.errors == [] and res.warnings == [], spec.rules(res)
    (wf,) = res.workflows
    assert wf.templates["report"].input_artifacts == ()


def test_empty_value_where_a_string_is_expected_says_so_without_an_empty_quote(spec) -> None:
    text = spec.broken(("  entrypoint: main\n", "  entrypoint:\n"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["schema.type"]
    err = spec.only(res, "schema.type")
    spec.assert_at(err, spec.pos(text, "  entrypoint:", shift=2), "/spec/entrypoint")
    assert "empty" in err.message and "string" in err.message
    assert "  " not in err.hint and "NoneType" not in err.message + err.hint and "''" not in err.message


def test_yaml_1_1_boolean_hint_quotes_the_source_text(spec) -> None:
    text = spec.broken(("  entrypoint: main\n", "  entrypoint: yes\n"))
    res, _ = spec.validate(text)
    err = spec.only(res, "schema.type")
    spec.assert_at(err, spec.pos(text, "yes"), "/spec/entrypoint")
    assert "'yes'" in err.message and '"yes"' in err.hint


# ------------------------------------------------------------------ item 7: resource plans

PREPARE = "\n    - name: prepare\n"


def with_labels(spec, labels: str) -> str:
    return spec.broken((PREPARE, PREPARE + "      metadata:\n        labels:\n" + labels))


@pytest.mark.parametrize("plan", ["starter", "basic", "basic.8x", "train.l", "infer.s", "infer.m", "infer.l",
                                  "infer2.l", "infer2.4xl", "train2.8xl", "train2.8xxl"])
def test_known_resource_plans_are_accepted(spec, plan: str) -> None:
    res, _ = spec.validate(with_labels(spec, f"          ai.sap.com/resourcePlan: {plan}\n"))
    assert res.errors == [] and res.warnings == [], spec.rules(res)


@pytest.mark.parametrize(("plan", "hint"), [
    ("Starter", "did you mean 'starter'?"),
    ("train.xl", "did you mean 'train.l'?"),
    ("gpu-large", "use one of these"),
], ids=["case", "typo", "unknown"])
def test_unknown_resource_plan_is_a_warning_naming_the_closest(spec, plan: str, hint: str) -> None:
    text = with_labels(spec, f"          ai.sap.com/resourcePlan: {plan}\n")
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["resource.plan-unknown"]
    err = spec.only(res, "resource.plan-unknown")
    spec.assert_at(err, spec.pos(text, plan + "\n"),
                   "/spec/templates/1/metadata/labels/ai.sap.com~1resourcePlan")
    assert err.severity == "warning" and res.ok and err.hint.startswith(hint)


def test_resource_plan_through_a_parameter_default_is_checked(spec) -> None:
    text = spec.edit(with_labels(spec, "          ai.sap.com/resourcePlan: \"{{workflow.parameters.plan}}\"\n"),
                     ('        value: "0.5"\n', '        value: "0.5"\n      - name: plan\n        value: basic.8\n'))
    res, _ = spec.validate(text)
    err = spec.only(res, "resource.plan-unknown")
    spec.assert_at(err, spec.pos(text, '"{{workflow.parameters.plan}}"'),
                   "/spec/templates/1/metadata/labels/ai.sap.com~1resourcePlan")
    assert "'basic.8'" in err.message and "'plan'" in err.message and err.hint == "did you mean 'basic.8x'?"


def test_instance_type_that_is_a_resource_plan_is_a_warning(spec) -> None:
    text = with_labels(spec, "          ai.sap.com/instanceType: infer.s\n")
    res, _ = spec.validate(text)
    err = spec.only(res, "resource.instance-type")
    spec.assert_at(err, spec.pos(text, "infer.s\n"), "/spec/templates/1/metadata/labels/ai.sap.com~1instanceType")
    assert err.severity == "warning" and "ai.sap.com/resourcePlan" in err.hint
    res, _ = spec.validate(with_labels(spec, "          ai.sap.com/instanceType: m7i.xlarge\n"))
    assert res.warnings == [], spec.rules(res)  # instance types are a per-tenant catalogue


def test_serving_resource_plan_in_the_labels_text_is_located_to_its_line(spec) -> None:
    text = spec.edit(spec.VALID_SERVING, ("ai.sap.com/resourcePlan: starter", "ai.sap.com/resourcePlan: infer.xl"))
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["resource.plan-unknown"]
    err = spec.only(res, "resource.plan-unknown")
    spec.assert_at(err, spec.pos(text, "ai.sap.com/resourcePlan: infer.xl"), "/spec/template/metadata/labels")
    assert err.hint == "did you mean 'infer.l'?"


def test_serving_resource_plan_parameter_default_is_checked(spec) -> None:
    text = LEGACY_SERVING.replace("default: starter", "default: strter")
    res, _ = spec.validate(text)
    err = spec.only(res, "resource.plan-unknown")
    spec.assert_at(err, spec.pos(text, "ai.sap.com/resourcePlan"), "/spec/template/metadata/labels")
    assert "'strter'" in err.message and err.hint == "did you mean 'starter'?"


def test_trusted_reload_reads_null_lists_the_same_way(spec) -> None:
    # Git sync re-builds already validated bytes with load_trusted: same data, same digest.
    from orchestrator.spec import load_trusted, validate_text

    text = spec.broken(("    - name: report\n      script:", "    - name: report\n      inputs:\n"
                                                              "        artifacts:\n      script:")).encode()
    checked, trusted = validate_text(text, "wt.yaml"), load_trusted(text, "wt.yaml")
    assert checked.ok and [w.digest for w in checked.workflows] == [w.digest for w in trusted.workflows]
