"""The pure parts of the web port's guards: rate limiter, item count, origin and host checks, exposure."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from streams.settings import Settings, SettingsError
from streams.web import RateLimiter, check_exposure, count_items, cross_origin, is_loopback, split_body


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=1000, clock=clock)
    assert limiter.take("a", 1000) == 0
    assert limiter.take("a", 0) == pytest.approx(0.01), "one item's worth comes back after 1/rate s"
    assert limiter.take("a", 500) == pytest.approx(5.0), "nothing taken: 5 s until 500 are allowed"
    assert limiter.take("b", 1000) == 0, "clients are counted apart"
    clock.now = 5.0
    assert limiter.take("a", 500) == 0
    assert limiter.take("a", 1) > 0
    clock.now = 1000.0
    assert limiter.take("a", 1000) == 0 and limiter.take("a", 1) > 0, "the bucket holds at most the burst"


def test_rate_limiter_forgets_the_least_recent_clients():
    limiter = RateLimiter(rate=1, burst=10, clients=2, clock=Clock())
    for client in ("a", "b", "c"):
        assert limiter.take(client, 10) == 0
    assert limiter.take("a", 10) == 0, "a was forgotten (full bucket again)"
    assert limiter.take("c", 1) > 0


@pytest.mark.parametrize(("body", "items"), [
    (b'{"text": "a"}', 1),
    (b'{"text": "a"}\n{"text": "b"}\n', 2),
    (b'[{"text": "a"}, {"text": "b"}, 3]', 3),
    (b'{\n  "text": "pretty",\n  "title": "printed"\n}\n', 1),
    (b"  \n", 0),
    (b'{"text":"x"}\n' * 20_000, 20_000),
])
def test_count_items_bounds_what_split_body_gives(body, items):
    assert count_items(body) == items
    assert len(split_body(body)) <= count_items(body)


def request(headers: dict, host: str = "127.0.0.1:6066"):
    return make_mocked_request("POST", "/news", headers={"Host": host, **headers})


@pytest.mark.parametrize(("headers", "cross"), [
    ({}, False),  # curl, scripts: no Origin
    ({"Origin": "http://127.0.0.1:6066"}, False),
    ({"Origin": "http://evil.example"}, True),
    ({"Origin": "http://127.0.0.1:9999"}, True),
    ({"Origin": "null"}, True),
    ({"Sec-Fetch-Site": "cross-site"}, True),
    ({"Sec-Fetch-Site": "same-site"}, True),
    ({"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:6066"}, False),
])
def test_cross_origin(headers, cross):
    assert cross_origin(request(headers)) is cross


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("10.0.0.5", False), ("evil.example", False), ("", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_port_beyond_loopback_needs_a_token():
    check_exposure(Settings(web_host="127.0.0.1"))
    check_exposure(Settings(web_host="0.0.0.0", ingest_token="s3cret-token"))
    with pytest.raises(SettingsError, match="SIGNALWATCH_INGEST_TOKEN"):
        check_exposure(Settings(web_host="0.0.0.0"))


def test_limits_are_settings():
    settings = Settings.from_env({"SIGNALWATCH_MAX_REQUEST_ITEMS": "50", "SIGNALWATCH_INGEST_RATE": "2.5",
                                  "SIGNALWATCH_HTTP_TIMEOUT": "3", "SIGNALWATCH_INGEST_TOKEN": "t"})
    assert (settings.max_request_items, settings.ingest_rate, settings.http_timeout) == (50, 2.5, 3.0)
    assert "ingest_token" not in repr(settings), "the token is never logged"
    with pytest.raises(SettingsError, match="SIGNALWATCH_HTTP_TIMEOUT"):
        Settings(http_timeout=0)
