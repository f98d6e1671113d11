"""Azure ML data assets and datastores, locally: the registry and the mapping they resolve through.

Owns: **assets** — ``azureml:NAME:VERSION`` / ``azureml:NAME@latest`` (and ARM ids
``…/data|codes|models/NAME/versions/V``) name our registered artifacts called NAME; an asset
version is the artifact's label ``ext.ai.sap.com/azureml-version`` (``orchestrator assets
register`` sets it; a local path is copied into the object store, so a version never changes).
Artifacts of that name without the label (outputs of executions, ``POST /v2/lm/artifacts``) count
too: ``@latest`` is the newest, version N the N-th oldest. **Datastores** — ``azureml://datastores/
DS/paths/P`` and blob URLs (``wasbs://C@A.blob.core.windows.net/P``, ``https://A.blob.core.windows.net/C/P``,
key ``A/C``) resolve through a mapping *name → local folder*: the home's
``azureml/datastores.json`` (``orchestrator assets datastore set``) over a ``.azureml/datastores.json``
found in the job file's folder or a parent (paths in it relative to the folder holding
``.azureml``), or *name → ``ai://<secret>[/<path>]``*: an object store secret's store (a bucket
for type S3, downloaded like any ``ai://`` input of that secret). A path never leaves its mapped
folder (:func:`resolve_inside`, :func:`check_relative`). Must not import api or cli.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.errors import ArtifactError, NotFound, UsageError
from orchestrator.model import Artifact
from orchestrator.spec.azureml_job import MODEL_TYPES, Reference
from orchestrator.store.artifacts import check_relative, parse_url, resolve_inside
from orchestrator.store.sqlite import SqliteStore

VERSION_LABEL = "ext.ai.sap.com/azureml-version"
TYPE_LABEL = "ext.ai.sap.com/azureml-type"
SCENARIO = "azureml-assets"
MAP_FILE = ".azureml/datastores.json"
_MAX_MAP = 256 * 1024


# ---------------------------------------------------------------------- assets
def versions(store: SqliteStore, rg: str, name: str) -> list[tuple[str, Artifact]]:
    """``(version, artifact)`` of every artifact named ``name``, oldest first."""
    arts = sorted(store.list_artifacts(rg, name=name, limit=10_000), key=lambda a: (a.created_at, a.id))
    out: list[tuple[str, Artifact]] = []
    for n, a in enumerate(arts, start=1):
        out.append((dict(a.labels).get(VERSION_LABEL) or str(n), a))
    return out


def resolve_asset(store: SqliteStore, rg: str, ref: Reference, *, what: str = "", kind: str = "data") -> Artifact:
    """The artifact an ``azureml:`` reference names; :class:`NotFound` says how to register it
    (``kind="code"``: a job's code, which ``--artifact`` cannot bind)."""
    found = versions(store, rg, ref.name)
    how = (f"register it: orchestrator assets register {ref.name} PATH" + (f" --version {ref.version}" if ref.version else "")
           + (f"   (or bind the input directly: orchestrator run FILE --artifact {what or 'INPUT'}=PATH)"
              if kind != "code" else " (the folder with the job's scripts)"))
    if not found:
        raise NotFound(f"{what + ': ' if what else ''}{kind} asset {ref.text!r} is not registered locally", hint=how)
    if not ref.version:
        return max(found, key=lambda va: _order(va[0]))[1] if any(VERSION_LABEL in dict(a.labels) for _, a in found) \
            else found[-1][1]
    for v, a in reversed(found):
        if v == ref.version:
            return a
    raise NotFound(f"{what + ': ' if what else ''}{kind} asset {ref.name!r} has no version {ref.version!r}",
                   hint=f"registered versions: {', '.join(v for v, _ in found)}; " + how)


def _order(v: str) -> tuple[int, float, str]:
    try:
        return (1, float(v), v)
    except ValueError:
        return (0, 0.0, v)


def register_asset(svc: Any, name: str, source: str, *, version: str = "", azure_type: str = "",
                   description: str = "") -> Artifact:
    """Register ``source`` (a path, ``file://`` or ``ai://``) as version ``version`` (default: next
    number) of asset ``name``; a local path is copied into the object store first."""
    from orchestrator.control.registry import NAME_RE

    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"bad asset name {name[:80]!r}",
                         hint="1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
    existing = versions(svc.store, svc.rg, name)
    if version and any(v == version for v, _ in existing):
        raise UsageError(f"asset {name!r} already has version {version!r}", hint="versions never change: pick another")
    if not version:
        nums = [int(v) for v, _ in existing if v.isdigit()]
        version = str(max(nums, default=0) + 1)
    url = source if source.startswith("ai://") else ""
    if not url:
        path = Path(source[len("file://"):] if source.startswith("file://") else source).expanduser()
        if not path.exists():
            raise ArtifactError(f"no such file or directory: {source}")
        svc.objects.local_path(svc.rg, path.resolve().as_uri())  # the same file-root rule as every other path
        azure_type = azure_type or ("uri_file" if path.is_file() else "uri_folder")
        url = snapshot(svc, path, f"assets/{name}/{version}")
        digest, size = _measure(svc.objects.local_path(svc.rg, url))
    else:
        azure_type = azure_type or ("uri_file" if svc.objects.local_path(svc.rg, url).is_file() else "uri_folder")
        digest, size = "", 0  # an ai:// URL registered as it is: nothing was copied, nothing measured
    kind = "model" if azure_type in MODEL_TYPES else "dataset"
    return svc.store.create_artifact(svc.rg, name=name, kind=kind, url=url, scenario_id=SCENARIO,
                                     description=description or f"Azure ML asset {name}:{version} ({azure_type})",
                                     labels=[(VERSION_LABEL, version), (TYPE_LABEL, azure_type)],
                                     digest=digest, size=size)


def _measure(local: Path) -> tuple[str, int]:
    """The snapshot's sha256 (a folder's manifest digest, as outputs are stored) and its bytes."""
    from orchestrator.store.paths import tree_digest

    files = [local] if local.is_file() else [p for p in local.rglob("*") if p.is_file() and not p.is_symlink()]
    return tree_digest(local), sum(p.stat().st_size for p in files)


def snapshot(svc: Any, path: Path, key: str) -> str:
    """Copy a file or folder into the object store (content-addressed blobs); returns its ``ai://`` URL.

    Skipped: ``.git``, ``__pycache__``, ``.ipynb_checkpoints``, a top-level ``outputs`` folder (a
    job's ``./outputs`` starts empty) and symlinks (nothing outside the folder is taken along)."""
    import shutil

    skip = {".git", "__pycache__", ".ipynb_checkpoints"}
    real, home = os.path.realpath(path), os.path.realpath(svc.home)
    if os.path.commonpath([real, home]) == home:  # the database, tokens, other groups' objects
        raise ArtifactError(f"{str(path)!r} lies inside the orchestrator home {svc.home}: not taken as a job's "
                            "code or data", hint="point code: (or the asset) at the folder of your scripts")
    _check_size(path, skip, home)
    with tempfile.TemporaryDirectory(dir=svc.home) as tmp:
        dest = Path(tmp) / (path.name or "data")
        if path.is_dir():
            shutil.copytree(path, dest, symlinks=True,
                            ignore=lambda d, names: [n for n in names if n in skip or os.path.islink(os.path.join(d, n))
                                                     or (Path(d) == path and n == "outputs")
                                                     # the home (e.g. ./.orchestrator under code: .) is never
                                                     # copied: it holds this very copy and the database
                                                     or os.path.realpath(os.path.join(d, n)) == home])
            for link in [p for p in dest.rglob("*") if p.is_symlink()]:
                link.unlink()
        else:
            shutil.copyfile(path, dest)
        url, _digest, _size = svc.objects.store_output(svc.rg, dest, key, Path(tmp))
    return url


def _check_size(path: Path, skip: set[str], home: str = "") -> None:
    """Caps before copying: a ``code:`` or asset path that names a huge tree (``code: /``) is refused."""
    max_files = int(os.environ.get("ORCHESTRATOR_SNAPSHOT_MAX_FILES", "20000"))
    max_bytes = int(os.environ.get("ORCHESTRATOR_SNAPSHOT_MAX_BYTES", str(2 << 30)))
    files, size = 0, 0
    walk = [(str(path.parent), [], [path.name])] if path.is_file() else os.walk(path, followlinks=False)
    for root, dirs, names in walk:
        dirs[:] = [d for d in dirs if d not in skip and not (Path(root) == path and d == "outputs")
                   and os.path.realpath(os.path.join(root, d)) != home]
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            files += 1
            size += st.st_size
            if files > max_files or size > max_bytes:
                raise ArtifactError(f"{path} holds more than {max_files} files or {max_bytes >> 20} MiB: not copied",
                                    hint="point code:/the asset at the folder the job needs (or raise "
                                         "ORCHESTRATOR_SNAPSHOT_MAX_FILES / ORCHESTRATOR_SNAPSHOT_MAX_BYTES)")


# ---------------------------------------------------------------------- datastores
def _home_map(home: Path) -> Path:
    return home / "azureml" / "datastores.json"


def _read_map(path: Path, base: Path) -> dict[str, str]:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_MAP + 1)
    except OSError:
        return {}
    try:
        data = json.loads(raw[:_MAX_MAP])
    except ValueError:
        raise UsageError(f"{path} is not valid JSON", hint='{"DATASTORE or ACCOUNT/CONTAINER": "local folder"}') from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must hold a JSON object", hint='{"workspaceblobstore": "data"}')
    return {str(k): str(v) if str(v).startswith("ai://") else str(base / os.path.expanduser(str(v)))
            for k, v in data.items() if isinstance(v, str)}


