"""The shared vocabulary of AI API v2 bodies: field constraints, the two base models, labels, errors.

Owns: ``Id``/``Name``/``Text`` (the length and pattern caps every body uses), :class:`Body`
(a request body: unknown fields refused, ``extra="forbid"``), :class:`Out` (a response: extra
fields allowed), labels, the error envelope and the plain ``{id, message}``/``{message}`` answers.
Every other ``models*`` module of the API builds on these. Must not import: routes, app, control.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[\w.-]{4,64}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=5000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Label(Body):
    key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    value: Annotated[str, StringConstraints(max_length=5000)]


class ErrorDetail(Out):
    code: str
    message: str


class ErrorInner(Out):
    code: str
    message: str
    requestId: str | None = None
    target: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorOut(BaseModel):
    error: ErrorInner


class IdMessage(Out):
    id: str
    message: str


class LabelOut(Out):
    key: str
    value: str


class Message(Out):
    message: str

