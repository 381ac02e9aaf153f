"""The recommendation service for real: `bentoml serve`, the flow, Feast's Redis layout, HTTP.

One service (L1 cache on, L2 entries precomputed for the most active users) over the stack of
`conftest.py`. A click sent to the stream changes the next answer; stock drained by orders while
requests run never leaks into an answer; GET answers revalidate to 304; bad input is a 400 that
names the field; an unknown user gets the cold-start list; every answer is logged.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from pipelines.recs.keys import l2_key
from rtml.cli.scenarios import RECS
from rtml.redis import connect
from rtml.serving.asgi import parse_server_timing
from rtml.settings import Settings
from tests.recs.integration.conftest import Shop, online, wait_until
from tests.support.procs import bentoml_serve

PREDICTIONS = "rtml:predictions:recs_test"


@pytest.fixture(scope="module")
def client(recs_flow: Shop, recs_env: dict[str, str]) -> Iterator[httpx.Client]:
    with bentoml_serve({**recs_env, "RTML_RECS__CACHE": "true",
                        "RTML_RECS__PREDICTION_STREAM": PREDICTIONS,
                        # generous: a loaded CI machine must not turn these tests into fallbacks
                        "RTML_RECS__REQUEST_BUDGET_MS": "5000",
                        "RTML_RECS__FEATURE_TIMEOUT_MS": "2000"},
                       service=RECS.service) as url, \
            httpx.Client(base_url=url, timeout=30) as c:
        yield c


def _get(client: httpx.Client, user: int, k: int = 10, **headers: str) -> httpx.Response:
    r = client.get("/recommendations", params={"user_id": user, "k": k}, headers=headers)
    assert r.status_code in (200, 304), r.text
    return r


def _items(r: httpx.Response) -> list[int]:
    body = r.json()
    assert body["fallback"] is False, body["fallback_reason"]
    return [i["item_id"] for i in body["items"]]


def _precomputed_user(settings: Settings) -> int:
    """A user with an L2 entry, a nightly profile and (so far) no session."""
    c = connect(settings)
    keys = sorted(int(k.decode().rsplit(":", 1)[1]) for k in c.scan_iter(l2_key(0)[:-1] + "*"))
    assert keys, "the precompute job wrote no L2 entry"
    return keys[len(keys) // 2]


def test_bad_input_is_a_400_naming_the_field(client: httpx.Client):
    for params, field in (({"user_id": "abc"}, "query.user_id"),
                          ({"user_id": 1, "k": 0}, "query.k"),
                          ({"user_id": 1, "k": 101}, "query.k"),
                          ({"k": 5}, "query.user_id")):
        r = client.get("/recommendations", params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"].startswith(f"{field}:"), r.json()
    r = client.post("/recommendations", json={"user_id": 1, "session": {"items": [4, -2]}})
    assert r.status_code == 400 and r.json()["error"].startswith("body.session.items.1:")
    r = client.post("/recommendations", content=b"{not json", headers={
        "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("body:")


def test_get_is_private_with_an_etag_that_revalidates_to_304(client: httpx.Client, recs_stack):
    user = _precomputed_user(recs_stack)
    first = _get(client, user)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, max-age=30"
    tag = first.headers["etag"]
    timing = parse_server_timing(first.headers["server-timing"])
    assert {"cache", "candidates", "features", "model", "rerank", "total"} <= set(timing)
    assert timing["cache"]["desc"] == "l2"  # the precomputed entry was used
    again = _get(client, user, **{"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    assert parse_server_timing(again.headers["server-timing"])["cache"]["desc"] == "l1"
    other = _get(client, user, **{"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.headers["etag"] == tag
    body = first.json()
    assert len(body["items"]) == 10 and len(set(_items(first))) == 10
    assert {i["source"] for i in body["items"]} <= {"revisit", "covisit", "popular", "trending"}
    scores = [i["score"] for i in body["items"]]
    assert all(isinstance(s, float) for s in scores)
    post = client.post("/recommendations", json={"user_id": user, "k": 5})
    assert post.status_code == 200 and post.headers["cache-control"] == "no-store"


def test_an_unknown_user_gets_the_public_cold_start_list(client: httpx.Client, recs_stack):
    r = _get(client, 77_000_001, k=8)
    body = r.json()
    assert body["cold_start"] is True and body["fallback"] is False
    assert len(body["items"]) == 8
    assert {i["source"] for i in body["items"]} <= {"popular", "trending"}
    assert r.headers["cache-control"] == "public, max-age=30"
    # A session sent with the request makes it personal: no longer a cold start.
    post = client.post("/recommendations", json={
        "user_id": 77_000_001, "k": 8, "session": {"items": [body["items"][0]["item_id"]]}})
    assert post.json()["cold_start"] is False


def test_a_click_through_the_stream_changes_the_next_answer(client: httpx.Client, recs_flow,
                                                            recs_stack):
    user = _precomputed_user(recs_stack)
    before = _get(client, user)
    shown = _items(before)
    assert recs_flow.session_items(user) == []
    # An in-stock item with co-visit neighbours, not shown yet.
    cov = online(recs_stack, ["item_covisit:covisit_items"], "item_id", list(range(0, 400)))
    stock = recs_flow.stock(list(range(0, 400)))
    clicked = next(int(i) for i, n in cov["covisit_items"].items()
                   if n is not None and len(n) >= 5 and stock.get(int(i), 0) > 0
                   and int(i) not in shown)
    neighbours = {int(x) for x in cov.loc[clicked, "covisit_items"]}
    recs_flow.send({"user_id": user, "item_id": clicked, "type": "click", "session_id": 5})
    wait_until(lambda: recs_flow.session_items(user) == [clicked], "the click online")

    after = _get(client, user, **{"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200  # not a stale 304: the session changed the answer
    got = _items(after)
    assert got != shown
    assert set(got) & ({clicked} | neighbours), (clicked, neighbours, got)
    timing = parse_server_timing(after.headers["server-timing"])
    assert timing["cache"]["desc"] == "l2"  # the L2 entry, with the session merged in


def test_answers_stay_in_stock_while_orders_drain_it(client: httpx.Client, recs_flow,
                                                     recs_stack):
    users = list(range(5, 45))
    shown = sorted({i for u in users[:10] for i in _items(_get(client, u, k=20))})
    levels = recs_flow.stock(shown)
    targets = [i for i in shown if levels[i] > 0][:25]
    assert len(targets) >= 10
    stop = threading.Event()

    def drain() -> None:  # orders that take every target to zero, spread over ~2 s
        for j, item in enumerate(targets):
            if stop.is_set():
                return
            recs_flow.send({"user_id": 90_000 + j, "item_id": item, "type": "order",
                            "quantity": int(levels[item]) + 1, "session_id": 1})
            time.sleep(0.08)

    thread = threading.Thread(target=drain)
    thread.start()
    leaked, served_after_zero = [], 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            zero = {i for i, v in recs_flow.stock(targets).items() if v <= 0}
            for u in users[:10]:
                got = _items(_get(client, u, k=20))
                leaked += [(u, i) for i in got if i in zero]
                served_after_zero += bool(zero)
            if len(zero) == len(targets):
                break
    finally:
        stop.set()
        thread.join()
    assert leaked == []
    assert served_after_zero > 0
    wait_until(lambda: all(v <= 0 for v in recs_flow.stock(targets).values()), "every target out")
    for u in users[:10]:
        assert not set(_items(_get(client, u, k=20))) & set(targets)


def test_every_answer_is_logged_as_impressions(client: httpx.Client, recs_stack):
    c = connect(recs_stack)
    r = _get(client, 12, k=6)
    want = _items(r)

    def logged() -> list[dict]:
        rows = [{k.decode(): v.decode() for k, v in f.items()}
                for _, f in c.xrange(PREDICTIONS)]
        return [row for row in rows if row["user_id"] == "12" and row["k"] == "6"]

    wait_until(lambda: bool(logged()), "the impression entry")
    entry = logged()[-1]
    assert json.loads(entry["items"]) == want
    assert len(json.loads(entry["scores"])) == 6
    assert entry["fallback"] == "False" and entry["model_version"] == r.json()["model_version"]
    assert pd.Timestamp(entry["logged_at"]).tzinfo is not None
