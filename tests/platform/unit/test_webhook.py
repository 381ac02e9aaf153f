"""The alert webhook against a real local HTTP server.

Bodies arrive as sent, a hung or dead webhook never blocks the sender, and a failure is counted
and logged, not raised.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from rtml.webhook import Webhook
from tests.support.procs import free_port
from tests.support.webhook_server import WebhookServer as _Server


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.gate.set()
    s.httpd.shutdown()


def test_records_arrive_in_order_with_nan_as_null(server: _Server) -> None:
    hook = Webhook(server.url)
    records = [{"alert_id": f"a{i}", "score": float(i), "drivers": {"z": 1.5}} for i in range(5)]
    records.append({"alert_id": "nan", "score": math.nan, "drivers": {"z": math.inf}})
    for r in records:
        assert hook.send(r)
    server.wait_for(len(records))
    hook.close()
    assert server.bodies[:5] == records[:5]
    assert server.bodies[5] == {"alert_id": "nan", "score": None, "drivers": {"z": None}}
    assert (hook.sent, hook.failed, hook.dropped) == (6, 0, 0)


def test_a_hung_webhook_never_blocks_send(server: _Server) -> None:
    server.gate.clear()  # the server takes each body and does not answer
    hook = Webhook(server.url, timeout_s=10, queue_max=3)
    assert hook.send({"n": 0})
    server.wait_for(1)  # the sender thread is now stuck in the first POST
    # While it is stuck, send returns at once: three fill the queue, the rest are dropped.
    results = [hook.send({"n": i}) for i in range(1, 8)]
    assert results == [True] * 3 + [False] * 4
    assert hook.dropped == 4 and hook.sent == 0
    server.gate.set()
    server.wait_for(3)
    hook.close()
    assert [b["n"] for b in server.bodies] == [0, 1, 2, 3]
    assert hook.sent == 4


def test_a_refused_or_failing_webhook_is_counted_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    dead = Webhook(f"http://127.0.0.1:{free_port()}/nobody", timeout_s=2)
    dead.send({"n": 1})
    dead.close()
    assert (dead.sent, dead.failed) == (0, 1)
    assert "nobody" in caplog.text and "failed" in caplog.text

    failing = _Server(status=500)
    try:
        hook = Webhook(failing.url)
        hook.send({"n": 2})
        hook.close()
        assert (hook.sent, hook.failed) == (0, 1)
        assert failing.bodies == [{"n": 2}]
    finally:
        failing.httpd.shutdown()
