"""Hardened git sync core: fetch a repo into a private bare mirror, read YAML blobs, validate them.

Owns: the one git subprocess helper (:func:`_git`), URL and revision checks, the bare mirror
(clone on first use, fetch later), reading files straight from git objects (``ls-tree`` +
``cat-file``, never a checkout), and per-file validation with cross-file duplicate-id checks.
Pure and store-free: :mod:`orchestrator.control.syncing` wires it to the store.

Must not import: ``store``, ``service``, ``runner``, ``cli``, ``api`` or any third-party package
(only the stdlib, ``errors``, ``model`` and ``spec``).

Why (reference/reliability.md row 14): the remote repo is hostile. Its config, hooks, filters and
``.gitmodules`` are never honoured: git only runs in a bare mirror we created (``--git-dir``, no
working tree) with hooks, fsmonitor, submodules, background gc, redirects and every protocol but
``file`` and ``https`` off, no system/global config, no ``~/.netrc`` (private HOME), no prompts.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.errors import SpecError, UsageError
from orchestrator.model import ConfigurationSpec, ScheduleSpec, WorkflowSpec
from orchestrator.spec import Result, validate_text

GIT_TIMEOUT = 300.0  # seconds for one git command (a clone over a slow link)
MAX_BLOB = 1 << 20  # per-file cap, checked from the tree entry before the blob is read
MAX_FILES = 5000  # YAML files read per sync
MAX_TOTAL = 64 << 20  # bytes of YAML read per sync
YAML_SUFFIXES = (".yaml", ".yml")
ALLOWED_PROTOCOLS = "file:https"  # GIT_ALLOW_PROTOCOL: overrides every protocol.* setting

_HARDENING = (
    "-c", "core.hooksPath=/dev/null",  # no hook of any repo ever runs (reference-transaction too)
    "-c", "core.fsmonitor=false", "-c", "core.symlinks=false",
    "-c", "protocol.ext.allow=never",  # belt and braces: GIT_ALLOW_PROTOCOL already excludes it
    "-c", "submodule.recurse=false", "-c", "fetch.recurseSubmodules=false",
    "-c", "credential.helper=",  # the empty value resets the helper list: no stored credentials
    "-c", "http.followRedirects=false",  # a redirect never carries our Authorization header away
    "-c", "transfer.credentialsInUrl=die",  # git itself refuses user:password@ URLs
    "-c", "gc.auto=0", "-c", "maintenance.auto=false",  # no detached gc outliving the call
    "-c", "safe.bareRepository=explicit",  # only the --git-dir we name is ever used as a repo
)
_PASS_ENV = ("PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
             "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO")
_SHA_RE = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_REV_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,254}")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
_USE = "use https:// (credentials go in the repository secret), file:///abs/path or an absolute local path"


class GitError(UsageError):
    """A git URL, revision or path is refused, or a git command failed or timed out."""

    code = "GIT_ERROR"


@dataclass
class FileResult:
    """The sync outcome of one file of the repo (AI Core's ``syncResourcesStatus``, never silent)."""

    path: str
    status: str  # "valid" | "invalid" | "skipped"
    errors: list[str] = field(default_factory=list)  # SpecError.format(): file:line:col: ...
    executables: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _clean(text: str, limit: int = 400) -> str:
    """git's stderr as one printable line, capped (it may name the URL, never a secret)."""
    text = _CTRL_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _auth_env(url: str, credentials: tuple[str, str] | None) -> dict[str, str]:
    """Credentials as a URL-scoped ``http.<url>.extraHeader`` in git's env-config (git >= 2.31).

    Not in argv (``/proc/*/cmdline`` is world-readable), not in a file, no helper or askpass
    program: only in the git process's environment, which only its owner can read.
    """
    if credentials is None:
        return {}
    user, secret = credentials
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}"}


