"""Fallbacks for real: a slow Redis, a broken Redis (the circuit breaker), a model over budget.

The feature store is made slow or broken by a TCP proxy between `bentoml serve` and the tests'
Valkey (`redis_proxy.RedisProxy`), not by a stand-in for the reader: the service's own Redis
client meets the delay or the closed socket. The model runs over its budget because the budget
(`RTML_FRAUD__MODEL_TIMEOUT_MS`) is smaller than any trip through the batcher.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from rtml.features.online import load_store
from rtml.settings import Settings
from tests.support.independent import expected_answer, saved_model
from tests.support.procs import bentoml_serve
from tests.support.redis_proxy import RedisProxy

# Generous, so that a normal read never misses it on a loaded machine; the client's socket
# timeout is set past the reply delay, so that the budget, not the socket, runs out first.
FEATURE_TIMEOUT_MS = 1000
REPLY_DELAY_S = 3.0
SOCKET_TIMEOUT_S = 10
# rtml.serving.core.Breaker: three errors in a row open it; one request per this long probes.
# A second here (100 ms by default), so "the next request finds it open" holds on a slow machine.
BREAKER_OPEN_S = 1.0


@pytest.fixture(scope="module")
def proxy(stack: Settings) -> Iterator[RedisProxy]:
    p = RedisProxy((stack.redis_host, stack.redis_port))
    yield p
    p.close()


@pytest.fixture(scope="module")
def proxied(proxy: RedisProxy, env: dict[str, str]) -> Iterator[httpx.Client]:
    """The fraud service reading its features through the proxy."""
    with bentoml_serve({**env, "RTML_REDIS_ADDRESS": f"127.0.0.1:{proxy.port}",
                        "RTML_FRAUD__FEATURE_TIMEOUT_MS": str(FEATURE_TIMEOUT_MS),
                        "RTML_REDIS_TIMEOUT_S": str(SOCKET_TIMEOUT_S),
                        "RTML_FRAUD__BREAKER_PROBE_MS": str(int(BREAKER_OPEN_S * 1000)),
                        "RTML_FRAUD__PREDICTION_STREAM": "rtml:predictions:resilience"}) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def payments(stack: Settings) -> list[dict]:
    """Real payments of five different customers of the last day."""
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()].drop_duplicates("customer_id").sample(
        5, random_state=4)
    return [{"transaction_id": f"res-{r.transaction_id}", "customer_id": int(r.customer_id),
             "terminal_id": int(r.terminal_id), "amount": float(r.amount),
             "timestamp": "2026-11-28T12:00:00Z"} for r in last.itertuples()]


def _score(client: httpx.Client, tx: dict) -> dict:
    resp = client.post("/score", json=tx)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _fallback(body: dict, reason_prefix: str) -> None:
    assert body["decision"] == "approve" and body["fallback"] is True, body
    assert body["score"] is None and body["reasons"] == []
    assert body["fallback_reason"].startswith(reason_prefix), body["fallback_reason"]


def _normal(client: httpx.Client, proxy: RedisProxy, tx: dict) -> dict:
    """A request that reads Redis (one more HMGET through the proxy) and is scored."""
    before = proxy.hmgets
    body = _score(client, tx)
    assert body["fallback"] is False, body["fallback_reason"]
    assert proxy.hmgets > before
    return body


def test_a_slow_feature_read_answers_fallback_with_the_timeout_reason(
        proxied, proxy: RedisProxy, payments, stack: Settings, env):
    _normal(proxied, proxy, payments[0])
    proxy.delay_s = REPLY_DELAY_S
    before = proxy.hmgets
    body = _score(proxied, payments[0])
    _fallback(body, "feature_timeout: ")
    assert body["fallback_reason"] == f"feature_timeout: over {FEATURE_TIMEOUT_MS} ms"
    assert proxy.hmgets > before  # the read was sent; its answer came too late
    proxy.heal()
    # The next read, of another customer, is answered with its own features, not with the late
    # reply to the abandoned read: the score equals the booster's over Feast's values.
    time.sleep(REPLY_DELAY_S)  # the late reply reaches the abandoned connection meanwhile
    body = _normal(proxied, proxy, payments[1])
    want = expected_answer(load_store(stack), saved_model(env["BENTOML_HOME"]), payments[1])
    assert body["score"] == pytest.approx(want.score, abs=2e-5)


def test_three_feature_store_errors_open_the_breaker_for_a_second_then_it_closes(
        proxied, proxy: RedisProxy, payments):
    _normal(proxied, proxy, payments[2])  # a success resets the error count
    for attempt in range(3):  # again if this machine stalled a whole second between requests
        proxy.cut()
        for i in range(3):
            body = _score(proxied, {**payments[i], "transaction_id": f"cut-{attempt}-{i}"})
            _fallback(body, "feature_store_unavailable: ")
            assert "circuit open" not in body["fallback_reason"]
        opened_at = time.monotonic()
        proxy.heal()  # Redis is back, but the open breaker does not try it
        before = proxy.hmgets
        body = _score(proxied, payments[3])
        answered_within = time.monotonic() - opened_at
        if body["fallback"]:
            break
        # Only possible when the fourth request came after the breaker had closed again.
        assert answered_within >= BREAKER_OPEN_S, body
    else:
        pytest.fail("three requests in a row never found the breaker open")
    _fallback(body, "feature_store_unavailable: circuit open after repeated errors")
    assert proxy.hmgets == before  # answered without trying Redis
    time.sleep(BREAKER_OPEN_S)
    _normal(proxied, proxy, payments[3])  # closed: Redis is tried again and answers


@pytest.fixture(scope="module")
def model_over_budget(stack: Settings, env: dict[str, str]) -> Iterator[httpx.Client]:
    """A budget of one microsecond: no call through the adaptive batcher can make it."""
    with bentoml_serve({**env, "RTML_FRAUD__MODEL_TIMEOUT_MS": "0.001"}) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_a_model_call_over_its_budget_answers_fallback_with_the_reason(model_over_budget,
                                                                       payments):
    for tx in payments[:3]:
        body = _score(model_over_budget, tx)
        _fallback(body, "model_timeout: over 0.001 ms")
        assert body["model_version"].startswith("fraud_model:")
        assert body["defaults_used"] == []
    assert model_over_budget.get("/readyz").status_code == 200  # the service stays up
