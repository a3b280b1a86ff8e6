"""The sandbox's surface: statuses, ordering, threads, layers, lifecycle."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
import uuid

import pytest
from sandbox_testutil import RENAME, processes_named, worker_pids

import codeduel.sandbox
from codeduel.errors import OptionError, SandboxError
from codeduel.sandbox import ExecResult, Limits, Sandbox, probe_layers
from codeduel.sandbox._sandbox import choose_launch

CANDIDATE = "def add(a, b):\n    return a + b\n"


def test_public_names() -> None:
    assert sorted(codeduel.sandbox.__all__) == [
        "ExecResult",
        "Isolation",
        "LAUNCH_ENV",
        "Limits",
        "NOT_ROOT",
        "REQUIRED_LAYERS",
        "Sandbox",
        "Status",
        "gpu_devices",
        "probe_isolation",
        "probe_layers",
    ]


def test_program_that_runs_to_its_end_passes(sandbox: Sandbox) -> None:
    result = sandbox.run(CANDIDATE + "assert add(2, 3) == 5\nprint('ok')\n", 5.0)
    assert result.status == "passed", result
    assert result.detail == ""
    assert result.stdout == "ok\n"
    assert 0 < result.duration_s < 5


def test_assertion_failure_is_failed(sandbox: Sandbox) -> None:
    result = sandbox.run(CANDIDATE + "assert add(2, 2) == 5, 'two and two'\n", 5.0)
    assert result.status == "failed", result
    assert result.detail == "AssertionError: two and two"
    assert "line 3" in result.stderr


@pytest.mark.parametrize(
    ("program", "detail"),
    [
        (CANDIDATE + "add(1)\n", "TypeError: add() missing 1 required positional argument: 'b'"),
        ("undefined_name\n", "NameError: name 'undefined_name' is not defined"),
        ("def broken(:\n    pass\n", "SyntaxError: invalid syntax (<sample>, line 1)"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ],
)
def test_other_exceptions_are_errors(sandbox: Sandbox, program: str, detail: str) -> None:
    result = sandbox.run(program, 5.0)
    assert result.status == "error", result
    assert result.detail == detail


def test_wall_clock_timeout(sandbox: Sandbox) -> None:
    result = sandbox.run("import time\ntime.sleep(30)\n", 0.5)
    assert result.status == "timeout", result
    assert result.detail == "timed out after 0.5 s"
    assert 0.5 <= result.duration_s < 1.5


def test_program_runs_in_fresh_globals_as_main(sandbox: Sandbox) -> None:
    program = (
        "names = sorted(globals())\n"
        "assert names == ['__builtins__', '__doc__', '__loader__', '__name__', '__package__',"
        " '__spec__'], names\n"
        "assert __name__ == '__main__'\n"
        "import pickle\n"
        "def f(): pass\n"
        "assert pickle.loads(pickle.dumps(f)) is f\n"
    )
    assert sandbox.run(program, 5.0).status == "passed"


def test_each_sample_gets_a_fresh_process(sandbox: Sandbox) -> None:
    leak = "import math\nassert not hasattr(math, 'leaked')\nmath.leaked = True\n"
    results = list(sandbox.map([(leak, 5.0)] * 4))
    assert [r.status for r in results] == ["passed"] * 4


def test_map_keeps_input_order(sandbox: Sandbox) -> None:
    # Early jobs sleep longest, so they finish last.
    jobs = [(f"import time\ntime.sleep({0.05 * (5 - i)})\nprint({i})\n", 5.0) for i in range(6)]
    results = list(sandbox.map(jobs))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]


def test_run_is_thread_safe(sandbox: Sandbox) -> None:
    results: dict[int, ExecResult] = {}

    def job(i: int) -> None:
        results[i] = sandbox.run(f"print({i})\nassert {i} % 3 != 0\n", 5.0)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, result in results.items():
        assert result.stdout == f"{i}\n"
        assert result.status == ("failed" if i % 3 == 0 else "passed")
    assert len(results) == 9


def test_layers_report_namespaces_on_this_machine(sandbox: Sandbox) -> None:
    layers = sandbox.layers
    for layer in ("fork_server", "rlimits", "pid_namespace", "net_namespace", "ipc_namespace"):
        assert layers[layer], layer
    assert layers["private_tmp"] and layers["scrubbed_env"]
    if os.geteuid() == 0:
        assert layers["dropped_privileges"]
    else:
        assert layers["user_namespace"]
    assert probe_layers() == layers


def test_reported_layers_hold_inside_the_sample(sandbox: Sandbox) -> None:
    program = (
        "import os, socket\n"
        "assert os.getpid() == 1, os.getpid()\n"  # the sample is its pid namespace's init
        "assert socket.if_nameindex() == [(1, 'lo')], socket.if_nameindex()\n"
        "assert os.getuid() != 0\n"
        "assert os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR']\n"
        "assert sorted(int(fd) for fd in os.listdir('/proc/self/fd')) == [0, 1, 2, 3, 4]\n"
        "import resource\n"
        "assert resource.getrlimit(resource.RLIMIT_NPROC)[0] == 32\n"
        "assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)\n"
        "assert open('/proc/self/status').read().count('CapEff:\\t0000000000000000') == 1\n"
    )
    result = sandbox.run(program, 5.0)
    assert result.status == "passed", (result.detail, result.stderr)


def test_limits_are_applied() -> None:
    program = (
        "import resource\n"
        "assert resource.getrlimit(resource.RLIMIT_AS)[0] == 300 * 2**20\n"
        "assert resource.getrlimit(resource.RLIMIT_CPU) == (7, 8)\n"
        "assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == 2 * 2**20\n"
        "assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 20\n"
        "print('x' * 5000)\n"
    )
    limits = Limits(memory_mb=300, cpu_s=7, file_size_mb=2, open_files=20, output_bytes=100)
    with Sandbox(workers=1, limits=limits) as box:
        result = box.run(program, 5.0)
    assert result.status == "passed", (result.detail, result.stderr)
    assert result.stdout == "x" * 100 + "\n[4901 more bytes discarded]"


def test_close_leaves_no_worker_and_nothing_on_disk() -> None:
    def our_files() -> set[str]:
        return {name for name in os.listdir(tempfile.gettempdir()) if "codeduel" in name}

    files_before, others = our_files(), set(worker_pids())
    with Sandbox(workers=2) as box:
        pids = set(worker_pids()) - others
        assert len(pids) == 2
        assert box.run("open('here.txt', 'w').write('x' * 1000)\n", 5.0).status == "passed"
        assert our_files() == files_before  # scratch lives on the sample's private tmpfs
    assert set(worker_pids()) == others
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")
    assert our_files() == files_before
    with pytest.raises(SandboxError, match="closed"):
        box.run("pass", 5.0)


def test_a_worker_dying_mid_sample_is_an_error_then_replaced() -> None:
    others = set(worker_pids())
    with Sandbox(workers=1) as box:
        [pid] = set(worker_pids()) - others
        errors: list[BaseException] = []

        name = f"cd{uuid.uuid4().hex[:12]}"
        program = RENAME.format(name=name.encode()) + "import time\ntime.sleep(10)\n"

        def run_long() -> None:
            try:
                box.run(program, 20.0)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run_long)
        thread.start()
        deadline = time.monotonic() + 5
        while not processes_named(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes_named(name)
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], SandboxError), errors
        assert "worker died" in str(errors[0])
        time.sleep(0.2)
        assert processes_named(name) == []  # the sample died with its worker
        assert box.run("pass", 5.0).status == "passed"
        [replacement] = set(worker_pids()) - others
        assert replacement != pid


def test_a_worker_dying_while_idle_is_replaced_quietly() -> None:
    others = set(worker_pids())
    with Sandbox(workers=1) as box:
        [pid] = set(worker_pids()) - others
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        assert box.run("pass", 5.0).status == "passed"
        assert set(worker_pids()) - others != {pid}


def test_bad_timeout_is_rejected(sandbox: Sandbox) -> None:
    for timeout in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout_s"):
            sandbox.run("pass", timeout)


def test_map_with_slow_jobs_among_many_fast_ones_finishes() -> None:
    # Fast jobs race ahead of a slow one until the window of unconsumed results is full; a
    # worker thread must then still collect what it holds rather than wait for room.
    jobs = [
        ("import time\ntime.sleep(0.2)\n" if i % 40 == 0 else "pass\n", 5.0) for i in range(400)
    ]
    statuses: list[str] = []
    with Sandbox(workers=4) as box:
        thread = threading.Thread(target=lambda: statuses.extend(r.status for r in box.map(jobs)))
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive(), f"map stalled after {len(statuses)} results"
    assert statuses == ["passed"] * len(jobs)


def test_map_stops_at_the_first_failure_and_keeps_what_came_before() -> None:
    jobs = [("pass\n", 5.0)] * 5 + [("pass\n", float("nan"))] + [("pass\n", 5.0)] * 5
    with Sandbox(workers=2) as box:
        results = box.map(jobs)
        assert [next(results).status for _ in range(5)] == ["passed"] * 5
        with pytest.raises(ValueError, match="timeout_s"):
            next(results)
        assert box.run("pass\n", 5.0).status == "passed"  # the workers are free again


def test_numpy_imports_and_runs_in_a_sample(sandbox: Sandbox) -> None:
    pytest.importorskip("numpy")
    program = (
        "import numpy as np\n"
        "a = np.arange(12, dtype=np.float64).reshape(3, 4)\n"
        "assert float((a @ a.T).trace()) == 506.0\n"
    )
    result = sandbox.run(program, 30.0)
    assert result.status == "passed", (result.detail, result.stderr)


def test_torch_cpu_imports_and_runs_in_a_sample(sandbox: Sandbox) -> None:
    pytest.importorskip("torch")
    program = "import torch\nassert torch.ones(3, 3).sum().item() == 9.0\n"
    result = sandbox.run(program, 60.0)
    assert result.status == "passed", (result.detail, result.stderr)


def test_launch_is_direct_unless_apparmor_restricts_user_namespaces() -> None:
    assert choose_launch("auto", root=True, restricted=True, bwrap="/usr/bin/bwrap").name == (
        "direct"
    )
    assert choose_launch("auto", root=False, restricted=False, bwrap="/usr/bin/bwrap").name == (
        "direct"
    )
    through = choose_launch("auto", root=False, restricted=True, bwrap="/usr/bin/bwrap")
    assert through.name == "bubblewrap"
    assert through.prefix[:6] == ["/usr/bin/bwrap", "--unshare-user", "--uid", "0", "--gid", "0"]
    assert through.env == {"CODEDUEL_SANDBOX_OUTER_IDS": f"{os.getuid()}:{os.getgid()}"}
    # Restricted and no bubblewrap: direct (layers will be off), saying what to install.
    lacking = choose_launch("auto", root=False, restricted=True, bwrap="")
    assert lacking.name == "direct" and "apt install bubblewrap" in (lacking.hint or "")
    as_root = choose_launch("bubblewrap", root=True, restricted=False, bwrap="/usr/bin/bwrap")
    assert "--unshare-user" not in as_root.prefix and as_root.env == {}
    with pytest.raises(OptionError, match="bwrap is not installed"):
        choose_launch("bubblewrap", root=False, restricted=False, bwrap="")
    with pytest.raises(OptionError, match="must be one of"):
        choose_launch("docker")
