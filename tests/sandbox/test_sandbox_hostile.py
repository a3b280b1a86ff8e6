"""Hostile programs: each must get the right status, and the host must see nothing of it."""

from __future__ import annotations

import glob
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_testutil import RENAME, peak_rss_mb, processes_named, worker_pids

from codeduel.sandbox import Limits, Sandbox

SOLUTION = "def square(x):\n    return x * x\n"
TESTS = "assert square(3) == 10\n"  # the solution is wrong: a fair run can only fail


def marker() -> str:
    return f"cd{uuid.uuid4().hex[:12]}"


def assert_no_process_named(name: str) -> None:
    deadline = time.monotonic() + 1.0
    while processes_named(name) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_named(name) == []


@pytest.fixture
def canary() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_process_scan_finds_renamed_processes() -> None:
    # The control for every "no process left" check below: the scan does see such a process.
    name = marker()
    program = RENAME.format(name=name.encode()) + "import time\ntime.sleep(30)\n"
    process = subprocess.Popen([sys.executable, "-c", program])
    try:
        deadline = time.monotonic() + 5
        while not processes_named(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes_named(name) == [process.pid]
    finally:
        process.kill()
        process.wait()


def test_os_exit_zero_before_the_tests_is_not_a_pass(sandbox: Sandbox) -> None:
    result = sandbox.run(SOLUTION + "import os\nos._exit(0)\n" + TESTS, 5.0)
    assert result.status == "error"
    assert result.detail == "exited before the tests finished (exit code 0)"


def test_printing_passed_is_not_a_pass(sandbox: Sandbox) -> None:
    program = SOLUTION + "print('passed')\nimport sys\nsys.stdout.flush()\n" + TESTS
    result = sandbox.run(program, 5.0)
    assert result.status == "failed"
    assert result.stdout == "passed\n"


def test_sys_exit_zero_is_not_a_pass(sandbox: Sandbox) -> None:
    result = sandbox.run(SOLUTION + "import sys\nsys.exit(0)\n" + TESTS, 5.0)
    assert result.status == "error"
    assert result.detail == "SystemExit: 0"


def test_forged_verdict_without_the_nonce_is_not_a_pass(sandbox: Sandbox) -> None:
    forged = b"\n" + b"0" * 32 + b' {"status": "passed", "detail": ""}\n'
    program = f"import os\nfor fd in range(3, 10):\n    try: os.write(fd, {forged!r})\n"
    program += "    except OSError: pass\nos._exit(0)\n"
    result = sandbox.run(program, 5.0)
    assert result.status == "error"
    assert "exit code 0" in result.detail


def test_a_forked_child_reaching_the_end_does_not_count(sandbox: Sandbox) -> None:
    program = (
        "import os\npid = os.fork()\nif pid:\n    os.waitpid(pid, 0)\n    assert False, 'parent'\n"
    )
    result = sandbox.run(program, 5.0)
    assert result.status == "failed"
    assert result.detail == "AssertionError: parent"


def test_code_ignoring_signals_is_stopped_at_the_timeout(sandbox: Sandbox) -> None:
    program = (
        "import signal\n"
        "for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP):\n"
        "    signal.signal(sig, signal.SIG_IGN)\n"
        "while True:\n"
        "    pass\n"
    )
    started = time.monotonic()
    result = sandbox.run(program, 1.0)
    assert result.status == "timeout"
    assert time.monotonic() - started < 2.0


def test_memory_bomb_is_an_error_and_the_host_is_fine() -> None:
    program = "blocks = []\nwhile True:\n    blocks.append(bytearray(2**24))\n"
    others = set(worker_pids())
    # This process's peak so far (earlier tests may have loaded a model with a large KV cache).
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Sandbox(workers=1, limits=Limits(memory_mb=256)) as box:
        result = box.run(program, 10.0)
        assert result.status == "error"
        assert result.detail == "MemoryError"
        assert box.run("x = bytearray(2**26)\n", 5.0).status == "passed"
        [worker] = set(worker_pids()) - others
        assert peak_rss_mb(worker) < 100
    # The bomb grew nothing here: this process's peak is what it was, or at most 100 MiB more.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < peak_before + 100 * 1024  # KiB


def test_fork_bomb_is_contained(sandbox: Sandbox) -> None:
    name = marker()
    program = RENAME.format(name=name.encode()) + "import os\nwhile True:\n    os.fork()\n"
    result = sandbox.run(program, 10.0)
    assert result.status == "error"
    assert "Resource temporarily unavailable" in result.detail
    assert_no_process_named(name)
    assert subprocess.run(["true"], check=False).returncode == 0


def test_detached_process_does_not_survive(sandbox: Sandbox) -> None:
    name = marker()
    program = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        + "".join(f"        {line}\n" for line in RENAME.format(name=name.encode()).splitlines())
        + "        print('detached', flush=True)\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
    )
    result = sandbox.run(program, 5.0)
    assert result.status == "passed"
    assert result.stdout == "detached\n"  # the grandchild did start and rename itself
    assert processes_named(name) == []


