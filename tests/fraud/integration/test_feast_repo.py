"""The Feast repo as users drive it: `feast apply` + `materialize-incremental`, then both reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo.fraud.request_features import ON_DEMAND
from rtml.features.online import OnlineReader, load_store, service_feature_names
from rtml.redis import connect
from rtml.settings import Settings
from training.fraud.train import training_frame

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


def _push_known_fresh(store, customers: list[int], terminals: list[int]) -> dict[int, dict]:
    """Streamed-view rows of known values (seeded) for entities nothing else writes.

    Stamped three hours ago: older than any freshness limit, so no freshness check sees them.
    Returns {customer_id: values}; terminals get `term_tx_count_1h` = index + 1.
    """
    rng = np.random.default_rng(11)
    at = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(hours=3)
    cust = pd.DataFrame({"customer_id": customers,
                         "cust_tx_count_10m": rng.integers(1, 5, len(customers)),
                         "cust_amount_sum_10m": rng.uniform(1, 500, len(customers)).round(2),
                         "cust_tx_count_1h": rng.integers(5, 20, len(customers)),
                         "cust_amount_sum_1h": rng.uniform(500, 900, len(customers)).round(2)})
    for w in ("10m", "1h"):
        cust[f"cust_mean_amount_{w}"] = cust[f"cust_amount_sum_{w}"] / cust[f"cust_tx_count_{w}"]
    term = pd.DataFrame({"terminal_id": terminals,
                         "term_tx_count_1h": range(1, len(terminals) + 1)})
    store.push("customer_fresh_push", cust.assign(event_timestamp=at))
    store.push("terminal_fresh_push", term.assign(event_timestamp=at))
    return {int(r["customer_id"]): r for r in cust.to_dict("records")}


@pytest.mark.parametrize("service", ["fraud_model_v1", "fraud_model_v2"])
def test_one_round_trip_reader_equals_feast_online_read(stack: Settings, tx: pd.DataFrame,
                                                        service: str):
    store = load_store(stack)
    defaults = {n: 0.0 for n in service_feature_names(store, service)}
    reader = OnlineReader(store=store, service_name=service, defaults=defaults,
                          on_demand=ON_DEMAND)
    sample = tx.sample(30, random_state=3)
    rows = [{"customer_id": int(r.customer_id), "terminal_id": int(r.terminal_id),
             "amount": float(r.amount)} for r in sample.itertuples()]
    pushed: dict[int, dict] = {}
    if service == "fraud_model_v2":
        # Streamed rows of known values for new customers and terminals, read beside the real
        # ones (whose streamed rows are the materialized backfill's): both views are read, not
        # only defaulted, and compared with what was written, not only with Feast.
        ids = [980_000 + i for i in range(5)]
        pushed = _push_known_fresh(store, ids, ids)
        rows = [{"customer_id": i, "terminal_id": i, "amount": 20.0 + i} for i in ids] + rows
    rows.append({"customer_id": 10**9, "terminal_id": int(sample.terminal_id.iloc[0]),
                 "amount": 12.5})  # a customer the store has never seen
    ours = reader.read_sync(connect(stack), rows)
    feast = store.get_online_features(features=store.get_feature_service(service),
                                      entity_rows=rows).to_df()
    for i, got in enumerate(ours[:-1]):
        for name in reader.feature_names:
            want = feast[name].iloc[i]
            if pd.isna(want):  # Feast: null where a view has no row; we serve the default
                assert any(name in _view_features(store, v) for v in got.missing_views), name
                assert got.values[name] == defaults[name], name
            else:
                assert got.values[name] == pytest.approx(float(want)), name
    for got in ours[len(pushed):-1]:  # the real customers and terminals
        assert set(got.missing_views) <= {"customer_fresh", "terminal_fresh"}
    for i, (cid, values) in enumerate(pushed.items()):  # what was pushed is what is read
        assert rows[i]["customer_id"] == cid
        assert ours[i].missing_views == ["customer_stats", "terminal_stats"]
        for name, value in values.items():
            if name != "customer_id":
                assert ours[i].values[name] == pytest.approx(float(value)), name
        assert ours[i].values["term_tx_count_1h"] == i + 1
    unknown = ours[-1]
    assert "customer_stats" in unknown.missing_views
    assert unknown.values["cust_tx_count_30d"] == 0.0
    assert feast["cust_tx_count_30d"].isna().iloc[-1]  # Feast says null; we serve the default


def _view_features(store, view: str) -> set[str]:
    return {f.name for f in store.get_feature_view(view).features}


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
