"""The fork server: `python -m codeduel.sandbox._worker`, one process tree per sandbox worker.

The sandbox starts it with subprocess (never by forking the caller, which may hold a model). It
imports the stdlib modules that solutions use, sets up once what all its samples share, and
then forks one process per sample:

    worker ── fork server ── sample, one per program
      │           │             └ pid 1 of a new pid namespace, so that its end, or SIGKILL to
      │           │               it, ends every process it started; a new session and mount
      │           │               namespace with private tmpfs on /tmp and co and a private
      │           │               /proc, an unprivileged uid without capabilities, no new
      │           │               privileges, rlimits, scrubbed env and stdio, then the harness
      │           └ pid 1 of the worker's own pid namespace, so that everything dies with it;
      │             per sample it enters a new pid namespace for its next child only
      │             (unshare), forks the sample, returns to its own (setns) and waits
      └ enters a user namespace (root is mapped to root, the samples' uid to itself), an IPC
        namespace where no IPC object can be made, a mount namespace whose root is the
        read-only allowlisted view (`_view.py`: the system, the interpreter, a minimal /etc
        and /dev, nothing else of the host), a network namespace with no network, and waits

Messages with the sandbox are length-prefixed JSON on stdin/stdout; the fork server reads the
next requests while a sample runs, so the sandbox can queue them. Each sample reports over
private pipes: `ctl` (setup steps and errors) and `verdict` (a nonce-tagged line the harness
writes only when the program ran to its end).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import gc
import importlib
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
import types
from collections.abc import Callable
from typing import Any, NoReturn

from codeduel.sandbox import _linux as linux
from codeduel.sandbox._protocol import (
    DISABLE_ENV,
    NOT_ROOT,
    OUTER_IDS_ENV,
    MessageBuffer,
    encode_message,
    read_message,
)
from codeduel.sandbox._types import Limits
from codeduel.sandbox._view import (
    GPU_LOCK_ENV,
    View,
    build_view,
    gpu_environment,
    plan_view,
)

# The stdlib modules that solutions and tests import most, imported once for all samples. Not
# `random` (nor `statistics`, `tempfile`, `secrets`, which import it): it reseeds itself in every
# forked child, a cost each sample would pay; as in a fresh interpreter, one that imports it
# gets a fresh seed. Nor `threading` and `logging`, whose fork handlers cost even more.
PRELOADED = (
    "math", "re", "itertools", "collections", "functools", "heapq", "string", "typing",
    "hashlib", "bisect", "fractions", "decimal", "copy", "operator", "datetime", "time",
    "array", "unicodedata", "numbers", "abc", "dataclasses", "enum", "textwrap", "json",
    "cmath", "struct", "calendar", "pprint",
)  # fmt: skip

# Layers that hold by construction; the others are probed on start-up.
ALWAYS_ON = ("fork_server", "private_tmp", "scrubbed_env", "closed_fds")
PROBED = (
    "new_session",
    "rlimits",
    "dropped_privileges",
    "user_namespace",
    "pid_namespace",
    "net_namespace",
    "ipc_namespace",
    "mount_namespace",
    "allowlisted_root",
    "readonly_root",
    "private_proc",
    "tmpfs_scratch",
    "no_new_privs",
)
# What a layer needs, for saying why one that was never tried is off.
NEEDS = {
    "pid_namespace": ("server_pid_namespace",),
    "allowlisted_root": ("mount_namespace",),
    "readonly_root": ("mount_namespace",),
    "tmpfs_scratch": ("mount_namespace",),
    "private_proc": ("pid_namespace", "tmpfs_scratch"),
}

NOBODY = 65534
SCRATCH_IN_NAMESPACE = "/tmp/sandbox"
# Only without a mount namespace does a sample's scratch directory live on the host's disk.
HOST_SCRATCH_PREFIX = "codeduel-sample-"
VERDICT_FD = 3
DETAIL_CHARS = 1000
_MIB = 1 << 20
_VERDICT_BYTES = 1 << 16
_SETUP_FAILED = 125
_HARNESS_BROKEN = 126
_KILL_GRACE_S = 10.0
_SIGNAL_HINTS = {
    "SIGXCPU": " (CPU time limit)",
    "SIGXFSZ": " (file size limit)",
    "SIGKILL": " (possibly the out-of-memory killer)",
}
_PASSED = json.dumps({"status": "passed", "detail": ""})
_disabled: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Setup:
    """How this fork server isolates samples; `layers` is None while probing (try all)."""

    limits: Limits
    layers: frozenset[str] | None
    worker_layers: frozenset[str]
    """The steps the worker took once for all its samples (see `enter_worker_namespaces`)."""
    root: bool
    """Whether the worker started as root; then samples switch to `sample_ids`."""
    sample_ids: tuple[int, int]
    """The uid and gid the sample runs as."""
    tmp_dirs: tuple[str, ...] = tuple(
        path for path in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(path)
    )
    """Where each sample gets a fresh tmpfs."""
    pid_namespace_fd: int | None = None
    """The fork server's own pid namespace, to return to after each fork; None without one.
    With one, every sample is inside it and dies with the fork server, its init."""
    rebinds: tuple[str, ...] = ()
    """Directories of the view under `tmp_dirs` (a virtual environment in /tmp), bound again
    over each sample's fresh tmpfs so that the interpreter still finds them."""
    env: tuple[tuple[str, str], ...] = ()
    """Variables of the host's environment that samples keep (a GPU sandbox's CUDA ones)."""
    gpu: bool = False
    """Samples see the GPUs (their device nodes are in the view) and get a writable /proc."""


