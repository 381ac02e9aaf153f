"""`BodyLimit`, `Readiness` and `Admission` driven directly with hand-written ASGI plumbing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rtml.serving.asgi import NOT_READY, Admission, BodyLimit, Readiness

LIMIT = 100


class EchoApp:
    """Reads the whole body, answers 200 with it; records what it saw."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": body})


def _call(app, *, chunks: list[bytes], path: str = "/score", method: str = "POST",
          content_length: int | None = None, extra_headers: list[tuple[bytes, bytes]] = (),
          events: list[str] | None = None, stalls: bool = False,
          ) -> tuple[int, dict[bytes, bytes], bytes]:
    """Drive `app` with one request; `events` records each body chunk read and each send.

    `stalls`: the client announces more body after the last chunk and then sends nothing.
    """
    events = [] if events is None else events
    headers = [(b"host", b"test"), (b"content-type", b"application/json"), *extra_headers]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 1234), "server": ("test", 80),
    }
    messages = [
        {"type": "http.request", "body": c, "more_body": stalls or i < len(chunks) - 1}
        for i, c in enumerate(chunks or [b""])
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            events.append("read")
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that sends nothing more
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=5))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent  # exactly one response, never two
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], dict(starts[0]["headers"]), body


def _assert_413(status, headers, body) -> None:
    assert status == 413
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body)
    payload = json.loads(body)
    assert "body" in payload["error"]
    assert payload["detail"][0]["loc"] == ["body"]


def test_declared_length_over_limit_is_413_without_calling_the_app():
    inner = EchoApp()
    result = _call(BodyLimit(inner, max_bytes=LIMIT), chunks=[b"x" * (LIMIT + 1)],
                   content_length=LIMIT + 1)
    _assert_413(*result)
    assert inner.calls == 0


def test_chunked_body_over_limit_is_413():
    inner = EchoApp()
    chunks = [b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 40]  # 160 > 100, no Content-Length
    result = _call(BodyLimit(inner, max_bytes=LIMIT), chunks=chunks)
    _assert_413(*result)
    assert inner.bodies == []  # the app never got a truncated body to act on


def test_lying_content_length_is_judged_by_what_arrives():
    inner = EchoApp()
    result = _call(BodyLimit(inner, max_bytes=LIMIT), chunks=[b"z" * 60, b"z" * 60],
                   content_length=10)
    _assert_413(*result)


@pytest.mark.parametrize("size", [0, 1, LIMIT - 1, LIMIT])
def test_body_within_limit_reaches_the_app_unchanged(size):
    inner = EchoApp()
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    chunks = [payload[i:i + 30] for i in range(0, size, 30)] or [b""]
    status, _, body = _call(BodyLimit(inner, max_bytes=LIMIT), chunks=chunks,
                            content_length=size)
    assert status == 200
    assert inner.bodies == [payload]
    assert body == payload


# Regression: urllib sends a whole 5 MB body before reading, with `Connection: close`; the
# server answered 413 at once and closed with the body unread, and the client saw a reset.
def test_declared_length_over_limit_reads_the_whole_body_before_the_413():
    events: list[str] = []
    chunks = [b"x" * 64] * 5  # 320 bytes declared and sent, limit 100
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT), chunks=chunks, content_length=320,
                   events=events)
    _assert_413(*result)
    assert events == ["read"] * 5 + ["http.response.start", "http.response.body"]


def test_chunked_body_over_limit_reads_the_rest_before_the_413():
    events: list[str] = []
    chunks = [b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 40, b"e" * 40]  # over the limit at the 3rd
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT), chunks=chunks, events=events)
    _assert_413(*result)
    assert events == ["read"] * 5 + ["http.response.start", "http.response.body"]


def test_expect_100_continue_is_answered_without_reading_the_body():
    """Reading would make the server send `100 Continue` and invite the body it refuses."""
    events: list[str] = []
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT), chunks=[b"x" * 200],
                   content_length=200, extra_headers=[(b"expect", b"100-Continue")],
                   events=events)
    _assert_413(*result)
    assert "read" not in events


def test_a_body_past_the_drain_bound_is_answered_without_reading_it():
    events: list[str] = []
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT, drain_bytes=1000),
                   chunks=[b"x" * 1001], content_length=1001, events=events)
    _assert_413(*result)
    assert "read" not in events


def test_a_chunked_body_is_drained_only_up_to_the_bound():
    events: list[str] = []
    chunks = [b"x" * 100] * 30  # 3,000 bytes, drain bound 1,000: stop reading after 11 chunks
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT, drain_bytes=1000), chunks=chunks,
                   events=events)
    _assert_413(*result)
    assert events.count("read") == 11


