"""The quick schema check (spec/schema_quick.py) against ``jsonschema``'s own verdict.

Every shipped and test document (workflows/, tests/conformance, tests/fixtures) and deterministic
mutants of each (a value replaced by another type, emptied, a key removed, an unknown key added)
are judged by both. The quick check may say "cannot tell" (None), never the opposite of
``jsonschema``; and it must decide every valid shipped document, or it would save nothing.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.spec import schema, shape
from orchestrator.spec.azureml import SCHEMAS, job_kind
from orchestrator.spec.schema_quick import is_valid
from orchestrator.spec.yamlsafe import load_bytes, load_file

REPO = Path(__file__).resolve().parents[3]
FILES = sorted(p for d in ("workflows", "tests/conformance", "tests/fixtures") for p in (REPO / d).rglob("*")
               if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
INLINE = """\
apiVersion: orchestrator/v1
kind: Configuration
metadata: {name: train-cfg, labels: {team: ml, tier: 2, on: true}}
spec:
  scenarioId: demo
  executableId: demo-train
  parameterBindings: [{key: alpha, value: "0.5"}, {key: epochs, value: 3}, {key: fast, value: false}]
  inputArtifactBindings: [{key: dataset, artifactId: a1}, {key: model, url: "models:/m@champion"}]
---
apiVersion: orchestrator/v1
kind: ExecutionSchedule
metadata: {name: nightly}
spec: {cron: "0 2 * * *", timezone: Europe/Berlin, configurationName: train-cfg, catchup: latest,
       maxCatchup: 3, concurrency: Forbid, status: ACTIVE, start: "2026-01-01T00:00:00Z", slotParameter: day}