class _Steps:
    """Runs optional setup steps: strictly when the plan is known, tolerantly while probing.

    While probing, each outcome goes to `ctl` as a line, or into `failures` without a `ctl`."""

    def __init__(
        self, layers: frozenset[str] | None, ctl: int | None, done: frozenset[str]
    ) -> None:
        self._layers = layers
        self.ctl = ctl
        self.done = set(done)
        self.failures: dict[str, str] = {}

    def run(self, name: str, action: Callable[[], object]) -> bool:
        if self._layers is not None:
            if name not in self._layers:
                return False
            action()
        else:
            try:
                if name in _disabled:
                    raise RuntimeError(f"disabled by ${DISABLE_ENV} (a switch for tests)")
                action()
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
                self._report(name, f"0 {why}")
                self.failures[name] = why
                return False
            self._report(name, "1")
        self.done.add(name)
        return True

    def _report(self, name: str, outcome: str) -> None:
        if self.ctl is not None:
            _send(self.ctl, f"L {name} {outcome}")


@dataclasses.dataclass
class _Job:
    setup: Setup
    program: str
    timeout_s: float
    nonce: str
    host_scratch: str | None
    server_pid: int


class _Channel:
    """The fork server's end of the protocol. It reads requests whenever it would otherwise
    wait (for a sample, or for room in the reply pipe), so neither side blocks the other."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests = requests
        self.replies = replies
        self.closed = False
        self._buffer = MessageBuffer()
        os.set_blocking(requests, False)
        os.set_blocking(replies, False)

    def drain(self) -> None:
        while not self.closed:
            try:
                chunk = os.read(self.requests, 1 << 16)
            except BlockingIOError:
                return
            if chunk:
                self._buffer.feed(chunk)
            else:
                self.closed = True

    def receive(self) -> dict[str, Any] | None:
        while (message := self._buffer.pop()) is None:
            if self.closed:
                return None
            select.select([self.requests], [], [])
            self.drain()
        return message

    def send(self, message: dict[str, Any]) -> None:
        data = memoryview(encode_message(message))
        while data:
            try:
                data = data[os.write(self.replies, data) :]
            except BlockingIOError:
                select.select([] if self.closed else [self.requests], [self.replies], [])
                self.drain()


def _send(fd: int, line: str) -> None:
    # One short write is atomic on a pipe, so lines from different processes never interleave.
    os.write(fd, (line.replace("\n", " ")[:3000] + "\n").encode(errors="replace"))


def _keep_only_fds(keep: set[int]) -> None:
    low = 3
    for fd in sorted(f for f in keep if f >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _become(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _write_id_maps(pid: str, uid_map: str, gid_map: str) -> None:
    for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
        # The kernel takes a map in one write only: the text is far below the buffer size.
        with open(f"/proc/{pid}/{name}", "w") as file:
            file.write(text)


def _enter_worker_user_namespace(
    root: bool, uid: int, gid: int, steps: _Steps, entered: bool
) -> None:
    """A user namespace for this worker and its samples: outside it they hold no privileges.

    As root, root and the samples' uid are mapped to themselves. A user who is not root may map
    only their own ids, and the IPC namespace's limits can be set only by the root of the user
    namespace that owns it, so: first a namespace where the user is root (made here, or by
    bubblewrap around this worker), the IPC namespace in it, then a nested namespace where
    the user is themselves again, for the samples."""
    if root:
        _enter_user_namespace_as_root(uid, gid)  # the IPC namespace follows, as root can
    else:
        if not entered:
            _enter_own_user_namespace(f"0 {uid} 1", f"0 {gid} 1")
        steps.run("ipc_namespace", _enter_worker_ipc_namespace)
        _enter_own_user_namespace(f"{uid} 0 1", f"{gid} 0 1")
    # Samples may not nest user namespaces of their own, the door to most kernel attack surface.
    with open("/proc/sys/user/max_user_namespaces", "w") as file:
        file.write("0")


def _enter_own_user_namespace(uid_map: str, gid_map: str) -> None:
    linux.unshare(linux.CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as file:
        file.write("deny")
    _write_id_maps("self", uid_map, gid_map)


def _enter_user_namespace_as_root(uid: int, gid: int) -> None:
    # Root and the samples' uid are mapped by a helper left outside, which keeps CAP_SETUID.
    go_r, go_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        try:
            os.close(go_w)
            if os.read(go_r, 1) == b"y":
                parent = str(os.getppid())
                _write_id_maps(parent, f"0 0 1\n{uid} {uid} 1", f"0 0 1\n{gid} {gid} 1")
                os._exit(0)
        finally:
            os._exit(1)
    os.close(go_r)
    entered = False
    try:
        linux.unshare(linux.CLONE_NEWUSER)
        entered = True
    finally:
        os.write(go_w, b"y" if entered else b"n")
        os.close(go_w)
        _, status = os.waitpid(helper, 0)
    if status != 0:
        raise RuntimeError("the helper could not write the user namespace's id maps")


def _enter_worker_ipc_namespace() -> None:
    """An IPC namespace for the worker, in which nothing can create SysV IPC objects or POSIX
    message queues: none can outlive a sample and reach the next (cheaper than a new IPC
    namespace per sample, whose set-up and teardown cost a tenth of a millisecond)."""
    linux.unshare(linux.CLONE_NEWIPC)
    with open("/proc/sys/kernel/sem") as file:
        semaphores = file.read().split()
    semaphores[3] = "0"  # SEMMNI: semaphore sets
    for name, value in (
        ("kernel/shmmni", "0"),
        ("kernel/msgmni", "0"),
        ("kernel/sem", " ".join(semaphores)),
        ("fs/mqueue/queues_max", "0"),
    ):
        with open(f"/proc/sys/{name}", "w") as file:
            file.write(value)


def _enter_worker_mount_namespace() -> None:
    linux.unshare(linux.CLONE_NEWNS)
    # Without this, mounts made here would propagate back to the host's mount table.
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)


def _make_root_readonly() -> None:
    linux.set_readonly("/", readonly=True, recursive=True)


def _mount_proc(writable: bool = False) -> None:
    # CUDA's cuInit fails (304, CUDA_ERROR_OPERATING_SYSTEM) on a read-only /proc: a GPU
    # sandbox mounts it writable; permissions still hold (the sample has no capabilities).
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("proc", "/proc", "proc", flags if writable else flags | linux.MS_RDONLY)


def _mount_private_tmp(setup: Setup) -> None:
    """A mount namespace of the sample's own, with fresh size-capped tmpfs on /tmp and co."""
    linux.unshare(linux.CLONE_NEWNS)
    # Opened in this namespace before the tmpfs covers them: a bind's source must be a mount of
    # the caller's own namespace.
    handles = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in setup.rebinds]
    options = f"size={setup.limits.file_size_mb}m,nr_inodes=16384,mode=1777"
    for path in setup.tmp_dirs:
        linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
    for path, handle in handles:
        os.makedirs(path, 0o755, exist_ok=True)
        linux.mount(f"/proc/self/fd/{handle}", path, None, linux.MS_BIND | linux.MS_REC)
        os.close(handle)
    os.mkdir(SCRATCH_IN_NAMESPACE, 0o700)
    os.chown(SCRATCH_IN_NAMESPACE, *setup.sample_ids)