def test_detached_process_does_not_survive_a_timeout(sandbox: Sandbox) -> None:
    name = marker()
    program = (
        "import os, signal, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        + "".join(f"    {line}\n" for line in RENAME.format(name=name.encode()).splitlines())
        + "    time.sleep(60)\n"
        "while True:\n"
        "    pass\n"
    )
    result = sandbox.run(program, 0.5)
    assert result.status == "timeout"
    assert processes_named(name) == []


def test_disk_bomb_is_limited_and_leaves_nothing(sandbox: Sandbox) -> None:
    name = f"bomb-{uuid.uuid4().hex}.bin"
    program = (
        f"with open({name!r}, 'wb') as file:\n"
        "    for _ in range(1024):\n"
        "        file.write(b'x' * 2**20)\n"
    )
    result = sandbox.run(program, 10.0)
    assert result.status == "error"
    assert "File too large" in result.detail
    many = f"for i in range(64):\n    open(f'{{i}}-{name}', 'wb').write(b'x' * 8 * 2**20)\n"
    result = sandbox.run(many, 10.0)
    assert result.status == "error"
    assert "No space left on device" in result.detail
    for root in ("/tmp", "/var/tmp", "/dev/shm", os.getcwd()):
        assert glob.glob(f"{root}/**/*{name}", recursive=True) == []


def test_network_is_unreachable(sandbox: Sandbox) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        result = sandbox.run(program, 5.0)
        assert result.status == "error"
        assert "Network is unreachable" in result.detail
        with pytest.raises(BlockingIOError):
            server.accept()
        # The control: a connection from the host itself does arrive.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            time.sleep(0.05)
            server.accept()[0].close()


def test_secrets_in_the_environment_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"sk-ant-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    program = (
        "import os\n"
        "print(sorted(os.environ))\n"
        "print(os.environ.get('ANTHROPIC_API_KEY'))\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
        f"print(open('/proc/{os.getpid()}/environ', 'rb').read())\n"
    )
    with Sandbox(workers=1) as box:
        result = box.run(program, 5.0)
    assert result.status == "error"  # the host's pid does not exist in the sample's /proc
    assert "FileNotFoundError" in result.detail
    assert secret not in result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == [
        "['HOME', 'LANG', 'LC_ALL', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'TMPDIR']",
        "None",
    ]


def _outside_home_and_tmp() -> Path:
    """A directory that the test can write, outside the caller's home and the tmp mounts:
    where a team keeps its checkouts, /srv, /opt (the test's own working directory first)."""
    private = ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"))
    for candidate in (Path.cwd(), Path("/srv"), Path("/opt"), Path("/var/lib")):
        resolved = str(candidate.resolve())
        if not resolved.startswith(private) and os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("no writable directory outside the home and the private tmp mounts")