def _git(args: list[str], cwd: Path, *, git_dir: Path | None = None, stdin: bytes | None = None,
         env_extra: dict[str, str] | None = None, check: bool = True,
         timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """Run one hardened git command (argv list, no shell) in its own process group.

    ``cwd`` is under the orchestrator home, never a user's working tree; its empty ``.git-home``
    becomes HOME (no ``~/.netrc``). ``git_dir`` is passed as ``--git-dir`` so git never discovers
    another repo. The environment is built from scratch: no caller ``GIT_*`` (trace, ssh command,
    config parameters) leaks in. On timeout the whole process group is killed.
    """
    home = cwd / ".git-home"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_ATTR_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false",
                "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS, "GIT_LITERAL_PATHSPECS": "1",
                "GIT_CEILING_DIRECTORIES": str(cwd.parent), "LC_ALL": "C"})  # discovery stops at cwd
    env.update(env_extra or {})
    argv = ["git", *_HARDENING, *([f"--git-dir={git_dir}"] if git_dir is not None else []), *args]
    pipe = subprocess.PIPE
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=pipe if stdin is not None else subprocess.DEVNULL,
                                stdout=pipe, stderr=pipe, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}", hint="install git >= 2.31") from exc
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GitError(f"git {args[0]} timed out after {timeout:g} s") from None
    if check and proc.returncode != 0:
        raise GitError(f"git {args[0]} failed (exit {proc.returncode}): {_clean(err.decode('utf-8', 'replace'))}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def check_url(url: str) -> str:
    """Accept an absolute local path, a ``file:///`` URL or an ``https://`` URL; return it unchanged.

    Raises:
        GitError: for option-like values (``-u…``, ``--upload-pack=…``), remote-helper syntax
            (``ext::``, ``fd::``), ssh/scp-style, ``git://`` and ``http://`` (plaintext),
            credentials in the URL, whitespace and control characters.
    """
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise GitError("repository URL must be a non-empty string of at most 2048 characters")
    if any(c.isspace() for c in url) or _CTRL_RE.search(url):
        raise GitError("repository URL must not contain whitespace or control characters")
    if url.startswith("-"):
        raise GitError("repository URL must not start with '-' (it would be read as a git option)")
    if "::" in url:
        raise GitError("remote-helper URLs ('ext::', 'fd::', ...) are not allowed", hint=_USE)
    if url.startswith("/"):
        return url
    scheme = url.partition("://")[0].lower()
    if "://" not in url:
        raise GitError("a local repository path must be absolute; ssh/scp-style 'host:path' is not supported",
                       hint=_USE)
    if scheme not in ("file", "https"):
        raise GitError(f"'{scheme}://' URLs are not supported", hint=_USE)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:  # the message names the part, not the URL
        raise GitError(f"malformed repository URL ({exc})") from None
    if scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise GitError("file URLs must be file:///absolute/path (no host)")
        return url
    if not parts.hostname:
        raise GitError("https URL has no host")
    if "@" in parts.netloc:
        raise GitError("credentials must not be part of the repository URL",
                       hint="store them as the repository's secret; they are then sent as a header")
    return url


def check_revision(revision: str) -> str:
    if not isinstance(revision, str) or not _REV_RE.fullmatch(revision) or ".." in revision \
            or "//" in revision or revision.endswith((".", "/", ".lock")):
        raise GitError("revision must be a branch name, a tag name, HEAD or a full commit SHA",
                       hint="letters, digits and ._/+- only; no '..', no leading '-'")
    return revision


def _is_mirror(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / ".git").exists()


def _resolve(mirror: Path, revision: str, timeout: float) -> str:
    candidates = [revision]  # a full SHA, HEAD or refs/...; otherwise a branch wins over a same-named tag
    if not (_SHA_RE.fullmatch(revision) or revision == "HEAD" or revision.startswith("refs/")):
        candidates = [f"refs/heads/{revision}", f"refs/tags/{revision}"]
    for ref in candidates:
        p = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"], mirror.parent,
                 git_dir=mirror, check=False, timeout=timeout)
        sha = p.stdout.decode("ascii", "replace").strip()
        if p.returncode == 0 and _SHA_RE.fullmatch(sha):
            return sha
    raise GitError(f"commit {revision} is not on any branch or tag of the repository" if _SHA_RE.fullmatch(revision)
                   else f"revision {revision!r} is not a branch or tag of the repository")


