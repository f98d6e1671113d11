"""Local container images for the container-executor tests, built with no registry.

``busybox``: a busybox-static root filesystem imported with ``podman import`` (Debian's
``busybox-static``). ``python``: a Debian root filesystem with python3 made by ``mmdebstrap`` from
Debian's packages, its tarball cached per machine under ``~/.cache/orchestrator-tests/`` (the
first build takes about two minutes), plus an ``app`` image derived from it with the code of an
AI Core-style step at ``/app/src/main.py`` (``podman build``). Images stay in podman's storage,
so a later session only checks that they exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("ORCHESTRATOR_TEST_CACHE", Path.home() / ".cache" / "orchestrator-tests"))
BUSYBOX = "localhost/orchestrator-test-busybox:2"
PYTHON = "localhost/orchestrator-test-python:1"
APP = "localhost/orchestrator-test-app:2"
APP_MAIN = """\
import datetime, json, os, sys
rows = open("/app/data/train.csv").read().split()
os.makedirs("/app/model", exist_ok=True)
with open("/app/model/model.json", "w") as f:
    json.dump({"rows": len(rows), "python": sys.version.split()[0]}, f)
with open(os.environ["ORCHESTRATOR_TRACKING_FILE"], "a") as f:  # metrics, nothing of ours installed
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    f.write(json.dumps({"t": "metric", "name": "rows", "value": float(len(rows)), "step": 0,
                        "timestamp": now}) + "\\n")
print("trained on", len(rows), "rows in", open("/etc/os-release").readline().strip())
"""


def podman_env() -> dict[str, str]:
    from orchestrator.run.container import engine_env

    return engine_env(shutil.which("podman") or "podman")


def podman(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), text=True, capture_output=True, check=check,
                          timeout=600, **kw)  # type: ignore[call-overload]


def require_podman() -> None:
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman runc)")


def _exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def busybox_image(tmp: Path) -> str:
    require_podman()
    if _exists(BUSYBOX):
        return BUSYBOX
    bb = shutil.which("busybox")
    if not bb or b"statically linked" not in subprocess.run(["file", "-L", bb], capture_output=True).stdout:
        pytest.skip("no static busybox (apt-get install busybox-static)")
    tar = tmp / "busybox.tar"
    with tarfile.open(tar, "w") as t:
        t.add(bb, "bin/busybox")
        for name in ("sh", "cat", "echo", "ls", "sleep", "mkdir", "env", "id", "true", "false", "head", "tail",
                     "wget", "touch", "kill", "trap"):
            info = tarfile.TarInfo(f"bin/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(info)
        for d in ("tmp", "etc", "app"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d in ("tmp", "app") else 0o755  # app: any runAsUser
            t.addfile(info)
    podman("import", "--change", "ENV PATH=/bin", str(tar), BUSYBOX)
    return BUSYBOX


def python_image(tmp: Path) -> str:
    require_podman()
    if not _exists(PYTHON):
        tar = CACHE / "debian-python3.tar"
        if not tar.is_file():
            if not shutil.which("mmdebstrap"):
                pytest.skip("no cached Debian image and no mmdebstrap (apt-get install mmdebstrap)")
            CACHE.mkdir(parents=True, exist_ok=True)
            part = tar.with_suffix(".part")
            res = subprocess.run(["mmdebstrap", "--variant=essential", "--include=python3", "--mode=root",
                                  "bookworm", str(part)], capture_output=True, text=True, timeout=900)
            if res.returncode != 0:
                pytest.skip(f"mmdebstrap failed: {res.stderr.strip()[-300:]}")
            part.rename(tar)
        podman("import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", str(tar), PYTHON)
    return PYTHON


def app_image(tmp: Path) -> str:
    """The team's own image: its code lives only in it, at /app/src/main.py."""
    base = python_image(tmp)
    if _exists(APP):
        return APP
    ctx = tmp / "app-image"
    ctx.mkdir()
    (ctx / "main.py").write_text(APP_MAIN)
    (ctx / "Containerfile").write_text(f"FROM {base}\nCOPY main.py /app/src/main.py\n")
    podman("build", "-q", "-t", APP, str(ctx))
    return APP


def containers_of(execution_id: str) -> list[str]:
    out = podman("ps", "-aq", "--filter", f"label=orchestrator.execution={execution_id}").stdout
    return out.split()


WORKDIR = "localhost/orchestrator-test-workdir:2"


def workdir_image(tmp: Path) -> str:
    """busybox with ``WORKDIR /srv/job``: where a step without workingDir starts (Argo/Kubernetes)."""
    base = busybox_image(tmp)
    if _exists(WORKDIR):
        return WORKDIR
    ctx = tmp / "workdir-image"
    ctx.mkdir()
    (ctx / "keep").write_text("")  # the directory is part of the image (podman creating a missing
    # WORKDIR at run time makes it the host root's, which a container in its own user namespace cannot write)
    (ctx / "Containerfile").write_text(f"FROM {base}\nCOPY keep /srv/job/.keep\nWORKDIR /srv/job\n")
    podman("build", "-q", "-t", WORKDIR, str(ctx))
    return WORKDIR