def _without_the_view() -> Sandbox:
    """The control for each leak below: the same sandbox with the allowlisted root switched
    off (the test switch), which must show the leak, or the test could not fail. As root the
    samples then keep uid 0, so that an interpreter under /root stays usable to them."""
    os.environ["CODEDUEL_SANDBOX_DISABLE"] = "allowlisted_root,dropped_privileges"
    try:
        return Sandbox(workers=1, allow_unsafe=True)
    finally:
        del os.environ["CODEDUEL_SANDBOX_DISABLE"]


@pytest.fixture
def outside() -> Iterator[Path]:
    """A fresh world-readable directory outside the home and /tmp."""
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix=".codeduel-test-", dir=_outside_home_and_tmp()))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_host_files_outside_the_home_and_tmp_are_not_in_the_view(outside: Path) -> None:
    secret = f"team-secret-{uuid.uuid4().hex}"
    (outside / "secret.txt").write_text(secret)
    (outside / "secret.txt").chmod(0o644)
    read = f"import os\nprint(os.path.exists({str(outside)!r}))\n"
    read += f"print(open({str(outside / 'secret.txt')!r}).read())\n"
    with _without_the_view() as box:
        assert secret in box.run(read, 5.0).stdout  # the control: world-readable, it leaks
    with Sandbox(workers=1) as box:
        result = box.run(read, 5.0)
    assert result.status == "error"
    assert result.stdout == "False\n"
    assert "FileNotFoundError" in result.detail
    assert secret not in result.stdout + result.stderr + result.detail


