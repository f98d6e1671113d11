"""schemathesis (4.x) against ``/openapi.json`` of a real ``orchestrator serve`` (reliability.md #17).

Every operation is fuzzed with a fixed Hypothesis seed, bounded example counts, the bearer token
and ``AI-Resource-Group`` on every call:

1. random positive and negative cases as admin in group ``default``;
2. positive cases whose path parameters are the ids of real seeded objects (an execution with
   logs and metrics, a configuration, an artifact, a schedule, secrets), so the 200 bodies are
   checked against the published response schemas too; mutating operations run last;
3. a second token limited to group ``team-b`` fuzzing its own group, and the same token sent
   with ``team-b`` and the seeded ``default`` ids, which must never answer 2xx.

Checks: no 5xx, status codes and content types as documented, bodies conform to the response
schemas. Any failure is listed with the operation and the case's curl command.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.integration.conftest import REPO, ApiServer

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

try:  # which locations of an operation negative mode can break (schemathesis' own rule; private)
    from schemathesis.core.parameters import ParameterLocation
    from schemathesis.specs.openapi._hypothesis import _draw_negated_locations
except ImportError:  # another 4.x layout: every operation is fuzzed in negative mode, as before
    _draw_negated_locations = None

SEED = 20261123
FUZZ_EXAMPLES = 20  # per operation and generation mode
SEEDED_EXAMPLES = 6  # per operation, with real ids
TEAM_B_EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MUTATING_ORDER = {"GET": 0, "POST": 1, "PATCH": 2, "PUT": 2, "DELETE": 3}


class Run:
    """Counts and failures of one fuzzing campaign."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: no proxy / netrc lookups from the environment per request
        self.examples = 0
        self.negative_examples = 0
        self.operations: set[str] = set()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: list[str] = []
        self.not_negatable: list[str] = []

    def fuzz(self, op: Any, headers: dict[str, str], n: int, mode: GenerationMode = GenerationMode.POSITIVE,
             path_parameters: dict[str, str] | None = None, forbid_2xx: bool = False) -> None:
        self.operations.add(op.label)
        if mode == GenerationMode.NEGATIVE and not negatable(op, path_parameters):
            # Nothing to break (e.g. only unconstrained string path parameters): Hypothesis would
            # reject ~460 draws and end Unsatisfiable with no request sent; skip those draws.
            self.not_negatable.append(op.label)
            return

        @seed(SEED)
        @settings(max_examples=n, database=None, deadline=None, derandomize=False, print_blob=False,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        def one(case: Any) -> None:
            self.examples += 1
            self.negative_examples += mode == GenerationMode.NEGATIVE
            try:
                resp = case.call_and_validate(base_url=self.base, headers=headers, session=self.session,
                                              checks=CHECKS, timeout=30)
            except Exception as exc:  # a failed check: record it with the case, keep fuzzing
                self.failures.append(f"{op.label} [{mode.value}]: {str(exc)[:1500]}")
                return
            self.statuses[resp.status_code] += 1
            if forbid_2xx and resp.status_code < 300:
                self.failures.append(f"{op.label}: cross-group request answered {resp.status_code}: "
                                     f"{case.as_curl_command()}")

        try:
            one()
        except Exception as exc:
            # Negative mode cannot negate an operation without constrained inputs: nothing to generate.
            if type(exc).__name__ != "Unsatisfiable":
                self.failures.append(f"{op.label} [{mode.value}] generation: {exc!r}"[:1500])

    def summary(self, name: str) -> str:
        return (f"{name}: {len(self.operations)} operations, {self.examples} examples, "
                f"{len(self.failures)} failures, statuses {dict(sorted(self.statuses.items()))}"
                + (f", {len(self.not_negatable)} with nothing to negate" if self.not_negatable else ""))


def negatable(op: Any, path_parameters: dict[str, str] | None) -> bool:
    """Whether negative mode has a location of ``op`` to break (as schemathesis decides per case)."""
    if _draw_negated_locations is None:
        return True
    explicit = {ParameterLocation.PATH: path_parameters, ParameterLocation.HEADER: None,
                ParameterLocation.COOKIE: None, ParameterLocation.QUERY: None}
    # None: no candidate location; with candidates the draw only picks among them (any pick will do)
    return _draw_negated_locations(lambda strategy: True, op, GenerationMode.NEGATIVE, explicit=explicit,
                                   body_is_generated=True) is not None


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, dict[str, str]]]:
    srv = ApiServer(tmp_path_factory.mktemp("st"), "--workflows", str(REPO / "workflows"))
    try:
        ids = _seed(srv)
        yield srv, ids
    finally:
        srv.stop()


def _ok(answer: tuple[int, dict[str, str], Any], *expected: int) -> Any:
    status, _, body = answer
    assert status in expected, (status, body)
    return body


