"""Nightly batch features: point-in-time windows checked against a brute-force reference."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.fraud import batch_features as bf
from pipelines.fraud import simulate as sim

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _tx(rows) -> pd.DataFrame:
    """Rows of (offset from T0, customer, terminal, amount, is_fraud)."""
    return pd.DataFrame(
        {
            "event_timestamp": pd.Series([T0 + pd.Timedelta(r[0]) for r in rows]),
            "customer_id": np.array([r[1] for r in rows], dtype=np.int64),
            "terminal_id": np.array([r[2] for r in rows], dtype=np.int64),
            "amount": np.array([r[3] for r in rows], dtype=np.float64),
            "is_fraud": np.array([r[4] for r in rows], dtype=np.int8),
        }
    )


def _ref_customer(tx, customer, snapshot, w):
    sel = tx[
        (tx.customer_id == customer)
        & (tx.event_timestamp >= snapshot - pd.Timedelta(days=w))
        & (tx.event_timestamp < snapshot)
    ]
    return len(sel), (sel.amount.mean() if len(sel) else 0.0)


def _ref_terminal(tx, terminal, snapshot, w, delay):
    hi = snapshot - pd.Timedelta(days=delay)
    sel = tx[
        (tx.terminal_id == terminal)
        & (tx.event_timestamp >= hi - pd.Timedelta(days=w))
        & (tx.event_timestamp < hi)
    ]
    return len(sel), (sel.is_fraud.mean() if len(sel) else 0.0)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    data = sim.simulate(customers=30, terminals=40, days=45, start=dt.date(2024, 1, 1), seed=11)
    return data.transactions


def _row(frame, id_col, entity, snapshot):
    hit = frame[(frame[id_col] == entity) & (frame.event_timestamp == snapshot)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_customer_features_match_brute_force(small):
    out = bf.customer_features(small, n_customers=30)
    stamps = pd.date_range("2024-01-02", periods=45, freq="D", tz="UTC")
    for customer in (0, 7, 29):
        for snapshot in stamps[[0, 1, 6, 7, 20, 31, 44]]:
            row = _row(out, "customer_id", customer, snapshot)
            for w in bf.WINDOWS_DAYS:
                count, mean = _ref_customer(small, customer, snapshot, w)
                assert row[f"cust_tx_count_{w}d"] == count
                assert row[f"cust_mean_amount_{w}d"] == pytest.approx(mean, rel=1e-9, abs=1e-9)


def test_terminal_features_match_brute_force(small):
    out = bf.terminal_features(small, n_terminals=40)
    stamps = pd.date_range("2024-01-02", periods=45, freq="D", tz="UTC")
    fraud_terminals = small.loc[small.is_fraud == 1, "terminal_id"].value_counts().index[:3]
    for terminal in [0, 39, *fraud_terminals]:
        for snapshot in stamps[[0, 7, 8, 14, 20, 37, 44]]:
            row = _row(out, "terminal_id", terminal, snapshot)
            for w in bf.WINDOWS_DAYS:
                count, rate = _ref_terminal(small, terminal, snapshot, w, bf.LABEL_DELAY_DAYS)
                assert row[f"term_tx_count_{w}d"] == count
                assert row[f"term_fraud_rate_{w}d"] == pytest.approx(rate, abs=1e-12)
    assert (out["term_fraud_rate_30d"] > 0).any()


def test_schema_and_dense_grid(small):
    cust = bf.customer_features(small, n_customers=35)  # ids 30..34 never transact
    term = bf.terminal_features(small, n_terminals=40)
    assert list(cust.columns) == [
        "customer_id",
        "event_timestamp",
        "created",
        "cust_tx_count_1d",
        "cust_mean_amount_1d",
        "cust_tx_count_7d",
        "cust_mean_amount_7d",
        "cust_tx_count_30d",
        "cust_mean_amount_30d",
    ]
    assert list(term.columns) == [
        "terminal_id",
        "event_timestamp",
        "created",
        "term_tx_count_1d",
        "term_fraud_rate_1d",
        "term_tx_count_7d",
        "term_fraud_rate_7d",
        "term_tx_count_30d",
        "term_fraud_rate_30d",
    ]
    for frame, id_col, n in ((cust, "customer_id", 35), (term, "terminal_id", 40)):
        assert len(frame) == n * 45
        assert not frame.duplicated([id_col, "event_timestamp"]).any()
        assert frame.groupby(id_col).size().eq(45).all()
        assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
        assert frame["created"].equals(frame["event_timestamp"])
        assert frame[id_col].dtype == "int64"
        assert frame["event_timestamp"].min() == pd.Timestamp("2024-01-02", tz="UTC")
        assert frame["event_timestamp"].max() == pd.Timestamp("2024-02-15", tz="UTC")
        for col in frame.columns[3:]:
            assert frame[col].dtype == ("int64" if "count" in col else "float64")
    idle = cust[cust.customer_id >= 30]
    assert (idle.iloc[:, 3:] == 0).all().all()
    # The last snapshot covers everything: its 30-day count equals the last 30 days of data.
    last = cust[cust.event_timestamp == cust.event_timestamp.max()]
    recent = small[small.event_timestamp >= pd.Timestamp("2024-01-16", tz="UTC")]
    assert last["cust_tx_count_30d"].sum() == len(recent)


def test_window_excludes_the_snapshot_instant_and_later():
    tx = _tx(
        [
            ("0h", 0, 0, 10.0, 0),
            ("1D 23:59:59", 0, 0, 20.0, 0),  # last second before the 3rd's snapshot
            ("2D", 0, 0, 1000.0, 0),  # exactly at the 3rd's snapshot: not in it
            ("2D 1h", 1, 0, 5.0, 0),
        ]
    )
    out = bf.customer_features(tx).set_index(["customer_id", "event_timestamp"])
    jan = {d: pd.Timestamp(f"2024-01-0{d}", tz="UTC") for d in range(2, 5)}
    assert out.index.get_level_values(1).unique().tolist() == [jan[2], jan[3], jan[4]]
    r = out.loc[(0, jan[3])]
    assert r.cust_tx_count_1d == 1 and r.cust_mean_amount_1d == 20.0
    assert r.cust_tx_count_7d == 2 and r.cust_mean_amount_7d == 15.0
    r = out.loc[(0, jan[4])]
    assert r.cust_tx_count_1d == 1 and r.cust_mean_amount_1d == 1000.0
    assert r.cust_tx_count_7d == 3
    # Customer 1 has nothing before its first transaction's next midnight.
    r = out.loc[(1, jan[3])]
    assert r.cust_tx_count_30d == 0 and r.cust_mean_amount_30d == 0.0
    assert out.loc[(1, jan[4])].cust_tx_count_1d == 1


def test_terminal_fraud_rate_ignores_the_label_delay():
    # Terminal 0: one fraud on day 0, one legit on day 1, a fraud every day from day 3 on.
    rows = [("0D 10h", 0, 0, 1.0, 1), ("1D 10h", 0, 0, 1.0, 0)]
    rows += [(f"{d}D 10h", 0, 0, 1.0, 1) for d in range(3, 12)]
    rows += [("11D 12h", 0, 1, 1.0, 0)]  # terminal 1, so the data spans 12 days
    out = bf.terminal_features(_tx(rows), delay_days=7).set_index(
        ["terminal_id", "event_timestamp"]
    )

    def at(day):
        return out.loc[(0, T0 + pd.Timedelta(days=day))]

    # Before day 0 + 7 + 1 nothing is known, although frauds have happened.
    for day in range(1, 8):
        assert at(day).term_tx_count_30d == 0 and at(day).term_fraud_rate_30d == 0.0
    assert at(8).term_tx_count_1d == 1 and at(8).term_fraud_rate_1d == 1.0
    assert at(9).term_tx_count_1d == 1 and at(9).term_fraud_rate_1d == 0.0
    assert at(9).term_tx_count_7d == 2 and at(9).term_fraud_rate_7d == 0.5
    # At day 12 the window [12 - 7 - 7, 12 - 7) = days 0..4: 4 tx, 3 frauds; days 5..11 unseen.
    assert at(12).term_tx_count_7d == 4 and at(12).term_fraud_rate_7d == 0.75
    assert at(12).term_tx_count_1d == 1 and at(12).term_fraud_rate_1d == 1.0
    idle = out.loc[1]
    assert (idle.iloc[:, 1:] == 0).all().all()  # its one tx is within the delay
    no_delay = bf.terminal_features(_tx(rows), delay_days=0).set_index(
        ["terminal_id", "event_timestamp"]
    )
    assert no_delay.loc[(0, T0 + pd.Timedelta(days=12))].term_tx_count_30d == 11


def test_entity_ids_out_of_range_are_rejected():
    tx = _tx([("1h", 5, 0, 1.0, 0)])
    with pytest.raises(ValueError):
        bf.customer_features(tx, n_customers=3)
    assert len(bf.customer_features(tx)) == 6  # max id + 1 entities, one day


def test_build_writes_parquet_for_every_simulated_entity(tmp_path):
    data = sim.simulate(customers=25, terminals=60, days=5, start=dt.date(2024, 1, 1), seed=2)
    raw = sim.write(data, tmp_path / "raw")
    paths = bf.build(raw["transactions"], tmp_path / "features")
    assert set(paths) == {"customer_stats", "terminal_stats"}
    cust = pd.read_parquet(paths["customer_stats"])
    term = pd.read_parquet(paths["terminal_stats"])
    assert len(cust) == 25 * 5 and len(term) == 60 * 5
    pd.testing.assert_frame_equal(cust, bf.customer_features(data.transactions, n_customers=25))
    pd.testing.assert_frame_equal(term, bf.terminal_features(data.transactions, n_terminals=60))


def test_empty_transactions_give_empty_frames():
    empty = _tx([]).astype({"event_timestamp": "datetime64[ns, UTC]"})
    assert bf.customer_features(empty).empty
    assert list(bf.terminal_features(empty).columns)[:3] == [
        "terminal_id",
        "event_timestamp",
        "created",
    ]
