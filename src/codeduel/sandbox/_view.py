"""The sample's file system: a root built from an allowlist, never the host minus some holes.

A worker builds it once, in its own mount namespace, and every sample it forks starts in it:

    /            an empty tmpfs, read-only once built
    /usr, /bin, /sbin, /lib*    the system's programs and libraries (bound, or the same symlinks)
    <interpreter>               the interpreter's prefixes and `sys.path` entries, bound at the
                                same paths (a virtual environment, pyenv under /root, the source
                                tree codeduel runs from)
    /etc         generated: passwd, group, hosts, nsswitch.conf for the sandbox's users; bound:
                 the loader's cache and configuration, the time zone, /etc/alternatives
    /dev         null, zero, full, random, urandom (bound from the host), fd/stdin/stdout/stderr
    /proc        the host's, bound so that each sample may mount its own private /proc over it
                 (the kernel mounts a new proc only where one is already fully visible)
    /tmp, /var/tmp, /dev/shm    empty directories; each sample gets fresh tmpfs mounts on them
    /run         empty, and /var/run a link to it

Nothing else of the host exists in the view: no home directory, no /srv, /opt, /mnt or /media,
no sockets or FIFOs under /run, no /sys. Everything is bound read-only (the worker's
`readonly_root` step), so a sample can read the system and its interpreter and write only its
own tmpfs mounts. Whatever a sample can read may reach a model (repair feedback), so this list
is the boundary: `docs/security.md`.

The plan is data (`plan_view`), so the same view is built whichever way the worker's user
namespace was made: by the worker itself, or by bubblewrap around it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import stat
import sys

from codeduel.sandbox import _linux as linux

# The system's own programs and libraries: bound where they are directories, recreated where
# they are symlinks (merged /usr: /bin -> usr/bin).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Read-only from the host's /etc: what the dynamic loader and the time zone need, and Debian's
# alternatives (symlinks such as /usr/bin/awk -> /etc/alternatives/awk).
ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/alternatives",
)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEV_LINKS = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
)
EMPTY_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/proc", "/etc")
# Where the worker mounts the new root while building it; pivot_root then makes it `/`.
# Sources under it stay reachable: each is opened before the tmpfs covers it.
STAGING = "/tmp"


@dataclasses.dataclass(frozen=True)
class View:
    """What the sample's root holds, by path inside it (the same path as on the host)."""

    binds: tuple[str, ...]
    """Host directories and files bound read-only at the same path."""
    symlinks: tuple[tuple[str, str], ...]
    """(path, target): symlinks recreated as they are on the host."""
    dirs: tuple[str, ...]
    """Empty directories."""
    files: tuple[tuple[str, str], ...]
    """(path, content): generated files."""
    devices: tuple[str, ...]
    proc: str = "/proc"

    def dirs_under(self, directories: tuple[str, ...]) -> tuple[str, ...]:
        """The bound directories strictly inside any of `directories` (a virtual environment
        in /tmp): what a tmpfs mounted on one of those would cover."""
        return tuple(
            path
            for path in self.binds
            if os.path.isdir(path) and any(path != d and _inside(path, d) for d in directories)
        )


def interpreter_paths() -> set[str]:
    """The directories this interpreter runs from: its prefixes, its executable's directory
    and `sys.path` (a virtual environment, its base installation, codeduel's source tree)."""
    needed = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path}
    needed.add(os.path.dirname(sys.executable))
    needed |= {os.path.realpath(path) for path in needed}
    return {p.rstrip("/") or "/" for p in needed if p.startswith("/") and os.path.isdir(p)}


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _outermost(paths: set[str]) -> set[str]:
    return {p for p in paths if not any(p != o and _inside(p, o) for o in paths)}


def _links_on_the_way(path: str, links: dict[str, str]) -> None:
    """Record each symlink among the components of `path`, and those on the way to its target,
    so that `path` resolves in the view as on the host."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:depth])
        if os.path.islink(prefix):
            if prefix in links:
                return
            target = os.readlink(prefix)
            links[prefix] = target
            rest = "/".join(parts[depth:])
            resolved = os.path.normpath(os.path.join(os.path.dirname(prefix), target, rest))
            _links_on_the_way(resolved, links)
            return


GPU_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
)
"""What a GPU sample keeps of the host's environment: which devices, where the driver is."""
GPU_LOCK_ENV = "CODEDUEL_GPU_LOCK"
"""Where a GPU sample finds its GPUs' timing locks (`Sandbox(gpu_lock=…)`)."""


