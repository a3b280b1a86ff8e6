"""Load a page in a real headless Chromium over the DevTools protocol (a pipe, no extra package).

Collects what a reader's browser would complain about: uncaught exceptions, console errors and
warnings, browser log entries (failed loads, CSP) and any request that leaves the file system.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PageReport", "chromium_path", "load_page", "open_browser"]

# Requests a self-contained page may make: itself and inline data.
_LOCAL_SCHEMES = ("file:", "data:", "about:")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageReport:
    problems: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class _Pipe:
    """Chromium's --remote-debugging-pipe: JSON messages ending in NUL, in on fd 3, out on fd 4."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        return self.next_id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        if message.get("method") == "Page.javascriptDialogOpening":
            # An alert() would hold the page (and its load event) until someone answers it.
            self.send("Page.handleJavaScriptDialog", message.get("sessionId"), accept=True)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        wanted = self.send(method, session, **params)
        deadline = time.monotonic() + 30
        while True:
            message = self._read(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        if any(e["method"] == method for e in self.events):
            return
        while True:
            message = self._read(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return


def _problems(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    problems = []
    external = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            problems.append(f"uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            problems.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            problems.append(f"browser log {params['entry']['level']}: {params['entry']['text']}")
        elif method == "Page.javascriptDialogOpening":
            problems.append(f"javascript dialog: {params['message']}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(_LOCAL_SCHEMES):
                external.append(url)
    return problems, external


def load_page(
    page: Path, expressions: dict[str, str], screenshot: Path | None = None, width: int = 1280
) -> PageReport:
    """Open `page`, wait for its load event, evaluate each JS expression (by value), and save a
    screenshot of the whole page."""
    with open_browser(width) as pipe:
        return _drive(pipe, page, expressions, screenshot)


@contextmanager
def open_browser(width: int = 1280, height: int = 900) -> Iterator[_Pipe]:
    """A headless Chromium with a fresh profile, driven over the DevTools pipe."""
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not on PATH")
    with tempfile.TemporaryDirectory(prefix="codeduel-chromium-") as profile:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def wire_fds() -> None:
            # to_browser_r < from_browser_w, both >= 3: neither dup2 clobbers the other's
            # source. dup2 onto itself keeps close-on-exec, hence set_inheritable.
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        # close_fds=False keeps fds 3 and 4; every fd Python opened is close-on-exec anyway.
        proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire_fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            yield _Pipe(to_browser_w, from_browser_r)
        finally:
            os.close(to_browser_w)
            os.close(from_browser_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _drive(
    pipe: _Pipe, page: Path, expressions: dict[str, str], screenshot: Path | None
) -> PageReport:
    target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
    session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        pipe.call(f"{domain}.enable", session)
    pipe.call("Page.navigate", session, url=page.resolve().as_uri())
    pipe.wait_for("Page.loadEventFired")
    report = PageReport()
    for name, expression in expressions.items():
        result = pipe.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {name}: {result['exceptionDetails']}")
        report.values[name] = result["result"].get("value")
    if screenshot is not None:
        size = pipe.call("Page.getLayoutMetrics", session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = pipe.call(
            "Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    # Events that arrived while the answers above were awaited are all in pipe.events.
    report.problems, report.external_requests = _problems(pipe.events)
    pipe.call("Browser.close")
    return report