def datastores(home: Path, job_file: str | None = None) -> dict[str, tuple[str, str]]:
    """name -> (local folder, where the mapping comes from): the job's ``.azureml`` file, then the home's."""
    out: dict[str, tuple[str, str]] = {}
    if job_file:
        d = Path(os.path.abspath(job_file)).parent
        for folder in [d, *d.parents]:
            f = folder / MAP_FILE
            if f.is_file():
                out.update({k: (v, str(f)) for k, v in _read_map(f, folder).items()})
                break
    hm = _home_map(home)
    out.update({k: (v, str(hm)) for k, v in _read_map(hm, Path("/")).items()})
    return out


def set_datastore(home: Path, name: str, folder: str) -> str:
    """Map a datastore to a local folder, or to ``ai://<secret>[/<path>]`` (an object store
    secret's store: a bucket for type S3)."""
    if folder.startswith("ai://"):
        parse_url(folder.rstrip("/") + "/x")  # the grammar of an ai:// URL (its path may be empty)
        path: Path | str = folder.rstrip("/")
    else:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise UsageError(f"not a folder: {folder}")
    if not name or len(name) > 255 or any(c in name for c in "\0\\") or name.strip("/") != name:
        raise UsageError(f"bad datastore name {name!r}", hint="DATASTORE (workspaceblobstore) or ACCOUNT/CONTAINER")
    f = _home_map(home)
    data = _read_map(f, Path("/"))
    data[name] = str(path)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, f)
    return str(path)


