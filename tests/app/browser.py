"""A real headless Chromium, driven over the DevTools protocol, for the tests of the report.

``make test`` installs Debian's ``chromium`` when it is missing (``scripts/ensure_chromium.sh``);
the tests that need it skip only when no Chromium is on the PATH. The browser listens on
127.0.0.1 only, in a throw-away profile, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Names the browser goes by on the PATH.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The Chromium executable on the PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What loading a page showed: errors, the images and a full-page screenshot."""

    errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    loaded: bool = False


class _Session:
    """One DevTools websocket: commands with ids, events kept for the caller."""

    def __init__(self, url: str, timeout: float) -> None:
        from websocket import create_connection

        self.ws = create_connection(url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result") or {})
            self.events.append(reply)

    def wait_for(self, method: str, deadline: float) -> bool:
        if any(e.get("method") == method for e in self.events):
            return True
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                event = json.loads(self.ws.recv())
            except Exception:  # the websocket's timeout: give up at the deadline
                return False
            self.events.append(event)
            if event.get("method") == method:
                return True
        return False


@contextlib.contextmanager
def _browser(timeout: float) -> Iterator[str]:
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("no chromium on the PATH")
    # its helper processes (renderer, zygote) may still write the profile when the browser
    # has gone: the whole process group is stopped, then the profile removed, with retries
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        args = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                lines = port_file.read_text().splitlines() if port_file.is_file() else []
                if len(lines) >= 2:
                    yield f"ws://127.0.0.1:{lines[0]}{lines[1]}"
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("chromium did not open its DevTools port in time")
        finally:
            _stop_group(proc)
            for _ in range(50):  # bounded: 5 s
                shutil.rmtree(profile, ignore_errors=True)
                if not Path(profile).exists():
                    break
                time.sleep(0.1)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the browser's process group, wait for the browser (10 s at most), then SIGKILL
    whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


#: What the page's images are, as the browser laid them out (page coordinates, CSS pixels).
_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(function (im) {
  var r = im.getBoundingClientRect();
  return {alt: im.alt, complete: im.complete, naturalWidth: im.naturalWidth,
          x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width,
          height: r.height, scheme: im.src.split(':')[0]};
}))"""


def load_page(path: Path, *, width: int = 1280, timeout: float = 60.0) -> PageLoad:
    """Open ``path`` in headless Chromium; collect console errors, uncaught exceptions and
    the browser's own error log entries (blocked or failed loads), the images, and a
    screenshot of the whole page at ``width`` CSS pixels (device scale 1)."""
    result = PageLoad()
    with _browser(timeout) as url:
        cdp = _Session(url, timeout)
        try:
            target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
            sid = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                cdp.call(f"{domain}.enable", session=sid)
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                session=sid,
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            cdp.call("Page.navigate", session=sid, url=path.resolve().as_uri())
            result.loaded = cdp.wait_for("Page.loadEventFired", time.monotonic() + timeout)
            metrics = cdp.call("Page.getLayoutMetrics", session=sid)
            height = int(metrics["cssContentSize"]["height"]) + 1
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                session=sid,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            value = cdp.call(
                "Runtime.evaluate", session=sid, expression=_IMAGES_JS, returnByValue=True
            )
            result.images = json.loads(value["result"]["value"])
            import base64

            shot = cdp.call("Page.captureScreenshot", session=sid, format="png")
            result.screenshot = base64.b64decode(shot["data"])
            cdp.wait_for("never", time.monotonic() + 0.5)  # late errors of the page
        finally:
            cdp.ws.close()
    for e in cdp.events:
        method, params = e.get("method"), e.get("params") or {}
        if method == "Runtime.exceptionThrown":
            result.errors.append(str(params.get("exceptionDetails", {}).get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.errors.append(json.dumps(params.get("args"))[:300])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            result.errors.append(str(params["entry"].get("text")))
    return result
