"""The live alert page (GET /) in headless Chromium: items posted after the page opened show up as alert
cards with their event time in the reader's locale, their place, one evidence line that is not the title,
each category's stance and the source link; the cards are sorted by severity then time (or by time), and
the page's filters (type, severity, stance, place) hide and show them. A screenshot is kept as
tests/artifacts/live_page.png (the test prints the path). Drives Chromium over the DevTools protocol
(aiohttp websocket)."""

from __future__ import annotations

import asyncio
import base64
import re
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


def post_items(base_url: str, items: list[dict]) -> dict:
    request = urllib.request.Request(f"{base_url}/news", data=orjson.dumps(items), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return orjson.loads(response.read())


CARDS = "[...document.querySelectorAll('article.alert')]"
ORDER = f"{CARDS}.filter(c => !c.hidden).map(c => [Number(c.dataset.rank), Number(c.dataset.time)])"
"""(severity rank, event time in ms) of the shown cards, top to bottom."""


def card_of(title: str) -> str:
    return f"{CARDS}.find(c => c.innerText.includes({orjson.dumps(title).decode()}))"


async def choose(cdp: DevTools, select: str, value: str) -> None:
    await cdp.js(f"(() => {{ const s = document.getElementById({select!r}); s.value = {value!r};"
                 " s.dispatchEvent(new Event('change')); })()")


async def drive(base_url: str, port: int, items: dict[str, dict], screenshot: Path) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = DevTools(ws)
            await cdp.call("Page.enable")
            # a German reader in Berlin: times in their locale and zone, whatever the machine's
            await cdp.call("Emulation.setLocaleOverride", locale="de-DE")
            await cdp.call("Emulation.setTimezoneOverride", timezoneId="Europe/Berlin")
            await cdp.call("Page.navigate", url=f"{base_url}/")
            await cdp.wait_for("document.readyState === 'complete' && "
                               "document.getElementById('status').className === 'live'", 20, "the event stream")
            title = await cdp.js("document.title")
            loop = asyncio.get_running_loop()
            accepted = await loop.run_in_executor(None, post_items, base_url, list(items.values()))
            cards = {name: card_of(item["title"]) for name, item in items.items()}
            await cdp.wait_for(" && ".join(f"!!{c}" for c in cards.values()), 45, "the alert cards of the posted items")
            details = {name: await cdp.js(f"""(() => {{ const c = {card};
                return {{text: c.innerText, type: c.dataset.type, severity: c.dataset.severity, hidden: c.hidden,
                         fresh: c.dataset.arrived === 'live', time: c.querySelector('time').innerText,
                         datetime: c.querySelector('time').dateTime,
                         place: (c.querySelector('.place') || {{}}).innerText,
                         evidence: [...c.querySelectorAll('blockquote')].map(b => b.innerText),
                         chips: [...c.querySelectorAll('.chips .category')].map(s => [s.innerText, s.title]),
                         link: (c.querySelector('.source a') || {{}}).href }}; }})()""")
                       for name, card in cards.items()}
            index = "(() => {{ const shown = {CARDS}.filter(c => !c.hidden); return [{a}, {b}]" \
                    ".map(c => shown.indexOf(c)); }})()".format(CARDS=CARDS, a=cards["critical"], b=cards["newer"])
            result = {"title": title, "accepted": accepted, "cards": details,
                      "body": await cdp.js("document.body.innerText"),
                      "order_by_severity": await cdp.js(ORDER), "index_by_severity": await cdp.js(index),
                      "places": await cdp.js("[...document.querySelectorAll('#place option')].map(o => o.value)")}
            await choose(cdp, "sort", "time")
            result["order_by_time"], result["index_by_time"] = await cdp.js(ORDER), await cdp.js(index)
            await choose(cdp, "sort", "severity")
            result["index_back"] = await cdp.js(index)
            hidden = "({" + ", ".join(f"{name}: {card}.hidden" for name, card in cards.items()) + "})"
            # filters: type, severity, stance (the item's or a category's), place
            await cdp.js("(() => { const b = document.querySelector('#types input[value=escalation]');"
                         " b.checked = false; b.dispatchEvent(new Event('change')); })()")
            result["hidden_without_escalation"] = await cdp.js(hidden)
            await cdp.js("(() => { const b = document.querySelector('#types input[value=escalation]');"
                         " b.checked = true; b.dispatchEvent(new Event('change')); })()")
            await choose(cdp, "severity", "critical")
            result["hidden_below_critical"] = await cdp.js(hidden)
            await choose(cdp, "severity", "low")
            await choose(cdp, "stance", "rejected")
            result["hidden_not_rejected"] = await cdp.js(hidden)
            await choose(cdp, "stance", "threatened")
            result["hidden_not_threatened"] = await cdp.js(hidden)
            await choose(cdp, "stance", "")
            await choose(cdp, "place", "Odesa")
            result["hidden_not_odesa"] = await cdp.js(hidden)
            result["odesa"] = await cdp.js(f"""({{count: document.getElementById('count').innerText,
                places: {CARDS}.filter(c => !c.hidden).map(c => c.querySelector('.place').innerText)}})""")
            await choose(cdp, "place", "")
            result["hidden_at_end"] = await cdp.js(hidden)
            await asyncio.sleep(2.2)  # let the arrival highlight fade before the screenshot
            shot = await cdp.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return result


def non_increasing(rows: list) -> bool:
    return all(a >= b for a, b in zip(rows, rows[1:], strict=False))


def same_text(text: str) -> str:
    return " ".join(text.strip("“”").split()).casefold().rstrip(".!?…")


def test_alerts_appear_live_on_the_page_with_where_and_when_sorted_and_filtered(worker, tmp_path):
    binary = chromium_binary()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "live_page.png"
    screenshot.unlink(missing_ok=True)
    run = uuid.uuid4().hex[:8]
    items = {
        "critical": {"title": f"Barrage on Kyiv as Kremlin threatens nuclear response ({run})", "text": ITEM_TEXT,
                     "url": f"https://example.org/live/{run}", "source": "The Kyiv Independent",
                     "published_at": "2026-11-24T09:05:00Z"},
        "newer": {"title": f"Drone hits a warehouse in Odesa ({run})",
                  "text": "A Russian drone hit a warehouse in the port city of Odesa on Tuesday morning. "
                          "Firefighters put out the blaze.",
                  "url": f"https://example.org/odesa/{run}", "source": "Ukrinform",
                  "published_at": "2026-11-24T14:40:00+02:00"},
        "rejected": {"title": f"Kremlin rejects ceasefire talks offered by Turkey ({run})",
                     "text": "Moscow said it would not join peace talks in Istanbul. Turkey had offered to host "
                             "the meeting."},
    }
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = devtools_port(profile, proc)
        result = asyncio.run(asyncio.wait_for(drive(worker.base_url, port, items, screenshot), 120))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"live page screenshot: {screenshot}")
    cards = result["cards"]
    card, newer, rejected = cards["critical"], cards["newer"], cards["rejected"]
    assert result["title"].startswith("signalwatch")
    assert card["type"] == "escalation" and card["severity"] == "critical" and not card["hidden"]
    assert (newer["type"], newer["severity"]) == ("escalation", "high"), newer
    assert (rejected["type"], rejected["severity"]) == ("negotiation", "medium"), rejected
    assert card["fresh"], "the card arrived live (after the page loaded), not in the initial backlog"
    assert card["link"] == items["critical"]["url"] and "The Kyiv Independent" in card["text"]
    # the camp line: who reports the story (the source registry knows the outlet)
    assert "reported by Ukrainian media only (The Kyiv Independent) · 1 origin, 1 camp, 1 copy" in card["text"], card
    # when: the item's published_at, in the reader's locale and zone (Berlin: UTC+1 in November)
    assert card["datetime"] == "2026-11-24T09:05:00.000Z" and card["time"] == "24.11.2026, 10:05", card
    assert newer["datetime"] == "2026-11-24T12:40:00.000Z" and newer["time"] == "24.11.2026, 13:40", newer
    assert rejected["time"].endswith("(alert time)"), "without published_at the alert's time is shown, and said"
    assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b", result["body"]), "no US-format dates on the page"
    # where
    assert (card["place"], newer["place"]) == ("Kyiv", "Odesa") and "Istanbul" in rejected["place"]
    assert {"Kyiv", "Odesa", "Istanbul"} <= set(result["places"]) and result["places"][0] == ""
    # one evidence line, never the title
    for name, shown in cards.items():
        assert len(shown["evidence"]) == 1 and same_text(shown["evidence"][0]) != same_text(items[name]["title"])
        assert same_text(shown["evidence"][0]) in same_text(items[name]["text"]), shown
    # each category with its stance, the sentence on hover
    assert ["nuclear_threat · threatened", items["critical"]["title"]] in card["chips"], card["chips"]
    assert ["ceasefire · rejected", items["rejected"]["title"]] in rejected["chips"], rejected["chips"]
    # order: severity, then event time, by default; event time alone on request; back again
    assert non_increasing(result["order_by_severity"]), result["order_by_severity"]
    assert non_increasing([t for _, t in result["order_by_time"]]), result["order_by_time"]
    critical_at, newer_at = result["index_by_severity"]
    assert 0 <= critical_at < newer_at, "the critical alert is above the newer, less severe one"
    critical_at, newer_at = result["index_by_time"]
    assert 0 <= newer_at < critical_at, "sorted by time, the newer alert is above"
    assert result["index_back"] == result["index_by_severity"]
    # filters
    assert result["hidden_without_escalation"] == {"critical": True, "newer": True, "rejected": False}
    assert result["hidden_below_critical"] == {"critical": False, "newer": True, "rejected": True}
    assert result["hidden_not_rejected"] == {"critical": True, "newer": True, "rejected": False}
    assert result["hidden_not_threatened"] == {"critical": False, "newer": True, "rejected": True}
    assert result["hidden_not_odesa"] == {"critical": True, "newer": False, "rejected": True}
    odesa = result["odesa"]
    assert odesa["places"] and all("Odesa" in p.split(", ") for p in odesa["places"]), odesa
    assert odesa["count"] == f"{len(odesa['places'])} alert" + ("s" if len(odesa["places"]) > 1 else ""), odesa
    assert result["hidden_at_end"] == {"critical": False, "newer": False, "rejected": False}
    assert screenshot.stat().st_size > 10_000, "a screenshot of the page is kept"