def remove_datastore(home: Path, name: str) -> None:
    f = _home_map(home)
    data = _read_map(f, Path("/"))
    if name not in data:
        raise NotFound(f"no datastore mapping {name!r} in {f}")
    del data[name]
    f.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def resolve_datastore(home: Path, ref: Reference, *, job_file: str | None, what: str) -> str:
    """The ``file://`` URL a datastore or blob reference maps to; :class:`ArtifactError` says how to map it."""
    maps = datastores(home, job_file)
    kind = "datastore" if ref.kind == "datastore" else "blob container"
    if ref.name not in maps:
        raise ArtifactError(
            f"{what}: {kind} {ref.name!r} of {ref.text!r} is not mapped to a local folder (nothing is downloaded)",
            hint=f"map it: orchestrator assets datastore set {ref.name} DIR   (or add {{\"{ref.name}\": \"DIR\"}} to "
                 f"{MAP_FILE} next to the job, or bind the input directly: --artifact {what.split()[-1].strip(chr(39))}=PATH)")
    root = maps[ref.name][0]
    inner = ref.path.strip("/")
    if root.startswith("ai://"):  # mapped to an object store secret: ai://<secret>/<path>/<inner>
        url = f"{root}/{check_relative(inner)}" if inner else root
        parse_url(url)
        return url
    path = resolve_inside(root, inner) if inner else Path(os.path.realpath(root))
    if not path.exists():
        raise ArtifactError(f"{what}: {ref.text!r} maps to {path}, which does not exist",
                            hint=f"mapping of {ref.name!r} from {maps[ref.name][1]}")
    return path.as_uri()
