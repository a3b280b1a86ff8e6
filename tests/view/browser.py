"""One headless Chromium tab over DevTools, kept open across pages: navigate, evaluate, type,
wait for a condition, screenshot; and what a reader's browser would complain about."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.report.chromium import _Pipe, _problems, open_browser

__all__ = ["Tab", "open_tab"]


class Tab:
    def __init__(self, pipe: _Pipe, origin: str) -> None:
        self.pipe = pipe
        self.origin = origin
        target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Network", "Page"):
            pipe.call(f"{domain}.enable", self.session)

    def goto(self, path: str) -> None:
        """Load `path` of the server and wait for its load event."""
        start = len(self.pipe.events)
        self.pipe.call("Page.navigate", self.session, url=self.origin + path)
        deadline = time.monotonic() + 30
        while not any(e["method"] == "Page.loadEventFired" for e in self.pipe.events[start:]):
            message = self.pipe._read(deadline)
            if "method" in message:
                self.pipe.events.append(message)

    def eval(self, expression: str) -> Any:
        result = self.pipe.call(
            "Runtime.evaluate",
            self.session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout_s: float = 20) -> Any:
        """Evaluate `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout_s} s: {expression}")
            time.sleep(0.2)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the field and type `text` key by key, as a user would."""
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.pipe.call("Input.insertText", self.session, text=text)

    def select(self, selector: str, value: str) -> None:
        self.eval(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def screenshot(self, path: Path, height: int | None = None, at: str | None = None) -> None:
        """`height` CSS pixels of the page (default: all of it), from its top or from the
        first element that matches the selector `at`."""
        size = self.pipe.call("Page.getLayoutMetrics", self.session)["cssContentSize"]
        top = 0.0
        if at is not None:
            top = self.eval(
                f"document.querySelector({json.dumps(at)}).getBoundingClientRect().top"
                " + window.scrollY - 12"
            )
        clip = {
            "x": 0,
            "y": top,
            "width": size["width"],
            "height": min(size["height"] - top, height or size["height"]),
            "scale": 1,
        }
        shot = self.pipe.call(
            "Page.captureScreenshot",
            self.session,
            format="png",
            clip=clip,
            captureBeyondViewport=True,
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, failed loads, and any request
        that went anywhere but the server, since the last call."""
        problems, requests = _problems(self.pipe.events)
        self.pipe.events.clear()
        away = [u for u in requests if not u.startswith(self.origin + "/")]
        return problems + [f"request away from the server: {u}" for u in away]


@contextmanager
def open_tab(origin: str, width: int = 1280, height: int = 900) -> Iterator[Tab]:
    with open_browser(width, height) as pipe:
        tab = Tab(pipe, origin)
        try:
            yield tab
        finally:
            pipe.call("Browser.close")