---
apiVersion: orchestrator/v1
kind: ExecutionSchedule
metadata: {name: hourly}
spec: {cron: "@hourly", configurationId: c-123}
"""
REPLACEMENTS: list[Any] = [None, True, False, 0, 1, -1, 1.5, 2.0, 10**6, "", "x", "1", "$(x)", "a b/c!", "x" * 300,
                           [], [None], ["x"], {}, {"zzUnknown": 1}, {"name": "x"}]
# Every keyword our schemas use, on small schemas: the verdict must be jsonschema's, and decided.
KEYWORD_CASES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "integer"}, [1, 1.0, 1.5, True, "1", None]),
    ({"type": ["string", "number", "boolean"]}, ["x", 0, 2.5, False, None, [], {}]),
    ({"type": "null"}, [None, 0, ""]),
    ({"enum": ["a", 1, None, [1, 2]]}, ["a", 1, 1.0, True, None, [1, 2], [1.0, 2], [True, 2], "b"]),
    ({"const": False}, [False, 0, 0.0, None]),
    ({"const": {"a": [1]}}, [{"a": [1]}, {"a": [True]}, {"a": [1], "b": 1}, {}]),
    ({"minLength": 2, "maxLength": 3}, ["", "ab", "abcd", 12345, None]),
    ({"pattern": "^[a-z]+$"}, ["abc", "ab1", "", 5]),
    ({"minimum": 1, "maximum": 3}, [0, 1, 3, 3.5, "9", True]),
    ({"exclusiveMinimum": 0}, [0, 0.1, -1, False]),
    ({"minItems": 1, "maxItems": 2}, [[], [1], [1, 2, 3], "ab"]),
    ({"minProperties": 1, "maxProperties": 1}, [{}, {"a": 1}, {"a": 1, "b": 2}, []]),
    ({"required": ["a"], "properties": {"a": {"type": "string"}}, "additionalProperties": False},
     [{"a": "x"}, {"a": 1}, {}, {"a": "x", "b": 1}, "x"]),
    ({"additionalProperties": {"type": "integer"}}, [{"a": 1}, {"a": "x"}, {}]),
    ({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, [["a", 1], [1, 1], ["a", "b"], []]),
    ({"prefixItems": [{"type": "string"}], "items": False}, [["a"], ["a", 1], []]),
    ({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, [{"a": 1}, {"b": 1}, {"a": 1, "b": 1}, {}]),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, ["x", 1, 1.5]),
    ({"$defs": {"n": {"type": "string", "minLength": 1}}, "properties": {"a": {"$ref": "#/$defs/n"}}},
     [{"a": "x"}, {"a": ""}, {"a": 1}]),
    ({"format": "date-time", "type": "string"}, ["not a date", "2026-01-01T00:00:00Z"]),
]


def _documents() -> list[tuple[str, str, Any]]:
    """(file, schema name, data as check() sees it) of every document of a known kind."""
    found = [(str(p.relative_to(REPO)), d) for p in FILES for d in load_file(str(p))[0]]
    found += [("inline", d) for d in load_bytes(INLINE.encode(), "inline.yaml")[0]]
    out = []
    for file, doc in found:
        d = doc.data
        if not isinstance(d, dict):
            continue
        kind = job_kind(d)
        name = SCHEMAS.get(kind or "") or schema.KINDS.get((d.get("apiVersion"), d.get("kind")))  # type: ignore[arg-type]
        if name is None:
            continue
        if kind is None:
            shape.normalize(doc, name)
        out.append((file, name, doc.data))
    return out


def _paths(data: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, at + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, at + (i,))
    return out


def _mutants(data: Any, rng: random.Random, n: int) -> list[Any]:
    paths = [p for p in _paths(data) if p]
    out = []
    for _ in range(n):
        path = rng.choice(paths)
        m = copy.deepcopy(data)
        parent = m
        for k in path[:-1]:
            parent = parent[k]
        how = rng.randrange(4)
        if how == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif how == 1 and isinstance(parent, dict):
            parent["zzUnknown" + str(rng.randrange(3))] = rng.choice(REPLACEMENTS)
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        out.append(m)
    return out


DOCS = _documents()


def test_the_corpus_covers_every_schema() -> None:
    assert {name for _f, name, _d in DOCS} == set(schema.KINDS.values()) | set(SCHEMAS.values())


@pytest.mark.parametrize("name", sorted(set(schema.KINDS.values()) | set(SCHEMAS.values())))
def test_quick_check_agrees_with_jsonschema(name: str) -> None:
    rng = random.Random(15)
    full = schema.validator(name)
    decided = disagreements = 0
    for file, kind, data in DOCS:
        if kind != name:
            continue
        truth = full.is_valid(data)
        quick = is_valid(data, schema.document(name))
        if truth:  # a valid shipped document must be decided: the point of the quick check
            assert quick is True, file
        else:
            assert quick in (False, None), file
        for m in _mutants(data, rng, 40):
            truth, quick = full.is_valid(m), is_valid(m, schema.document(name))
            if quick is not None:
                decided += 1
                disagreements += quick != truth
                assert quick == truth, (file, json.dumps(m, default=str)[:2000])
    assert decided > 0 and disagreements == 0


@pytest.mark.parametrize("case", range(len(KEYWORD_CASES)))
def test_each_keyword_as_jsonschema_reads_it(case: int) -> None:
    import jsonschema

    sch, instances = KEYWORD_CASES[case]
    sch = {"$schema": "https://json-schema.org/draft/2020-12/schema", **sch}
    full = jsonschema.Draft202012Validator(sch)
    assert [is_valid(i, sch) for i in instances] == [full.is_valid(i) for i in instances]


def test_undecidable_inputs_fall_back() -> None:
    import datetime

    s = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert is_valid({"a": datetime.date(2026, 1, 1)}, s) is None  # a YAML timestamp: not plain JSON
    assert is_valid({"a": "x"}, {"type": "object", "unevaluatedProperties": False}) is None  # unknown keyword
    assert is_valid({"a": "x"}, {"$ref": "other.json#/x"}) is None  # not a local pointer
    assert is_valid({1: "x"}, {"type": "object"}) is None


def test_our_schemas_are_valid_schemas() -> None:
    """The validators are built without ``check_schema``: the schemas are checked here once."""
    import jsonschema

    for name in sorted(set(schema.KINDS.values()) | set(SCHEMAS.values())):
        doc = schema.document(name)
        jsonschema.validators.validator_for(doc).check_schema(doc)


def test_validating_valid_files_does_not_import_jsonschema() -> None:
    code = ("import sys; from orchestrator.spec import validate_paths; "
            f"r = validate_paths([{str(REPO / 'workflows')!r}]); "
            "assert r.ok and r.workflows and r.sweeps, r.errors; print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