def _seed(srv: ApiServer) -> dict[str, str]:
    _ok(srv.call("POST", "/v2/admin/resourceGroups", {"resourceGroupId": "team-b"}, rg=None), 202)
    art = _ok(srv.call("POST", "/v2/lm/artifacts", {"name": "ds", "kind": "dataset", "url": "ai://default/data/ds",
                                                     "scenarioId": "orchestrator-demo"}), 201)
    cfg = _ok(srv.call("POST", "/v2/lm/configurations", {"name": "st", "scenarioId": "orchestrator-demo",
                                                          "executableId": "failing-step"}), 201)
    ex = _ok(srv.call("POST", "/v2/lm/executions", {"configurationId": cfg["id"]}), 202)
    sched = _ok(srv.call("POST", "/v2/lm/executionSchedules", {"name": "hourly", "cron": "0 * * * *",
                                                                "configurationId": cfg["id"],
                                                                "status": "INACTIVE"}), 202)
    _ok(srv.call("POST", "/v2/admin/objectStoreSecrets", {"name": "store-a", "type": "GCS", "data": {}}), 202)
    _ok(srv.call("POST", "/v2/admin/secrets", {"name": "sec-a", "data": {"k": "dmFsdWU="}}), 200)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a finished execution with logs
        row = _ok(srv.call("GET", f"/v2/lm/executions/{ex['id']}"), 200)
        if row["status"] in ("COMPLETED", "DEAD", "STOPPED"):
            break
        time.sleep(0.2)
    _ok(srv.call("PATCH", "/v2/lm/metrics", {"executionId": ex["id"], "metrics": [{"name": "acc", "value": 0.5,
                                                                                    "step": 1}],
                                             "tags": [{"name": "t", "value": "v"}],
                                             "customInfo": [{"name": "c", "value": "{}"}]}), 204)
    return {"scenario_id": "orchestrator-demo", "executable_id": "failing-step", "artifact_id": art["id"],
            "configuration_id": cfg["id"], "execution_id": ex["id"], "schedule_id": sched["id"], "rg": "default",
            "name": "store-a", "capability": "not-a-capability"}


def _operations(srv: ApiServer, token: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(srv.base + "/openapi.json", headers={"Authorization": f"Bearer {token}"})
    ops = [result.ok() for result in schema.get_all_operations()]
    return sorted(ops, key=lambda op: (MUTATING_ORDER.get(op.method.upper(), 1), op.path))


def _params(op: Any, ids: dict[str, str]) -> dict[str, str]:
    names = [p.name for p in op.path_parameters]
    if op.path.startswith("/v2/admin/secrets/"):
        return {"name": "sec-a"}
    return {n: ids[n] for n in names if n in ids}


def test_schemathesis_no_server_errors_no_schema_violations(seeded: tuple[ApiServer, dict[str, str]]) -> None:
    srv, ids = seeded
    started = time.monotonic()
    admin = {"Authorization": f"Bearer {srv.token}", "AI-Resource-Group": "default"}
    ops = _operations(srv, srv.token)
    assert len(ops) >= 45, [op.label for op in ops]

    fuzz = Run(srv.base)
    for op in ops:
        if op.path.startswith("/v2/admin/resourceGroups/") and op.method.upper() == "DELETE":
            # Random names only; "default" and "team-b" are kept for the runs below.
            fuzz.fuzz(op, admin, FUZZ_EXAMPLES, path_parameters={"rg": "no-such-group"})
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz.fuzz(op, admin, FUZZ_EXAMPLES, mode)

    real = Run(srv.base)
    for op in ops:
        params = _params(op, ids)
        if op.path_parameters and len(params) == len(list(op.path_parameters)):
            if op.path.startswith("/v2/admin/resourceGroups/") and op.method.upper() == "DELETE":
                continue  # deleting the group in use is refused anyway; keep the run deterministic
            real.fuzz(op, admin, SEEDED_EXAMPLES, path_parameters=params)

    team_token = json.loads(srv.cli("tokens", "create", "--name", "team-b-admin", "--role", "admin",
                                    "--resource-group", "team-b", "--json").stdout)["token"]
    team = {"Authorization": f"Bearer {team_token}", "AI-Resource-Group": "team-b"}
    other = Run(srv.base)
    cross = Run(srv.base)
    for op in _operations(srv, team_token):
        if op.path.startswith("/v2/admin/resourceGroups/") and op.method.upper() == "DELETE":
            other.fuzz(op, team, TEAM_B_EXAMPLES, path_parameters={"rg": "no-such-group"})
        else:
            other.fuzz(op, team, TEAM_B_EXAMPLES)
        params = _params(op, ids)
        if op.path.startswith("/v2/lm/") and op.path_parameters and len(params) == len(list(op.path_parameters)):
            cross.fuzz(op, team, 3, path_parameters=params, forbid_2xx=True)

    elapsed = time.monotonic() - started
    report = "\n".join(r.summary(name) for name, r in (("fuzz (admin, default)", fuzz),
                                                         ("real ids (admin, default)", real),
                                                         ("team-b token", other),
                                                         ("team-b token, default ids", cross)))
    print(f"\nschemathesis seed {SEED}, {elapsed:.1f} s\n{report}")
    failures = fuzz.failures + real.failures + other.failures + cross.failures
    assert not failures, report + "\n\n" + "\n\n".join(failures[:20])
    assert sum(r.statuses[s] for r in (fuzz, real, other, cross) for s in range(500, 600)) == 0
    assert real.statuses[200] >= 10  # the real-id run reached real objects
    assert fuzz.examples > 500  # Hypothesis stops early where an operation has little to vary
    # most operations have something to negate, and negative cases were sent for them
    assert len(fuzz.not_negatable) < len(ops) / 2 and fuzz.negative_examples > 500, fuzz.not_negatable
    assert "Traceback" not in srv.output(), srv.output()[-3000:]
