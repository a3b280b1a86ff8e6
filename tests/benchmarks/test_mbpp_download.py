"""The MBPP download path, against a real HTTP server on loopback serving the real file."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.benchmarks.mbpp import FILENAME, MBPP_SANITIZED_SHA256, download
from codeduel.errors import BenchmarkError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(mbpp_dir: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(mbpp_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_lands_atomically(
    server: str, tmp_path: Path, mbpp_dir: Path
) -> None:
    target = tmp_path / "cache" / FILENAME
    download(f"{server}/{FILENAME}", target, MBPP_SANITIZED_SHA256)
    assert target.read_bytes() == (mbpp_dir / FILENAME).read_bytes()
    assert list(target.parent.iterdir()) == [target]


def test_a_wrong_file_is_refused_and_nothing_is_left(server: str, tmp_path: Path) -> None:
    target = tmp_path / "cache" / FILENAME
    with pytest.raises(BenchmarkError, match="expected"):
        download(f"{server}/mbpp.jsonl", target, MBPP_SANITIZED_SHA256)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_unreachable_source_names_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="CODEDUEL_MBPP_DIR"):
        download("http://127.0.0.1:9/nothing", tmp_path / FILENAME, MBPP_SANITIZED_SHA256, 5)


def test_mbpp_is_read_from_the_user_cache(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEDUEL_MBPP_DIR", raising=False)
    monkeypatch.setenv("CODEDUEL_CACHE_DIR", str(tmp_path))
    download(
        f"{server}/{FILENAME}", tmp_path / "datasets" / "mbpp" / FILENAME, MBPP_SANITIZED_SHA256
    )
    assert len(load_benchmark("mbpp").tasks) == 427


class _Cut(http.server.BaseHTTPRequestHandler):
    """Promises 1,000 bytes and sends 10, then closes: a download cut short."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"[" * 10)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_download_cut_short_is_one_sentence_and_nothing_is_left(tmp_path: Path) -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Cut)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    target = tmp_path / "cache" / FILENAME
    try:
        with pytest.raises(BenchmarkError, match="could not download MBPP .*CODEDUEL_MBPP_DIR"):
            download(f"http://127.0.0.1:{httpd.server_address[1]}/x", target, MBPP_SANITIZED_SHA256)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert list(target.parent.iterdir()) == []
