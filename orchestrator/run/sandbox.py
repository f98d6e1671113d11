"""Per-step filesystem sandbox: run a command seeing step directories at absolute container paths.

``python -m orchestrator.run.sandbox --bind HOST TARGET ... --workdir DIR -- CMD ...`` enters a new
user + mount namespace (ctypes syscalls), builds a root on a tmpfs mounted at
``<workdir>/.sandbox-root`` mirroring the host ``/`` by bind mounts, gives ``/tmp``, ``/mnt`` and
top directories missing on the host private tmpfs directories, binds each HOST at its TARGET and the
workdir at its own path, pivots into the new root and execs CMD in place (same PID, no shell).
Nothing is written on the host outside the workdir. Stdlib only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
MNT_DETACH = 2
PRIVATE_TOPS = ("tmp", "mnt")
ROOT_DIR = ".sandbox-root"
_SYS_PIVOT_ROOT = {"x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41}
_available: tuple[bool, str] | None = None


class _Fail(Exception):
    """Setup failure carrying the process exit code (125 setup, 126 bad binding)."""
    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def _errtext(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise _Fail(f"{what} failed: {_errtext(ctypes.get_errno())}")


def _mount(libc: ctypes.CDLL, src: str | None, dst: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    rc = libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(rc, f"mount({src!r} -> {dst!r})")


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise _Fail(f"writing {path} failed: {_errtext(e.errno or 0)}") from None


def _top(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def _host_bound(top: str) -> bool:
    return top not in PRIVATE_TOPS and os.path.lexists("/" + top)


def _plan(binds: list[tuple[str, str]]) -> list[tuple[str, str, bool]]:
    """Validate binds before touching anything; return (host, target, is_dir) sorted by depth."""
    plan: list[tuple[str, str, bool]] = []
    for host, target in binds:
        norm = os.path.normpath(target)
        if not os.path.isabs(target) or norm == "/":
            raise _Fail(f"bind target must be an absolute path below /: {target!r}", 126)
        if not os.path.exists(host):
            raise _Fail(f"bind source does not exist: {host}", 126)
        is_dir = os.path.isdir(host)
        if _host_bound(_top(norm)):
            real = os.path.realpath(norm)
            if _host_bound(_top(real)) and os.path.lexists(real) and os.path.isdir(real) != is_dir:
                raise _Fail(f"cannot place {norm}: mount point and source differ in kind", 126)
            if not (_host_bound(_top(real)) and not os.path.lexists(real)):
                norm = real  # else: placed inside an overlay of the host's top directory
        plan.append((os.path.abspath(host), norm, is_dir))
    return sorted(plan, key=lambda p: p[1].count("/"))


def _links(binds: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Binds of a file directly under ``/`` (not a host top) whose source the step has yet to
    write: shown as a symlink to it, so writing ``/result.txt`` creates the step's file."""
    out = []
    for host, target in binds:
        norm = os.path.normpath(target)
        top = _top(norm)
        if (os.path.isabs(target) and norm == "/" + top and top and not _host_bound(top)
                and not os.path.lexists(host) and os.path.isdir(os.path.dirname(os.path.abspath(host)))):
            out.append((host, target))
    return out


def _place(root: str, target: str, is_dir: bool, overlaid: frozenset[str] = frozenset()) -> str:
    """Create TARGET's missing components under ``root`` (tmpfs or overlay), never via symlinks."""
    path, parts = root, target.strip("/").split("/")
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        last = i == len(parts) - 1
        if os.path.islink(path):
            raise _Fail(f"cannot place {target}: {path[len(root):]} is a symlink", 126)
        if not os.path.lexists(path):
            if _host_bound(parts[0]) and parts[0] not in overlaid:
                raise _Fail(f"cannot place {target}: {path[len(root):]} does not exist", 126)
            if last and not is_dir:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            else:
                os.mkdir(path, 0o755)
        elif last and os.path.isdir(path) != is_dir:
            raise _Fail(f"cannot place {target}: mount point and source differ in kind", 126)
    return path


