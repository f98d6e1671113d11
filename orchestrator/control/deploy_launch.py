"""What a deployment runs: its ServingTemplate and configuration turned into one predictor command.

Owns: reading the KServe predictor out of a stored ServingTemplate (``predictor.containers[0]``,
the legacy ``custom.container`` and ``default.predictor`` shapes, a model spec such as
``predictor.sklearn.storageUri``), rendering its placeholders from the configuration (parameters:
bindings over defaults; artifacts: the bound artifact's local path), and choosing how it runs:

* a container with a ``command``/``args`` is the user's own server: that command, rendered with
  :func:`orchestrator.plan.splice.render` (a value never changes a command's structure), with
  ``PORT`` (Knative/KServe's convention; ``$(PORT)`` in its args expands as Kubernetes does), ``HOST=127.0.0.1`` and ``STORAGE_URI``/``MODEL_DIR``
  (the model's local path, where KServe's storage initializer would have put it) in its env. A
  declared ``containerPort`` is a port the server itself binds, so it is used as is and only one
  deployment can use it at a time (:attr:`Launch.fixed_port`);
* a container without a command (an image whose entrypoint cannot run here) or a model spec
  serves the model bound through ``STORAGE_URI``/``storageUri`` with the built-in predictor
  (``python -m orchestrator.serve``), after the model's attestation.

Must not import: api, cli.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from orchestrator.control import modelrefs
from orchestrator.errors import ArtifactError, UsageError
from orchestrator.spec import placeholders

MODEL_SPECS = ("sklearn", "model", "mlflow", "xgboost", "lightgbm", "pmml", "onnx", "tensorflow", "pytorch",
               "triton", "huggingface")
DEFAULT_NAME = "model"


@dataclass
class Launch:
    """One predictor process to start."""

    argv: list[str]
    env: dict[str, str]
    kind: str  # "runtime" (our predictor) | "command" (the template's own server)
    port: int  # 0 = the runtime picks one and writes it to ready_file
    fixed_port: bool = False  # the template hard-codes it: one deployment at a time
    ready_file: str = ""  # the runtime writes {"port", "pid"} here once it serves
    model_name: str = DEFAULT_NAME
    configuration_id: str = ""
    notes: list[str] = field(default_factory=list)
    container_name: str = ""  # the container executor's predictor (control.deploy_container)
    engine: str = ""


def free_port() -> int:
    """A loopback port nobody listens on now (the predictor binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts connections on loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _predictor(template_spec: Any) -> dict[str, Any]:
    if not isinstance(template_spec, dict):
        raise UsageError("the ServingTemplate's spec.template.spec is not a KServe InferenceService spec")
    pred = template_spec.get("predictor")
    if pred is None and isinstance(template_spec.get("default"), dict):
        pred = template_spec["default"].get("predictor")
    if not isinstance(pred, dict):
        raise UsageError("the ServingTemplate has no predictor (spec.template.spec.predictor)")
    return pred


def _container(pred: dict[str, Any]) -> dict[str, Any] | None:
    containers = pred.get("containers")
    if isinstance(containers, list) and containers:
        named = [c for c in containers if isinstance(c, dict) and c.get("name") in ("kserve-container",
                                                                                    "kfserving-container")]
        first = (named or [c for c in containers if isinstance(c, dict)] or [None])[0]
        return first
    custom = pred.get("custom")
    if isinstance(custom, dict) and isinstance(custom.get("container"), dict):
        return custom["container"]
    return None


def _restore(value: Any, words: dict[str, str]) -> Any:
    """Put the ``{{…}}`` placeholders back where :func:`serving.render` parsed them as plain words."""
    if isinstance(value, str):
        for w, ph in words.items():
            value = value.replace(w, ph)
        return value
    if isinstance(value, list):
        return [_restore(v, words) for v in value]
    if isinstance(value, dict):
        return {str(_restore(k, words)): _restore(v, words) for k, v in value.items()}
    return value


def plan_launch(svc: Any, row: dict[str, Any], *, workdir: str, token: str) -> Launch:
    """The predictor of deployment ``row`` (its current ``configuration_id``) in ``svc``'s group.

    Raises an :class:`~orchestrator.errors.OrchestratorError` naming what is wrong (the manager
    ends the deployment DEAD with it).
    """
    from orchestrator.plan.binding import bind_parameters
    from orchestrator.spec import serving
    from orchestrator.spec.yamlsafe import load_text

    store, rg = svc.store, svc.rg
    cfg = store.get_configuration(rg, row["configuration_id"])
    spec, doc = svc.load_executable(cfg.executable_id)
    if not spec.deployable:
        raise UsageError(f"executable {cfg.executable_id!r} is a WorkflowTemplate; only a ServingTemplate deploys")
    params = bind_parameters(spec, cfg.parameter_bindings)
    inputs = modelrefs.resolve_bindings(store, rg, cfg.input_artifact_bindings)
    arts: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for item in inputs:
        art = store.get_artifact(rg, item["artifactId"])
        arts[item["key"]] = (art, item)
        paths[item["key"]] = str(svc.objects.local_path(rg, art.url))
    docs, errs = load_text(str(doc["text"]), str(doc.get("file", cfg.executable_id)))
    if errs or len(docs) <= int(doc.get("index", 0)):
        raise UsageError(f"stored template of {cfg.executable_id!r} cannot be read again")
    tmpl = ((docs[int(doc.get("index", 0))].data.get("spec") or {}).get("template") or {})
    text = tmpl.get("spec")
    data, words = serving.render(text) if isinstance(text, str) else (text, {})
    pred = _restore(_predictor(data), words)

    def resolve(expr: str) -> str:
        parts = expr.strip().split(".")
        if len(parts) == 3 and parts[0] == "inputs" and parts[1] == "parameters" and parts[2] in params:
            return params[parts[2]]
        if len(parts) == 3 and parts[0] == "inputs" and parts[1] == "artifacts":
            if parts[2] not in paths:
                raise ArtifactError(f"input artifact {parts[2]!r} is not bound by configuration {cfg.id}")
            return paths[parts[2]]
        raise UsageError(f"{{{{{expr}}}}} in the ServingTemplate references nothing declared")

    container = _container(pred)
    env_decl = [e for e in (container or {}).get("env") or [] if isinstance(e, dict) and e.get("name")]
    env = {str(e["name"]): placeholders.substitute(str(e.get("value", "")), resolve) for e in env_decl}
    storage_src = next((str(e.get("value", "")) for e in env_decl if e["name"] == "STORAGE_URI"), "")
    model_spec = next((pred[k] for k in MODEL_SPECS if isinstance(pred.get(k), dict)), None)
    if model_spec is not None and not storage_src:
        storage_src = str(model_spec.get("storageUri", ""))
    model_key = next((k for k in arts if f"inputs.artifacts.{k}" in storage_src.replace(" ", "")), "")
    if not model_key and len(arts) == 1:
        model_key = next(iter(arts))
    name = env.get("MODEL_NAME") or (arts[model_key][1].get("model") if model_key else "") or \
        str((row.get("configuration_name") or "")) or DEFAULT_NAME
    name = name if name and all(c.isalnum() or c in "._-" for c in name) else DEFAULT_NAME
    from orchestrator.control import deploy_container

    if container is not None and deploy_container.chosen():  # the team's own image, as a container
        return deploy_container.container_launch(container, env, resolve, paths.get(model_key, ""), name, cfg.id,
                                                 str(row.get("id") or ""), token)
    base = _base_env(workdir, token)
    user_command = container is not None and (container.get("command") or container.get("args"))
    if user_command:
        assert container is not None
        base.update({"K_SERVICE": str(row.get("id") or cfg.executable_id), "K_CONFIGURATION": cfg.id})  # Knative's
        return _command_launch(container, env, base, resolve, paths.get(model_key, ""), name, cfg.id,
                               str(cfg.executable_id))
    if not model_key:
        raise ArtifactError("the ServingTemplate serves no model: bind a model artifact (STORAGE_URI or "
                            "storageUri must name {{inputs.artifacts.NAME}})")
    model_path, digest = attest_model(svc, arts[model_key][0])
    ready = os.path.join(workdir, f"ready-{token}.json")
    argv = [sys.executable, "-m", "orchestrator.serve", "--model", model_path, "--sha256", digest,
            "--name", name, "--port", "0", "--ready-file", ready]
    base.update({k: v for k, v in env.items() if k.startswith(("ORCHESTRATOR_SERVE_",))})
    return Launch(argv, base, "runtime", 0, ready_file=ready, model_name=name, configuration_id=cfg.id)


def attest_model(svc: Any, art: Any) -> tuple[str, str]:
    """``(path, sha256)`` of a model the platform vouches for (:func:`orchestrator.run.attest.attest_artifact`:
    an output of a COMPLETED execution of this group whose bytes still match); the predictor checks
    the digest again on the bytes it loads. Raises ``NotAttested`` (the deployment ends DEAD with it)."""
    from orchestrator.run.attest import attest_artifact

    att = attest_artifact(svc.store, svc.objects, svc.rg, art.id)
    return str(att.path), att.sha256


def _base_env(workdir: str, token: str) -> dict[str, str]:
    from orchestrator.run.steps import TOKEN_VAR

    tmp = os.path.join(workdir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), path]), "HOME": workdir, "TMPDIR": tmp,
           "LANG": os.environ.get("LANG", "C.UTF-8"), TOKEN_VAR: token, "PYTHONUNBUFFERED": "1"}
    for keep in ("PYTHONPATH", "VIRTUAL_ENV", "LC_ALL", "ORCHESTRATOR_SERVE_WORKERS"):
        if os.environ.get(keep):
            env[keep] = os.environ[keep]
    return env


