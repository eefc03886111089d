"""Open a report page in headless Chromium and check it as a reader would see it.

Owns one short DevTools-protocol session (the ``websocket-client`` package, a test
dependency; Chromium is Debian's ``chromium``, installed by scripts/test.sh): load the
file, collect console errors, uncaught exceptions and failed loads, ask the page which
images did not decode, and save a full-page screenshot.  Used by the browser tests and
by ``scripts/report_screenshot.py``; nothing in ``tempo report`` depends on it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# flags that work on this machine (no network, root): /work/.library/env/machines/python.md
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio")
IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})))"""


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


@dataclass
class PageCheck:
    url: str
    images: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    title: str = ""

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]


class _Cdp:
    def __init__(self, ws_url: str, timeout_s: float) -> None:
        import websocket  # websocket-client (test dependency)

        self.ws = websocket.create_connection(ws_url, timeout=timeout_s, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout_s: float) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        for e in self.events:
            if e.get("method") == method:
                return e
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(f"no {method} within {timeout_s} s")

    def close(self) -> None:
        self.ws.close()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"exception: {d.get('text')} {(d.get('exception') or {}).get('description', '')}".strip())
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"load failed: {p.get('errorText')}")
    return out


def check_page(path: Path, screenshot: Path | None = None, width: int = 1280, timeout_s: float = 60.0) -> PageCheck:
    """Load ``path`` in headless Chromium; return images, console errors, screenshot path."""
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (scripts/test.sh installs Debian's chromium)")
    url = Path(path).resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="tempo-chromium-")
    proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             f"--window-size={width},900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws_url = None
        end = time.monotonic() + timeout_s
        assert proc.stderr is not None
        while time.monotonic() < end:
            line = proc.stderr.readline()
            if not line:
                if proc.poll() is not None:
                    raise RuntimeError(f"chromium exited with status {proc.returncode} before DevTools came up")
                continue
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws_url = m.group(1)
                break
        if ws_url is None:
            raise TimeoutError("chromium did not print its DevTools address")
        # keep draining stderr: a full pipe would stall the browser
        import threading

        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        port = re.search(r":(\d+)/", ws_url).group(1)  # type: ignore[union-attr]
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        cdp = _Cdp(pages[0]["webSocketDebuggerUrl"], timeout_s)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.call(f"{domain}.enable")
            cdp.call("Page.navigate", url=url)
            cdp.wait_event("Page.loadEventFired", timeout_s)
            check = PageCheck(url=url)
            check.images = json.loads(cdp.call("Runtime.evaluate", expression=IMAGES_JS,
                                               returnByValue=True)["result"]["value"])
            check.title = cdp.call("Runtime.evaluate", expression="document.title",
                                   returnByValue=True)["result"]["value"]
            if screenshot is not None:
                shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                check.screenshot = screenshot
            check.console_errors = _errors(cdp.events)
        finally:
            cdp.close()
        return check
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
