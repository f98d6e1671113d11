"""Image references (finding 2): the grammar, the located ``image.invalid`` error, and the
launchers that re-check the resolved value before an engine ever sees it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.spec.image_ref import check_image, image_problem

DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize("ref", ["python:3.11-slim", "docker.io/library/alpine:3.19",
                                 f"localhost:5000/team/img@sha256:{DIGEST}", "ghcr.io/a/b-c_d.e:tag",
                                 "busybox", "registry.example.com:443/x/y:1.0@sha256:" + DIGEST])
def test_good_references(ref: str) -> None:
    assert image_problem(ref) is None
    assert check_image(ref, "step 'a'") == ref


@pytest.mark.parametrize("ref", ["--privileged", "a b", "-x", "UPPER/case", "", "img:", "a//b",
                                 "img@sha256:abc", "img\n", "img:" + "t" * 129, "Python"])
def test_bad_references(ref: str) -> None:
    assert image_problem(ref) is not None
    with pytest.raises(OrchestratorError):
        check_image(ref, "step 'a'")


def test_a_placeholder_passes_validation_but_not_a_run() -> None:
    ref = "ghcr.io/team/img:{{ inputs.parameters.tag }}"
    assert image_problem(ref, placeholders=True) is None
    assert image_problem(ref) is not None  # unresolved at run time: refused
    assert image_problem("--privileged{{x}}", placeholders=True) is not None


def test_validation_reports_image_invalid_where_it_is(spec) -> None:
    text = spec.VALID.replace("image: python:3.11-slim", 'image: "--privileged"', 1)
    res, _ = spec.validate(text)
    errs = spec.errors(res, "image.invalid")
    assert len(errs) == 1 and errs[0].severity == "error"
    assert (errs[0].line, errs[0].col) == spec.pos(text, '"--privileged"')


def test_a_serving_templates_hostile_image_is_an_error(spec) -> None:
    assert "image: example/house:1" in spec.VALID_SERVING
    text = spec.VALID_SERVING.replace("image: example/house:1", 'image: "--privileged"', 1)
    errs = spec.errors(spec.validate(text)[0], "image.invalid")
    assert len(errs) == 1 and errs[0].severity == "error"
    assert errs[0].line == spec.pos(text, "--privileged")[0]
    assert not spec.errors(spec.validate(spec.VALID_SERVING)[0], "image.invalid")


@pytest.fixture()
def fake_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``podman`` on PATH that records every call (it must record none for a hostile image)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "engine.log"
    (bindir / "podman").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n"
                                   "case \"$1\" in version) echo 4.9.0;; info) echo '{{}}';; esac\nexit 0\n")
    os.chmod(bindir / "podman", 0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR", raising=False)
    return log


def test_the_executor_refuses_a_hostile_image_before_any_engine_call(fake_engine: Path) -> None:
    from orchestrator.run.container import ContainerExecutor
    from orchestrator.run.container_spec import ContainerExtras

    ex = ContainerExecutor("podman")
    fake_engine.unlink(missing_ok=True)
    with pytest.raises(OrchestratorError, match="refused"):
        ex._check_non_root("s", "--privileged", ContainerExtras(run_as_non_root=True))
    assert not fake_engine.exists()


def test_the_deployment_launcher_refuses_a_hostile_image(fake_engine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.control.deploy_container import container_launch

    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "podman")
    with pytest.raises(OrchestratorError, match="refused"):
        container_launch({"image": "--privileged", "args": ["--volume=/:/host", "alpine"]}, {}, lambda e: "",
                         "", "m", "c", "d", "t")
    assert not fake_engine.exists()
