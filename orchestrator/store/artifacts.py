"""Object store: ``ai://`` and ``file://`` resolution, materialisation, content-addressed outputs.

Owns: the on-disk layout under ``$ORCHESTRATOR_HOME`` (``objects/<rg>/<secret>/...`` for
``ai://<secret>/...`` URLs, ``cas/sha256/<2>/<hex>`` blobs), the single containment helper
:func:`resolve_inside` that every path from a user, a template or a URL goes through, and storing
an output file or directory by sha256 (files are hard links to blobs, so equal outputs are
stored once), and removing the temporary files of uploads whose process died
(:meth:`ObjectStore.sweep_temp`). Nothing here writes to the database.

An object store secret of type ``S3`` is a real bucket (:mod:`orchestrator.store.objects_s3`):
the composition root passes ``remotes`` (secret name -> :class:`S3Target` or None), and then
``ai://<secret>/<path>`` is ``s3://<bucket>/<pathPrefix>/<path>``: :meth:`ObjectStore.check` asks the
bucket whether it exists, :meth:`ObjectStore.local_path` downloads it into ``cache/s3/`` (keyed by
the objects' ETags, so a changed object is fetched again), :meth:`ObjectStore.defer` names where an
execution's input will be and :meth:`ObjectStore.fetch` downloads it when its first step is
prepared (a failure is that step's), and :meth:`ObjectStore.store_output` uploads to the bucket when
the group's ``default`` secret is one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from orchestrator.errors import ArtifactError

from orchestrator.store.objects_remote import BucketObjects, Remotes
from orchestrator.store.paths import (  # noqa: F401 - re-exported: the names every caller imports from here
    CHUNK,
    ParsedUrl,
    _safe_segment,
    check_relative,
    output_files,
    parse_url,
    resolve_inside,
    tree_digest,
)

_OWNED = re.compile(r"(\d+)\.(\d+)-")  # ``<pid>.<start time>-`` after the temp prefix
LEGACY_TEMP_AGE = 86400.0  # a temporary file without an owner in its name is removed after a day


class ObjectStore(BucketObjects):
    """Local object store rooted at ``home`` (and the buckets of S3 object store secrets)."""

    def __init__(self, home: str | os.PathLike[str], file_roots: list[str] | None = None,
                 remotes: Remotes | None = None) -> None:
        self.home = Path(home)
        self.objects = self.home / "objects"
        self.cas = self.home / "cas" / "sha256"
        self.file_roots = [os.path.realpath(r) for r in (file_roots or [])]
        self.remotes = remotes
        self.deferred: dict[str, tuple[str, str]] = {}  # local path -> (rg, ai:// URL) still to download
        self.fetched: dict[str, ArtifactError | None] = {}  # done (None) or failed (remembered)
        self._fetch_lock = threading.Lock()

    # ------------------------------------------------------------------ local paths
    def local_path(self, rg: str, url: str) -> Path:
        """Where the bytes of ``url`` are on this machine (must exist); a bucket's are downloaded."""
        remote = self.remote_of(rg, url)
        if remote is not None:
            return self._download_cached(rg, url, *remote)
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
        check_relative(relative_url_path)
        if space == "default":
            remote = self.remote(rg, space)
            if remote is not None:  # the group's `default` secret is a bucket: the output goes there
                from orchestrator.store.objects_s3 import put_tree

                done = put_tree(remote, source, relative_url_path, within=within)
                return f"ai://{space}/{relative_url_path}", done.digest, done.size
        files = output_files(source, within)
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

