"""S3-compatible object stores: ``ai://<secret>/<path>`` on a real bucket, through boto3.

Owns: :class:`S3Target` (bucket, path prefix, endpoint, region and the credentials of one object
store secret; picklable; its ``repr``/``str`` never show a credential), the translation of an AI
Core object store secret (``type: S3``, ``bucket``, ``endpoint``, ``region``, ``pathPrefix``,
``usehttps``, ``verifyssl``, ``data: {AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY}``) into one
(:func:`target_from_secret`), and the three transfers: :func:`exists`, :func:`download` (one key or
a folder prefix into a local path; every key of a listing is hostile: it must be a relative path
that :func:`~orchestrator.store.artifacts.resolve_inside` keeps inside the destination, with caps
on the number of files and bytes) and :func:`upload_tree` / :func:`put_tree` (a step's output).

Content addressing, as in the local store: each file's bytes are uploaded once, to
``<prefix>/cas/sha256/<hex>`` (a HEAD on that key decides: a blob of the same size, whose
``sha256`` metadata if any is that digest, is never uploaded again; any other is overwritten), and the object a reader of ``ai://<secret>/<path>/<file>`` sees
(``<prefix>/<path>/<file>``: plain objects, so AI Core, ``aws s3 cp`` and our :func:`download` read
them as they are) is a server-side copy of that blob carrying its digest as metadata
(``x-amz-meta-sha256``), which :func:`download` verifies. The digest returned is the same sha256
tree digest as a local output's (:func:`~orchestrator.store.artifacts.tree_digest`).

Every failure is an :class:`ArtifactError` naming the secret and the bucket (a missing bucket,
refused credentials, an unreachable endpoint, a missing key), never a credential: botocore's own
message is not used. Connections have connect and read timeouts, so a dead endpoint fails a step
instead of hanging it. boto3 is imported here only, and lazily; this module needs only boto3, the
standard library and :mod:`orchestrator.store.artifacts` (no database), because a remote
executor calls :func:`download` and :func:`upload_tree` on a worker node.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ArtifactError
from orchestrator.store.paths import CHUNK, check_relative, output_files, resolve_inside
from orchestrator.store.s3_endpoints import check_endpoint

CAS = "cas/sha256"
CONNECT_TIMEOUT = float(os.environ.get("ORCHESTRATOR_S3_CONNECT_TIMEOUT", "5"))
READ_TIMEOUT = float(os.environ.get("ORCHESTRATOR_S3_READ_TIMEOUT", "60"))
ATTEMPTS = int(os.environ.get("ORCHESTRATOR_S3_ATTEMPTS", "3"))  # botocore's standard retries (backoff)
MAX_FILES = 100_000
MAX_BYTES = int(os.environ.get("ORCHESTRATOR_S3_MAX_BYTES", str(16 << 30)))  # one download's total
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
           "403", "InvalidClientTokenId", "AuthorizationHeaderMalformed"}


@dataclass(frozen=True)
class S3Target:
    """Where one object store secret's objects are, and how to reach them.

    ``prefix`` is the secret's ``pathPrefix`` (no leading or trailing ``/``); ``endpoint_url`` is
    None for AWS itself. ``name`` (the secret's name) only labels messages.
    """

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    verify_ssl: bool = True
    name: str = ""

    def __str__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"object store secret {self.name!r} (s3://{self.bucket}/{self.prefix}{where})"

    def key(self, path: str) -> str:
        """The object key of ``path`` (an ``ai://<secret>/<path>`` path) under the prefix."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def url(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"


def target_from_secret(name: str, metadata: dict[str, str], data: dict[str, str]) -> S3Target:
    """The target of an ``S3`` object store secret as AI Core stores it (``storage.ai.sap.com/*``
    metadata, ``data`` with plain ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``)."""
    # storage.ai.sap.com/<field>, and serving.kubeflow.org/s3-<field> (usehttps, verifyssl) under it
    m = {k.rsplit("/", 1)[-1].removeprefix("s3-"): v for k, v in sorted(metadata.items())}
    bucket = m.get("bucket", "")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ArtifactError(f"object store secret {name!r} names no valid S3 bucket ({bucket[:80]!r})",
                            hint="set bucket to 3-63 lowercase letters, digits, '.' and '-'")
    prefix = m.get("pathPrefix", "").strip("/")
    if prefix:
        check_relative(prefix)
    endpoint = m.get("endpoint", "").strip() or None
    if endpoint and "://" not in endpoint:
        endpoint = ("http://" if m.get("usehttps", "1") in ("0", "false", "False") else "https://") + endpoint
    if endpoint and not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", endpoint):
        raise ArtifactError(f"object store secret {name!r}: endpoint {endpoint[:120]!r} is not an http(s) URL")
    if endpoint:
        check_endpoint(name, endpoint)
    key_id, secret = data.get("AWS_ACCESS_KEY_ID", ""), data.get("AWS_SECRET_ACCESS_KEY", "")
    if not key_id or not secret:
        raise ArtifactError(f"object store secret {name!r} lacks AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY "
                            "in its data")
    return S3Target(bucket, prefix, endpoint, m.get("region") or "us-east-1", key_id, secret,
                    data.get("AWS_SESSION_TOKEN") or None, m.get("verifyssl", "1") not in ("0", "false", "False"),
                    name)


class _Clients(dict):  # type: ignore[type-arg]
    """The boto3 clients made here, by target. Pickled empty: a Ray node gets this module by value
    (cloudpickle) and makes its own clients (an ``lru_cache`` would be pickled by reference)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Clients, ())


_CLIENTS = _Clients()


def _client(target: S3Target) -> Any:
    """A boto3 S3 client for ``target`` (cached: a client is thread-safe and costs ~50 ms)."""
    found = _CLIENTS.get(target)
    if found is None:
        if len(_CLIENTS) >= 32:
            _CLIENTS.clear()
        found = _CLIENTS[target] = _new_client(target)
    return found


def _new_client(target: S3Target) -> Any:
    if target.endpoint_url:  # again where it connects (a node, or after a DNS change)
        check_endpoint(target.name, target.endpoint_url)
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ArtifactError(f"{target} needs boto3", hint="pip install 'orchestrator[s3]'") from None
    config = Config(connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"max_attempts": ATTEMPTS, "mode": "standard"}, ignore_configured_endpoint_urls=True)
    session = boto3.session.Session(aws_access_key_id=target.access_key_id,
                                    aws_secret_access_key=target.secret_access_key,
                                    aws_session_token=target.session_token, region_name=target.region)
    return session.client("s3", endpoint_url=target.endpoint_url, verify=target.verify_ssl, config=config)


def _fail(target: S3Target, exc: BaseException, doing: str) -> ArtifactError:
    """A located error without botocore's text (it may quote request details)."""
    from botocore import exceptions as bx

    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                        bx.ConnectionClosedError)) or isinstance(exc, OSError):
        what = f"endpoint {target.endpoint_url or 'of AWS S3'} is unreachable or did not answer in time"
        hint = "check the secret's endpoint (and usehttps) and that the server runs"
    elif isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        what, hint = "has no usable credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its data"
    elif isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
        if code == "NoSuchBucket":
            what, hint = f"bucket {target.bucket!r} does not exist", "create the bucket or fix the secret's bucket"
        elif code in _DENIED:
            what = f"the credentials were refused ({code})"
            hint = "PATCH the object store secret with valid AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        elif code in ("404", "NoSuchKey", "NotFound"):
            what, hint = "does not exist", None
        else:
            what, hint = f"the server answered {code[:60]}", None
    elif isinstance(exc, bx.SSLError):
        what, hint = "TLS verification failed", "fix the endpoint's certificate, or set verifyssl to 0"
    else:
        what, hint = f"failed ({type(exc).__name__})", None
    message = f"{target}: {doing}: {what}"
    for secret in (target.secret_access_key, target.access_key_id, target.session_token):
        if secret and len(secret) >= 6:  # never in the text anyway; a short test key would mangle it
            message = message.replace(secret, "***")
    return ArtifactError(message, hint=hint)


