"""Paths and URLs of artifacts: the containment rule and the artifact URL grammar.

Owns: :func:`resolve_inside`, the single containment helper every path from a user, a template, a
URL or a bucket listing goes through; the ``ai://`` / ``file://`` URL grammar (:func:`parse_url`,
:func:`check_relative`); the files of an output (:func:`output_files`, symlinks refused) and the
sha256 tree digest outputs are recorded with (:func:`tree_digest`). Standard library only (a
remote worker node imports it through :mod:`orchestrator.store.objects_s3`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ArtifactError

_BAD_CHARS = ("\x00", "\\")
CHUNK = 1 << 20


def resolve_inside(root: str | os.PathLike[str], untrusted: str, *, strict_root: bool = False) -> Path:
    """``root/untrusted`` if it stays inside ``root`` after resolving symlinks; else ArtifactError.

    ``strict_root`` (a tree a step can write, e.g. its ``fs/``): the root itself and every existing
    component below it must not be a symlink (:func:`refuse_links`), so a link a step left there is
    never followed by the runner."""
    if any(c in untrusted for c in _BAD_CHARS):
        raise ArtifactError(f"path {untrusted!r} contains a forbidden character")
    parts = [p for p in untrusted.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArtifactError(f"path {untrusted!r} must not contain '..'")
    if untrusted.startswith("/"):
        raise ArtifactError(f"path {untrusted!r} must be relative")
    if strict_root:
        refuse_links(root, parts)
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, *parts)) if parts else base
    if os.path.commonpath([base, full]) != base:
        raise ArtifactError(f"path {untrusted!r} leaves its root")
    return Path(full)


def refuse_links(root: str | os.PathLike[str], parts: list[str]) -> None:
    """ArtifactError when ``root`` or an existing ``root/parts[0]/...`` prefix is a symlink (lstat:
    nothing is followed); components that do not exist yet are fine."""
    path = os.fspath(root)
    for part in ["", *parts]:
        path = os.path.join(path, part) if part else path
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        if stat.S_ISLNK(st.st_mode):
            raise ArtifactError(f"{path} is a symlink (left by a step?): refused, nothing is written through it",
                                hint="a step must not replace its declared paths or fs/ with links")


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str  # "ai" | "file"
    secret: str  # object store secret for ai://
    path: str


def check_relative(path: str) -> str:
    """A relative object path: non-empty ``/``-separated segments, none ``.``/``..``, each ≤ 255 bytes."""
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts) \
            or any(c in path for c in _BAD_CHARS) or any(ord(c) < 32 for c in path):
        raise ArtifactError(f"invalid object path {path[:200]!r}",
                            hint="use non-empty segments without '.', '..', '//' or a trailing '/'")
    return path


def parse_url(url: str) -> ParsedUrl:
    """Parse and sanity-check an artifact URL (``ai://secret/path`` or ``file:///abs/path``)."""
    if not isinstance(url, str) or not url or len(url) > 4096 or any(c in url for c in _BAD_CHARS) \
            or any(ord(c) < 32 for c in url):
        raise ArtifactError(f"invalid artifact URL {str(url)[:200]!r}")
    try:
        url.encode("utf-8")
        u = urllib.parse.urlsplit(url)
    except (UnicodeEncodeError, ValueError):
        raise ArtifactError(f"invalid artifact URL {url[:200]!r}") from None
    if u.query or u.fragment or "?" in url or "#" in url:
        raise ArtifactError(f"artifact URL {url!r} must not have a query or fragment")
    if re.search(r"%(2f|5c|00)", u.path, re.IGNORECASE):
        raise ArtifactError(f"artifact URL {url!r} must not encode '/', '\\' or NUL")
    path = urllib.parse.unquote(u.path, errors="strict")
    if any(c in path for c in _BAD_CHARS) or any(ord(c) < 32 for c in path):
        raise ArtifactError(f"artifact URL {url!r} contains a forbidden character")
    if u.scheme == "ai":
        if not u.netloc or not re.fullmatch(r"[a-z0-9.-]{1,252}", u.netloc) or u.netloc in (".", ".."):
            raise ArtifactError(f"artifact URL {url!r} names no valid object store", hint="use ai://default/<path>")
        if url.endswith("/"):
            raise ArtifactError(f"artifact URL {url!r} must not end with '/'", hint="AI Core rejects it too")
        return ParsedUrl("ai", u.netloc, check_relative(path[1:] if path.startswith("/") else path))
    if u.scheme == "file":
        if u.netloc not in ("", "localhost"):
            raise ArtifactError(f"file URL {url!r} must not name a host")
        if not path.startswith("/") or any(p in ("..", ".") for p in path.split("/")):
            raise ArtifactError(f"file URL {url!r} must be an absolute path without '.' or '..'")
        return ParsedUrl("file", "", path)
    raise ArtifactError(f"unsupported artifact URL scheme {u.scheme!r} in {url!r}",
                        hint="use ai://default/<path> or file:///absolute/path")


def output_files(source: Path, within: Path) -> list[tuple[str, Path]]:
    """``(relative path, path)`` of the regular files of an output (a file: its own name), which
    must stay inside ``within``; a symlink anywhere is refused (an output never points out)."""
    base = os.path.realpath(within)
    real = os.path.realpath(source)
    if os.path.commonpath([base, real]) != base or source.is_symlink():
        raise ArtifactError(f"output {source} resolves outside the step directory")
    if not source.exists():
        raise ArtifactError(f"output path {source} was not created by the step")
    if not source.is_dir():
        return [(source.name, source)]
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(source, followlinks=False):
        for d in dirs:
            if os.path.islink(os.path.join(root, d)):
                raise ArtifactError(f"output {source} contains a symlink ({Path(root, d).relative_to(source)})",
                                    hint="outputs must be regular files")
        for n in sorted(names):
            p = Path(root) / n
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                raise ArtifactError(f"output {source} contains a symlink ({p.relative_to(source)})",
                                    hint="outputs must be regular files")
            if stat.S_ISREG(st.st_mode):
                files.append((str(p.relative_to(source)), p))
    return files


def tree_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's manifest (``relpath\\0filedigest`` lines), as stored."""
    def file_digest(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()

    if not path.is_dir():
        return file_digest(path)
    manifest = hashlib.sha256()
    files = sorted((str(p.relative_to(path)), p) for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for rel, p in files:
        manifest.update(f"{rel}\0{file_digest(p)}\n".encode())
    return manifest.hexdigest()


def _safe_segment(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or any(c in name for c in _BAD_CHARS):
        raise ArtifactError(f"invalid name {name!r}")
    return name
