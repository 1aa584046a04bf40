"""Debian's headless Chromium, driven over the DevTools protocol with aiohttp's websocket client.

    async with HeadlessChromium(tmp_path) as browser:
        page = await browser.page()
        await page.call("Page.navigate", url=url)
        await page.event("Page.loadEventFired")

The browser gets a new, empty profile, no network of its own (no updates, sync or QUIC), and is
stopped through its own process handle.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_MISSING = "chromium not installed (Debian package chromium; CI installs it with apt-get)"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
)
WAIT = 30.0


def chromium_binary() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


class Page:
    """One tab: commands answered by id, events queued until asked for."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    async def _receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self._ws.receive(), WAIT)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"DevTools connection ended: {message.type}")
        return json.loads(message.data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            answer = await self._receive()
            if answer.get("id") == ident:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer["result"]
            if "method" in answer:
                self._events.append(answer)

    async def event(self, method: str) -> dict[str, Any]:
        """The next event `method` (one that arrived already, or the next to arrive)."""
        for index, queued in enumerate(self._events):
            if queued["method"] == method:
                return self._events.pop(index)["params"]
        while True:
            answer = await self._receive()
            if answer.get("method") == method:
                return answer["params"]
            if "method" in answer:
                self._events.append(answer)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


class HeadlessChromium:
    def __init__(self, profile_parent: Path) -> None:
        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError(CHROMIUM_MISSING)
        self.binary = binary
        self.profile = profile_parent / "chromium-profile"
        self.proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def __aenter__(self) -> HeadlessChromium:
        self.profile.mkdir()
        self.proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._session = aiohttp.ClientSession()
        return self

    async def _devtools_port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while loop.time() < deadline:
            assert self.proc is not None and self.proc.poll() is None, "chromium exited"
            lines = marker.read_text().splitlines() if marker.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            await asyncio.sleep(0.1)
        raise AssertionError(f"chromium wrote no {marker} within {WAIT}s")

    async def page(self) -> Page:
        assert self._session is not None
        port = await self._devtools_port()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json()
        target = next(target for target in targets if target["type"] == "page")
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        self._sockets.append(ws)
        return Page(ws)

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._session is not None:
            await self._session.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this test started, no other
                self.proc.wait()
