"""One model served by two replicas: two `llama_cpp.server` processes, one `codeduel run`.

    .venv/bin/python bench/replicas_llama_server.py [--limit 20] [--kill-after 0]

Starts two `python -m llama_cpp.server` on loopback with the bundled tiny model (SmolLM2-135M,
one thread each), then runs

    codeduel run humaneval --limit N --model openai-compat/smollm2-135m-instruct
        -M endpoints=URL1,URL2 -M max_concurrency=1 --max-tokens 64

(llama_cpp.server answers one request at a time, so one call in flight per replica), and
checks the store: every task scored exactly once, one model call per sample, and the calls per
replica (each call stores its endpoint). With --kill-after S the second server is killed S
seconds into the run: its calls go to the first, and still every task is scored once.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeduel.models.bundled import resolve_model_file  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}/v1"


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"llama_cpp.server at {url} did not come up") from None
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--kill-after", type=float, default=0.0)
    args = parser.parse_args()
    model = resolve_model_file("smollm2-135m-instruct")
    servers = [_server(model) for _ in range(2)]
    try:
        for proc, url in servers:
            _wait(url, proc)
        urls = [url for _, url in servers]
        with tempfile.TemporaryDirectory() as scratch:
            db = Path(scratch) / "runs.db"
            cmd = [sys.executable, "-m", "codeduel", "run", "humaneval", "--limit", str(args.limit)]
            cmd += ["--model", "openai-compat/smollm2-135m-instruct"]
            cmd += ["-M", f"endpoints={','.join(urls)}", "-M", "max_concurrency=1"]
            cmd += [
                "--max-tokens",
                "64",
                "--db",
                str(db),
                "--run-name",
                "replicas",
                "--no-progress",
            ]
            print("$ codeduel " + " ".join(cmd[3:]), flush=True)
            start = time.perf_counter()
            run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            killed = None
            if args.kill_after:
                try:
                    run.wait(timeout=args.kill_after)
                except subprocess.TimeoutExpired:
                    servers[1][0].kill()
                    killed = time.perf_counter() - start
            _, err = run.communicate(timeout=3600)
            wall = time.perf_counter() - start
            if run.returncode != 0:
                print(err[-2000:], file=sys.stderr)
                return 1
            con = sqlite3.connect(db)
            counts = dict(con.execute("SELECT task_id, COUNT(*) FROM samples GROUP BY task_id"))
            calls = con.execute("SELECT extra, error FROM model_calls").fetchall()
            extras = [json.loads(e) if e else {} for e, _ in calls]
            errors = [err for _, err in calls if err]
            per: dict[str, int] = {}
            for extra in extras:
                where = extra.get("endpoint", "none (the call failed)")
                per[where] = per.get(where, 0) + 1
            (passed,) = con.execute("SELECT SUM(status = 'passed') FROM samples").fetchone()
            con.close()
        once = len(counts) == args.limit and set(counts.values()) == {1}
        print(f"wall {wall:.1f} s; {len(counts)} tasks scored, each once: {once}; passed {passed}")
        print(f"model calls: {len(extras)} for {len(counts)} samples, {len(errors)} failed")
        for error in errors:
            print(f"  failed: {error[:200]}")
        for where, n in sorted(per.items()):
            print(f"  {where}: {n} calls")
        if killed is not None:
            print(f"the second server was killed at {killed:.1f} s")
        return 0 if once and len(extras) == len(counts) and not errors else 1
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
