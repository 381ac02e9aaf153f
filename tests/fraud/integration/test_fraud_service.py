"""The fraud service over real HTTP from `bentoml serve`, reading real Redis features."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from bentos.fraud.service import EXAMPLE_INPUT
from rtml.features.online import load_store
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.serving.asgi import parse_server_timing
from rtml.serving.predlog import drain
from rtml.settings import Settings
from tests.support.independent import saved_model, score_and_check
from tests.support.procs import bentoml_serve


@pytest.fixture(scope="module")
def client(fraud_url: str):
    with httpx.Client(base_url=fraud_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def known(stack: Settings) -> dict:
    """A real transaction of a customer and terminal the online store knows."""
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    r = tx.iloc[-1]
    return {"transaction_id": "known-1", "customer_id": int(r.customer_id),
            "terminal_id": int(r.terminal_id), "amount": 40.0,
            "timestamp": "2026-11-28T12:00:00Z"}


def _timing(resp: httpx.Response) -> dict[str, float]:
    """Stage -> ms from `Server-Timing` (entries without `dur`, e.g. `cache;desc=hit`, skipped)."""
    return {name: float(params["dur"])
            for name, params in parse_server_timing(resp.headers["server-timing"]).items()
            if "dur" in params}


def test_score_answers_a_model_decision_from_online_features(client, known):
    resp = client.post("/score", json=known)
    assert resp.status_code == 200
    body = resp.json()
    assert body["transaction_id"] == "known-1"
    assert body["decision"] in {"approve", "review", "decline"}
    assert body["fallback"] is False and body["defaults_used"] == []
    assert 0.0 <= body["score"] <= 1.0
    assert body["model_version"].startswith("fraud_model:")
    timing = _timing(resp)
    assert {"features", "model", "total"} <= set(timing)
    assert timing["total"] >= timing["features"]


def test_a_huge_amount_scores_higher_with_the_amount_as_a_reason(client, known):
    small = client.post("/score", json=known).json()
    big = client.post("/score", json={**known, "transaction_id": "big", "amount": 5000.0}).json()
    assert big["score"] > small["score"]
    assert big["decision"] in {"review", "decline"}
    assert {r["feature"] for r in big["reasons"]} & {"tx_amount", "amount_vs_cust_mean_30d"}


def test_decisions_equal_the_saved_boosters_own_score(client, known, stack: Settings, env):
    """Score and decision for real payments against the model's score computed without the service.

    Genuine and fraudulent payments of the last day at their own amounts, plus `known` at a
    small and a huge amount: the expected answers span more than one decision.
    """
    model = saved_model(env["BENTOML_HOME"])
    store = load_store(stack)
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()]
    picked = pd.concat([last[last.is_fraud == 1].sample(8, random_state=5),
                        last[last.is_fraud == 0].sample(8, random_state=5)])
    txs = [known, {**known, "transaction_id": "known-big", "amount": 5000.0}] + [
        {"transaction_id": f"real-{r.transaction_id}", "customer_id": int(r.customer_id),
         "terminal_id": int(r.terminal_id), "amount": float(r.amount),
         "timestamp": "2026-11-28T12:00:00Z"} for r in picked.itertuples()]
    seen = set()
    for t in txs:
        body, want = score_and_check(client, store, model, t)
        assert body["defaults_used"] == [] and want.null_features == []
        seen.add(want.decision)
    assert len(seen) >= 2, seen  # the thresholds were exercised, not only "approve"


def test_unknown_customer_gets_default_features_and_says_so(client, known):
    resp = client.post("/score", json={**known, "customer_id": 10**12})
    body = resp.json()
    assert resp.status_code == 200 and body["fallback"] is False
    assert body["defaults_used"] == ["customer_stats"]


def test_score_batch_answers_each_transaction_in_order(client, known):
    rows = [{**known, "transaction_id": f"b{i}", "amount": 10.0 + i} for i in range(5)]
    resp = client.post("/score_batch", json={"transactions": rows})
    assert resp.status_code == 200
    assert [d["transaction_id"] for d in resp.json()] == [f"b{i}" for i in range(5)]
    single = client.post("/score", json=rows[3]).json()
    assert resp.json()[3]["score"] == pytest.approx(single["score"], abs=1e-6)


def test_a_batch_longer_than_the_batcher_takes_is_scored_not_refused(client, known):
    """More rows than `RTML_FRAUD__BATCH_MAX_SIZE` (64) in one request: all scored, in order."""
    rows = [{**known, "transaction_id": f"long{i}", "amount": 5.0 + i} for i in range(150)]
    resp = client.post("/score_batch", json={"transactions": rows})
    assert resp.status_code == 200
    body = resp.json()
    assert [d["transaction_id"] for d in body] == [r["transaction_id"] for r in rows]
    assert not any(d["fallback"] for d in body), {d["fallback_reason"] for d in body}
    single = client.post("/score", json=rows[100]).json()
    assert body[100]["score"] == pytest.approx(single["score"], abs=1e-6)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": "12"}, "customer_id"),
        ({"terminal_id": -1}, "terminal_id"),
        ({"amount": -5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 1e12}, "amount"),
        ({"amount": "12.50"}, "amount"),
        ({"timestamp": "2026-11-28T12:00:00"}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, change, field):
    resp = client.post("/score", json={**EXAMPLE_INPUT, **change})
    assert resp.status_code == 400, resp.text
    assert field in resp.text


def test_missing_field_and_nan_are_400s(client):
    body = {k: v for k, v in EXAMPLE_INPUT.items() if k != "amount"}
    resp = client.post("/score", json=body)
    assert resp.status_code == 400 and "amount" in resp.text
    raw = ('{"transaction_id": "n", "customer_id": 1, "terminal_id": 2, "amount": NaN, '
           '"timestamp": "2026-11-28T12:00:00Z"}')
    resp = client.post("/score", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "amount" in resp.text


def test_malformed_json_and_oversize_bodies_are_4xx(client, known):
    resp = client.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500
    huge = {**known, "padding": "x" * 2_000_000}
    resp = client.post("/score", json=huge)
    assert resp.status_code == 413 and "body" in resp.text
    rows = [{**known, "transaction_id": f"r{i}"} for i in range(1001)]
    resp = client.post("/score_batch", json={"transactions": rows})
    assert resp.status_code == 400 and "transactions" in resp.text
    # ...and the service is still answering.
    assert client.post("/score", json=known).status_code == 200


def _urllib_post(url: str, data: bytes | Iterator[bytes]) -> tuple[int, bytes]:
    """POST with Python's urllib: the whole body is sent before the answer is read."""
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_5mb_body_sent_whole_before_reading_gets_the_413(client, fraud_url, known):
    """Python's urllib gets the 413, not a connection reset.

    It sends no `Expect: 100-continue` and asks for `Connection: close`: the server used to answer
    early and close with the body unread, and the kernel's reset threw the answer away.
    """
    padding = "x" * 5_000_000
    body = json.dumps({**known, "padding": padding}).encode()
    for _ in range(3):  # every time, not by luck of timing
        status, answer = _urllib_post(f"{fraud_url}/score", body)
        assert status == 413, answer[:300]
        assert json.loads(answer)["detail"][0]["loc"] == ["body"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: judged by what arrives
        for lo in range(0, len(body), 65_536):
            yield body[lo:lo + 65_536]

    status, answer = _urllib_post(f"{fraud_url}/score", chunked())
    assert status == 413 and b"body" in answer
    status, answer = _urllib_post(f"{fraud_url}/score", json.dumps(known).encode())
    assert status == 200 and json.loads(answer)["transaction_id"] == known["transaction_id"]


def test_every_decision_reaches_the_log_and_the_parquet_drain(client, known, stack: Settings):
    ids = [f"log-{i}" for i in range(3)]
    for tid in ids:
        assert client.post("/score", json={**known, "transaction_id": tid}).status_code == 200
    time.sleep(0.5)  # the log flushes off the request path every 50 ms
    r = connect(stack)
    assert drain(r, stream=stack.prediction_stream, out_dir=stack.predictions_dir) >= 3
    logged = pd.read_parquet(stack.predictions_dir)
    rows = logged[logged["transaction_id"].isin(ids)]
    assert len(rows) == 3
    assert set(rows["decision"]) <= {"approve", "review", "decline"}
    assert rows["features"].str.contains("cust_tx_count_30d").all()
    assert (rows["total_ms"] > 0).all() and (~rows["fallback"]).all()
    assert r.xlen(stack.prediction_stream) == 0


def test_model_missing_service_starts_and_readyz_says_why(env, known, tmp_path):
    with bentoml_serve({**env, "BENTOML_HOME": str(tmp_path)}, want_ready=False) as url:
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and "rtml train fraud" in ready.json()["reason"]
        body = httpx.post(f"{url}/score", json=known).json()
        assert body["decision"] == "approve" and body["fallback"] is True
        assert body["fallback_reason"] == "model_unavailable"


def test_redis_down_means_fallback_decisions_not_errors(client, known, stack: Settings):
    """Runs last in this module: it stops the tests' own Valkey, then brings it back."""
    stop_embedded(stack)
    try:
        for i in range(5):
            resp = client.post("/score", json={**known, "transaction_id": f"down-{i}"})
            assert resp.status_code == 200
            body = resp.json()
            assert body["decision"] == "approve" and body["fallback"] is True
            assert body["fallback_reason"].startswith("feature_store_unavailable")
            assert "timeout" not in body["fallback_reason"]  # refused at once, not waited out
    finally:
        start_embedded(stack)
    time.sleep(1.2)  # the circuit breaker half-opens after 1 s
    body = client.post("/score", json=known).json()
    assert body["fallback"] is False
