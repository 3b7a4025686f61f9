"""Debian's chromium in headless mode, for tests that look at a page as a person would.

`dump_dom` gives the DOM after the page's scripts ran. `open_page` drives the browser over its
DevTools protocol (`--remote-debugging-pipe`: JSON messages ended by NUL on file descriptors 3 and 4,
so no websocket client is needed) and yields `evaluate(js)`, the value of a JavaScript expression in
the loaded page: a test can click, then read `innerText`, which holds only what is rendered.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran."""
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


class _Pipe:
    """The browser's end of the protocol: numbered commands out, their results back (events are skipped)."""

    def __init__(self, to_browser: int, from_browser: int, timeout_s: float) -> None:
        self.to_browser, self.from_browser, self.timeout_s = to_browser, from_browser, timeout_s
        self.buffer = b""
        self.last_id = 0

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise ConnectionError("chromium closed its DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]


@contextmanager
def open_page(url: str, profile: Path, timeout_s: float = 60.0) -> Iterator[Callable[[str], Any]]:
    """`url` loaded in a fresh headless chromium; yields `evaluate(expression)` (awaits a promise it returns)."""
    command_r, command_w = os.pipe()
    reply_r, reply_w = os.pipe()

    def protocol_fds() -> None:  # in the child: the pipe ends where chromium looks for them
        os.dup2(command_r, 3)
        os.dup2(reply_w, 4)

    browser = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                "about:blank"], preexec_fn=protocol_fds, close_fds=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(command_r)
    os.close(reply_w)
    pipe = _Pipe(command_w, reply_r, timeout_s)
    try:
        target = pipe.send("Target.createTarget", {"url": url})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

        def evaluate(expression: str) -> Any:
            result = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                    "awaitPromise": True}, session)
            if "exceptionDetails" in result:
                raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
            return result["result"].get("value")

        deadline = time.monotonic() + timeout_s
        while not evaluate("location.href !== 'about:blank' && document.readyState === 'complete'"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)
        yield evaluate
    finally:
        os.close(command_w)
        os.close(reply_r)
        browser.kill()
        browser.wait(timeout=30)
