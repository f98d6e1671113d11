"""One exception tree for the whole package.

Every error a user can cause derives from :class:`OrchestratorError` and knows its CLI exit code
and HTTP status, so entry points map errors without ``isinstance`` ladders. Imports nothing from
the package.
"""

from __future__ import annotations

from dataclasses import dataclass


class OrchestratorError(Exception):
    """Base of every error raised on purpose by orchestrator."""

    exit_code: int = 2
    http_status: int = 400
    code: str = "ERROR"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"

    def lines(self) -> list[str]:
        """How a command line shows it: ``error: message`` and, when there is one, ``  hint: ...``."""
        return [f"error: {self.message}"] + ([f"  hint: {self.hint}"] if self.hint else [])


class UsageError(OrchestratorError):
    """Bad command-line or API input that is not a template problem."""

    code = "INVALID_REQUEST"


class NotFound(OrchestratorError):
    """A referenced object does not exist (in this resource group)."""

    http_status = 404
    code = "NOT_FOUND"


class Conflict(OrchestratorError):
    """The request conflicts with the current state (e.g. stopping a finished execution)."""

    http_status = 400
    code = "INVALID_STATE"


class BindingError(OrchestratorError):
    """Parameter / artifact bindings do not match what the executable declares."""

    code = "INVALID_BINDING"


class ArtifactError(OrchestratorError):
    """An artifact URL or path is invalid, unsafe or cannot be resolved."""

    code = "INVALID_ARTIFACT"


class StoreError(OrchestratorError):
    """The store cannot be written (disk full, read-only, corrupt)."""

    exit_code = 3
    http_status = 503
    code = "STORE_UNAVAILABLE"


class IllegalTransition(OrchestratorError):
    """A status change that the execution state machine forbids (a programming error guard)."""

    exit_code = 3
    http_status = 500
    code = "ILLEGAL_TRANSITION"


@dataclass(frozen=True)
class SpecError:
    """One validation problem, located in its source file."""

    file: str
    line: int
    col: int
    pointer: str
    rule: str
    message: str
    hint: str = ""
    severity: str = "error"

    def format(self) -> str:
        """Render as ``file:line:col: severity RULE message (pointer) hint``."""
        text = f"{self.file}:{self.line}:{self.col}: {self.severity} {self.rule} {self.message}"
        text += f" [{self.pointer or '/'}]"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "pointer": self.pointer,
            "rule": self.rule,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
        }


class ValidationFailed(OrchestratorError):
    """Raised when templates or documents do not validate; carries every error at once."""

    exit_code = 1
    code = "VALIDATION_FAILED"

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = list(errors)
        first = self.errors[0].format().splitlines()[0] if self.errors else "invalid document"
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(first + more)


class Forbidden(OrchestratorError):
    """The credential is valid but may not do this (role or resource group limit)."""

    http_status = 403
    code = "FORBIDDEN"