def _call(target: S3Target, doing: str, fn: str, **kwargs: Any) -> Any:
    from botocore import exceptions as bx

    try:
        return getattr(_client(target), fn)(**kwargs)
    except (bx.BotoCoreError, bx.ClientError, OSError) as exc:
        raise _fail(target, exc, doing) from None


def _missing(exc: ArtifactError) -> bool:
    return exc.message.endswith(": does not exist")


def _head(target: S3Target, key: str, doing: str) -> dict[str, Any] | None:
    """The HEAD answer for ``key``, or None when there is no such object."""
    try:
        return dict(_call(target, doing, "head_object", Bucket=target.bucket, Key=key))
    except ArtifactError as exc:
        if _missing(exc):
            return None
        raise


def listing(target: S3Target, path: str, *, max_files: int = MAX_FILES) -> list[tuple[str, int, str]]:
    """``(key, size, etag)`` of the objects of ``ai://<secret>/<path>``: the one object, or every
    object under the folder ``<path>/``; empty when there is none."""
    key = target.key(path)
    doing = f"reading {target.url(path)}"
    head = _head(target, key, doing)
    if head is not None:
        return [(key, int(head.get("ContentLength", 0)), str(head.get("ETag", "")))]
    out: list[tuple[str, int, str]] = []
    token: dict[str, str] = {}
    while True:
        page = _call(target, doing, "list_objects_v2", Bucket=target.bucket, Prefix=key + "/", **token)
        for obj in page.get("Contents", ()):
            out.append((str(obj["Key"]), int(obj.get("Size", 0)), str(obj.get("ETag", ""))))
            if len(out) > max_files:
                raise ArtifactError(f"{target}: {target.url(path)} has more than {max_files} objects")
        if not page.get("IsTruncated"):
            return out
        token = {"ContinuationToken": page["NextContinuationToken"]}


