"""Environment from generic secrets (issue item 6, spec side): accepted and built, never refused.

``env[].valueFrom.secretKeyRef`` and ``envFrom[].secretRef`` are what AI Core's generic secrets
(``/v2/admin/secrets``) are for; whether a secret exists is known only when a run starts, so
validation never fails on it. The downward API (``fieldRef``) runs on AI Core but not locally: a
warning. ``configMapKeyRef`` needs a ConfigMap no AI Core user can create: still an error.
"""

from __future__ import annotations

from orchestrator.model import SecretEnv, SecretEnvFrom

TRAIN_ENV = '''        env:
          - name: ROWS
            value: "{{inputs.parameters.rows}}"
'''
TRAIN = "/spec/templates/2/container"


def with_env(spec, extra: str, *, after: str = TRAIN_ENV) -> str:
    return spec.broken((after, after + extra))


def test_secret_key_ref_is_accepted_and_built(spec) -> None:
    text = with_env(spec, '''          - name: API_KEY
            valueFrom:
              secretKeyRef: {name: my-secret, key: api-key}
          - name: TOKEN
            valueFrom:
              secretKeyRef: {name: other, key: token, optional: true}
''')
    res, _ = spec.validate(text)
    assert res.errors == [] and res.warnings == [], spec.rules(res)
    c = res.workflows[0].templates["train"].container
    assert c is not None
    assert c.env_secrets == (SecretEnv("API_KEY", "my-secret", "api-key", False),
                             SecretEnv("TOKEN", "other", "token", True))
    assert c.env == (("ROWS", "{{inputs.parameters.rows}}"),)  # secrets never land in plain env


def test_env_from_secret_ref_with_prefix_is_accepted_and_built(spec) -> None:
    text = with_env(spec, '''        envFrom:
          - secretRef: {name: db-credentials}
            prefix: DB_
          - secretRef: {name: extra, optional: true}
''')
    res, _ = spec.validate(text)
    assert res.errors == [] and res.warnings == [], spec.rules(res)
    c = res.workflows[0].templates["train"].container
    assert c is not None and c.env_from_secrets == (SecretEnvFrom("db-credentials", "DB_", False),
                                                    SecretEnvFrom("extra", "", True))


def test_script_templates_take_secrets_too(spec) -> None:
    script_env = ("        env:\n          - name: K\n            valueFrom: {secretKeyRef: {name: s, key: k}}\n"
                  "        envFrom: [{secretRef: {name: s2}}]\n")
    text = spec.broken(("        command: [python3]\n", "        command: [python3]\n" + script_env))
    res, _ = spec.validate(text)
    assert res.errors == [] and res.warnings == [], spec.rules(res)
    c = res.workflows[0].templates["report"].container
    assert c is not None and c.source is not None
    assert (c.env_secrets, c.env_from_secrets) == ((SecretEnv("K", "s", "k"),), (SecretEnvFrom("s2"),))


def test_real_world_cloud_connector_template_validates(spec) -> None:
    # SAP-samples/ai-core-samples 06_Cloud_Connector_Demo/templates/complete.yaml (reference §2 #5).
    text = with_env(spec, '''          - name: CP_CLIENT_SECRET
            valueFrom:
              secretKeyRef:
                name: cp-service-key
                key: clientsecret
''')
    res, _ = spec.validate(text)
    assert spec.rules(res) == [] and res.ok


def test_placeholder_in_a_secret_reference_must_resolve(spec) -> None:
    text = with_env(spec, '''          - name: API_KEY
            valueFrom:
              secretKeyRef: {name: "{{inputs.parameters.row}}", key: k}
''')
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["placeholder.unknown"]
    err = spec.only(res, "placeholder.unknown")
    spec.assert_at(err, spec.pos(text, '"{{inputs.parameters.row}}"'), f"{TRAIN}/env/1/valueFrom/secretKeyRef/name")


def test_field_ref_is_a_warning_not_supported_locally(spec) -> None:
    text = with_env(spec, '''          - name: POD
            valueFrom:
              fieldRef: {fieldPath: metadata.name}
''')
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["env.unsupported-locally"]
    err = spec.only(res, "env.unsupported-locally")
    spec.assert_at(err, spec.pos(text, "fieldRef"), f"{TRAIN}/env/1/valueFrom/fieldRef")
    assert err.severity == "warning" and res.ok and "'POD'" in err.message
    c = res.workflows[0].templates["train"].container
    assert c is not None and [n for n, _ in c.env] == ["ROWS"] and c.env_secrets == ()


def test_config_map_key_ref_stays_an_error(spec) -> None:
    text = with_env(spec, '''          - name: CONF
            valueFrom:
              configMapKeyRef: {name: cm, key: k}
''')
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["aicore.unsupported"]
    err = spec.only(res, "aicore.unsupported")
    spec.assert_at(err, spec.pos(text, "configMapKeyRef"), f"{TRAIN}/env/1/valueFrom/configMapKeyRef")
    assert "secretKeyRef" in err.hint and "AI Core" in err.message and not res.ok


def test_env_from_config_map_stays_an_error(spec) -> None:
    text = with_env(spec, "        envFrom:\n          - configMapRef: {name: cm}\n")
    res, _ = spec.validate(text)
    err = spec.only(res, "aicore.unsupported")
    spec.assert_at(err, spec.pos(text, "configMapRef"), f"{TRAIN}/envFrom/0/configMapRef")


def test_secret_key_ref_without_key_is_a_schema_error(spec) -> None:
    text = with_env(spec, '''          - name: API_KEY
            valueFrom:
              secretKeyRef: {name: s}
''')
    res, _ = spec.validate(text)
    assert spec.rules(res) == ["schema.required"]
    err = spec.only(res, "schema.required")
    spec.assert_at(err, spec.pos(text, "{name: s}"), f"{TRAIN}/env/1/valueFrom/secretKeyRef")
    assert "'key'" in err.message