def fetch(url: str, mirror_dir: Path, revision: str, *, credentials: tuple[str, str] | None = None,
          timeout: float = GIT_TIMEOUT) -> str:
    """Bring the bare mirror at ``mirror_dir`` up to date with ``url``; return ``revision``'s commit SHA.

    The first call clones (``clone --bare --no-local``) into a temporary sibling and renames it
    into place, so an interrupted clone leaves no half mirror; later calls fetch all branches and
    tags with ``--prune``. ``mirror_dir`` lives under the orchestrator home; an existing directory
    that is not a mirror is refused, never reused. ``revision``: a branch, a tag, ``HEAD``,
    ``refs/...`` or a full SHA. ``credentials`` (user, secret) for https go in a URL-scoped header.

    Raises:
        GitError: refused URL or revision, git failure or timeout, unknown revision.
    """
    url = check_url(url)
    revision = check_revision(revision)
    mirror = Path(mirror_dir).absolute()
    mirror.parent.mkdir(parents=True, exist_ok=True)
    env = _auth_env(url, credentials)
    if _is_mirror(mirror):
        _git(["fetch", "--prune", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head", "--quiet",
              "--", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
             mirror.parent, git_dir=mirror, env_extra=env, timeout=timeout)
    elif mirror.exists() and (not mirror.is_dir() or any(mirror.iterdir())):
        raise GitError(f"{mirror} exists and is not a git mirror; refusing to use it")
    else:
        tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.clone-", dir=mirror.parent))
        try:
            _git(["clone", "--bare", "--no-checkout", "--no-local", "--template=", "--quiet", "--", url, str(tmp)],
                 mirror.parent, env_extra=env, timeout=timeout)
            os.replace(tmp, mirror)  # rename(2) replaces an empty directory atomically
        except OSError as exc:  # a concurrent sync created the mirror first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
            if not _is_mirror(mirror):
                raise GitError(f"cannot create the mirror {mirror}: {exc.strerror or exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _resolve(mirror, revision, timeout)


def check_path(path: str) -> str:
    """Normalise a repo-relative directory; refuse absolute, ``..``, backslash and control chars."""
    if not isinstance(path, str) or path.startswith("/") or "\\" in path or _CTRL_RE.search(path):
        raise GitError(f"path {path!r} must be relative to the repository root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise GitError(f"path {path!r} must not contain '..'")
    return "/".join(parts)


def _unsafe_name(name: str) -> bool:
    return bool(_CTRL_RE.search(name)) or "\\" in name or any(
        p in ("", ".", "..") or p.lower() == ".git" for p in name.split("/"))


def _cat_batch(mirror: Path, oids: list[str], timeout: float) -> dict[str, bytes]:
    """Read blobs in one ``cat-file --batch`` process (raw object bytes: no filters, no textconv)."""
    out = _git(["cat-file", "--batch"], mirror.parent, git_dir=mirror, stdin="".join(o + "\n" for o in oids).encode(),
               timeout=timeout).stdout
    blobs: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        nl = out.index(b"\n", pos)
        head = out[pos:nl].decode("ascii", "replace").split()
        if len(head) != 3 or head[1] != "blob":
            raise GitError(f"unexpected cat-file answer: {_clean(' '.join(head), 120)}")
        size = int(head[2])
        blobs[head[0]] = out[nl + 1:nl + 1 + size]
        pos = nl + 1 + size + 1
    return blobs


def read_tree(mirror_dir: Path, sha: str, path: str, max_blob: int = MAX_BLOB, *,
              timeout: float = GIT_TIMEOUT) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """Read every ``*.yaml``/``*.yml`` file under ``path`` at commit ``sha`` from git objects.

    ``ls-tree -r -l -z`` lists entries with their sizes (the cap is checked before any content is
    read); one ``cat-file --batch`` reads the admitted blobs. Nothing is checked out, so no filter,
    hook or symlink is ever involved. Returns ``(files, skipped)``: ``(repo path, bytes)`` sorted
    by path, and ``(repo path, reason)`` for symlinks, submodules, oversized blobs, unsafe names
    and files over the per-sync limits. Other non-YAML files are ignored.

    Raises:
        GitError: bad ``sha`` or ``path``, ``path`` missing at ``sha``, or a git failure.
    """
    mirror = Path(mirror_dir).absolute()
    if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
        raise GitError("commit must be a full lower-case hex SHA")
    prefix = check_path(path)
    if not _is_mirror(mirror):
        raise GitError(f"{mirror} is not a git mirror (run fetch first)")
    args = ["ls-tree", "-r", "-l", "-z", "--full-tree", sha] + (["--", prefix] if prefix else [])
    raw = _git(args, mirror.parent, git_dir=mirror, timeout=timeout).stdout
    entries = [e for e in raw.split(b"\0") if e]
    if prefix and not entries:
        raise GitError(f"path {prefix!r} does not exist at commit {sha[:12]}")
    wanted: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    total = 0
    for entry in entries:
        meta, _, bname = entry.partition(b"\t")
        mode, kind, oid, size = meta.decode("ascii", "replace").split()
        try:
            name = bname.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append((bname.decode("utf-8", "backslashreplace"), "file name is not valid UTF-8"))
            continue
        rel = name[len(prefix) + 1:] if prefix else name
        if prefix and name != prefix and not name.startswith(prefix + "/"):
            continue  # defensive: GIT_LITERAL_PATHSPECS already restricts ls-tree to the prefix
        if any(part.startswith(".") for part in rel.split("/")[:-1]):
            continue  # hidden directories (.github/...) are skipped, as by `orchestrator validate DIR`
        shown = _CTRL_RE.sub(lambda m: repr(m.group())[1:-1], name)  # printable, one line
        if mode == "160000":
            skipped.append((shown, "submodule: not followed (submodules are never fetched)"))
        elif mode == "120000":
            skipped.append((shown, "symbolic link: not followed"))
        elif kind != "blob" or not mode.startswith("100"):
            skipped.append((shown, f"unsupported tree entry (mode {mode})"))
        elif not name.endswith(YAML_SUFFIXES):
            continue
        elif _unsafe_name(name):
            skipped.append((shown, "unsafe file name (control character, backslash, '.', '..' or '.git')"))
        elif int(size) > max_blob:
            skipped.append((name, f"file is {size} bytes, over the {max_blob}-byte limit"))
        elif len(wanted) >= MAX_FILES or total + int(size) > MAX_TOTAL:
            skipped.append((name, f"over the per-sync limit of {MAX_FILES} files / {MAX_TOTAL} bytes"))
        else:
            total += int(size)
            wanted.append((name, oid))
    blobs = _cat_batch(mirror, sorted({oid for _, oid in wanted}), timeout) if wanted else {}
    files = [(name, blobs[oid]) for name, oid in sorted(wanted)]
    return files, skipped


def skipped_results(skipped: list[tuple[str, str]]) -> list[FileResult]:
    """:class:`FileResult` rows for what :func:`read_tree` skipped, so the status lists every file."""
    return [FileResult(path, "skipped", [f"{path}: skipped: {reason}"]) for path, reason in skipped]


def position_of(data: bytes, name: str, kinds: tuple[str, ...], ident: str,
                pointer: str = "/metadata/name") -> tuple[int, int]:
    """Line and column of ``pointer`` in the document named ``ident`` (re-parsed: rare errors only)."""
    from orchestrator.spec.yamlsafe import load_bytes

    for doc in load_bytes(data, name)[0]:
        d = doc.data
        if isinstance(d, dict) and d.get("kind") in kinds and str((d.get("metadata") or {}).get("name")) == ident:
            return doc.where(pointer)
    return 1, 1


def check_files(files: list[tuple[str, bytes]], validate: Callable[[bytes, str], Result] | None = None) -> tuple[
        list[FileResult], list[WorkflowSpec], list[ConfigurationSpec], list[ScheduleSpec]]:
    """Validate each file with ``validate`` (default :func:`~orchestrator.spec.validate_text`), then across files.

    A file is the unit: an invalid file (any error in any document) contributes no specs. Ids of
    executables, Configurations and ExecutionSchedules defined in two or more otherwise valid files
    are an ``id.duplicate`` error in each, naming the others. Returns one :class:`FileResult` per
    file in input order, and the workflows, configurations and schedules of the valid files.
    """
    results: list[FileResult] = []
    specs: dict[str, tuple[list[WorkflowSpec], list[ConfigurationSpec], list[ScheduleSpec]]] = {}
    for name, data in files:
        try:
            res = (validate or validate_text)(data, name)
            errors, warnings = list(res.errors), list(res.warnings)
            wfs, cfgs, scheds = list(res.workflows), list(res.configurations), list(res.schedules)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not hide the other files
            errors = [SpecError(name, 1, 1, "", "internal.check-failed",
                                f"validation crashed ({type(exc).__name__})", "please report this with the file")]
            warnings, wfs, cfgs, scheds = [], [], [], []
        results.append(FileResult(name, "invalid" if errors else "valid", [e.format() for e in errors],
                                  [w.executable_id for w in wfs], [w.format() for w in warnings]))
        specs[name] = (wfs, cfgs, scheds)
    data_of = dict(files)
    for k, attr, label, kinds in ((0, "executable_id", "executable id", ("WorkflowTemplate", "ServingTemplate")),
                                  (1, "name", "configuration name", ("Configuration",)),
                                  (2, "name", "schedule name", ("ExecutionSchedule",))):
        ids = {n: {getattr(x, attr) for x in s[k]} for n, s in specs.items()}
        owners: dict[str, list[str]] = {}
        for r in results:
            for ident in sorted(ids[r.path]) if r.status == "valid" else ():
                owners.setdefault(ident, []).append(r.path)
        for ident, paths in owners.items():
            where = {p: position_of(data_of[p], p, kinds, ident) for p in paths} if len(paths) > 1 else {}
            for r in (r for r in results if r.path in where):
                others = ", ".join(f"{p}:{where[p][0]}" for p in paths if p != r.path)
                r.errors.append(SpecError(r.path, *where[r.path], "/metadata/name", "id.duplicate",
                                          f"{label} {ident!r} is also defined in {others}",
                                          f"{label}s are unique across the repository: rename one").format())
                r.status = "invalid"
    valid = [r.path for r in results if r.status == "valid"]
    return (results, [w for n in valid for w in specs[n][0]], [c for n in valid for c in specs[n][1]],
            [c for n in valid for c in specs[n][2]])