def exists(target: S3Target, path: str) -> bool:
    """Whether ``ai://<secret>/<path>`` names an object or a non-empty folder."""
    key = target.key(path)
    doing = f"reading {target.url(path)}"
    if _head(target, key, doing) is not None:
        return True
    page = _call(target, doing, "list_objects_v2", Bucket=target.bucket, Prefix=key + "/", MaxKeys=1)
    return bool(page.get("Contents"))


def download(target: S3Target, key: str, dest: Path, *, max_files: int = MAX_FILES,
             max_bytes: int = MAX_BYTES) -> list[str]:
    """Download ``ai://<secret>/<key>`` (an object, or every object of the folder ``<key>/``) to
    ``dest`` (a file, or a directory holding the folder's tree); returns the relative paths written.

    Keys from the listing are hostile: each must be a relative path (no ``..``, no leading or
    doubled ``/``) that stays inside ``dest``; otherwise nothing is kept and ArtifactError names the
    key. A folder-marker key (ending in ``/``, empty) is skipped. An object carrying a ``sha256``
    (ours do) must hash to it. ``dest`` appears whole or not at all.
    """
    check_relative(key)
    objects = listing(target, key, max_files=max_files)
    if not objects:
        raise ArtifactError(f"{target}: {target.url(key)} does not exist")
    full = target.key(key)
    total = sum(size for _k, size, _e in objects)
    if total > max_bytes:
        raise ArtifactError(f"{target}: {target.url(key)} holds {total} bytes, more than the cap of {max_bytes}",
                            hint="raise ORCHESTRATOR_S3_MAX_BYTES if this is expected")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".s3-dl-"))
    written: list[str] = []
    try:
        single = len(objects) == 1 and objects[0][0] == full
        budget = [max_bytes]
        for obj_key, size, _etag in objects:
            if single:
                rel, local = dest.name, staging / "file"
            else:
                rel = obj_key[len(full) + 1:]
                if rel.endswith("/") and size == 0 and rel.strip("/") and "//" not in rel:
                    continue  # a console's "folder" marker
                try:
                    local = resolve_inside(staging / "tree", check_relative(rel))
                except ArtifactError:
                    raise ArtifactError(f"{target}: refusing the object key {obj_key[:200]!r} under "
                                        f"{target.url(key)}: it does not map to a path inside the destination",
                                        hint="keys must be relative paths without '..', '//' or a "
                                        "leading '/'") from None
            try:
                _get(target, obj_key, local, budget)
            except OSError as exc:  # e.g. keys "a" and "a/b": a file where a folder must be
                raise ArtifactError(f"{target}: cannot write {rel[:200]!r} of {target.url(key)}: "
                                    f"{exc.strerror or exc}") from None
            written.append(rel)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        if single:
            os.replace(staging / "file", dest)
        else:
            (staging / "tree").mkdir(exist_ok=True)
            os.replace(staging / "tree", dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def download_keeping(target: S3Target, key: str, dest: Path, keep: tuple[str, ...] = ()) -> list[str]:
    """:func:`download`, then the directories ``keep`` (relative to ``dest``, inside it) made again:
    a step's output folders declared inside this input folder, which the download replaced."""
    written = download(target, key, dest)
    for rel in keep:
        resolve_inside(Path(dest), check_relative(rel)).mkdir(parents=True, exist_ok=True)
    return written


def _get(target: S3Target, key: str, local: Path, budget: list[int]) -> None:
    """Stream one object to ``local`` within the remaining byte budget; check its sha256 if it has one."""
    from botocore import exceptions as bx

    doing = f"downloading s3://{target.bucket}/{key}"
    answer = _call(target, doing, "get_object", Bucket=target.bucket, Key=key)
    want = str(answer.get("Metadata", {}).get("sha256", ""))
    local.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with open(local, "wb") as out:
            body = answer["Body"]
            while chunk := body.read(CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise ArtifactError(f"{target}: {doing}: more bytes than the cap",
                                        hint="raise ORCHESTRATOR_S3_MAX_BYTES if this is expected")
                h.update(chunk)
                out.write(chunk)
    except (bx.BotoCoreError, OSError) as exc:
        raise _fail(target, exc, doing) from None
    if want and h.hexdigest() != want:
        raise ArtifactError(f"{target}: {doing}: its bytes do not hash to its recorded sha256")


@dataclass(frozen=True)
class Uploaded:
    """What :func:`put_tree` wrote: the tree digest (as a local output's), total bytes, the path
    objects' keys and the blobs that were new (the others were already in the bucket)."""

    digest: str
    size: int
    keys: list[str]
    new_blobs: list[str]


def put_tree(target: S3Target, src: Path, key: str, *, within: Path | None = None) -> Uploaded:
    """Store ``src`` (a file or a directory; no symlinks; inside ``within`` when given) at
    ``ai://<secret>/<key>``: ``<key>/<relative path>`` for each file, as the local store lays an
    output out; blobs go to ``cas/sha256/<hex>`` once."""
    check_relative(key)
    files = output_files(Path(src), Path(within) if within is not None else Path(src).parent)
    manifest = hashlib.sha256()
    keys: list[str] = []
    new: list[str] = []
    total, digest = 0, ""
    for rel, path in sorted(files):
        digest, size = _file_digest(path)
        total += size
        manifest.update(f"{rel}\0{digest}\n".encode())
        blob = target.key(f"{CAS}/{digest}")
        doing = f"uploading {path.name} to {target.url(key)}"
        meta = {"Metadata": {"sha256": digest}}
        if not _blob_ok(_head(target, blob, doing), digest, size):  # missing, or not these bytes
            _managed(target, doing, "upload_file", str(path), target.bucket, blob, ExtraArgs=meta)
            new.append(blob)
        dest = target.key(f"{key}/{rel}")  # a server-side copy: no byte is sent again (multipart past 5 GB)
        _managed(target, doing, "copy", {"Bucket": target.bucket, "Key": blob}, target.bucket, dest,
                 ExtraArgs={**meta, "MetadataDirective": "REPLACE"})
        keys.append(dest)
    if Path(src).is_dir():
        digest = manifest.hexdigest()
    return Uploaded(digest, total, keys, new)


def _blob_ok(head: dict[str, Any] | None, digest: str, size: int) -> bool:
    """Whether an existing ``cas/sha256/<digest>`` blob may be reused: its size must be ``size``
    and its ``sha256`` metadata, when it has one, ``digest`` (anyone with write access to the
    bucket could have planted other bytes at that key)."""
    if head is None or int(head.get("ContentLength", -1)) != size:
        return False
    recorded = str((head.get("Metadata") or {}).get("sha256", ""))
    return recorded in ("", digest)


def _managed(target: S3Target, doing: str, fn: str, *args: Any, **kwargs: Any) -> None:
    """One of boto3's managed transfers (multipart when large), in this thread, errors located."""
    from boto3.s3.transfer import TransferConfig
    from botocore import exceptions as bx

    try:
        getattr(_client(target), fn)(*args, Config=TransferConfig(use_threads=False), **kwargs)
    except (bx.BotoCoreError, bx.ClientError, OSError) as exc:
        raise _fail(target, exc, doing) from None
    except Exception as exc:  # noqa: BLE001 - s3transfer wraps a failure in S3UploadFailedError
        cause = exc.__cause__ or exc.__context__
        raise _fail(target, cause if cause is not None else exc, doing) from None


def upload_tree(target: S3Target, src: Path, key: str) -> list[str]:
    """:func:`put_tree` without a containment root; returns the keys of the objects written."""
    return put_tree(target, src, key).keys


def _file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