def gpu_devices() -> tuple[str, ...]:
    """NVIDIA's device nodes here: the GPUs, the control and unified-memory devices."""
    nodes = glob.glob("/dev/nvidia*") + glob.glob("/dev/nvidia-caps/*")
    return tuple(sorted(n for n in nodes if not os.path.isdir(n)))


def gpu_environment() -> tuple[tuple[str, str], ...]:
    return tuple((name, os.environ[name]) for name in GPU_ENV if name in os.environ)


def _gpu_paths() -> set[str]:
    """Where the driver's libraries may be besides /usr: the loader path, CUDA's home."""
    paths = set()
    for name in ("LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH"):
        for path in os.environ.get(name, "").split(":"):
            if path.startswith("/") and os.path.isdir(path):
                paths.add(os.path.normpath(path))
    return paths


def plan_view(
    sample_ids: tuple[int, int], extra: tuple[str, ...] = (), *, gpu: bool = False
) -> View:
    """The allowlist for a sample running as `sample_ids` (uid, gid), from this machine.

    `extra`: more host directories to bind (none by default). `gpu`: NVIDIA's device nodes
    too, and the directories of the driver's libraries (nothing else is added)."""
    if gpu:
        extra = (*extra, *sorted(_gpu_paths()))
    links: dict[str, str] = {}
    binds: set[str] = set()
    for path in SYSTEM:
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.isdir(path):
            binds.add(path)
    for path in {*interpreter_paths(), *extra}:
        real = os.path.realpath(path)
        binds.add(real)
        if real != path:
            _links_on_the_way(path, links)
    for link in list(links):
        _links_on_the_way(link, links)
    binds = {b for b in _outermost(binds) if b != "/" and b not in links}
    for path in ETC:
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.exists(path):
            binds.add(path)
    links.setdefault("/var/run", "/run")
    for link, target in DEV_LINKS:
        links[link] = target
    uid, gid = sample_ids
    users = {0: ("root", "/root"), 65534: ("nobody", "/nonexistent")}
    users.setdefault(uid, ("sandbox", "/tmp/sandbox"))
    groups = {0: "root", 65534: "nogroup"}
    groups.setdefault(gid, "sandbox")
    passwd = "".join(
        f"{name}:x:{user}:{gid if user == uid else user}::{home}:/usr/sbin/nologin\n"
        for user, (name, home) in sorted(users.items())
    )
    group = "".join(f"{name}:x:{number}:\n" for number, name in sorted(groups.items()))
    files = (
        ("/etc/passwd", passwd),
        ("/etc/group", group),
        ("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n"),
        ("/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"),
    )
    devices = tuple(d for d in DEVICES if os.path.exists(d)) + (gpu_devices() if gpu else ())
    return View(
        binds=tuple(sorted(binds)),
        symlinks=tuple(sorted(links.items())),
        dirs=EMPTY_DIRS,
        files=files,
        devices=devices,
    )


def build_view(view: View) -> None:
    """Make `view` the root of this process's mount namespace (which must be its own, with
    private propagation). Needs CAP_SYS_ADMIN in the namespace's user namespace."""
    # Opened before the staging tmpfs covers them; a bind through /proc/self/fd needs no path.
    handles: dict[str, int] = {}
    try:
        for path in (*view.binds, *view.devices, view.proc):
            handles[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        flags = linux.MS_NOSUID | linux.MS_NODEV
        linux.mount("tmpfs", STAGING, "tmpfs", flags, "size=1m,nr_inodes=4096,mode=755")
        root = STAGING
        for directory in view.dirs:
            os.makedirs(root + directory, 0o755, exist_ok=True)
        for path, content in view.files:
            os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
            fd = os.open(root + path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, content.encode())
            finally:
                os.close(fd)
        for path, target in view.symlinks:
            os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
            if not os.path.lexists(root + path):
                os.symlink(target, root + path)
        for path, handle in handles.items():
            if stat.S_ISDIR(os.fstat(handle).st_mode):
                os.makedirs(root + path, 0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(root + path), 0o755, exist_ok=True)
                os.close(os.open(root + path, os.O_WRONLY | os.O_CREAT, 0o644))
            linux.mount(f"/proc/self/fd/{handle}", root + path, None, linux.MS_BIND | linux.MS_REC)
    finally:
        for handle in handles.values():
            os.close(handle)
    # The old root is stacked over the new one, then detached: nothing of it stays reachable.
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")