def _detach_self_copies(libc: ctypes.CDLL, new: str) -> None:
    """Unmount copies of the new-root tmpfs that recursive binds dragged inside it (no loops)."""
    dev = os.stat(new).st_dev
    want = f"{os.major(dev)}:{os.minor(dev)}"
    found: list[str] = []
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            head, *rest = fields[4].split("\\")  # the kernel escapes only as \ooo
            point = head + "".join(chr(int(r[:3], 8)) + r[3:] for r in rest)
            if fields[2] == want and point.startswith(new + "/"):
                found.append(point)
    for point in sorted(found, key=len, reverse=True):
        libc.umount2(os.fsencode(point), MNT_DETACH)  # a parent's detach may already have taken it


def _setup(binds: list[tuple[str, str]], workdir: str) -> None:
    """Enter namespaces, build the new root, pivot into it and chdir to ``workdir``."""
    workdir = os.path.realpath(workdir)
    if not os.path.isdir(workdir):
        raise _Fail(f"workdir is not a directory: {workdir}", 126)
    links = _links(binds)
    plan = _plan([b for b in binds if b not in links])
    libc, uid, gid = ctypes.CDLL(None, use_errno=True), os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    new = os.path.join(workdir, ROOT_DIR)
    os.makedirs(new, exist_ok=True)
    _mount(libc, "tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    private = set(PRIVATE_TOPS) | {_top(t) for _, t, _ in plan if not _host_bound(_top(t))}
    for name in os.listdir("/"):
        src, dst = "/" + name, os.path.join(new, name)
        if name in private or os.path.lexists(dst):
            continue
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            _mount(libc, src, dst, None, MS_BIND | MS_REC)
        elif os.path.isfile(src):
            os.close(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644))
            _mount(libc, src, dst, None, MS_BIND | MS_REC)
    _detach_self_copies(libc, new)  # before the workdir bind below hides them
    file_tops = {_top(t) for _, t, d in plan if not d and t.strip("/") == _top(t)}  # e.g. an artifact at /art
    for host, target in links:  # a file at the root not written yet (Argo's /result.txt): a link
        os.symlink(os.path.abspath(host), os.path.join(new, _top(target)))
    for name in private - file_tops - {_top(t) for _, t in links}:
        os.mkdir(os.path.join(new, name), 0o1777 if name == "tmp" else 0o755)
        os.chmod(os.path.join(new, name), 0o1777 if name == "tmp" else 0o755)
    wd_dst = _place(new, workdir, True)  # creates (on the tmpfs) only under a private top
    _mount(libc, workdir, wd_dst, None, MS_BIND | MS_REC)
    # A target under a top directory the host has (e.g. /app in an image with WORKDIR /app) but
    # whose path is missing there: overlay that top directory so the host content stays visible
    # and every write (mount points included) lands in the step directory.
    overlaid = frozenset(_top(t) for _, t, _ in plan if _host_bound(_top(t)) and not os.path.lexists(t))
    for top in sorted(overlaid):
        base = os.path.join(workdir, ".sandbox-overlay", top)
        upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        try:
            _mount(libc, "overlay", os.path.join(new, top), "overlay", 0,
                   f"lowerdir=/{top},upperdir={upper},workdir={work}")
        except _Fail as exc:
            raise _Fail(f"cannot place paths under /{top}: it exists on the host and overlaying it "
                        f"failed ({exc}); use {{{{inputs.artifacts.NAME.path}}}}", 126) from None
    for host, target, is_dir in plan:
        _mount(libc, host, _place(new, target, is_dir, overlaid), None, MS_BIND | MS_REC)
    if not (os.path.isdir(wd_dst) and os.path.samefile(wd_dst, workdir)):  # a TARGET hid it
        _mount(libc, workdir, _place(new, workdir, True), None, MS_BIND | MS_REC)
    _detach_self_copies(libc, new)
    nr = _SYS_PIVOT_ROOT.get(os.uname().machine.lower())
    old = os.path.join(new, ".sandbox-oldroot")
    os.mkdir(old)
    if nr is not None and libc.syscall(nr, os.fsencode(new), os.fsencode(old)) == 0:
        os.chdir("/")
        _check(libc.umount2(b"/.sandbox-oldroot", MNT_DETACH), "umount2(old root)")
        os.rmdir("/.sandbox-oldroot")
    else:
        os.rmdir(old)
        os.chroot(new)
    os.chdir(workdir)