_K8S_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.,:/@+=-]*")
PLATFORM_VARS = ("PORT", "HOST", "MODEL_NAME", "K_SERVICE", "K_CONFIGURATION", "STORAGE_URI", "MODEL_DIR")


def _k8s_vars(word: str, env: dict[str, str], platform: frozenset[str] = frozenset()) -> str:
    """Kubernetes' ``$(NAME)`` in a container's command/args, expanded in the template's own words
    BEFORE parameters are spliced (``plan.splice.render``), so that a value never becomes code: a
    ``platform`` variable (a value we made: the port, the model's path) is placed as it is; any other
    variable of the env only when its value is plain (letters, digits, ``_.,:/@+=-``), since env
    values may carry parameter values; anything else is refused. ``$$`` is a literal ``$``; an
    unknown name stays as written. One pass: a value is never expanded again."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        key = m.group(1)
        if key not in env:
            return m.group(0)
        value = env[key]
        if key not in platform and not _SAFE_VALUE.fullmatch(value):
            raise UsageError(f"$({key}) in the container's command would place a value with quotes, spaces or "
                             "other special characters into the command",
                             hint=f"read it from the environment inside the program instead (e.g. os.environ[{key!r}])")
        return value

    return _K8S_VAR.sub(sub, word)


def _command_launch(container: dict[str, Any], env: dict[str, str], base: dict[str, str], resolve: Any,
                    model_path: str, name: str, configuration_id: str, template: str) -> Launch:
    from orchestrator.plan.splice import render

    ports = [p for p in container.get("ports") or [] if isinstance(p, dict) and p.get("containerPort")]
    fixed = False
    notes: list[str] = []
    if ports:
        try:
            port = int(ports[0]["containerPort"])
        except (TypeError, ValueError):
            raise UsageError(f"containerPort {ports[0]['containerPort']!r} is not a number") from None
        if not 1 <= port <= 65535:
            raise UsageError(f"containerPort {port} is not a port")
        fixed = True
        notes.append(f"the template hard-codes containerPort {port}: one deployment of it runs at a time")
    else:
        port = free_port()
    out = dict(base)
    out.update(env)
    out.update({"PORT": str(port), "HOST": "127.0.0.1", "MODEL_NAME": name})
    platform = {"PORT", "HOST", "MODEL_NAME"}
    if model_path:
        if "STORAGE_URI" not in out:
            out["STORAGE_URI"] = model_path
            platform.add("STORAGE_URI")
        out["MODEL_DIR"] = model_path
        platform.add("MODEL_DIR")
    trusted = frozenset(platform)
    command = [_k8s_vars(str(c), out, trusted) for c in container.get("command") or []]
    args = [_k8s_vars(str(a), out, trusted) for a in container.get("args") or []]
    rendered = render(command, args, None, resolve, set(out), template)
    out.update(rendered.env)
    argv = rendered.argv
    return Launch(argv, out, "command", port, fixed_port=fixed, model_name=name,
                  configuration_id=configuration_id, notes=notes)
