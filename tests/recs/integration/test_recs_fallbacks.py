"""Fallbacks for real: the service reads Redis through a TCP proxy that is made slow or cut.

A slow Redis runs the request past its budget; a cut one fails the reads (then opens the
breaker). Either way the answer is the fallback list, popular items in stock, `public`, with a
reason naming what happened, and the service stays ready.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rtml.cli.scenarios import RECS
from rtml.settings import Settings
from tests.recs.integration.conftest import Shop
from tests.support.procs import bentoml_serve
from tests.support.redis_proxy import RedisProxy

BUDGET_MS = 300
FEATURE_TIMEOUT_MS = 2000


@pytest.fixture(scope="module")
def proxy(recs_stack: Settings) -> Iterator[RedisProxy]:
    p = RedisProxy((recs_stack.redis_host, recs_stack.redis_port))
    yield p
    p.close()


@pytest.fixture(scope="module")
def client(recs_flow: Shop, proxy: RedisProxy, recs_env: dict[str, str]) -> Iterator[httpx.Client]:
    with bentoml_serve({**recs_env, "RTML_REDIS_ADDRESS": f"127.0.0.1:{proxy.port}",
                        "RTML_REDIS_TIMEOUT_S": "10",
                        "RTML_RECS__REQUEST_BUDGET_MS": str(BUDGET_MS),
                        "RTML_RECS__FEATURE_TIMEOUT_MS": str(FEATURE_TIMEOUT_MS),
                        "RTML_RECS__PREDICTION_STREAM": "rtml:predictions:recs_fallbacks"},
                       service=RECS.service) as url, \
            httpx.Client(base_url=url, timeout=30) as c:
        yield c


def _get(client: httpx.Client, user: int, k: int = 10) -> tuple[dict, httpx.Response]:
    r = client.get("/recommendations", params={"user_id": user, "k": k})
    assert r.status_code == 200, r.text
    return r.json(), r


def _is_fallback(body: dict, r: httpx.Response, prefix: str, shop: Shop, k: int) -> None:
    assert body["fallback"] is True and body["cold_start"] is False, body
    assert body["fallback_reason"].startswith(prefix), body["fallback_reason"]
    items = [i["item_id"] for i in body["items"]]
    assert len(items) == k and len(set(items)) == k
    assert {i["source"] for i in body["items"]} == {"popular"}
    assert r.headers["cache-control"] == "public, max-age=30"
    stock = shop.stock(items)  # read straight from the tests' Valkey, not through the proxy
    assert all(stock[i] > 0 for i in items), stock


def test_past_the_budget_the_answer_is_the_in_stock_popular_list(client, proxy, recs_flow):
    body, _ = _get(client, 21)
    assert body["fallback"] is False, body["fallback_reason"]  # the lists are read now
    proxy.delay_s = 1.0
    try:
        body, r = _get(client, 22)
    finally:
        proxy.heal()
    _is_fallback(body, r, "budget: cache ran past the 300 ms request budget", recs_flow, 10)
    assert client.get("/readyz").status_code == 200


def test_with_redis_gone_the_reads_fail_then_the_breaker_opens(client, proxy, recs_flow):
    body, _ = _get(client, 23)
    assert body["fallback"] is False, body["fallback_reason"]
    proxy.cut()
    try:
        reasons = []
        for user in (24, 25, 26, 27):
            body, r = _get(client, user, k=5)
            _is_fallback(body, r, "feature_store_unavailable: ", recs_flow, 5)
            reasons.append(body["fallback_reason"])
    finally:
        proxy.heal()
    assert "circuit open" not in reasons[0]
    assert any("circuit open" in reason for reason in reasons[1:]), reasons
    assert client.get("/readyz").status_code == 200