def _raise_oom_score() -> None:
    # Under memory pressure the kernel should kill a sample, not the caller holding a model.
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as file:
        file.write("1000")


def _set_rlimits(limits: Limits, timeout_s: float) -> None:
    cpu_s = limits.cpu_s if limits.cpu_s is not None else math.ceil(timeout_s) + 1
    memory = resource.RLIM_INFINITY if limits.memory_mb is None else limits.memory_mb * _MIB
    for kind, soft, hard in (
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * _MIB, limits.file_size_mb * _MIB),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes, limits.processes),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        _, current_hard = resource.getrlimit(kind)
        if current_hard != resource.RLIM_INFINITY and hard == resource.RLIM_INFINITY:
            soft = hard = current_hard
        elif current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(kind, (soft, hard))


def _install_fds(targets: dict[int, int], extra: int) -> int:
    """dup2 each source onto its target fd, even where they overlap; closes every other fd
    except `extra`, which moves above the targets and whose new number is returned."""
    high = max(targets) + 1
    staged = {
        target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, high)
        for target, source in targets.items()
    }
    extra = fcntl.fcntl(extra, fcntl.F_DUPFD_CLOEXEC, high)
    for target, source in staged.items():
        os.dup2(source, target, inheritable=target != VERDICT_FD)
    _keep_only_fds({*targets, extra})
    return extra