def _parse(argv: list[str]) -> tuple[list[tuple[str, str]], str, list[str], bool, str]:
    binds: list[tuple[str, str]] = []
    workdir, probe, chdir, i = os.getcwd(), False, "", 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--bind" and i + 2 < len(argv):
            binds.append((argv[i + 1], argv[i + 2]))
            i += 3
        elif argv[i] == "--workdir" and i + 1 < len(argv):
            workdir, i = argv[i + 1], i + 2
        elif argv[i] == "--chdir" and i + 1 < len(argv):
            chdir, i = argv[i + 1], i + 2
        elif argv[i] == "--probe":
            probe, i = True, i + 1
        else:
            raise _Fail(f"bad argument {argv[i]!r}; usage: python -m orchestrator.run.sandbox "
                        "[--bind HOST TARGET]... [--workdir DIR] -- CMD ARGS...", 2)
    return binds, workdir, argv[i + 1:], probe, chdir


def _probe() -> int:
    """Full setup without binds in a child whose root lives in a temp dir removed afterwards."""
    import shutil  # lazy imports: every sandboxed step pays for what the module imports
    import tempfile
    tmp = tempfile.mkdtemp(prefix="orchestrator-sandbox-probe-")
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(main(["--workdir", tmp, "--", "/bin/true"]))
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    finally:
        shutil.rmtree(tmp)  # only the empty ROOT_DIR: the child's mounts died with its namespace


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.run.sandbox``; returns only on failure (execs the command otherwise)."""
    try:
        binds, workdir, cmd, probe, chdir = _parse(sys.argv[1:] if argv is None else argv)
        if probe:
            try:
                return _probe()
            except OSError as e:
                raise _Fail(f"probe failed: {e}") from None
        if not cmd:
            raise _Fail("no command given after --", 2)
        try:
            _setup(binds, workdir)
        except OSError as e:
            raise _Fail(f"setting up {e.filename or '/'}: {_errtext(e.errno or 0)}") from None
        if chdir:  # the template's workingDir, a path inside the sandbox (e.g. /app/model)
            try:
                os.chdir(chdir)
            except OSError as e:
                raise _Fail(f"workingDir {chdir}: {_errtext(e.errno or 0)}", 126) from None
        os.execvp(cmd[0], cmd)
    except _Fail as e:
        return _report(str(e), e.code)
    except FileNotFoundError:
        return _report(f"command not found: {cmd[0]}", 127)
    except OSError as e:
        return _report(f"cannot execute {cmd[0]}: {_errtext(e.errno or 0)}", 126)


def _report(message: str, code: int) -> int:
    print(f"orchestrator sandbox: {message}", file=sys.stderr)
    return code


def available() -> tuple[bool, str]:
    """Whether the sandbox works here, with the reason when not; probed once per process."""
    global _available
    if _available is None:
        import subprocess  # lazy, see _probe
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (pkg_parent, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path)
        try:
            res = subprocess.run([sys.executable, "-m", "orchestrator.run.sandbox", "--probe"], env=env,
                                 capture_output=True, text=True, timeout=10, check=False)
            why = res.stderr.strip().removeprefix("orchestrator sandbox: ")
            why = why or f"probe exited with {res.returncode}"
            _available = (True, "") if res.returncode == 0 else (False, why)
        except (OSError, subprocess.TimeoutExpired) as e:
            _available = (False, f"probe failed: {e}")
    return _available


def wrap(argv: list[str], binds: list[tuple[str, str]], workdir: str, chdir: str = "") -> list[str]:
    """Return the argv to Popen instead of ``argv`` so it runs sandboxed with ``binds``."""
    # -P: the step directory (cwd) must not shadow stdlib modules of the helper itself.
    out = [sys.executable, "-P", "-m", "orchestrator.run.sandbox"]
    for host, target in binds:
        out += ["--bind", host, target]
    return out + ["--workdir", workdir] + (["--chdir", chdir] if chdir else []) + ["--", *argv]


def prefix(argv: list[str]) -> list[str]:
    """The sandbox part of an argv :func:`wrap` made (everything up to and including ``--``), so that
    another command runs in the same sandbox; ``[]`` when ``argv`` is not sandboxed."""
    if argv[:4] != [sys.executable, "-P", "-m", "orchestrator.run.sandbox"]:
        return []
    i = 4
    while i < len(argv):
        if argv[i] == "--bind" and i + 2 < len(argv):
            i += 3
        elif argv[i] in ("--workdir", "--chdir") and i + 1 < len(argv):
            i += 2
        elif argv[i] == "--":
            return argv[:i + 1]
        else:
            break
    return []


if __name__ == "__main__":
    raise SystemExit(main())
