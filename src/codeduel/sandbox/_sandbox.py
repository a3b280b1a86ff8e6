"""The sandbox: a pool of pre-warmed fork servers that run untrusted programs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import codeduel
from codeduel.errors import OptionError, SandboxError, UnsafeSandboxError
from codeduel.sandbox._protocol import (
    DISABLE_ENV,
    NOT_ROOT,
    OUTER_IDS_ENV,
    ChannelClosed,
    read_message,
    write_message,
)
from codeduel.sandbox._types import ExecResult, Limits

_log = logging.getLogger(__name__)
_DEFAULT_LIMITS = Limits()
_STARTUP_TIMEOUT_S = 60.0
# Room on top of a sample's own timeout for its set-up, teardown and the reply.
_REPLY_GRACE_S = 30.0
# Requests queued per worker in `map`: one runs while the next waits in the worker's buffer.
_PIPELINE_DEPTH = 2

REQUIRED_LAYERS = ("pid_namespace", "net_namespace", "rlimits", "allowlisted_root")
"""Without these, untrusted code runs only with `allow_unsafe` (the CLI's --unsafe-sandbox)."""

LAUNCH_ENV = "CODEDUEL_SANDBOX"
"""How workers start: `auto` (the default), `direct`, or `bubblewrap` (forced)."""
LAUNCHES = ("auto", "direct", "bubblewrap")
_APPARMOR_USERNS = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
APPARMOR_HINT = (
    "AppArmor restricts unprivileged user namespaces here "
    "(kernel.apparmor_restrict_unprivileged_userns=1): install bubblewrap "
    "(`sudo apt install bubblewrap`, whose AppArmor profile permits them) and codeduel starts "
    "its workers through it, or run as root"
)


@dataclasses.dataclass(frozen=True)
class Isolation:
    """Which isolation layers are active for the samples, and why each other one is not."""

    layers: dict[str, bool]
    reasons: dict[str, str]
    launch: str = "direct"
    """How the workers were started: `direct`, or `bubblewrap` around each."""
    hint: str | None = None
    """What to install or set where layers are missing for a known reason."""

    @property
    def missing(self) -> list[str]:
        """Required layers that are off."""
        return [name for name in REQUIRED_LAYERS if not self.layers.get(name, False)]

    @classmethod
    def from_hello(cls, hello: dict[str, Any], launch: Launch | None = None) -> Isolation:
        launch = launch or Launch("direct", [], {})
        layers = {str(name): bool(on) for name, on in hello["layers"].items()}
        reasons = {str(name): str(why) for name, why in hello["failures"].items()}
        hint = launch.hint if not all(layers.get(n, False) for n in REQUIRED_LAYERS) else None
        return cls(layers, reasons, launch.name, hint)


@dataclasses.dataclass(frozen=True)
class Launch:
    """How a worker process is started: its command prefix and extra environment."""

    name: str
    prefix: list[str]
    env: dict[str, str]
    hint: str | None = None


def _apparmor_restricts_userns() -> bool:
    try:
        with open(_APPARMOR_USERNS) as file:
            return file.read().strip() == "1"
    except OSError:
        return False


def choose_launch(
    requested: str | None = None,
    *,
    root: bool | None = None,
    restricted: bool | None = None,
    bwrap: str | None = None,
) -> Launch:
    """Direct, or through bubblewrap: forced by `requested` (else $CODEDUEL_SANDBOX), or, by
    default, where AppArmor denies capabilities in the user namespaces codeduel would make
    itself (Ubuntu 23.10 and later, for users who are not root) and bubblewrap is installed.
    The keyword arguments stand in for the machine, for tests."""
    requested = requested or os.environ.get(LAUNCH_ENV) or "auto"
    if requested not in LAUNCHES:
        raise OptionError(f"${LAUNCH_ENV} must be one of {', '.join(LAUNCHES)}, not {requested!r}")
    root = os.geteuid() == 0 if root is None else root
    restricted = _apparmor_restricts_userns() if restricted is None else restricted
    bwrap = shutil.which("bwrap") if bwrap is None else bwrap or None
    if requested == "direct" or (requested == "auto" and (root or not restricted)):
        return Launch("direct", [], {})
    if bwrap is None:
        if requested == "bubblewrap":
            raise OptionError(
                f"${LAUNCH_ENV}=bubblewrap, but bwrap is not installed: "
                "`sudo apt install bubblewrap` (or your system's package of it)"
            )
        return Launch("direct", [], {}, APPARMOR_HINT)
    # bubblewrap makes the namespace it is permitted to make; the worker builds the rest in it,
    # the allowlisted view included, with the same code as when it starts directly.
    prefix = [bwrap, "--dev-bind", "/", "/", "--cap-add", "ALL", "--die-with-parent"]
    env = {}
    if not root:
        prefix[1:1] = ["--unshare-user", "--uid", "0", "--gid", "0"]
        env[OUTER_IDS_ENV] = f"{os.getuid()}:{os.getgid()}"
    return Launch("bubblewrap", [*prefix, "--"], env)


def _worker_command(launch: Launch, *args: str) -> list[str]:
    # -P: the worker's working directory must not shadow stdlib modules for the samples.
    return [*launch.prefix, sys.executable, "-P", "-s", "-m", "codeduel.sandbox._worker", *args]


def _worker_env(launch: Launch) -> dict[str, str]:
    """Workers never see the caller's environment, so no secret can reach a sample."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "PYTHONPATH": str(Path(codeduel.__file__).resolve().parent.parent),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        **launch.env,
    }
    if DISABLE_ENV in os.environ:
        env[DISABLE_ENV] = os.environ[DISABLE_ENV]
    return env


def probe_isolation() -> Isolation:
    """Which isolation layers work on this machine, and why the others do not (starts one
    short-lived worker)."""
    launch = choose_launch()
    try:
        done = subprocess.run(
            _worker_command(launch, "--probe"),
            env=_worker_env(launch),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=_STARTUP_TIMEOUT_S,
            check=True,
        )
        return Isolation.from_hello(json.loads(done.stdout), launch)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, AttributeError) as exc:
        raise SandboxError(f"cannot probe the sandbox layers: {exc}") from exc


def probe_layers() -> dict[str, bool]:
    """Which isolation layers work on this machine (starts one short-lived worker)."""
    return probe_isolation().layers


class _Worker:
    """One fork-server process and its pipes; used by one thread at a time."""

    def __init__(self, config: dict[str, Any], launch: Launch) -> None:
        self._config = config
        self._launch = launch
        self._process: subprocess.Popen[bytes] | None = None
        self.isolation = Isolation({}, {})

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Launch the process and send its configuration; `wait_ready` finishes the start."""
        self.stop()
        try:
            self._process = subprocess.Popen(
                _worker_command(self._launch),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_worker_env(self._launch),
                cwd="/",
                start_new_session=True,
            )
            self._send(self._config)
        except (OSError, ChannelClosed) as exc:
            self.stop()
            raise SandboxError(f"cannot start a sandbox worker: {exc}") from exc

    def wait_ready(self) -> None:
        hello = self.receive(time.monotonic() + _STARTUP_TIMEOUT_S)
        self.isolation = Isolation.from_hello(hello, self._launch)

    def ensure_started(self) -> None:
        if not self.alive:
            self.start()
            self.wait_ready()

    def submit(self, program: str, timeout_s: float) -> None:
        """Queue one program; its reply comes from `receive`, after those queued before it."""
        try:
            self._send({"program": program, "timeout_s": timeout_s})
        except ChannelClosed as exc:
            self.stop()
            raise SandboxError(f"the sandbox worker died: {exc}") from exc

    def receive(self, deadline: float) -> dict[str, Any]:
        try:
            if self._process is None or self._process.stdout is None:
                raise ChannelClosed("the worker is not running")
            reply = read_message(self._process.stdout.fileno(), deadline)
            if reply is None:
                raise ChannelClosed("the worker exited")
        except (ChannelClosed, OSError, ValueError) as exc:
            self.stop()
            raise SandboxError(f"the sandbox worker died: {exc}") from exc
        if "sandbox_error" in reply:
            raise SandboxError(f"the sandbox failed: {reply['sandbox_error']}")
        return reply

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _send(self, message: dict[str, Any]) -> None:
        if self._process is None or self._process.stdin is None:
            raise ChannelClosed("the worker is not running")
        write_message(self._process.stdin.fileno(), message)


def _result(reply: dict[str, Any]) -> ExecResult:
    return ExecResult(
        status=reply["status"],
        detail=reply["detail"],
        duration_s=reply["duration_s"],
        stdout=reply["stdout"],
        stderr=reply["stderr"],
    )


def _check_timeout(timeout_s: float) -> None:
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number, not {timeout_s}")


class _MapState:
    """Jobs handed out to the worker threads of one `map` call, and results in input order.

    The consumer is woken only when the result it waits for arrives, and a worker thread only
    when there is room again, so a result costs no needless thread switches."""

    def __init__(self, jobs: Iterable[tuple[str, float]], window: int) -> None:
        self._jobs = iter(jobs)
        self._window = window
        lock = threading.Lock()
        self._ready = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._waiting_for_room = 0
        self._awaited: int | None = None
        self._next = 0
        self._consumed = 0
        self.total: int | None = None
        self.results: dict[int, ExecResult | BaseException] = {}
        self.stopped = False

    def take(self, wait: bool) -> tuple[int, str, float] | None:
        """The next job, once the consumer is less than `window` results behind; None when there
        is none, or, unless `wait`, none yet."""
        with self._room:
            while (
                not self.stopped
                and self.total is None
                and self._next - self._consumed >= self._window
            ):
                if not wait:
                    return None
                self._waiting_for_room += 1
                self._room.wait()
                self._waiting_for_room -= 1
            if self.stopped or self.total is not None:
                return None
            index = self._next
            try:
                program, timeout_s = next(self._jobs)
                _check_timeout(timeout_s)
            except StopIteration:
                self._end(index)
                return None
            except BaseException as exc:
                self.results[index] = exc
                self._end(index + 1)
                return None
            self._next += 1
            return index, program, timeout_s

    def put(self, index: int, result: ExecResult | BaseException) -> None:
        with self._ready:
            self.results[index] = result
            if isinstance(result, BaseException):
                # Nothing after a failure is handed out; what was already is still collected.
                self._end(min(self.total if self.total is not None else index + 1, index + 1))
            elif index == self._awaited:
                self._ready.notify()

    def get(self, index: int) -> ExecResult | BaseException | None:
        """The result for `index`, waiting for it; None when there is no such job."""
        with self._ready:
            while index not in self.results:
                if self.total is not None and index >= self.total:
                    return None
                self._awaited = index
                self._ready.wait()
            self._awaited = None
            self._consumed = index + 1
            if self._waiting_for_room:
                self._room.notify()
            return self.results.pop(index)

    def stop(self) -> None:
        with self._ready:
            self.stopped = True
            self._ready.notify_all()
            self._room.notify_all()

    def _end(self, total: int) -> None:
        """No job from `total` on; called holding the lock."""
        self.total = total
        self._ready.notify_all()
        self._room.notify_all()


class Sandbox:
    """Runs untrusted Python programs, `workers` at a time, each in a fresh isolated process.

    A program passes when it runs to its end without raising; see `ExecResult` for the rest.
    Unless `allow_unsafe`, starting raises `UnsafeSandboxError` where a layer of
    `REQUIRED_LAYERS` is not available. `launch` (`auto`, `direct`, `bubblewrap`) says how
    workers start; by default $CODEDUEL_SANDBOX, else `auto` (see `choose_launch`). `gpu`:
    samples also see NVIDIA's device nodes and the driver's libraries, and keep the CUDA
    variables of the environment (`_view.GPU_ENV`); nothing else is added. `gpu_lock`: a
    directory of lock files, one per GPU (`gpu0.lock` …), that samples see read-only at the
    same path, named in $CODEDUEL_GPU_LOCK: a GPU task's harness holds its GPU's lock while it
    times, so only one sample times on a GPU at a time.
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits = _DEFAULT_LIMITS,
        *,
        allow_unsafe: bool = False,
        launch: str | None = None,
        gpu: bool = False,
        gpu_lock: str | None = None,
    ) -> None:
        self.workers = workers if workers is not None else len(os.sched_getaffinity(0))
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        self.limits = limits
        self._closed = False
        self._lock = threading.Lock()
        config = {"limits": dataclasses.asdict(limits), "gpu": gpu, "gpu_lock": gpu_lock}
        self.launch = choose_launch(launch)
        self._all = [_Worker(config, self.launch) for _ in range(self.workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        try:
            for worker in self._all:
                worker.start()
            for worker in self._all:
                worker.wait_ready()
                self._idle.put(worker)
            self.isolation = self._all[0].isolation
            missing = self.isolation.missing
            if missing and not allow_unsafe:
                why = "; ".join(f"{name}: {self.isolation.reasons.get(name)}" for name in missing)
                hint = f"; {self.isolation.hint}" if self.isolation.hint else ""
                raise UnsafeSandboxError(
                    f"the sandbox on this machine lacks isolation that untrusted code needs "
                    f"({why}){hint}; see `codeduel doctor`, or pass --unsafe-sandbox to run it "
                    "anyway"
                )
        except BaseException:
            self.close()
            raise
        for layer, why in self.isolation.reasons.items():
            if why != NOT_ROOT:
                _log.warning("sandbox layer %s is off here, running without it: %s", layer, why)

    @property
    def layers(self) -> dict[str, bool]:
        """Which isolation layers are active for the samples this sandbox runs."""
        return dict(self.isolation.layers)

    def run(self, program: str, timeout_s: float) -> ExecResult:
        """Run one complete program with a wall-clock limit; blocks, safe to call from threads."""
        _check_timeout(timeout_s)
        worker = self._take_worker()
        try:
            worker.submit(program, timeout_s)
            return _result(worker.receive(time.monotonic() + timeout_s + _REPLY_GRACE_S))
        finally:
            self._idle.put(worker)

    def map(self, jobs: Iterable[tuple[str, float]]) -> Iterator[ExecResult]:
        """Run (program, timeout_s) jobs on all workers; results come in input order.

        Each worker gets its next program before it finishes the current one, so it never
        waits for this process. The workers are this call's until it ends."""
        state = _MapState(jobs, window=64 + 4 * self.workers)
        threads = [
            threading.Thread(target=self._feed, args=(state,), name=f"sandbox-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            index = 0
            while (result := state.get(index)) is not None:
                if isinstance(result, BaseException):
                    raise result
                yield result
                index += 1
        finally:
            state.stop()
            for thread in threads:
                thread.join()

    def _feed(self, state: _MapState) -> None:
        """One worker's share of a `map`: keep it `_PIPELINE_DEPTH` programs ahead."""
        try:
            worker = self._take_worker()
        except BaseException as exc:
            if (job := state.take(wait=True)) is not None:
                state.put(job[0], exc)
            return
        queued: deque[tuple[int, float]] = deque()
        try:
            while True:
                # Never wait for room while holding a job: its result may be the one awaited.
                while len(queued) < _PIPELINE_DEPTH and (job := state.take(not queued)) is not None:
                    index, program, timeout_s = job
                    queued.append((index, timeout_s))
                    worker.submit(program, timeout_s)
                if not queued:
                    return
                index, timeout_s = queued[0]
                reply = worker.receive(time.monotonic() + timeout_s + _REPLY_GRACE_S)
                queued.popleft()
                state.put(index, _result(reply))
        except BaseException as exc:
            for index, _ in queued:
                state.put(index, exc)
            if worker.alive and queued:
                worker.stop()  # replies to the other queued programs would come out of order
        finally:
            self._idle.put(worker)

    def _take_worker(self) -> _Worker:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        worker = self._idle.get()
        try:
            if self._closed:
                raise SandboxError("the sandbox is closed")
            worker.ensure_started()
        except BaseException:
            self._idle.put(worker)
            raise
        return worker

    def close(self) -> None:
        """Stop the workers, ending any sample they run with its processes and files."""
        with self._lock:
            self._closed = True
            for worker in self._all:
                worker.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
