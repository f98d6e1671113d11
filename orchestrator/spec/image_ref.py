"""Container image references: the OCI / Docker reference grammar an ``image`` must follow.

Owns: :func:`image_problem` (why a reference is not one, or ``None``) and :func:`check_image`
(raise before an image is placed in an engine's argv). An image is a word of ``podman/docker run``
and ``image inspect``: a value such as ``--privileged`` would be read as an engine option, so every
launcher re-checks the resolved value here, and the validator reports ``image.invalid`` (AI Core
and Kubernetes refuse such a reference too).
"""

from __future__ import annotations

import re

from orchestrator.errors import OrchestratorError

MAX_LEN = 4096
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_HOST_RE = re.compile(_HOST, re.ASCII)
_PATH = re.compile(
    rf"{_COMPONENT}(?:/{_COMPONENT})*"  # the lowercase path
    r"(?::[\w][\w.-]{0,127})?"  # optional tag
    r"(?:@sha256:[0-9a-f]{64})?", re.ASCII)  # optional digest
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def image_problem(ref: object, *, placeholders: bool = False) -> str | None:
    """Why ``ref`` is not an image reference (``None`` when it is). With ``placeholders`` a
    ``{{...}}`` stands for a valid component (its resolved value is checked when the step runs)."""
    if not isinstance(ref, str) or not ref:
        return "an image reference must be a non-empty string"
    if len(ref) > MAX_LEN:
        return f"an image reference must be at most {MAX_LEN} characters"
    if ref[0] == "-":
        return "an image reference must not start with '-' (it would be read as an engine option)"
    text = _PLACEHOLDER.sub("x", ref) if placeholders else ref
    if any(ch.isspace() for ch in text) or any(ord(ch) < 32 for ch in text):
        return "an image reference must not contain whitespace or control characters"
    first, slash, rest = text.partition("/")
    # As Docker reads it: the first component is a registry when it has a '.' or ':' or is localhost
    has_host = bool(slash) and ("." in first or ":" in first or first == "localhost")
    if text[0] == "-" or (has_host and not _HOST_RE.fullmatch(first)) \
            or not _PATH.fullmatch(rest if has_host else text):
        return ("not an image reference: [registry[:port]/]lowercase/path[:tag][@sha256:<64 hex>]")
    return None


def check_image(ref: object, where: str) -> str:
    """The resolved image ``ref`` of ``where`` (a step, a sidecar, a deployment), or an error."""
    problem = image_problem(ref)
    if problem is not None:
        raise OrchestratorError(f"{where}: image {str(ref)[:200]!r} refused: {problem}",
                                hint="use a reference such as registry.example.com/team/image:1.0")
    assert isinstance(ref, str)
    return ref
