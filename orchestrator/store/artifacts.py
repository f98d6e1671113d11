"""Object store: ``ai://`` and ``file://`` resolution, materialisation, content-addressed outputs.

Owns: the on-disk layout under ``$ORCHESTRATOR_HOME`` (``objects/<rg>/<secret>/...`` for
``ai://<secret>/...`` URLs, ``cas/sha256/<2>/<hex>`` blobs), the single containment helper
:func:`resolve_inside` that every path from a user, a template or a URL goes through, and storing
an output file or directory by sha256 (files are hard links to blobs, so equal outputs are
stored once), and removing the temporary files of uploads whose process died
(:meth:`ObjectStore.sweep_temp`). Nothing here writes to the database.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ArtifactError

_BAD_CHARS = ("\x00", "\\")
CHUNK = 1 << 20
_OWNED = re.compile(r"(\d+)\.(\d+)-")  # ``<pid>.<start time>-`` after the temp prefix
LEGACY_TEMP_AGE = 86400.0  # a temporary file without an owner in its name is removed after a day


def resolve_inside(root: str | os.PathLike[str], untrusted: str) -> Path:
    """``root/untrusted`` if it stays inside ``root`` after resolving symlinks; else ArtifactError."""
    if any(c in untrusted for c in _BAD_CHARS):
        raise ArtifactError(f"path {untrusted!r} contains a forbidden character")
    parts = [p for p in untrusted.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArtifactError(f"path {untrusted!r} must not contain '..'")
    if untrusted.startswith("/"):
        raise ArtifactError(f"path {untrusted!r} must be relative")
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, *parts)) if parts else base
    if os.path.commonpath([base, full]) != base:
        raise ArtifactError(f"path {untrusted!r} leaves its root")
    return Path(full)


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


class ObjectStore:
    """Local object store rooted at ``home``."""

    def __init__(self, home: str | os.PathLike[str], file_roots: list[str] | None = None) -> None:
        self.home = Path(home)
        self.objects = self.home / "objects"
        self.cas = self.home / "cas" / "sha256"
        self.file_roots = [os.path.realpath(r) for r in (file_roots or [])]

    def local_path(self, rg: str, url: str) -> Path:
        """Where the bytes of ``url`` are on this machine (must exist)."""
        u = parse_url(url)
        if u.scheme == "file":
            real = os.path.realpath(u.path)
            if not any(os.path.commonpath([r, real]) == r for r in self.file_roots):
                raise ArtifactError(f"{url!r} is outside the allowed file roots",
                                    hint="add its directory to ORCHESTRATOR_FILE_ROOTS or run from it")
            p = Path(real)
        else:
            root = resolve_inside(self.objects, f"{_safe_segment(rg)}/{_safe_segment(u.secret)}")
            if u.secret != "default" and not root.is_dir():
                raise ArtifactError(f"object store secret {u.secret!r} is not configured",
                                    hint="only ai://default/... is available locally")
            p = resolve_inside(root, u.path)
        try:
            exists = p.exists()
        except OSError as exc:
            raise ArtifactError(f"artifact {url!r} cannot be read: {exc.strerror}") from None
        if not exists:
            raise ArtifactError(f"artifact {url!r} does not exist")
        return p

    def materialize(self, source: Path, dest: Path) -> None:
        """Copy an artifact (file or directory) to ``dest``; symlinks are never followed."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            files = [p for p in source.rglob("*") if p.is_file() and not p.is_symlink()]
            if len(files) == 1 and not str(dest).endswith("/") and dest.suffix and dest.suffix != "." \
                    and files[0].parent == source:
                shutil.copyfile(files[0], dest)
                return
            shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True,
                            ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
        elif source.is_file():
            shutil.copyfile(source, dest)
        else:
            raise ArtifactError(f"artifact {source} is neither a file nor a directory")

    def _blob(self, path: Path) -> tuple[str, int]:
        """Copy one file into the CAS (if new); returns (sha256, size)."""
        self.cas.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.cas, prefix=f".in-{_owner()}-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            target = self.cas / digest[:2] / digest
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                os.unlink(tmp)
            else:
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return digest, size

    def store_output(self, rg: str, source: Path, relative_url_path: str, within: Path,
                     space: str = "default") -> tuple[str, str, int]:
        """Store ``source`` (file or dir, must stay inside ``within``) at ``ai://default/<path>``.

        Returns (url, sha256 digest, total size). Symlinks are refused: an output never points out
        of its step directory.
        """
        base = os.path.realpath(within)
        real = os.path.realpath(source)
        if os.path.commonpath([base, real]) != base or source.is_symlink():
            raise ArtifactError(f"output {source} resolves outside the step directory")
        if not source.exists():
            raise ArtifactError(f"output path {source} was not created by the step")
        files: list[tuple[str, Path]] = []
        if source.is_dir():
            for root, dirs, names in os.walk(source, followlinks=False):
                for d in dirs:
                    if os.path.islink(os.path.join(root, d)):
                        raise ArtifactError(f"output {source} contains a symlink "
                                            f"({Path(root, d).relative_to(source)})",
                                            hint="outputs must be regular files")
                for n in sorted(names):
                    p = Path(root) / n
                    st = os.lstat(p)
                    if stat.S_ISLNK(st.st_mode):
                        raise ArtifactError(f"output {source} contains a symlink ({p.relative_to(source)})",
                                            hint="outputs must be regular files")
                    if stat.S_ISREG(st.st_mode):
                        files.append((str(p.relative_to(source)), p))
        else:
            files.append((source.name, source))
        check_relative(relative_url_path)
        self.objects.mkdir(parents=True, exist_ok=True)
        dest = resolve_inside(self.objects, f"{_safe_segment(rg)}/{_safe_segment(space)}/{relative_url_path}")
        staging = Path(tempfile.mkdtemp(dir=self.objects, prefix=f".out-{_owner()}-"))
        manifest = hashlib.sha256()
        total = 0
        digest = ""
        try:
            for rel, p in sorted(files):
                digest, size = self._blob(p)
                total += size
                manifest.update(f"{rel}\0{digest}\n".encode())
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(self.cas / digest[:2] / digest, target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if source.is_dir():
            digest = manifest.hexdigest()
        return f"ai://{space}/{relative_url_path}", digest, total

    def sweep_temp(self, now: float | None = None) -> int:
        """Remove what interrupted uploads left behind (``cas/sha256/.in-*`` blobs being copied,
        ``objects/.out-*`` outputs being assembled) whose owner is gone; returns how many.

        The owner is in the name (``.in-<pid>.<start>-…``: its pid and the process's start time in
        clock ticks since boot, so a reused pid is not taken for the owner); a name without one
        (written before owners were recorded) is removed once it is a day old. Never raises."""
        now = time.time() if now is None else now
        removed = 0
        for parent, prefix in ((self.cas, ".in-"), (self.objects, ".out-")):
            try:
                names = [n for n in os.listdir(parent) if n.startswith(prefix)]
            except OSError:
                continue
            for name in names:
                path = parent / name
                m = _OWNED.match(name[len(prefix):])
                try:
                    if m and _alive(int(m[1]), m[2]):
                        continue
                    if not m and now - os.lstat(path).st_mtime < LEGACY_TEMP_AGE:
                        continue
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                    removed += 1
                except OSError:
                    pass
        return removed

    def space_path(self, rg: str, space: str, relative: str) -> Path:
        """Local path of an object in a store space (``.cache`` holds step-cache outputs)."""
        return resolve_inside(self.objects, f"{_safe_segment(rg)}/{_safe_segment(space)}/{check_relative(relative)}")


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


def _start_time(pid: int) -> str:
    """A process's start time (clock ticks after boot, /proc/<pid>/stat field 22); "" if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


_OWNER: list[str] = []


def _owner() -> str:
    """``<pid>.<start time>`` of this process, for the names of its temporary files."""
    if not _OWNER or not _OWNER[0].startswith(f"{os.getpid()}."):  # computed once per process (fork-safe)
        _OWNER[:] = [f"{os.getpid()}.{_start_time(os.getpid()) or 0}"]
    return _OWNER[0]


def _alive(pid: int, start: str) -> bool:
    """Whether the process that wrote a temporary file still runs (same pid and start time)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = _start_time(pid)
    return not now or start == "0" or now == start


def _safe_segment(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or any(c in name for c in _BAD_CHARS):
        raise ArtifactError(f"invalid name {name!r}")
    return name