def _scrub_process_state(scratch: str, passed: tuple[tuple[str, str], ...] = ()) -> None:
    os.environ.clear()
    os.environ.update(passed)
    os.environ.update(
        PATH=f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        HOME=scratch,
        TMPDIR=scratch,
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if "tempfile" in sys.modules:
        vars(sys.modules["tempfile"])["tempdir"] = None
    sys.argv = ["<sample>"]
    sys.dont_write_bytecode = True
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:DETAIL_CHARS]


def _run_program(program: str, nonce: str) -> NoReturn:
    """The harness: the verdict goes out only if the program itself ran to its end."""
    owner = os.getpid()
    status, detail = "passed", ""
    try:
        # As `python program.py` compiles it: not with this module's `from __future__` flags.
        code = compile(program, "<sample>", "exec", dont_inherit=True)
        module = types.ModuleType("__main__")
        module.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = module
        exec(code, module.__dict__)
    except BaseException as exc:
        status = "failed" if isinstance(exc, AssertionError) else "error"
        detail = _describe(exc)
        if not isinstance(exc, SystemExit):
            with contextlib.suppress(BaseException):
                # Starts below the harness's own frame, as a plain `python program.py` would.
                tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
                traceback.print_exception(type(exc), exc, tb)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    if os.getpid() != owner:
        # A process the program forked reached the end of the program: only the original counts.
        os._exit(0 if status == "passed" else 1)
    try:
        passed = status == "passed"
        verdict = _PASSED if passed else json.dumps({"status": status, "detail": detail})
        os.write(VERDICT_FD, f"\n{nonce} {verdict}\n".encode())
    except BaseException:
        os._exit(_HARNESS_BROKEN)
    os._exit(0)


