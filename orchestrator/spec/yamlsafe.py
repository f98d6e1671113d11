"""Safe YAML loading that keeps source positions.

Owns: turning untrusted bytes into plain JSON-like Python values plus a map from JSON pointer to
``(line, col)``. Hostile input is bounded *before* it can cost anything: a byte cap before
parsing, our own event-driven composer (never PyYAML's recursive one, which overflows or
segfaults on deep nesting) with a depth cap, an expanded-node cap that defeats alias bombs, only
the YAML core tags (``!!python/*`` is an error), and duplicate keys reported with both lines.
Duplicate keys and disallowed tags do not stop the parse: every one of a file is reported, and a
document that had any is returned without data (it is never validated further or built). Block
scalars (``|``) keep where their text starts, so a problem inside a multi-line string (a
ServingTemplate's ``spec``) can be located to its own line (:meth:`Document.text_where`).
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
    # pointer -> (line, column) of the first text line of a literal block scalar (``key: |``)
    block_starts: dict[str, tuple[int, int]] = field(default_factory=dict)

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

    def text_where(self, pointer: str, offset: int) -> tuple[int, int]:
        """Position of character ``offset`` of the string at ``pointer``.

        Exact for literal block scalars (``|``, the form multi-line template text takes); any
        other scalar answers its own start.
        """
        start = self.block_starts.get(pointer)
        value = self.data_at(pointer)
        if start is None or not isinstance(value, str):
            return self.where(pointer)
        before = value[:max(0, offset)]
        line = before.count("\n")
        col = len(before) - (before.rfind("\n") + 1)
        return start[0] + line, start[1] + col

    def data_at(self, pointer: str) -> Any:
        """The value at ``pointer`` (None when there is none)."""
        node = self.data
        for token in pointer.split("/")[1:] if pointer else []:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict):
                node = node.get(token)
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return None
        return node

    def error(self, pointer: str, rule: str, message: str, hint: str = "", *, key: bool = False,
              severity: str = "error", at: tuple[int, int] | None = None) -> SpecError:
        """A located problem; ``at`` overrides the position looked up from ``pointer``."""
        line, col = at or self.where(pointer, key=key)
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
_DROP = object()  # the key of a duplicate entry: its value is parsed, then dropped


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _unsafe_tag(tag: str, mark: Any, file: str, pointer: str) -> SpecError:
    line, col = _pos(mark)
    return SpecError(file, line, col, pointer, "yaml.unsafe-tag", f"tag {tag!r} is not allowed",
                     "only plain YAML types are accepted")


def _scalar(ev: Any, file: str) -> tuple[Any, bool]:
    """Construct a scalar of a safe tag; returns (value, coerced_from_plain_text)."""
    tag = ev.tag
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
    """Parse every document of ``text``; never raises for bad input.

    Duplicate keys and disallowed tags are all reported (the parse goes on); any other problem
    stops it at the first. A document with a problem is returned with ``data=None``.
    """
    composer = _Composer(text, file)
    try:
        composer.run()
    except _Abort as a:
        return composer.docs, composer.errors + [a.err]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return composer.docs, composer.errors + [SpecError(file, line, col, "", "yaml.syntax", msg or "invalid YAML",
                                                           "check indentation and quoting")]
    except yaml.reader.ReaderError as exc:
        pos = exc.position if isinstance(exc.position, int) else 0
        line = text[:pos].count("\n") + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return composer.docs, composer.errors + [SpecError(
            file, line, col, "", "yaml.syntax",
            f"unacceptable character #x{exc.character:04x}" if isinstance(exc.character, int)
            else "unacceptable character", "remove control characters from the file")]
    except yaml.YAMLError as exc:
        return composer.docs, composer.errors + [SpecError(file, 1, 1, "", "yaml.syntax", str(exc).splitlines()[0])]
    return composer.docs, composer.errors


class _Composer:
    """Builds plain values from parser events (iteratively: no recursion, so no depth crash)."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.docs: list[Document] = []
        self.errors: list[SpecError] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.doc: Document | None = None
        self.doc_errors = 0
        self.total = 0
        self._lines: list[str] | None = None

    def fail(self, err: SpecError) -> None:
        """Record a problem that does not stop the parse; the document will carry no data."""
        self.errors.append(err)
        self.doc_errors += 1

    def run(self) -> None:
        for ev in yaml.parse(self.text, Loader=_Loader):
            if isinstance(ev, yaml.DocumentStartEvent):
                self.doc = Document(self.file, len(self.docs), None)
                self.anchors = {}
                self.doc_errors = 0
            elif isinstance(ev, yaml.DocumentEndEvent):
                assert self.doc is not None
                if self.doc_errors:
                    self.doc.data = None
                self.docs.append(self.doc)
                self.doc = None
            elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                self.start_collection(ev)
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frame = self.stack.pop()
                if frame.anchor:
                    self.anchors[frame.anchor] = (frame.value, frame.size)
                self.attach(frame.value, frame.size, None, None, None, collection=True)
            elif isinstance(ev, yaml.ScalarEvent):
                self.count(1, ev.start_mark, "yaml.too-large", f"more than {MAX_NODES} nodes", "split the file")
                if ev.tag is not None and ev.tag != "!" and ev.tag not in _SAFE_TAGS:
                    self.fail(_unsafe_tag(ev.tag, ev.start_mark, self.file, self.here()))
                    value, coerced = ev.value, False
                else:
                    value, coerced = _scalar(ev, self.file)
                self.attach(value, 1, ev.start_mark, ev.anchor, ev.value if coerced else None)
                if ev.style == "|" and self.stack:
                    self.note_block(ev, value)
            elif isinstance(ev, yaml.AliasEvent):
                if ev.anchor not in self.anchors:
                    line, col = _pos(ev.start_mark)
                    raise _Abort(SpecError(self.file, line, col, "", "yaml.alias", f"unknown alias *{ev.anchor}"))
                value, size = self.anchors[ev.anchor]
                self.count(size, ev.start_mark, "yaml.alias-bomb", f"aliases expand to more than {MAX_NODES} nodes",
                           "do not use anchors/aliases to build large documents")
                self.attach(value, size, ev.start_mark, None, None)

    def count(self, size: int, mark: Any, rule: str, msg: str, hint: str) -> None:
        self.total += size
        if self.total > MAX_NODES:
            line, col = _pos(mark)
            raise _Abort(SpecError(self.file, line, col, "", rule, msg, hint))

    def start_collection(self, ev: Any) -> None:
        assert self.doc is not None
        if ev.tag is not None and ev.tag != "!" and ev.tag not in _SAFE_TAGS:
            self.fail(_unsafe_tag(ev.tag, ev.start_mark, self.file, self.here()))
        if len(self.stack) >= MAX_DEPTH:
            line, col = _pos(ev.start_mark)
            raise _Abort(SpecError(self.file, line, col, "", "yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels",
                                   "templates never need this much nesting"))
        if self.stack:
            top = self.stack[-1]
            if top.kind == "map" and top.key is _NOKEY:
                line, col = _pos(ev.start_mark)
                raise _Abort(SpecError(self.file, line, col, top.pointer, "yaml.complex-key",
                                       "a mapping key must be a plain scalar"))
            ptr = self.child_pointer(top)
        else:
            ptr = ""
        self.doc.positions.setdefault(ptr, _pos(ev.start_mark))
        is_map = isinstance(ev, yaml.MappingStartEvent)
        self.stack.append(_Frame("map" if is_map else "seq", {} if is_map else [], ptr, ev.anchor))

    def here(self) -> str:
        """The pointer of the node the next event starts (its mapping's, for a key)."""
        if not self.stack:
            return ""
        top = self.stack[-1]
        return top.pointer if top.kind == "map" and top.key is _NOKEY else self.child_pointer(top)

    @staticmethod
    def child_pointer(top: _Frame) -> str:
        if top.kind == "seq":
            return f"{top.pointer}/{len(top.value)}"
        if top.key is _DROP:
            return f"{top.pointer}/\x00dropped"
        return f"{top.pointer}/{escape(top.key)}"

    def attach(self, value: Any, size: int, start: Any, anchor: str | None, raw: str | None, *,
               collection: bool = False) -> None:
        doc = self.doc
        assert doc is not None
        if anchor:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            doc.data = value
            if start is not None:
                doc.positions.setdefault("", _pos(start))
            return
        top = self.stack[-1]
        top.size += size
        if top.kind == "map" and top.key is _NOKEY:
            self.set_key(top, value, start, raw)
            return
        ptr = self.child_pointer(top)
        if top.kind == "seq":
            top.value.append(value)
        elif top.key is _DROP:
            top.key = _NOKEY
            return
        else:
            top.value[top.key] = value
            top.key = _NOKEY
        if not collection:
            doc.positions.setdefault(ptr, _pos(start))
            if raw is not None:
                doc.raw_scalars[ptr] = raw

    def set_key(self, top: _Frame, value: Any, start: Any, raw: str | None) -> None:
        assert self.doc is not None
        line, col = _pos(start)
        if isinstance(value, (dict, list)):
            raise _Abort(SpecError(self.file, line, col, top.pointer, "yaml.complex-key",
                                   "a mapping key must be a plain scalar"))
        key = raw if raw is not None else str(value)
        if key in top.key_lines:
            self.fail(SpecError(
                self.file, line, col, f"{top.pointer}/{escape(key)}", "yaml.duplicate-key",
                f"duplicate key {key!r} (first at line {top.key_lines[key]}, again at line {line})",
                "remove one of them: YAML parsers disagree on which one wins"))
            top.key = _DROP
            return
        top.key_lines[key] = line
        top.key = key
        self.doc.key_positions[f"{top.pointer}/{escape(key)}"] = (line, col)

    def note_block(self, ev: Any, value: str) -> None:
        """Remember where the text of a literal block scalar starts (its first line, indented)."""
        assert self.doc is not None
        top = self.stack[-1]
        if top.kind == "seq":
            ptr = f"{top.pointer}/{len(top.value) - 1}"
        else:
            last = next(reversed(top.value), None)
            if last is None or top.value[last] is not value:
                return  # the value of a dropped duplicate key
            ptr = f"{top.pointer}/{escape(last)}"
        if self._lines is None:
            self._lines = self.text.split("\n")
        first = ev.start_mark.line + 1  # 0-based index of the line after the indicator
        for i in range(first, min(ev.end_mark.line + 1, len(self._lines))):
            stripped = self._lines[i].lstrip(" ")
            if stripped:
                self.doc.block_starts[ptr] = (first + 1, len(self._lines[i]) - len(stripped) + 1)
                return


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
