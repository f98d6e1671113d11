"""Helpers for the spec-layer tests: one valid template, edits that break one thing, positions.

Everything a test needs comes from the ``spec`` fixture so the template text lives in one place.
Expected positions are computed from the YAML text the test wrote (``Spec.pos``), never taken
from the loader, so a wrong position reported by the validator fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import Result, validate_paths

# A valid AI Core WorkflowTemplate that exercises most features: workflow parameters, a DAG with
# dependencies, task outputs, artifacts fed with ``from:``, an executable input artifact and a
# globalName output, both with kind annotations. Each test breaks exactly one thing in it.
VALID = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: demo-train
  labels:
    scenarios.ai.sap.com/id: demo-scenario
    ai.sap.com/version: "1.0.0"
    executables.ai.sap.com/id: demo-train
  annotations:
    scenarios.ai.sap.com/name: Demo scenario
    executables.ai.sap.com/name: Demo training
    artifacts.ai.sap.com/dataset.kind: dataset
    artifacts.ai.sap.com/model.kind: model
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: alpha
        value: "0.5"
  templates:
    - name: main
      dag:
        tasks:
          - name: prepare
            template: prepare
            arguments:
              parameters:
                - name: alpha
                  value: "{{workflow.parameters.alpha}}"
          - name: train
            template: train
            dependencies: [prepare]
            arguments:
              parameters:
                - name: rows
                  value: "{{tasks.prepare.outputs.parameters.rows}}"
              artifacts:
                - name: data
                  from: "{{tasks.prepare.outputs.artifacts.data}}"
          - name: report
            template: report
            dependencies: [train]
    - name: prepare
      inputs:
        parameters:
          - name: alpha
        artifacts:
          - name: dataset
            path: /app/input
      outputs:
        parameters:
          - name: rows
            valueFrom:
              path: /tmp/rows
        artifacts:
          - name: data
            path: /app/data
      container:
        image: python:3.11-slim
        command: [python3, -c]
        args: ["print(1)"]
        env:
          - name: ALPHA
            value: "{{inputs.parameters.alpha}}"
    - name: train
      inputs:
        parameters:
          - name: rows
        artifacts:
          - name: data
            path: /app/data
      outputs:
        artifacts:
          - name: model
            globalName: model
            path: /app/model
      container:
        image: python:3.11-slim
        command: [python3, /app/train.py]
        env:
          - name: ROWS
            value: "{{inputs.parameters.rows}}"
    - name: report
      script:
        image: python:3.11-slim
        command: [python3]
        source: |
          print("done")
"""

# A valid ServingTemplate (reference §1.1/§1.3 rule 7: artifact names without '-').
VALID_SERVING = """\
apiVersion: ai.sap.com/v1alpha1
kind: ServingTemplate
metadata:
  name: demo-serve
  labels:
    scenarios.ai.sap.com/id: demo-scenario
    ai.sap.com/version: "1.0.0"
  annotations:
    scenarios.ai.sap.com/name: Demo scenario
    executables.ai.sap.com/name: Demo serving
    artifacts.ai.sap.com/houseModel.kind: model
spec:
  inputs:
    parameters:
      - name: replicas
        default: "1"
    artifacts:
      - name: houseModel
  template:
    apiVersion: serving.kserve.io/v1beta1
    metadata:
      labels: |
        ai.sap.com/resourcePlan: starter
    spec: |
      predictor:
        minReplicas: {{inputs.parameters.replicas}}
        containers:
        - name: kserve-container
          image: example/house:1
          env:
            - name: STORAGE_URI
              value: "{{inputs.artifacts.houseModel}}"
"""


class Spec:
    """Write templates to a temporary directory and validate them."""

    VALID = VALID
    VALID_SERVING = VALID_SERVING

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    @staticmethod
    def edit(text: str, *edits: tuple[str, str]) -> str:
        """Apply ``(old, new)`` replacements; each ``old`` must occur exactly once."""
        for old, new in edits:
            count = text.count(old)
            assert count == 1, f"edit target occurs {count} times: {old!r}"
            text = text.replace(old, new)
        return text

    def broken(self, *edits: tuple[str, str], base: str = VALID) -> str:
        return self.edit(base, *edits)

    def write(self, name: str, text: str | bytes) -> str:
        path = self.tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return str(path)

    def validate(self, text: str, name: str = "wt.yaml") -> tuple[Result, str]:
        """Write one file and ``validate_paths`` it; returns (result, path)."""
        path = self.write(name, text)
        return validate_paths([path]), path

    @staticmethod
    def pos(text: str, needle: str, nth: int = 1, shift: int = 0) -> tuple[int, int]:
        """1-based (line, col) of the ``nth`` occurrence of ``needle`` in ``text`` (+ ``shift`` chars)."""
        idx = -1
        for _ in range(nth):
            idx = text.index(needle, idx + 1)
        idx += shift
        line = text.count("\n", 0, idx) + 1
        col = idx - (text.rfind("\n", 0, idx) + 1) + 1
        return line, col

    @staticmethod
    def named(name: str, base: str = VALID) -> str:
        """``base`` with executable id ``demo-train`` (metadata.name and id label) renamed."""
        assert base.count("demo-train") == 2
        return base.replace("demo-train", name)

    @staticmethod
    def rules(res: Result) -> list[str]:
        """Sorted rule codes of every error and warning."""
        return sorted(e.rule for e in res.errors + res.warnings)

    @staticmethod
    def errors(res: Result, rule: str) -> list[SpecError]:
        return [e for e in res.errors + res.warnings if e.rule == rule]

    @classmethod
    def only(cls, res: Result, rule: str) -> SpecError:
        """The single problem with ``rule``; fails with every problem listed otherwise."""
        found = cls.errors(res, rule)
        listing = "\n".join(e.format() for e in res.errors + res.warnings)
        assert len(found) == 1, f"expected exactly one {rule}, got {len(found)}:\n{listing}"
        return found[0]

    @classmethod
    def assert_at(cls, err: SpecError, line_col: tuple[int, int], pointer: str) -> None:
        assert ((err.line, err.col), err.pointer) == (line_col, pointer), err.format()


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    return Spec(tmp_path)
