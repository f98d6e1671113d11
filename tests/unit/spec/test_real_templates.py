"""Real public AI Core templates (tests/fixtures/real_templates, sources in its README) get the
verdict AI Core would give them: accepted (maybe with warnings) unless AI Core itself would refuse
or mis-run them. Each case lists the exact error and warning rule codes. ``security.*`` findings
are left out: they judge the user's code, not AI Core's acceptance, and have their own tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.spec import validate_paths

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "real_templates"
LEGACY_SERVING = ["serving.legacy-api-version", "serving.legacy-field", "serving.legacy-predictor",
                  "serving.legacy-predictor", "serving.legacy-predictor"]

CASES = [
    # (files validated together, error rules, warning rules), sorted rule codes
    (["ai-core-samples/hello_pipeline.yaml"], [], []),
    # env from generic secrets: before, three env.secret-unsupported errors
    (["ai-core-samples/complete.yaml"], [], []),
    # KFServing v1alpha2 (input of SAP's migration script): legacy forms are warnings; placeholders
    # naming undeclared parameters stay errors (AI Core's rendering fails on them)
    (["ai-core-samples/st_v1alpha2.yaml"], ["placeholder.unknown"] * 3, LEGACY_SERVING),
    # KServe with the KFServing container name; "starter # computing power" is the plan starter
    (["ai-core-samples/house-price-server.yaml"], [], ["image.invalid", "serving.legacy-predictor"]),
    # serving template without apiVersion, spec.imagePullSecrets, no scenario name of its own
    (["restaurant-inspections/serve.yaml", "restaurant-inspections/train.yaml"], [],
     ["annotation.name-missing", "image.invalid", "image.invalid"] + LEGACY_SERVING),  # image: <DOCKER-...-REPO>
    # annotation for a non-existent artifact with an invalid kind; id label != metadata.name
    (["btp-industry-use-cases/energy-forecast-train.yaml"], [],
     ["artifact.annotation-unknown", "label.executable-id-mismatch"]),
    # "artifacts:" with nothing after it
    (["btp-industry-use-cases/continuous-monitoring.yaml"], [], []),
    # description on Argo input artifacts
    (["btp-industry-use-cases/continuous-training-delivery.yaml"], [], ["label.executable-id-mismatch"]),
    (["btp-ai-sustainability-bootcamp/training_workflow.yaml"], [],
     ["artifact.annotation-unknown", "artifact.annotation-unknown"]),
]


@pytest.mark.parametrize(("files", "errors", "warnings"), CASES, ids=[c[0][0] for c in CASES])
def test_real_template_verdict(files: list[str], errors: list[str], warnings: list[str]) -> None:
    res = validate_paths([str(FIXTURES / f) for f in files])
    listing = "\n".join(e.format() for e in res.errors + res.warnings)
    assert sorted(e.rule for e in res.errors) == errors, listing
    assert sorted(w.rule for w in res.warnings if not w.rule.startswith("security.")) == warnings, listing
    assert all(e.severity == "error" for e in res.errors) and all(w.severity == "warning" for w in res.warnings)
    if not errors:
        assert len(res.workflows) == len(files) and res.ok


def test_serving_name_annotation_alone_is_still_an_error() -> None:
    # Without the training template no template names the scenario: AI Core cannot list it.
    res = validate_paths([str(FIXTURES / "restaurant-inspections/serve.yaml")])
    assert [e.rule for e in res.errors] == ["annotation.name-missing"]
    assert (res.errors[0].line, res.errors[0].col, res.errors[0].pointer) == (6, 5, "/metadata/annotations")


def test_every_fixture_is_listed_in_the_readme() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.yaml"))
    assert files and all(f"`{f}`" in readme for f in files)
    assert sorted({f for case in CASES for f in case[0]}) == files
