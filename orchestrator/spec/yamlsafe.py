"""Safe YAML loading that keeps source positions.

Owns: turning untrusted bytes into plain JSON-like Python values plus a map from JSON pointer to
``(line, col)``. Hostile input is bounded *before* it can cost anything: a byte cap before
parsing, our own event-driven composer (never PyYAML's recursive one, which overflows or
segfaults on deep nesting) with a depth cap, an expanded-node cap that defeats alias bombs, only
the YAML core tags (``!!python/*`` is an error), and duplicate keys reported with both lines.
Imports only :mod:`orchestrator.errors`.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.errors import SpecError

MAX_BYTES = int(os.environ.get("ORCHESTRATOR_MAX_YAML_BYTES", str(4 * 1024 * 1024)))
MAX_DEPTH = 100
MAX_NODES = 200_000

_SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "omap")
)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()


@dataclass
class Document:
    """One YAML document of a file, with positions for error reporting."""

    file: str
    index: int
    data: Any
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[str, tuple[int, int]] = field(default_factory=dict)
    raw_scalars: dict[str, str] = field(default_factory=dict)

    def where(self, pointer: str, *, key: bool = False) -> tuple[int, int]:
        """Position of ``pointer`` (or of its key), falling back to the nearest ancestor."""
        p = pointer
        while True:
            if key and p in self.key_positions:
                return self.key_positions[p]
            if p in self.positions:
                return self.positions[p]
            if not p:
                return (1, 1)
            p = p.rsplit("/", 1)[0]

    def error(self, pointer: str, rule: str, message: str, hint: str = "", *, key: bool = False,
              severity: str = "error") -> SpecError:
        line, col = self.where(pointer, key=key)
        return SpecError(self.file, line, col, pointer, rule, message, hint, severity)


def escape(token: str) -> str:
    """Escape one JSON pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


class _Abort(Exception):
    def __init__(self, err: SpecError) -> None:
        self.err = err


class _Frame:
    __slots__ = ("kind", "value", "pointer", "key", "anchor", "size", "key_lines")

    def __init__(self, kind: str, value: Any, pointer: str, anchor: str | None) -> None:
        self.kind = kind
        self.value = value
        self.pointer = pointer
        self.key: Any = _NOKEY
        self.anchor = anchor
        self.size = 1
        self.key_lines: dict[str, int] = {}


_NOKEY = object()


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _scalar(ev: Any, file: str) -> tuple[Any, bool]:
    """Construct a scalar; returns (value, coerced_from_plain_text)."""
    tag = ev.tag
    if tag is not None and tag != "!" and tag not in _SAFE_TAGS:
        line, col = _pos(ev.start_mark)
        raise _Abort(SpecError(file, line, col, "", "yaml.unsafe-tag",
                               f"tag {tag!r} is not allowed", "only plain YAML types are accepted"))
    if tag is None or tag == "!":
        tag = _resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
    if tag == "tag:yaml.org,2002:str":
        return ev.value, False
    if tag == "tag:yaml.org,2002:merge":
        line, col = _pos(ev.start_mark)
        raise _Abort(SpecError(file, line, col, "", "yaml.merge-key", "merge keys (<<) are not supported",
                               "Kubernetes and Argo do not read them either: write the keys out"))
    node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
    try:
        value = _constructor.construct_object(node)
    except Exception as exc:  # noqa: BLE001 - any constructor error is a user error here
        line, col = _pos(ev.start_mark)
        raise _Abort(SpecError(file, line, col, "", "yaml.bad-scalar", str(exc).splitlines()[0])) from None
    if isinstance(value, (datetime.date, bytes)):
        return ev.value, True
    return value, not ev.style


def load_text(text: str, file: str) -> tuple[list[Document], list[SpecError]]:
    """Parse every document of ``text``; never raises for bad input."""
    docs: list[Document] = []
    try:
        _compose(text, file, docs)
    except _Abort as a:
        return docs, [a.err]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return docs, [SpecError(file, line, col, "", "yaml.syntax", msg or "invalid YAML",
                                "check indentation and quoting")]
    except yaml.reader.ReaderError as exc:
        pos = exc.position if isinstance(exc.position, int) else 0
        line = text[:pos].count("\n") + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return docs, [SpecError(file, line, col, "", "yaml.syntax",
                                f"unacceptable character #x{exc.character:04x}" if isinstance(exc.character, int)
                                else "unacceptable character", "remove control characters from the file")]
    except yaml.YAMLError as exc:
        return docs, [SpecError(file, 1, 1, "", "yaml.syntax", str(exc).splitlines()[0])]
    return docs, []


