"""MBPP, sanitized (Austin et al. 2021): 427 hand-checked tasks.

Read from a local folder (`CODEDUEL_MBPP_DIR`) or the user cache; when neither has it, the
file is downloaded once from its canonical source and pinned by sha256.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from codeduel.benchmarks._download import FETCH_ERRORS, write_atomically
from codeduel.benchmarks._types import Benchmark, Task
from codeduel.errors import BenchmarkError

__all__ = ["MBPP_SANITIZED_SHA256", "MBPP_SANITIZED_URL", "download", "load_mbpp", "mbpp_task"]

MBPP_SANITIZED_URL = (
    "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/"
    "sanitized-mbpp.json"
)
MBPP_SANITIZED_SHA256 = "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9"
FILENAME = "sanitized-mbpp.json"


def _cache_dir() -> Path:
    override = os.environ.get("CODEDUEL_CACHE_DIR")
    if override:
        return Path(override) / "datasets" / "mbpp"
    import platformdirs

    return Path(platformdirs.user_cache_dir("codeduel")) / "datasets" / "mbpp"


def download(url: str, target: Path, sha256: str, timeout_s: float = 60.0) -> Path:
    """Fetch `url` into `target` atomically; a hash mismatch leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = response.read()
    except FETCH_ERRORS as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchmarkError(
            f"could not download MBPP from {url} ({reason}); set "
            "CODEDUEL_MBPP_DIR to a folder holding sanitized-mbpp.json"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise BenchmarkError(f"MBPP from {url} has sha256 {digest}, expected {sha256}")
    return write_atomically(target, data)


def _entry_point(code: str, tests: list[str]) -> str:
    """The function of the reference code that the tests call."""
    try:
        defined = [
            n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef | ast.ClassDef)
        ]
    except SyntaxError:
        defined = []
    called: list[str] = []
    for test in tests:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            continue
        called += [
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
    for name in called:
        if name in defined:
            return name
    return defined[-1] if defined else (called[0] if called else "solution")


def mbpp_task(obj: dict[str, Any]) -> Task:
    tests: list[str] = list(obj["test_list"])
    entry = _entry_point(obj["code"], tests)
    # The evalplus MBPP+ framing: the description plus one example assert, in a docstring.
    prompt = f'"""\n{obj["prompt"]}\n{tests[0]}\n"""\n'
    return Task(
        task_id=f"Mbpp/{obj['task_id']}",
        prompt=prompt,
        entry_point=entry,
        test="\n".join(tests),
        test_style="asserts",
        canonical_solution=obj["code"],
        test_setup="\n".join(obj.get("test_imports") or []),
        # The assert the prompt shows; it is also one of the hidden tests.
        visible_test=tests[0],
    )


def _locate() -> Path:
    folder = os.environ.get("CODEDUEL_MBPP_DIR")
    if folder:
        path = Path(folder) / FILENAME
        if not path.is_file():
            raise BenchmarkError(f"CODEDUEL_MBPP_DIR is set but {path} does not exist")
        return path
    cached = _cache_dir() / FILENAME
    if cached.is_file():
        return cached
    return download(MBPP_SANITIZED_URL, cached, MBPP_SANITIZED_SHA256)


def load_mbpp() -> Benchmark:
    path = _locate()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MBPP_SANITIZED_SHA256:
        raise BenchmarkError(
            f"{path} has sha256 {digest}, expected {MBPP_SANITIZED_SHA256} "
            "(the sanitized MBPP release)"
        )
    try:
        rows = json.loads(raw)
        tasks = tuple(mbpp_task(obj) for obj in rows)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BenchmarkError(f"{path} is not the sanitized MBPP file ({exc})") from None
    return Benchmark("mbpp", tasks, digest, str(path))
