"""The Feast repo as users drive it: `feast apply` + `materialize-incremental`, then both reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import redis

from rtml.features import OnlineReader, load_store, service_feature_names
from rtml.settings import Settings
from training.train_fraud import training_frame

SERVICE = "fraud_model_v1"


@pytest.fixture(scope="module")
def tx(stack: Settings) -> pd.DataFrame:
    return pd.read_parquet(stack.raw_dir / "transactions.parquet")


def test_feature_service_order_is_declared_order_not_sorted(stack: Settings):
    names = service_feature_names(load_store(stack), SERVICE)
    assert names[:2] == ["cust_tx_count_1d", "cust_mean_amount_1d"]
    assert names[-2:] == ["tx_amount", "amount_vs_cust_mean_30d"]
    assert names != sorted(names)


def test_materialized_values_are_the_latest_nightly_snapshot(stack: Settings):
    stats = pd.read_parquet(stack.features_dir / "customer_stats.parquet")
    latest = stats.sort_values("event_timestamp").groupby("customer_id").tail(1)
    store = load_store(stack)
    ids = latest["customer_id"].head(25).tolist()
    online = store.get_online_features(
        features=["customer_stats:cust_tx_count_7d", "customer_stats:cust_mean_amount_30d"],
        entity_rows=[{"customer_id": i} for i in ids],
    ).to_df()
    expected = latest.set_index("customer_id").loc[ids]
    np.testing.assert_array_equal(online["cust_tx_count_7d"], expected["cust_tx_count_7d"])
    np.testing.assert_allclose(online["cust_mean_amount_30d"], expected["cust_mean_amount_30d"])


def test_one_round_trip_reader_equals_feast_online_read(stack: Settings, tx: pd.DataFrame):
    store = load_store(stack)
    defaults = {n: 0.0 for n in service_feature_names(store, SERVICE)}
    reader = OnlineReader(store=store, service_name=SERVICE, defaults=defaults)
    sample = tx.sample(30, random_state=3)
    rows = [{"customer_id": int(r.customer_id), "terminal_id": int(r.terminal_id),
             "amount": float(r.amount)} for r in sample.itertuples()]
    rows.append({"customer_id": 10**9, "terminal_id": int(sample.terminal_id.iloc[0]),
                 "amount": 12.5})  # a customer the store has never seen
    ours = reader.read_sync(redis.Redis(host=stack.redis_host, port=stack.redis_port), rows)
    feast = store.get_online_features(features=store.get_feature_service(SERVICE),
                                      entity_rows=rows).to_df()
    for i, got in enumerate(ours[:-1]):
        assert got.missing_views == []
        for name in reader.feature_names:
            assert got.values[name] == pytest.approx(float(feast[name].iloc[i])), name
    unknown = ours[-1]
    assert unknown.missing_views == ["customer_stats"]
    assert unknown.values["cust_tx_count_30d"] == 0.0
    assert feast["cust_tx_count_30d"].isna().iloc[-1]  # Feast says null; we serve the default


def test_training_set_is_point_in_time_correct(stack: Settings, tx: pd.DataFrame):
    """Every feature value comes from transactions strictly before the row's nightly snapshot."""
    frame = training_frame(stack, SERVICE, first_day=35)
    assert len(frame) == (tx["day"] >= 35).sum()
    rows = frame.sample(60, random_state=1)
    for r in rows.itertuples():
        snapshot = r.event_timestamp.floor("D")
        mine = tx[(tx.customer_id == r.customer_id) & (tx.event_timestamp < snapshot)]
        last7 = mine[mine.event_timestamp >= snapshot - pd.Timedelta(days=7)]
        assert r.cust_tx_count_7d == len(last7)
        assert r.cust_mean_amount_7d == pytest.approx(last7.amount.mean() if len(last7) else 0.0)
        # The transaction itself and anything after it never reach its own row.
        later = tx[(tx.customer_id == r.customer_id) & (tx.event_timestamp >= snapshot)
                   & (tx.event_timestamp < snapshot + pd.Timedelta(days=1))]
        assert r.cust_tx_count_1d + len(later) == len(
            tx[(tx.customer_id == r.customer_id)
               & (tx.event_timestamp >= snapshot - pd.Timedelta(days=1))
               & (tx.event_timestamp < snapshot + pd.Timedelta(days=1))])
        # Terminal fraud rates only see labels at least 7 days old.
        term = tx[(tx.terminal_id == r.terminal_id)
                  & (tx.event_timestamp < snapshot - pd.Timedelta(days=7))
                  & (tx.event_timestamp >= snapshot - pd.Timedelta(days=14))]
        assert r.term_fraud_rate_7d == pytest.approx(term.is_fraud.mean() if len(term) else 0.0)
        assert r.amount_vs_cust_mean_30d == pytest.approx(
            r.amount / r.cust_mean_amount_30d if r.cust_mean_amount_30d > 0 else 0.0)