def _compose(text: str, file: str, docs: list[Document]) -> None:
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int]] = {}
    doc: Document | None = None
    total = 0

    def attach(value: Any, size: int, start: Any, anchor: str | None, raw: str | None) -> None:
        assert doc is not None
        if anchor:
            anchors[anchor] = (value, size)
        if not stack:
            doc.data = value
            doc.positions.setdefault("", _pos(start))
            return
        top = stack[-1]
        top.size += size
        if top.kind == "seq":
            ptr = f"{top.pointer}/{len(top.value)}"
            top.value.append(value)
        elif top.key is _NOKEY:
            if isinstance(value, (dict, list)):
                line, col = _pos(start)
                raise _Abort(SpecError(file, line, col, top.pointer, "yaml.complex-key",
                                       "a mapping key must be a plain scalar"))
            key = raw if raw is not None else str(value)
            line, col = _pos(start)
            if key in top.key_lines:
                raise _Abort(SpecError(
                    file, line, col, f"{top.pointer}/{escape(key)}", "yaml.duplicate-key",
                    f"duplicate key {key!r} (first at line {top.key_lines[key]}, again at line {line})",
                    "remove one of them: YAML parsers disagree on which one wins"))
            top.key_lines[key] = line
            top.key = key
            doc.key_positions[f"{top.pointer}/{escape(key)}"] = (line, col)
            return
        else:
            ptr = f"{top.pointer}/{escape(top.key)}"
            top.value[top.key] = value
            top.key = _NOKEY
        doc.positions.setdefault(ptr, _pos(start))
        if raw is not None:
            doc.raw_scalars[ptr] = raw

    for ev in yaml.parse(text, Loader=_Loader):
        if isinstance(ev, yaml.DocumentStartEvent):
            doc = Document(file, len(docs), None)
            anchors = {}
        elif isinstance(ev, yaml.DocumentEndEvent):
            assert doc is not None
            docs.append(doc)
            doc = None
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            assert doc is not None
            tag = ev.tag
            if tag is not None and tag != "!" and tag not in _SAFE_TAGS:
                line, col = _pos(ev.start_mark)
                raise _Abort(SpecError(file, line, col, "", "yaml.unsafe-tag",
                                       f"tag {tag!r} is not allowed",
                                       "only plain YAML types are accepted"))
            if len(stack) >= MAX_DEPTH:
                line, col = _pos(ev.start_mark)
                raise _Abort(SpecError(file, line, col, "", "yaml.too-deep",
                                       f"nesting deeper than {MAX_DEPTH} levels",
                                       "templates never need this much nesting"))
            if stack:
                top = stack[-1]
                if top.kind == "map" and top.key is _NOKEY:
                    line, col = _pos(ev.start_mark)
                    raise _Abort(SpecError(file, line, col, top.pointer, "yaml.complex-key",
                                           "a mapping key must be a plain scalar"))
                ptr = (f"{top.pointer}/{len(top.value)}" if top.kind == "seq"
                       else f"{top.pointer}/{escape(top.key)}")
            else:
                ptr = ""
            doc.positions.setdefault(ptr, _pos(ev.start_mark))
            is_map = isinstance(ev, yaml.MappingStartEvent)
            stack.append(_Frame("map" if is_map else "seq", {} if is_map else [], ptr, ev.anchor))
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = stack.pop()
            _attach_collection(frame, stack, doc, anchors)
        elif isinstance(ev, yaml.ScalarEvent):
            value, coerced = _scalar(ev, file)
            total += 1
            if total > MAX_NODES:
                line, col = _pos(ev.start_mark)
                raise _Abort(SpecError(file, line, col, "", "yaml.too-large",
                                       f"more than {MAX_NODES} nodes", "split the file"))
            attach(value, 1, ev.start_mark, ev.anchor, ev.value if coerced else None)
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in anchors:
                line, col = _pos(ev.start_mark)
                raise _Abort(SpecError(file, line, col, "", "yaml.alias", f"unknown alias *{ev.anchor}"))
            value, size = anchors[ev.anchor]
            total += size
            if total > MAX_NODES:
                line, col = _pos(ev.start_mark)
                raise _Abort(SpecError(file, line, col, "", "yaml.alias-bomb",
                                       f"aliases expand to more than {MAX_NODES} nodes",
                                       "do not use anchors/aliases to build large documents"))
            attach(value, size, ev.start_mark, None, None)


def _attach_collection(frame: _Frame, stack: list[_Frame], doc: Document | None,
                       anchors: dict[str, tuple[Any, int]]) -> None:
    assert doc is not None
    if frame.anchor:
        anchors[frame.anchor] = (frame.value, frame.size)
    if not stack:
        doc.data = frame.value
        return
    top = stack[-1]
    top.size += frame.size
    if top.kind == "seq":
        top.value.append(frame.value)
    else:
        top.value[top.key] = frame.value
        top.key = _NOKEY


def load_file(path: str, display: str | None = None) -> tuple[list[Document], list[SpecError]]:
    """Read a file with a byte cap, then :func:`load_text` it."""
    name = display or path
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            return [], [SpecError(name, 1, 1, "", "yaml.file-too-large",
                                  f"file is {size} bytes, the limit is {MAX_BYTES}",
                                  "templates are small; split the file or raise ORCHESTRATOR_MAX_YAML_BYTES")]
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        return [], [SpecError(name, 1, 1, "", "file.unreadable", exc.strerror or str(exc))]
    return load_bytes(data, name)


def load_bytes(data: bytes, name: str) -> tuple[list[Document], list[SpecError]]:
    if len(data) > MAX_BYTES:
        return [], [SpecError(name, 1, 1, "", "yaml.file-too-large",
                              f"more than {MAX_BYTES} bytes", "split the file")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [SpecError(name, line, 1, "", "yaml.encoding", "file is not valid UTF-8")]
    return load_text(text, name)