@pytest.fixture
def home_with_a_key(outside: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A home directory anyone could read, with a key in it."""
    secret = f"-----BEGIN OPENSSH PRIVATE KEY----- {uuid.uuid4().hex}"
    (outside / "home" / ".ssh").mkdir(mode=0o755, parents=True)
    (outside / "home").chmod(0o755)
    (outside / "home" / ".ssh" / "id_ed25519").write_text(secret)
    (outside / "home" / ".ssh" / "id_ed25519").chmod(0o644)
    monkeypatch.setenv("HOME", str(outside / "home"))
    yield outside / "home", secret


def test_the_users_home_is_hidden(home_with_a_key: tuple[Path, str]) -> None:
    home, secret = home_with_a_key
    read = f"import os\nprint(open({str(home)!r} + '/.ssh/id_ed25519').read())\n"
    with _without_the_view() as box:
        assert secret in box.run(read, 5.0).stdout  # the control
    with Sandbox(workers=1) as box:
        hidden = box.run(read, 5.0)
        # The interpreter still works: its own directories are in the view.
        assert box.run("import json, sqlite3, decimal\n", 5.0).status == "passed"
    assert hidden.status == "error"
    assert "FileNotFoundError" in hidden.detail
    assert secret not in hidden.stdout + hidden.stderr


def _under_run() -> Path:
    """Where system daemons keep their sockets: /run, or, where the test may not write there,
    a directory outside the home and /tmp."""
    return Path("/run") if os.access("/run", os.W_OK) else _outside_home_and_tmp()


def test_host_unix_sockets_and_fifos_in_the_file_system_are_unreachable() -> None:
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="codeduel-test-", dir=_under_run()))
    directory.chmod(0o755)
    sock_path, fifo_path = directory / "daemon.sock", directory / "daemon.fifo"
    program = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "try:\n"
        f"    s.connect({str(sock_path)!r})\n"
        "    s.sendall(b'connected')\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
        f"fd = os.open({str(fifo_path)!r}, os.O_WRONLY | os.O_NONBLOCK)\n"
        "os.write(fd, b'written')\n"
    )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(sock_path))
            sock_path.chmod(0o777)
            server.listen()
            server.setblocking(False)
            os.mkfifo(fifo_path, 0o666)
            fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                with _without_the_view() as box:  # the control: through a read-only bind
                    leaked = box.run(program, 5.0)
                assert leaked.status == "passed", leaked.detail
                assert leaked.stdout == "connected\n"
                server.accept()[0].close()
                assert os.read(fifo, 64) == b"written"
                with Sandbox(workers=1) as box:
                    result = box.run(program, 5.0)
                assert result.stdout == "FileNotFoundError\n"
                assert result.status == "error" and "FileNotFoundError" in result.detail
                with pytest.raises(BlockingIOError):
                    server.accept()
                assert os.read(fifo, 64) == b""  # no writer came, nothing was written
            finally:
                os.close(fifo)
    finally:
        shutil.rmtree(directory)


def test_the_root_directory_lists_only_the_allowlist(sandbox: Sandbox) -> None:
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr"}
    made = {"dev", "etc", "proc", "run", "tmp", "var"}
    interpreter = {sys.prefix, sys.base_prefix, os.path.dirname(sys.executable), *sys.path}
    interpreter |= {os.path.realpath(path) for path in interpreter}
    tops = {path.split("/")[1] for path in interpreter if path.startswith("/") and path != "/"}
    program = (
        "import os, json\n"
        "print(json.dumps({d: sorted(os.listdir(d)) for d in ['/', '/run', '/dev', '/etc']}))\n"
    )
    result = sandbox.run(program, 5.0)
    assert result.status == "passed", result.detail
    listing = json.loads(result.stdout)
    assert set(listing["/"]) <= system | made | tops
    assert made <= set(listing["/"])
    for host_only in set(os.listdir("/")) - system - made - tops:
        assert host_only not in listing["/"]  # /srv, /opt, /mnt, /home, /sys, /boot, ...
    assert listing["/run"] == []
    assert set(listing["/dev"]) <= {
        "null", "zero", "full", "random", "urandom", "shm", "fd", "stdin", "stdout", "stderr"
    }  # fmt: skip
    assert set(listing["/etc"]) <= {
        "passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf",
        "ld.so.conf.d", "localtime", "timezone", "alternatives",
    }  # fmt: skip


def test_scratch_directory_is_writable(sandbox: Sandbox) -> None:
    program = "import tempfile\nopen('here.txt', 'w').write('x')\ntempfile.mkstemp()\n"
    assert sandbox.run(program, 5.0).status == "passed"


@pytest.mark.parametrize("where", ["test_tmp", "etc", "repo"])
def test_files_outside_the_scratch_directory_cannot_be_written(
    sandbox: Sandbox, tmp_path: Path, where: str
) -> None:
    directory = {"test_tmp": str(tmp_path), "etc": "/etc", "repo": os.getcwd()}[where]
    target = os.path.join(directory, f"escape-{uuid.uuid4().hex}.txt")
    result = sandbox.run(f"open({target!r}, 'w').write('escaped')\n", 5.0)
    assert result.status == "error"
    assert not os.path.exists(target)


def test_processes_outside_cannot_be_signalled(
    sandbox: Sandbox, canary: subprocess.Popen[bytes]
) -> None:
    direct = sandbox.run(f"import os, signal\nos.kill({canary.pid}, signal.SIGKILL)\n", 5.0)
    assert direct.status == "error"
    assert "ProcessLookupError" in direct.detail
    everyone = sandbox.run("import os, signal\nos.kill(-1, signal.SIGKILL)\n", 5.0)
    assert "ProcessLookupError" in everyone.detail  # -1 finds no one else in the namespace
    time.sleep(0.1)
    assert canary.poll() is None


def test_output_flood_is_drained_and_capped(sandbox: Sandbox) -> None:
    forever = sandbox.run("while True:\n    print('x' * 1000)\n", 1.0)
    assert forever.status == "timeout"
    assert forever.stdout.startswith("x" * 1000)
    assert len(forever.stdout) < 16384 + 100
    gigabyte = (
        "import os\n"
        "chunk = b'y' * 2**20\n"
        "for _ in range(1024):\n"
        "    os.write(1, chunk)\n"
        "    os.write(2, chunk)\n"
        "raise RuntimeError('z' * 10**6)\n"
    )
    result = sandbox.run(gigabyte, 30.0)
    assert result.status == "error"
    assert result.detail.startswith("RuntimeError: zzz")
    assert len(result.detail) <= 1000
    assert result.stdout.endswith(f"[{2**30 - 16384} more bytes discarded]")
    assert len(result.stderr) < 16384 + 100
    for worker in worker_pids():
        assert peak_rss_mb(worker) < 100


def test_segfault_is_an_error_naming_the_signal(sandbox: Sandbox) -> None:
    result = sandbox.run("import ctypes\nctypes.string_at(0)\n", 5.0)
    assert result.status == "error"
    assert result.detail == "killed by signal SIGSEGV"


def test_host_unix_socket_in_the_abstract_namespace_is_unreachable(sandbox: Sandbox) -> None:
    # Abstract unix sockets belong to the network namespace, not the file system.
    name = f"codeduel-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(f"\0{name}")
        server.listen()
        server.setblocking(False)
        program = (
            "import socket\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"s.connect('\\0{name}')\n"
        )
        result = sandbox.run(program, 5.0)
        assert result.status == "error"
        assert "ConnectionRefusedError" in result.detail
        with pytest.raises(BlockingIOError):
            server.accept()
        # The control: the same connection from the host arrives.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(f"\0{name}")
            time.sleep(0.05)
            server.accept()[0].close()


def test_nothing_carries_over_to_the_next_sample() -> None:
    name = marker()
    leave_behind = (
        "import os, time\n"
        "open('/tmp/left.txt', 'w').write('x')\n"
        "open('/dev/shm/left.txt', 'w').write('x')\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        + "".join(f"    {line}\n" for line in RENAME.format(name=name.encode()).splitlines())
        + "    time.sleep(60)\n"
    )
    look = (
        "import os\n"
        "assert not os.path.exists('/tmp/left.txt')\n"
        "assert not os.path.exists('/dev/shm/left.txt')\n"
        "assert sorted(p for p in os.listdir('/proc') if p.isdigit()) == ['1']\n"
    )
    with Sandbox(workers=1) as box:  # one worker: the second sample follows on the same one
        assert box.run(leave_behind, 5.0).status == "passed"
        result = box.run(look, 5.0)
        assert result.status == "passed", (result.detail, result.stderr)
    assert processes_named(name) == []


def test_samples_cannot_make_user_namespaces(sandbox: Sandbox) -> None:
    # The door to most unprivileged kernel attack surface stays shut (CLONE_NEWUSER).
    program = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.unshare(0x10000000) == -1, 'unshare(CLONE_NEWUSER) worked'\n"
        "print(ctypes.get_errno())\n"
    )
    result = sandbox.run(program, 5.0)
    assert result.status == "passed", (result.detail, result.stderr)
    assert result.stdout.strip() in {"1", "28"}  # EPERM (no_new_privs...) or ENOSPC (limit 0)


def test_sysv_ipc_objects_and_message_queues_cannot_be_made(sandbox: Sandbox) -> None:
    # Nothing that could outlive the sample in its worker's IPC namespace: ENOSPC for all.
    program = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "rt = ctypes.CDLL('librt.so.1', use_errno=True)\n"
        "made = {\n"
        "    'shm': libc.shmget(0x5eed, 4096, 0o1600),\n"  # IPC_CREAT | 0600
        "    'msg': libc.msgget(0x5eed, 0o1600),\n"
        "    'sem': libc.semget(0x5eed, 1, 0o1600),\n"
        "    'mq': rt.mq_open(b'/codeduel', 0o100 | 2, 0o600, None),\n"  # O_CREAT | O_RDWR
        "}\n"
        "assert made == dict.fromkeys(made, -1), made\n"
        "print(ctypes.get_errno())\n"
        "open('/dev/shm/posix-shm-still-works', 'w').write('x')\n"
    )
    result = sandbox.run(program, 5.0)
    assert result.status == "passed", (result.detail, result.stderr)
    assert result.stdout == "28\n"  # ENOSPC
