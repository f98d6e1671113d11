"""The step directory's file-system helpers: what :mod:`orchestrator.run.prepare` uses to lay out
and guard one step's directory.

Owns: the step directory's name (:func:`safe_name`), where a declared absolute path lives under the
step's ``fs/`` tree (:func:`host_path`), link safety for the entries a step can write
(:func:`real_dir`, :func:`no_link`), what the "image" (the host) already has at a declared path (:func:`in_image`,
:func:`copy_from_image`, capped) and the sandbox bind mounts that show ``fs/`` at the declared paths
(:func:`sandbox_binds`); the runner's helper that makes step directories ahead of their steps,
then keeps the home (:func:`make_ahead`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import ArtifactError
from orchestrator.run import diskfull
from orchestrator.store.artifacts import resolve_inside

TEMP_SWEEP_EVERY = 30.0  # seconds between two sweeps of a home's interrupted uploads by this process
_swept: dict[str, float] = {}  # home -> when this process last swept it
PRIVATE_TOPS = ("tmp", "mnt")  # top directories private to the sandbox, never the "image"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@functools.lru_cache(maxsize=4096)
def safe_name(nid: str) -> str:
    clean = _UNSAFE.sub("_", nid)[:80].strip("._") or "step"
    if clean != nid:
        clean += "-" + hashlib.sha1(nid.encode()).hexdigest()[:8]
    return clean


def host_path(step_dir: Path, declared: str) -> Path:
    """Where the declared absolute path of an artifact lives on the host."""
    return resolve_inside(step_dir / "fs", declared.lstrip("/") or ".", strict_root=True)


def real_dir(path: Path, wipe: bool) -> None:
    """``path`` (an entry of the step directory the step can write) before an attempt: a symlink or
    other non-directory left there is unlinked, never followed; with ``wipe`` a real directory is
    removed (rmtree never follows the links inside it). Made again by whoever needs it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if wipe:
            shutil.rmtree(path, ignore_errors=True)  # files of another uid may stay: still a real dir
        return
    try:
        os.unlink(path)
    except OSError as exc:
        raise ArtifactError(f"{path} is not a directory and cannot be removed: {exc.strerror}") from None


def no_link(path: Path) -> None:
    """A file the runner writes or appends to (script, log, tracking file): a symlink or other
    non-regular entry a step left at its name is unlinked first."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.unlink(path)


def in_image(declared: str) -> bool:
    """A declared absolute path that already exists on the host outside the private tops
    (``/etc``, ``/usr/share/…``): what the container image would have there."""
    norm = os.path.normpath("/" + declared.lstrip("/"))
    top = norm.strip("/").split("/")[0]
    return bool(top) and top not in PRIVATE_TOPS and os.path.lexists(norm)


IMAGE_MAX_FILES = 20_000
IMAGE_MAX_BYTES = 256 * 1024 * 1024


def copy_from_image(src: str, dest: Path) -> None:
    """Copy what the "image" (the host) has at ``src`` into the step's ``fs/`` tree: regular files
    and directories only (no symlinks, no devices), unreadable files skipped, capped in size."""
    count, total = 0, 0

    def one(s: str, d: Path) -> None:
        nonlocal count, total
        count += 1
        if count > IMAGE_MAX_FILES:
            raise ArtifactError(f"{src} has more than {IMAGE_MAX_FILES} files")
        if os.path.islink(s):
            return
        if os.path.isdir(s):
            d.mkdir(parents=True, exist_ok=True)
            try:
                names = sorted(os.listdir(s))
            except OSError:
                return
            for name in names:
                one(os.path.join(s, name), d / name)
        elif os.path.isfile(s):
            try:
                size = os.path.getsize(s)
                if total + size > IMAGE_MAX_BYTES:
                    raise ArtifactError(f"{src} is larger than {IMAGE_MAX_BYTES >> 20} MiB")
                d.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(s, d)
                total += size
            except PermissionError:
                return

    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    one(src, dest)


def sandbox_binds(step_dir: Path, declared: list[tuple[str, Path, bool]]) -> list[tuple[str, str]]:
    """Bind mounts that show the step's ``fs/`` tree at the declared absolute paths."""
    host_tops = set(os.listdir("/"))
    binds: dict[str, str] = {}
    for decl, host, is_dir in declared:
        top = decl.strip("/").split("/")[0]
        if top not in host_tops or top in PRIVATE_TOPS:
            binds[f"/{top}"] = str(step_dir / "fs" / top)
        else:
            target = decl.rstrip("/") if is_dir else os.path.dirname(decl.rstrip("/"))
            binds[target] = str(host if is_dir else host.parent)
    # The interpreter and the code it imports (a venv or a source checkout under /tmp, e.g. an
    # editable install) must stay visible when their top directory is private in the sandbox.
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wanted = {os.path.realpath(p) for p in [sys.prefix, sys.base_prefix, pkg_root, *sys.path] if p}
    own: list[str] = []
    for path in sorted(wanted):
        top = path.strip("/").split("/")[0]
        if top in PRIVATE_TOPS and os.path.isdir(path) and not any(
                path == b or path.startswith(b + "/") for b in own):
            own.append(path)
            binds[path] = path
    return [(h, t) for t, h in sorted(binds.items(), key=lambda kv: kv[0].count("/"))]


def make_ahead(dirs: list[str], made: set[str], stop: threading.Event, objects: Any) -> None:
    """Make step directories ahead of their steps, in step order (adding each to ``made``), until
    ``stop``; then housekeeping off the critical path: the disk-full reserve, and the interrupted
    uploads of the home (``objects``: an ObjectStore) every ``TEMP_SWEEP_EVERY`` seconds (not per
    trial of a sweep)."""
    for d in dirs:
        if stop.is_set():
            break
        try:
            os.mkdir(d)
        except FileExistsError:
            pass
        except OSError:
            return  # prepare_leaf makes the directory itself (and reports why it cannot)
        made.add(d)
    diskfull.ensure_reserve(objects.home)
    home, now = str(objects.home), time.monotonic()
    if now - _swept.get(home, -TEMP_SWEEP_EVERY) >= TEMP_SWEEP_EVERY:
        _swept[home] = now
        objects.sweep_temp()