def _sample_main(job: _Job, steps: _Steps, stdio: dict[int, int]) -> None:
    """Runs in the forked sample, as pid 1 of its pid namespace when it has one."""
    setup = job.setup
    uid, gid = setup.sample_ids
    linux.set_parent_death_signal(signal.SIGKILL)
    if setup.pid_namespace_fd is None and os.getppid() != job.server_pid:
        os._exit(_SETUP_FAILED)  # the fork server died before the line above took effect
    steps.run("new_session", os.setsid)
    if "mount_namespace" in steps.done:
        steps.run("tmpfs_scratch", lambda: _mount_private_tmp(setup))
    if {"pid_namespace", "tmpfs_scratch"} <= steps.done:
        steps.run("private_proc", lambda: _mount_proc(writable=setup.gpu))
    if "tmpfs_scratch" in steps.done:
        scratch = SCRATCH_IN_NAMESPACE
    elif job.host_scratch is not None:
        scratch = job.host_scratch
    else:
        raise RuntimeError("no scratch directory: no private tmpfs and no host directory")
    os.chdir(scratch)
    if setup.root:
        steps.run("dropped_privileges", lambda: _become(uid, gid))
    # Capabilities in any user namespace on the way (the worker's, or one half set up) would
    # still allow mounts and unshares; dropping them is always permitted.
    linux.drop_capabilities()
    steps.run("no_new_privs", linux.set_no_new_privs)
    stdio[0] = os.open(os.devnull, os.O_RDONLY)
    assert steps.ctl is not None
    steps.ctl = _install_fds(stdio, steps.ctl)
    steps.run("rlimits", lambda: _set_rlimits(setup.limits, job.timeout_s))
    if scratch != SCRATCH_IN_NAMESPACE:
        _scrub_process_state(scratch, setup.env)  # otherwise done once, in the fork server
    os.close(steps.ctl)


class _Capture:
    """Keeps the first `limit` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.limit - len(self.kept)
        self.kept += data[:room]
        self.dropped += max(0, len(data) - room)

    def text(self) -> str:
        text = self.kept.decode(errors="replace")
        return f"{text}\n[{self.dropped} more bytes discarded]" if self.dropped else text


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill_tree(sample_pid: int, pid_namespace: bool) -> None:
    # SIGKILL to a pid namespace's init (the sample) kills every process in it, detached or not.
    with contextlib.suppress(ProcessLookupError):
        if pid_namespace:
            os.kill(sample_pid, signal.SIGKILL)
        else:
            os.killpg(sample_pid, signal.SIGKILL)


def _read_available(fd: int) -> bytes | None:
    """What the pipe holds now; None at end of stream."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks) if chunks else None
        chunks.append(chunk)
        if len(chunks) >= 16:
            return b"".join(chunks)


