"""The live alert page (GET /) in headless Chromium: an item posted after the page opened shows up as an
alert card with its evidence and source link, the page's filters (type, severity, stance) hide and show it, and a screenshot is
kept as tests/artifacts/live_page.png. Drives Chromium over the DevTools protocol (aiohttp websocket)."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import REPO

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900", "--remote-debugging-port=0"]
ITEM_TEXT = ("Russia fired a barrage of ballistic missiles and drones at Kyiv overnight; Putin threatened a "
             "nuclear response if Storm Shadow strikes continue.")


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (or `make system-deps`); "
                "the live page test needs a real browser and does not skip")


class DevTools:
    """A minimal Chrome DevTools protocol client on one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send_str(orjson.dumps({"id": self.next_id, "method": method, "params": params}).decode())
        while True:
            message = orjson.loads((await self.ws.receive(timeout=30)).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 30) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        time.sleep(0.2)
    raise AssertionError("chromium did not open its DevTools port")


def post_item(base_url: str, item: dict) -> dict:
    request = urllib.request.Request(f"{base_url}/news", data=orjson.dumps(item), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return orjson.loads(response.read())


CARDS = "[...document.querySelectorAll('article.alert')]"


async def drive(base_url: str, port: int, item: dict, screenshot: Path) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = DevTools(ws)
            await cdp.call("Page.enable")
            await cdp.call("Page.navigate", url=f"{base_url}/")
            await cdp.wait_for("document.readyState === 'complete' && "
                               "document.getElementById('status').className === 'live'", 20, "the event stream")
            title = await cdp.js("document.title")
            loop = asyncio.get_running_loop()
            accepted = await loop.run_in_executor(None, post_item, base_url, item)
            card = f"{CARDS}.find(c => c.innerText.includes({orjson.dumps(item['title']).decode()}))"
            await cdp.wait_for(f"!!{card}", 45, "the alert card of the posted item")
            details = await cdp.js(f"""(() => {{ const c = {card};
                return {{text: c.innerText, type: c.dataset.type, severity: c.dataset.severity, hidden: c.hidden,
                         fresh: c.classList.contains('fresh'),
                         evidence: [...c.querySelectorAll('blockquote')].map(b => b.innerText),
                         link: (c.querySelector('.source a') || {{}}).href }}; }})()""")
            # The page's filters: unchecking the type hides the card, a lower severity bar shows it again.
            await cdp.js("(() => { const b = document.querySelector('#types input[value=escalation]');"
                         " b.checked = false; b.dispatchEvent(new Event('change')); })()")
            hidden_by_type = await cdp.js(f"{card}.hidden")
            await cdp.js("(() => { const b = document.querySelector('#types input[value=escalation]');"
                         " b.checked = true; b.dispatchEvent(new Event('change'));"
                         " const s = document.getElementById('severity'); s.value = 'critical';"
                         " s.dispatchEvent(new Event('change')); })()")
            shown_at_critical = not await cdp.js(f"{card}.hidden")
            await cdp.js("(() => { const s = document.getElementById('severity'); s.value = 'low';"
                         " s.dispatchEvent(new Event('change')); })()")
            # a stance shows only negotiation alerts of that stance: the escalation card hides
            await cdp.js("(() => { const s = document.getElementById('stance'); s.value = 'rejected';"
                         " s.dispatchEvent(new Event('change')); })()")
            hidden_by_stance = await cdp.js(f"{card}.hidden")
            await cdp.js("(() => { const s = document.getElementById('stance'); s.value = '';"
                         " s.dispatchEvent(new Event('change')); })()")
            await asyncio.sleep(2.2)  # let the arrival highlight fade before the screenshot
            shot = await cdp.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return {"title": title, "accepted": accepted, "card": details, "hidden_by_type": hidden_by_type,
                    "shown_at_critical": shown_at_critical, "hidden_by_stance": hidden_by_stance}


def test_an_alert_appears_live_on_the_page(worker, tmp_path):
    binary = chromium_binary()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "live_page.png"
    screenshot.unlink(missing_ok=True)
    run = uuid.uuid4().hex[:8]
    item = {"title": f"Barrage on Kyiv as Kremlin threatens nuclear response ({run})", "text": ITEM_TEXT,
            "url": f"https://example.org/live/{run}", "source": "The Kyiv Independent"}
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = devtools_port(profile, proc)
        result = asyncio.run(asyncio.wait_for(drive(worker.base_url, port, item, screenshot), 90))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    card = result["card"]
    assert result["title"].startswith("signalwatch")
    assert card["type"] == "escalation" and card["severity"] == "critical" and not card["hidden"]
    assert card["fresh"], "the card arrived live (after the page loaded), not in the initial backlog"
    assert any("missile" in e.lower() or "nuclear" in e.lower() for e in card["evidence"]), card
    assert card["link"] == item["url"] and "The Kyiv Independent" in card["text"]
    # the camp line: who reports the story (the source registry knows the outlet)
    assert "reported by Ukrainian media only (The Kyiv Independent) · 1 origin, 1 camp, 1 copy" in card["text"], card
    assert result["hidden_by_type"] is True and result["shown_at_critical"] is True
    assert result["hidden_by_stance"] is True
    assert screenshot.stat().st_size > 10_000, "a screenshot of the page is kept"