def test_a_client_that_stops_sending_still_gets_the_413_after_the_drain_time():
    # Declares 500 bytes, sends 150, then nothing (`receive` waits an hour): answered at drain_s.
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT, drain_s=0.05),
                   chunks=[b"x" * 150], content_length=500, stalls=True)
    _assert_413(*result)
    result = _call(BodyLimit(EchoApp(), max_bytes=LIMIT, drain_s=0.05),
                   chunks=[b"x" * 60, b"x" * 60], stalls=True)  # chunked, over, then silent
    _assert_413(*result)


def test_non_http_scope_passes_through():
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    async def nothing():
        return {}

    async def ignore(message):
        return None

    asyncio.run(BodyLimit(inner, max_bytes=1)({"type": "lifespan"}, nothing, ignore))
    assert seen == ["lifespan"]


@pytest.fixture
def service_name():
    name = "unit-test-service"
    NOT_READY.pop(name, None)
    yield name
    NOT_READY.pop(name, None)


def test_readyz_with_reason_is_503_with_that_reason(service_name):
    NOT_READY[service_name] = "no model 'fraud_model:latest' in the store"
    inner = EchoApp()
    status, headers, body = _call(Readiness(inner, service=service_name), chunks=[b""],
                                  path="/readyz", method="GET")
    assert status == 503
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"ready": False,
                                "reason": "no model 'fraud_model:latest' in the store"}
    assert inner.calls == 0


def test_readyz_without_reason_passes_through(service_name):
    NOT_READY["some-other-service"] = "not me"
    try:
        inner = EchoApp()
        status, _, _ = _call(Readiness(inner, service=service_name), chunks=[b""],
                             path="/readyz", method="GET")
    finally:
        NOT_READY.pop("some-other-service", None)
    assert status == 200
    assert inner.calls == 1


def test_not_ready_does_not_block_other_paths(service_name):
    NOT_READY[service_name] = "warming up"
    inner = EchoApp()
    status, _, body = _call(Readiness(inner, service=service_name), chunks=[b"{}"],
                            path="/score")
    assert status == 200
    assert body == b"{}"


# Regression: BodyLimit once raised an Exception out of `receive`, which BentoML's catch-all
# turned into a 500.
class CatchAllApp(EchoApp):
    """Any `Exception` raised while reading the body becomes a 500 JSON response.

    That is what BentoML's `api_endpoint_wrapper` (`_bentoml_impl/server/app.py`) does.
    """

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"error": "unexpected"}'})


def test_chunked_body_over_limit_is_413_even_behind_a_catch_all_handler():
    result = _call(BodyLimit(CatchAllApp(), max_bytes=LIMIT), chunks=[b"a" * 60, b"b" * 60])
    _assert_413(*result)


class HeldApp:
    """Answers 200 only when the test releases it: requests stay in flight meanwhile."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope, receive, send) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _request(app, path: str = "/score") -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": "POST", "path": path, "headers": []}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_admission_sheds_past_the_limit_with_503_retry_after_and_a_reason():
    async def scenario():
        inner = HeldApp()
        app = Admission(inner, max_inflight=2, paths=("/score", "/score_batch"),
                        setting="RTML_FRAUD__MAX_INFLIGHT")
        held = [asyncio.create_task(_request(app)), asyncio.create_task(_request(app, "/score"))]
        await asyncio.sleep(0)
        assert app.inflight == 2
        shed = await asyncio.wait_for(_request(app, "/score_batch"), 1)  # answered at once
        # Health, readiness and metrics are never counted nor shed: they reach the app.
        probe = asyncio.create_task(_request(app, "/readyz"))
        await asyncio.sleep(0)
        entered_while_full = inner.entered
        inner.release.set()
        done = await asyncio.gather(*held, probe)
        after = await _request(app)
        return app, shed, entered_while_full, done, after

    app, (status, headers, body), entered_while_full, done, after = asyncio.run(scenario())
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/json"
    payload = json.loads(body)
    assert payload["reason"] == "max_inflight" and "RTML_FRAUD__MAX_INFLIGHT" in payload["error"]
    assert entered_while_full == 3  # two scoring requests + the readiness probe
    assert [d[0] for d in done] == [200, 200, 200]
    assert after[0] == 200  # capacity comes back when requests finish
    assert app.inflight == 0 and app.shed == 1


def test_admission_frees_its_slot_when_the_app_fails():
    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    app = Admission(failing, max_inflight=1, paths=("/score",))

    async def twice():
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await _request(app)

    asyncio.run(twice())
    assert app.inflight == 0 and app.shed == 0


def test_admission_limit_zero_means_no_limit():
    async def scenario():
        inner = HeldApp()
        app = Admission(inner, max_inflight=0, paths=("/score",))
        tasks = [asyncio.create_task(_request(app)) for _ in range(50)]
        await asyncio.sleep(0)
        inner.release.set()
        return await asyncio.gather(*tasks)

    assert {r[0] for r in asyncio.run(scenario())} == {200}
