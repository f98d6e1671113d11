"""The buckets behind object store secrets of type S3, as seen by the object store.

Owns: the part of :class:`~orchestrator.store.artifacts.ObjectStore` that knows buckets (a mixin;
the composition root passes ``remotes``: (resource group, secret name) -> :class:`S3Target` or
None). ``ai://<secret>/<path>`` of an S3 secret is ``s3://<bucket>/<pathPrefix>/<path>``:
:meth:`BucketObjects.check` asks the bucket whether it exists (no download),
``local_path`` downloads it into
``cache/s3/<rg>/<secret>/<fingerprint>/`` (the fingerprint covers the objects' keys, sizes and
ETags, so a changed artifact is fetched again), :meth:`BucketObjects.defer` names where an
execution's input will be and :meth:`BucketObjects.fetch` downloads it there when the first step
that needs it is prepared, so a failed download is that step's failure. Transfers are
:mod:`orchestrator.store.objects_s3`'s (imported when a bucket is used: boto3 stays unimported).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import ArtifactError
from orchestrator.store.paths import _safe_segment, parse_url, resolve_inside

if TYPE_CHECKING:
    from orchestrator.store.objects_s3 import S3Target

Remotes = Callable[[str, str], "S3Target | None"]  # (resource group, secret name) -> its bucket, if S3


class BucketObjects:
    """Bucket-backed ``ai://`` URLs; mixed into ObjectStore (which provides ``local_path``)."""

    home: Path
    objects: Path  # the local store's root (``<home>/objects``)
    remotes: Remotes | None
    deferred: dict[str, tuple[str, str]]  # local path -> (rg, ai:// URL) still to download
    fetched: dict[str, ArtifactError | None]  # done (None) or failed (remembered)
    _fetch_lock: threading.Lock

    def local_path(self, rg: str, url: str) -> Path: ...  # provided by ObjectStore

    def remote(self, rg: str, secret: str) -> S3Target | None:
        """The bucket of object store secret ``secret`` of ``rg`` if it is of type S3."""
        return self.remotes(rg, secret) if self.remotes is not None else None

    def remote_of(self, rg: str, url: str) -> tuple[S3Target, str] | None:
        """``(bucket target, path)`` when ``url`` is ``ai://<S3 secret>/<path>``; None otherwise,
        also for a path the local store already holds: written before the secret became a bucket
        (the outputs, assets and code snapshots of earlier runs), its bytes stay where they are."""
        u = parse_url(url)
        target = self.remote(rg, u.secret) if u.scheme == "ai" else None
        if target is None or self._kept_here(rg, u.secret, u.path):
            return None
        return target, u.path

    def _kept_here(self, rg: str, secret: str, path: str) -> bool:
        if not path.strip("/"):
            return False
        try:
            return resolve_inside(self.objects, f"{_safe_segment(rg)}/{_safe_segment(secret)}/{path}").exists()
        except (ArtifactError, OSError):
            return False

    def check(self, rg: str, url: str) -> None:
        """That ``url`` names an existing artifact, without downloading a bucket's objects."""
        remote = self.remote_of(rg, url)
        if remote is None:
            self.local_path(rg, url)
            return
        from orchestrator.store import objects_s3

        if not objects_s3.exists(*remote):
            raise ArtifactError(f"artifact {url!r} does not exist ({remote[0].url(remote[1])})")

    def _download_cached(self, rg: str, url: str, target: S3Target, path: str) -> Path:
        """A bucket artifact in ``cache/s3/<rg>/<secret>/<fingerprint>/<name>``; the fingerprint
        covers every object's key, size and ETag, so a changed artifact is downloaded again."""
        from orchestrator.store import objects_s3

        found = objects_s3.listing(target, path)
        if not found:
            raise ArtifactError(f"artifact {url!r} does not exist ({target.url(path)})")
        fp = hashlib.sha256(json.dumps([target.endpoint_url, target.bucket, found]).encode()).hexdigest()[:24]
        u = parse_url(url)
        folder = resolve_inside(self.home, f"cache/s3/{_safe_segment(rg)}/{_safe_segment(u.secret)}/{fp}")
        dest = folder / path.rsplit("/", 1)[-1]
        if dest.exists():
            return dest
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".dl-"))
        try:
            objects_s3.download(target, path, tmp / dest.name)
            try:
                os.rename(tmp / dest.name, dest)
            except OSError:  # another process got there first: its copy has the same objects
                if not dest.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def defer(self, rg: str, url: str, folder: Path) -> Path:
        """The local path of an execution's input: a local artifact's own path, or for a bucket
        artifact ``folder/<name>``, downloaded there by :meth:`fetch` when a step first needs it."""
        remote = self.remote_of(rg, url)
        if remote is None:
            return self.local_path(rg, url)
        dest = Path(folder) / remote[1].rsplit("/", 1)[-1]
        self.deferred[str(dest)] = (rg, url)
        return dest

    def deferred_remote(self, path: Path) -> tuple[S3Target, str] | None:
        """``(bucket target, path)`` of a deferred input not downloaded yet (a remote executor may
        have its worker download it instead); None for anything else."""
        entry = self.deferred.get(str(path))
        return self.remote_of(*entry) if entry is not None and str(path) not in self.fetched else None

    def fetch(self, path: Path) -> Path:
        """``path``, after downloading the deferred input it is (or lies in) if that was not done
        yet; a failed download is remembered and raised again at once for the next step."""
        if not self.deferred:
            return path
        text = str(path)
        for base, (rg, url) in list(self.deferred.items()):  # a snapshot: sweep threads add theirs
            if text == base or text.startswith(base + "/"):
                with self._fetch_lock:
                    if base not in self.fetched:
                        try:
                            from orchestrator.store import objects_s3

                            remote = self.remote_of(rg, url)
                            if remote is None:
                                raise ArtifactError(f"object store secret of {url!r} is no longer an S3 bucket")
                            objects_s3.download(remote[0], remote[1], Path(base))
                            self.fetched[base] = None
                        except ArtifactError as exc:
                            self.fetched[base] = exc
                    problem = self.fetched[base]
                if problem is not None:
                    raise problem
                break
        return path