def _make_host_scratch() -> str:
    """A new private directory in $TMPDIR (tempfile.mkdtemp, without importing `random`)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    path = os.path.join(base, HOST_SCRATCH_PREFIX + os.urandom(8).hex())
    os.mkdir(path, 0o700)
    return path


def _remove_tree(path: str) -> None:
    """rmtree that also copes with directories the sample made unreadable."""
    # Only without a mount namespace; imported here because shutil loads the compression
    # libraries, and every fork pays for each library mapped into the fork server.
    import shutil

    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            child = os.path.join(root, name)
            if not os.path.islink(child):
                with contextlib.suppress(OSError):
                    os.chmod(child, 0o700)
    shutil.rmtree(path)


def _fork_sample(job: _Job, steps: _Steps, stdio: dict[int, int]) -> int:
    """Fork the sample, in a pid namespace of its own where the plan has one."""
    setup = job.setup
    if setup.pid_namespace_fd is not None:
        steps.run("pid_namespace", lambda: linux.unshare(linux.CLONE_NEWPID))
    new_pid_namespace = "pid_namespace" in steps.done
    own_namespace = setup.pid_namespace_fd
    try:
        pid = os.fork()
    except BaseException:
        if new_pid_namespace and own_namespace is not None:
            linux.setns(own_namespace, linux.CLONE_NEWPID)
        raise
    if pid == 0:
        try:
            _sample_main(job, steps, stdio)
        except BaseException as exc:
            if steps.ctl is not None:
                _send(steps.ctl, f"E sample setup: {exc!r}")
            os._exit(_SETUP_FAILED)
        _run_program(job.program, job.nonce)
    if new_pid_namespace and own_namespace is not None:
        # Back to our own, so that the next unshare makes a fresh one for the next sample.
        linux.setns(own_namespace, linux.CLONE_NEWPID)
    return pid


def run_job(
    setup: Setup, program: str, timeout_s: float, channel: _Channel | None = None
) -> tuple[dict[str, Any], _CtlRecords]:
    """Run one sample; returns the reply for the sandbox and what its processes reported."""
    host_scratch = None
    if "mount_namespace" not in setup.worker_layers:
        host_scratch = _make_host_scratch()
        if setup.root and (setup.layers is None or "dropped_privileges" in setup.layers):
            os.chown(host_scratch, *setup.sample_ids)  # the sample becomes sample_ids
    job = _Job(setup, program, timeout_s, os.urandom(16).hex(), host_scratch, os.getpid())
    fds: list[int] = []
    try:
        ctl_r, ctl_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ver_r, ver_w = os.pipe()
        fds += (ctl_r, ctl_w, out_r, out_w, err_r, err_w, ver_r, ver_w)
        steps = _Steps(setup.layers, ctl_w, setup.worker_layers)
        start = time.monotonic()
        pid = _fork_sample(job, steps, {1: out_w, 2: err_w, VERDICT_FD: ver_w})
        for fd in (ctl_w, out_w, err_w, ver_w):
            os.close(fd)
            fds.remove(fd)
        pidfd = os.pidfd_open(pid)
        fds.append(pidfd)
        pipes = _Pipes(ctl_r, out_r, err_r, ver_r)
        return _supervise(job, pid, pidfd, "pid_namespace" in steps.done, start, pipes, channel)
    finally:
        for fd in fds:
            os.close(fd)
        if host_scratch is not None:
            _remove_tree(host_scratch)


@dataclasses.dataclass(frozen=True)
class _Pipes:
    ctl: int
    out: int
    err: int
    verdict: int


def _supervise(
    job: _Job,
    pid: int,
    pidfd: int,
    pid_namespace: bool,
    start: float,
    pipes: _Pipes,
    channel: _Channel | None,
) -> tuple[dict[str, Any], _CtlRecords]:
    limits = job.setup.limits
    captures = {
        pipes.out: _Capture(limits.output_bytes),
        pipes.err: _Capture(limits.output_bytes),
        pipes.verdict: _Capture(_VERDICT_BYTES),
    }
    ctl_buffer = bytearray()
    # stdout and stderr are drained while the sample runs, so that it never blocks on them; ctl
    # and the verdict carry a line or two each, read once it ended: fewer wake-ups per sample.
    open_fds = {pipes.out, pipes.err}
    poller = select.poll()
    for fd in (*open_fds, pidfd):
        poller.register(fd, select.POLLIN)
    for fd in (*open_fds, pipes.ctl, pipes.verdict):
        os.set_blocking(fd, False)
    if channel is not None and not channel.closed:
        poller.register(channel.requests, select.POLLIN)
    deadline = start + job.timeout_s
    killed_at: float | None = None
    exited = False
    while not exited:
        now = time.monotonic()
        if killed_at is None and now >= deadline:
            _kill_tree(pid, pid_namespace)
            killed_at = now
        elif killed_at is not None and now > killed_at + _KILL_GRACE_S:
            raise RuntimeError("the sample's process tree did not end after SIGKILL")
        wait_ms = 1000 if killed_at is not None else math.ceil((deadline - now) * 1000)
        for fd, _ in poller.poll(max(wait_ms, 0)):
            if fd == pidfd:
                # With a pid namespace, its init ends only after every other process in it.
                exited = True
            elif channel is not None and fd == channel.requests:
                channel.drain()
                if channel.closed:
                    poller.unregister(fd)
            elif fd in open_fds:
                data = _read_available(fd)
                if data is None:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                else:
                    captures[fd].add(data)
    if not pid_namespace:
        # Stragglers in the process group; the unreaped sample keeps its pid from being reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for fd in (*open_fds, pipes.ctl, pipes.verdict):
        while data := _read_available(fd):
            if fd == pipes.ctl:
                ctl_buffer += data
            else:
                captures[fd].add(data)
    _, wait_status = os.waitpid(pid, 0)
    duration_s = time.monotonic() - start
    records = _parse_ctl(ctl_buffer)
    records.sample_status = wait_status
    if records.error is not None:
        return {"sandbox_error": records.error}, records
    status, detail = _verdict(job, captures[pipes.verdict].kept, wait_status, killed_at)
    reply = {
        "status": status,
        "detail": detail[:DETAIL_CHARS],
        "duration_s": duration_s,
        "stdout": captures[pipes.out].text(),
        "stderr": captures[pipes.err].text(),
    }
    return reply, records


@dataclasses.dataclass
class _CtlRecords:
    sample_status: int | None
    error: str | None
    steps: dict[str, bool]
    failures: dict[str, str]
    """Why each probed step failed."""


def _parse_ctl(buffer: bytes | bytearray) -> _CtlRecords:
    records = _CtlRecords(None, None, {}, {})
    for line in buffer.decode(errors="replace").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "E" and records.error is None:
            records.error = rest
        elif kind == "L":
            name, _, outcome = rest.partition(" ")
            ok, _, reason = outcome.partition(" ")
            records.steps[name] = ok == "1"
            if reason:
                records.failures[name] = reason
    return records


def _verdict(
    job: _Job, verdict: bytes | bytearray, sample_status: int, killed_at: float | None
) -> tuple[str, str]:
    tag = f"\n{job.nonce} ".encode()
    if tag in verdict:
        line = verdict.split(tag, 1)[1].split(b"\n", 1)[0]
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("status") in ("passed", "failed", "error"):
                return str(message["status"]), str(message.get("detail", ""))
        return "error", "the harness reported a malformed verdict"
    if killed_at is not None:
        return "timeout", f"timed out after {job.timeout_s:g} s"
    if os.WIFSIGNALED(sample_status):
        name = _signal_name(os.WTERMSIG(sample_status))
        return "error", f"killed by signal {name}{_SIGNAL_HINTS.get(name, '')}"
    code = os.waitstatus_to_exitcode(sample_status)
    return "error", f"exited before the tests finished (exit code {code})"


def enter_worker_namespaces(
    root: bool, ids: tuple[int, int], view: View, entered: bool = False
) -> _Steps:
    """Enter, in this process, the namespaces that all its samples share; tolerates failures.

    `entered`: bubblewrap started this process in a user namespace where it is root.

    The last step, `server_pid_namespace`, makes this process's next child the pid 1 of a new
    pid namespace: that child becomes the fork server."""
    _raise_oom_score()  # inherited by the fork server and every sample
    steps = _Steps(None, None, frozenset())
    steps.run("user_namespace", lambda: _enter_worker_user_namespace(root, *ids, steps, entered))
    if root:
        steps.run("ipc_namespace", _enter_worker_ipc_namespace)
    if root or "user_namespace" in steps.done:
        if steps.run("mount_namespace", _enter_worker_mount_namespace):
            steps.run("allowlisted_root", lambda: build_view(view))
            steps.run("readonly_root", _make_root_readonly)
        steps.run("net_namespace", lambda: linux.unshare(linux.CLONE_NEWNET))
        steps.run("server_pid_namespace", lambda: linux.unshare(linux.CLONE_NEWPID))
    return steps


def become_fork_server(lifeline: int) -> int:
    """In the worker's first child, pid 1 of its pid namespace: die with the worker."""
    linux.set_parent_death_signal(signal.SIGKILL)
    if select.select([lifeline], [], [], 0)[0]:
        os._exit(1)  # the worker died before the line above took effect
    os.close(lifeline)
    return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)


