"""`fraud_model_v2` (nightly + streamed features) trained and served in the test stack.

It runs beside the v1 service, each from its own BentoML model store; a v2 answer is checked
against the booster's own score over Feast's online features of `fraud_model_v2`.
"""

from __future__ import annotations

import json

import httpx
import pandas as pd

from rtml.features.online import load_store
from rtml.settings import Settings
from tests.support.independent import expected_answer, saved_model, score_and_check

STREAMED = ("customer_fresh", "terminal_fresh")


def _views_of(store, features: list[str]) -> list[str]:
    """The views (in service order) that hold any of `features`."""
    service = store.get_feature_service("fraud_model_v2")
    return [p.name for p in service.feature_view_projections
            if any(f.name in features for f in p.features)]


def test_v2_is_trained_on_the_streamed_views_and_served_beside_v1(stack_v2: Settings, env_v2,
                                                                 env, fraud_url, fraud_v2_url,
                                                                 stack: Settings):
    v1, v2 = saved_model(env["BENTOML_HOME"]), saved_model(env_v2["BENTOML_HOME"])
    assert (v1.feature_service, v2.feature_service) == ("fraud_model_v1", "fraud_model_v2")
    assert {"cust_tx_count_10m", "cust_amount_sum_1h", "term_tx_count_1h"} <= set(v2.features)
    metrics = json.loads((stack_v2.artifacts_dir / "fraud" / "metrics.json").read_text())
    assert metrics["features"] == v2.features and metrics["bentoml_tag"] == v2.tag
    v1_metrics = json.loads((stack.artifacts_dir / "fraud" / "metrics.json").read_text())
    assert v1_metrics["feature_service"] == "fraud_model_v1"  # v1's artifacts left alone
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet").iloc[-1]
    req = {"transaction_id": "side-by-side", "customer_id": int(tx.customer_id),
           "terminal_id": int(tx.terminal_id), "amount": 40.0,
           "timestamp": "2026-11-28T12:00:00Z"}
    for url, model in ((fraud_url, v1), (fraud_v2_url, v2)):
        assert httpx.get(f"{url}/readyz").status_code == 200
        body = httpx.post(f"{url}/score", json=req).json()
        assert body["model_version"] == model.tag and body["fallback"] is False


def _push(store, customer_id: int, terminal_id: int) -> None:
    """Streamed rows of known, non-zero values for a new customer and terminal."""
    at = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=3)
    store.push("customer_fresh_push", pd.DataFrame({
        "customer_id": [customer_id], "cust_tx_count_10m": [2], "cust_amount_sum_10m": [310.0],
        "cust_mean_amount_10m": [155.0], "cust_tx_count_1h": [6], "cust_amount_sum_1h": [900.0],
        "cust_mean_amount_1h": [150.0], "event_timestamp": [at]}))
    store.push("terminal_fresh_push", pd.DataFrame({
        "terminal_id": [terminal_id], "term_tx_count_1h": [17], "event_timestamp": [at]}))


def test_v2_answers_equal_the_saved_boosters_own_score(stack_v2: Settings, env_v2,
                                                       fraud_v2_url, stack: Settings):
    """The v2 service reads every view of its FeatureService, in the model's order.

    Real payments (streamed values from the materialized backfill, or none) and a new card with
    streamed values only.
    """
    model = saved_model(env_v2["BENTOML_HOME"])
    store = load_store(stack)
    _push(store, 991_001, 991_001)
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    last = tx[tx["day"] == tx["day"].max()]
    picked = pd.concat([last[last.is_fraud == 1].sample(6, random_state=9),
                        last[last.is_fraud == 0].sample(6, random_state=9)])
    txs = [{"transaction_id": f"v2-{r.transaction_id}", "customer_id": int(r.customer_id),
            "terminal_id": int(r.terminal_id), "amount": float(r.amount),
            "timestamp": "2026-11-28T12:00:00Z"} for r in picked.itertuples()]
    txs.append({"transaction_id": "v2-new-card", "customer_id": 991_001, "terminal_id": 991_001,
                "amount": 420.0, "timestamp": "2026-11-28T12:00:00Z"})
    with httpx.Client(base_url=fraud_v2_url, timeout=10) as client:
        for t in txs:
            body, want = score_and_check(client, store, model, t)
            assert body["defaults_used"] == _views_of(store, want.null_features)
    new_card = expected_answer(store, model, txs[-1])
    assert new_card.vector["cust_tx_count_1h"] == 6 and new_card.vector["term_tx_count_1h"] == 17
    assert new_card.null_features and not set(_views_of(store, new_card.null_features)) & set(
        STREAMED)
