"""Fields AI Core forbids or makes pointless: one located ``aicore.unsupported`` error each, saying
so and what to do instead, in place of the generic ``argo.unsupported-field``."""

from __future__ import annotations

import pytest

from orchestrator.spec import aicore_refusals

WF = "  entrypoint: main\n"
TRAIN = "    - name: train\n      inputs:"
PREP_OUT = "          - name: data\n            path: /app/data\n      container:"
PREP_IN = "          - name: dataset\n            path: /app/input\n"
TRAIN_ENV = "          - name: ROWS\n            value: \"{{inputs.parameters.rows}}\"\n"


# (edit, the key the error points at, its pointer, a word the hint must contain)
CASES = {
    "podSpecPatch": ((TRAIN, "    - name: train\n      podSpecPatch: '{}'\n      inputs:"),
                     "podSpecPatch", "/spec/templates/2/podSpecPatch", "resourcePlan"),
    "podSpecPatch-workflow": ((WF, WF + "  podSpecPatch: '{}'\n"), "podSpecPatch", "/spec/podSpecPatch",
                              "resourcePlan"),
    "nodeSelector": ((TRAIN, "    - name: train\n      nodeSelector: {gpu: 'yes'}\n      inputs:"),
                     "nodeSelector", "/spec/templates/2/nodeSelector", "resourcePlan"),
    "resource-template": ((TRAIN, "    - name: train\n      resource: {action: create, manifest: x}\n      inputs:"),
                          "resource", "/spec/templates/2/resource", "container step"),
    "plugin-template": ((TRAIN, "    - name: train\n      plugin: {hello: {}}\n      inputs:"),
                        "plugin", "/spec/templates/2/plugin", "container step"),
    "metrics": ((WF, WF + "  metrics: {prometheus: []}\n"), "metrics", "/spec/metrics", "tracking"),
    "podGC": ((WF, WF + "  podGC: {strategy: OnPodSuccess}\n"), "podGC", "/spec/podGC", "remove"),
    "dnsConfig": ((WF, WF + "  dnsConfig: {nameservers: [1.2.3.4]}\n"), "dnsConfig", "/spec/dnsConfig", "remove"),
    "hostNetwork": ((WF, WF + "  hostNetwork: true\n"), "hostNetwork", "/spec/hostNetwork", "remove"),
    "serviceAccountName": ((WF, WF + "  serviceAccountName: admin\n"), "serviceAccountName",
                           "/spec/serviceAccountName", "generic secret"),
    "artifactRepositoryRef": ((WF, WF + "  artifactRepositoryRef: {key: x}\n"), "artifactRepositoryRef",
                              "/spec/artifactRepositoryRef", "default"),
    "s3-output": ((PREP_OUT, "          - name: data\n            path: /app/data\n            s3: {key: k}\n"
                             "      container:"), "s3", "/spec/templates/1/outputs/artifacts/0/s3", "globalName"),
    "plugin-artifact": ((PREP_OUT, "          - name: data\n            path: /app/data\n            plugin: {name: my-plugin}\n"
                                   "      container:"), "plugin", "/spec/templates/1/outputs/artifacts/0/plugin",
                        "globalName"),
    "semaphore": ((WF, WF + "  synchronization:\n    semaphores:\n      - configMapKeyRef: {name: cm, key: k}\n"),
                  "configMapKeyRef", "/spec/synchronization/semaphores/0/configMapKeyRef", "mutexes"),
    "git-input": ((PREP_IN, PREP_IN + "            git: {repo: 'https://example.org/r.git'}\n"), "git",
                  "/spec/templates/1/inputs/artifacts/0/git", "configuration"),
    "hostPath-volume": ((WF, WF + "  volumes:\n    - name: v\n      hostPath: {path: /}\n"), "hostPath",
                        "/spec/volumes/0/hostPath", "emptyDir"),
    "pvc-volume": ((WF, WF + "  volumes:\n    - name: v\n      persistentVolumeClaim: {claimName: c}\n"),
                   "persistentVolumeClaim", "/spec/volumes/0/persistentVolumeClaim", "volumeClaimTemplates"),
    "configMapKeyRef-param": (("        value: \"0.5\"\n",
                               "        valueFrom: {configMapKeyRef: {name: cm, key: k}}\n"),
                              "configMapKeyRef", "/spec/arguments/parameters/0/valueFrom/configMapKeyRef",
                              "generic secret"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_field_ai_core_forbids_is_refused_with_its_reason(spec, case: str) -> None:
    edit, key, pointer, hint_word = CASES[case]
    text = spec.broken(edit)
    res, _ = spec.validate(text)
    assert "aicore.unsupported" in spec.rules(res), [e.format() for e in res.errors]
    err = next(e for e in res.errors if e.rule == "aicore.unsupported")
    spec.assert_at(err, spec.pos(text, key + ":"), pointer)  # the key itself
    assert err.message.startswith("AI Core does not support") and err.severity == "error"
    assert hint_word in err.hint
    # the AI Core reason replaces the generic "unsupported field" at the same place
    assert not [e for e in res.errors if e.rule == "argo.unsupported-field" and e.pointer == pointer]
    assert not res.ok and not res.workflows


def test_a_resource_template_is_not_also_a_template_kind_error(spec) -> None:
    res, _ = spec.validate(spec.broken((
        "    - name: report\n      script:\n        image: python:3.11-slim\n        command: [python3]\n"
        "        source: |\n          print(\"done\")\n",
        "    - name: report\n      resource: {action: create, manifest: x}\n")))
    assert spec.rules(res) == ["aicore.unsupported"], [e.format() for e in res.errors]


def test_every_refusal_of_one_file_comes_at_once(spec) -> None:
    text = spec.broken((WF, WF + "  podGC: {strategy: OnPodSuccess}\n  dnsConfig: {}\n"),
                       (TRAIN, "    - name: train\n      podSpecPatch: '{}'\n      inputs:"))
    res, _ = spec.validate(text)
    assert sorted(e.pointer for e in res.errors if e.rule == "aicore.unsupported") == \
        ["/spec/dnsConfig", "/spec/podGC", "/spec/templates/2/podSpecPatch"]


def test_a_steps_argument_artifact_from_s3_is_refused(spec) -> None:
    text = spec.broken(("                  from: \"{{tasks.prepare.outputs.artifacts.data}}\"\n",
                        "                  s3: {key: data.csv}\n"))
    res, _ = spec.validate(text)
    ptr = "/spec/templates/0/dag/tasks/1/arguments/artifacts/0/s3"
    assert ptr in [e.pointer for e in res.errors if e.rule == "aicore.unsupported"], \
        [e.format() for e in res.errors]


def test_a_container_without_command_says_ai_core_requires_it(spec) -> None:
    text = spec.broken(("        command: [python3, /app/train.py]\n", ""))
    res, _ = spec.validate(text)
    err = spec.only(res, "container.no-command")
    assert "AI Core requires a command" in err.message and "command" in err.hint


def test_a_container_set_container_without_command_is_refused(spec) -> None:
    text = spec.broken(("    - name: report\n      script:\n        image: python:3.11-slim\n        command: [python3]\n"
                        "        source: |\n          print(\"done\")\n",
                        "    - name: report\n      containerSet:\n        containers:\n          - name: main\n"
                        "            image: busybox\n            command: [echo]\n          - name: b\n"
                        "            image: busybox\n"))
    res, _ = spec.validate(text)
    err = spec.only(res, "container.no-command")
    spec.assert_at(err, spec.pos(text, "name: b", shift=0), "/spec/templates/3/containerSet/containers/1")
    assert "AI Core requires a command" in err.message and "'b'" in err.message


@pytest.mark.parametrize("edit", [
    ("        command: [python3, /app/train.py]\n",  # a feature, not an AI Core refusal
     "        command: [python3, /app/train.py]\n        volumeMounts: [{name: work, mountPath: /work}]\n"),
    (TRAIN_ENV, TRAIN_ENV + "          - name: S\n            valueFrom: {secretKeyRef: {name: s, key: k}}\n"),
], ids=["volumeMounts", "secretKeyRef"])
def test_fields_ai_core_allows_get_no_ai_core_error(spec, edit: tuple[str, str]) -> None:
    res, _ = spec.validate(spec.broken(edit))
    assert "aicore.unsupported" not in spec.rules(res)


def test_volume_claim_templates_are_not_refused_for_ai_core() -> None:
    # SAP documents PVCs for more disk (choose-a-resource-plan): a missing feature, not a refusal
    assert "volumeClaimTemplates" not in {**aicore_refusals.POD_FIELDS, **aicore_refusals.WORKFLOW_FIELDS,
                                          **aicore_refusals.TEMPLATE_FIELDS}