def probe(base: Setup) -> tuple[Setup, dict[str, str]]:
    """Find the per-sample steps that work here by trying each once, then check the plan."""
    reply, records = run_job(dataclasses.replace(base, layers=None), "pass", 30.0)
    if reply.get("status") != "passed":
        raise RuntimeError(f"the sandbox cannot run a trivial program: {reply}")
    layers = base.worker_layers | {name for name, ok in records.steps.items() if ok}
    setup = dataclasses.replace(base, layers=frozenset(layers))
    reply, _ = run_job(setup, "pass", 30.0)
    if reply.get("status") != "passed":
        raise RuntimeError(f"the sandbox cannot run a trivial program: {reply}")
    return setup, records.failures


def layer_report(setup: Setup) -> dict[str, bool]:
    assert setup.layers is not None
    return {name: True for name in ALWAYS_ON} | {name: name in setup.layers for name in PROBED}


def layer_reasons(setup: Setup, failures: dict[str, str]) -> dict[str, str]:
    """Why each layer that is off is off."""
    assert setup.layers is not None
    reasons = {}
    for name in PROBED:
        if name in setup.layers:
            continue
        if name in failures:
            reasons[name] = failures[name]
        elif name == "dropped_privileges" and not setup.root:
            reasons[name] = NOT_ROOT
        else:
            missing = [need for need in NEEDS.get(name, ()) if need not in setup.layers]
            needs = ", ".join(f"{m} ({failures.get(m, 'off')})" for m in missing)
            reasons[name] = f"needs {needs}" if needs else "not available here"
    return reasons


