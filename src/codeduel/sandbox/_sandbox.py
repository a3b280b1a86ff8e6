"""The sandbox: a pool of pre-warmed fork servers that run untrusted programs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import queue
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
from codeduel.errors import SandboxError, UnsafeSandboxError
from codeduel.sandbox._protocol import (
    DISABLE_ENV,
    HIDE_ENV,
    NOT_ROOT,
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

REQUIRED_LAYERS = ("pid_namespace", "net_namespace", "rlimits")
"""Without these, untrusted code runs only with `allow_unsafe` (the CLI's --unsafe-sandbox)."""


@dataclasses.dataclass(frozen=True)
class Isolation:
    """Which isolation layers are active for the samples, and why each other one is not."""

    layers: dict[str, bool]
    reasons: dict[str, str]

    @property
    def missing(self) -> list[str]:
        """Required layers that are off."""
        return [name for name in REQUIRED_LAYERS if not self.layers.get(name, False)]

    @classmethod
    def from_hello(cls, hello: dict[str, Any]) -> Isolation:
        return cls(
            {str(name): bool(on) for name, on in hello["layers"].items()},
            {str(name): str(why) for name, why in hello["failures"].items()},
        )


def _worker_command(*args: str) -> list[str]:
    # -P: the worker's working directory must not shadow stdlib modules for the samples.
    return [sys.executable, "-P", "-s", "-m", "codeduel.sandbox._worker", *args]


def _homes() -> list[str]:
    """The caller's home directories: $HOME and the password database's, when they differ."""
    import pwd

    homes = [os.path.expanduser("~")]
    with contextlib.suppress(KeyError):
        homes.append(pwd.getpwuid(os.getuid()).pw_dir)
    return sorted(set(homes))


def _worker_env() -> dict[str, str]:
    """Workers never see the caller's environment, so no secret can reach a sample."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "PYTHONPATH": str(Path(codeduel.__file__).resolve().parent.parent),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        HIDE_ENV: os.pathsep.join(_homes()),
    }
    if DISABLE_ENV in os.environ:
        env[DISABLE_ENV] = os.environ[DISABLE_ENV]
    return env


def probe_isolation() -> Isolation:
    """Which isolation layers work on this machine, and why the others do not (starts one
    short-lived worker)."""
    try:
        done = subprocess.run(
            _worker_command("--probe"),
            env=_worker_env(),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=_STARTUP_TIMEOUT_S,
            check=True,
        )
        return Isolation.from_hello(json.loads(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, AttributeError) as exc:
        raise SandboxError(f"cannot probe the sandbox layers: {exc}") from exc


def probe_layers() -> dict[str, bool]:
    """Which isolation layers work on this machine (starts one short-lived worker)."""
    return probe_isolation().layers


class _Worker:
    """One fork-server process and its pipes; used by one thread at a time."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
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
                _worker_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_worker_env(),
                cwd="/",
                start_new_session=True,
            )
            self._send(self._config)
        except (OSError, ChannelClosed) as exc:
            self.stop()
            raise SandboxError(f"cannot start a sandbox worker: {exc}") from exc

    def wait_ready(self) -> None:
        hello = self.receive(time.monotonic() + _STARTUP_TIMEOUT_S)
        self.isolation = Isolation.from_hello(hello)

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
    `REQUIRED_LAYERS` is not available.
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits = _DEFAULT_LIMITS,
        *,
        allow_unsafe: bool = False,
    ) -> None:
        self.workers = workers if workers is not None else len(os.sched_getaffinity(0))
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        self.limits = limits
        self._closed = False
        self._lock = threading.Lock()
        config = {"limits": dataclasses.asdict(limits)}
        self._all = [_Worker(config) for _ in range(self.workers)]
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
                raise UnsafeSandboxError(
                    f"the sandbox on this machine lacks isolation that untrusted code needs "
                    f"({why}); see `codeduel doctor`, or pass --unsafe-sandbox to run it anyway"
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