def _serve(base: Setup, worker_failures: dict[str, str], channel: _Channel | None) -> int:
    """The fork server: probe, say hello, then run one sample per request."""
    try:
        setup, failures = probe(base)
        failures = worker_failures | failures
    except Exception as exc:
        if channel is None:
            raise
        channel.send({"sandbox_error": f"{type(exc).__name__}: {exc}"})
        return 1
    hello = {"layers": layer_report(setup), "failures": layer_reasons(setup, failures)}
    if channel is None:
        print(json.dumps(hello))
        return 0
    channel.send(hello)
    if setup.layers is not None and "tmpfs_scratch" in setup.layers:
        _scrub_process_state(SCRATCH_IN_NAMESPACE, setup.env)  # what every sample starts with
    # Objects that exist now are never scanned by the collector again: fewer copy-on-write faults.
    gc.freeze()
    # The heap that start-up used and freed (imports, the probe) need not be mapped into samples.
    linux.release_free_heap()
    while (request := channel.receive()) is not None:
        try:
            reply, _ = run_job(setup, request["program"], float(request["timeout_s"]), channel)
        except Exception as exc:
            reply = {"sandbox_error": f"{type(exc).__name__}: {exc}"}
        channel.send(reply)
    return 0


def main(argv: list[str]) -> int:
    global _disabled
    _disabled = frozenset(filter(None, os.environ.pop(DISABLE_ENV, "").split(",")))
    channel = None
    limits = Limits()
    gpu = False
    gpu_lock = None
    if argv != ["--probe"]:
        # The protocol moves off fds 0 and 1 so that nothing printed by accident can corrupt it.
        requests, replies = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        config = read_message(requests)
        if config is None:
            return 0
        limits = Limits(**config["limits"])
        gpu = bool(config.get("gpu"))
        gpu_lock = config.get("gpu_lock")
        channel = _Channel(requests, replies)
    for name in PRELOADED:
        importlib.import_module(name)
    outer = os.environ.pop(OUTER_IDS_ENV, None)
    if outer is not None:
        root, (uid, gid) = False, map(int, outer.split(":"))
        ids = (uid, gid)
    else:
        root = os.geteuid() == 0
        ids = (NOBODY, NOBODY) if root else (os.getuid(), os.getgid())
    # On the host's file system, before anything covers it.
    view = plan_view(ids, (gpu_lock,) if gpu_lock else (), gpu=gpu)
    worker = enter_worker_namespaces(root, ids, view, entered=outer is not None)
    env = gpu_environment() if gpu else ()
    if gpu_lock:
        env = (*env, (GPU_LOCK_ENV, gpu_lock))
    base = Setup(limits, None, frozenset(worker.done), root, ids, env=env, gpu=gpu)
    if "allowlisted_root" in worker.done:
        base = dataclasses.replace(base, rebinds=view.dirs_under(base.tmp_dirs))
    if "server_pid_namespace" not in worker.done:
        return _serve(base, worker.failures, channel)
    lifeline = os.pidfd_open(os.getpid())
    server = os.fork()
    if server == 0:
        base = dataclasses.replace(base, pid_namespace_fd=become_fork_server(lifeline))
        try:
            code = _serve(base, worker.failures, channel)
        finally:
            sys.stdout.flush()
        os._exit(code)
    os.close(lifeline)
    if channel is not None:
        os.close(channel.requests)
        os.close(channel.replies)
    _, status = os.waitpid(server, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
