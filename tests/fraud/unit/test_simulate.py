"""The transaction simulator: determinism, schema, fraud scenarios and terminal geography."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.fraud import simulate as sim

START = dt.date(2024, 3, 1)


@pytest.fixture(scope="module")
def data() -> sim.SimulatedData:
    return sim.simulate(customers=2000, terminals=400, days=60, start=START, seed=7)


def test_same_seed_is_identical_and_other_seed_differs():
    kw = dict(customers=100, terminals=150, days=10, start=START)
    a, b = sim.simulate(seed=3, **kw), sim.simulate(seed=3, **kw)
    for name in ("customers", "terminals", "transactions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = sim.simulate(seed=4, **kw)
    assert not a.transactions.equals(c.transactions)
    assert not a.customers.equals(c.customers)


def test_write_round_trips(tmp_path):
    data = sim.simulate(customers=20, terminals=30, days=3, start=START, seed=1)
    paths = sim.write(data, tmp_path / "raw")
    assert set(paths) == {"customers", "terminals", "transactions"}
    for name, path in paths.items():
        assert path.name == f"{name}.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(path), getattr(data, name))


def test_default_start_ends_yesterday():
    assert sim.default_start(90, today=dt.date(2024, 6, 30)) == dt.date(2024, 4, 1)
    assert sim.default_start(1) == dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def test_schema_dtypes_and_order(data):
    tx = data.transactions
    assert list(tx.columns) == [
        "transaction_id",
        "event_timestamp",
        "customer_id",
        "terminal_id",
        "amount",
        "is_fraud",
        "fraud_scenario",
        "day",
    ]
    expected = {
        "transaction_id": "int64",
        "event_timestamp": "datetime64[ns, UTC]",
        "customer_id": "int64",
        "terminal_id": "int64",
        "amount": "float64",
        "is_fraud": "int8",
        "fraud_scenario": "int8",
        "day": "int32",
    }
    assert {c: str(t) for c, t in tx.dtypes.items()} == expected
    assert len(tx) > 10_000
    np.testing.assert_array_equal(tx["transaction_id"], np.arange(len(tx)))
    assert tx["event_timestamp"].is_monotonic_increasing
    assert data.customers["customer_id"].dtype == "int64"
    assert data.terminals["terminal_id"].dtype == "int64"
    assert list(data.customers.columns) == [
        "customer_id",
        "x",
        "y",
        "mean_amount",
        "std_amount",
        "mean_nb_tx_per_day",
    ]
    assert list(data.terminals.columns) == ["terminal_id", "x", "y"]


def test_timestamps_ids_and_amounts_in_range(data):
    tx = data.transactions
    start = pd.Timestamp(START, tz="UTC")
    assert tx["event_timestamp"].min() >= start
    assert tx["event_timestamp"].max() < start + pd.Timedelta(days=60)
    days = (tx["event_timestamp"] - start).dt.days
    np.testing.assert_array_equal(days, tx["day"])
    assert tx["customer_id"].between(0, 1999).all()
    assert tx["terminal_id"].between(0, 399).all()
    # Every amount is one the scoring API and the event stream accept (no zero after rounding).
    assert (tx["amount"] >= 0.01).all()
    np.testing.assert_allclose(tx["amount"], tx["amount"].round(2), rtol=0, atol=1e-9)
    c = data.customers
    assert c["x"].between(0, 100).all() and c["y"].between(0, 100).all()
    assert c["mean_amount"].between(5, 100).all()
    np.testing.assert_allclose(c["std_amount"], c["mean_amount"] / 2)
    assert c["mean_nb_tx_per_day"].between(0, 4).all()


def test_all_fraud_scenarios_and_labels(data):
    tx = data.transactions
    assert set(tx["fraud_scenario"].unique()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(tx["is_fraud"], (tx["fraud_scenario"] > 0).astype("int8"))
    # Scenario 1: nothing above 220 is left unlabelled.
    assert not ((tx["amount"] > 220) & (tx["fraud_scenario"] == 0)).any()
    assert (tx.loc[tx["fraud_scenario"] == 1, "amount"] > 220).all()
    assert 0.001 < tx["is_fraud"].mean() < 0.2


def test_compromised_terminals_stay_fraudulent_for_28_days(data):
    tx = data.transactions
    cell = (tx["terminal_id"].to_numpy(), tx["day"].to_numpy())
    n_tx, n_fraud, n_sc2 = (np.zeros((400, 60), dtype=int) for _ in range(3))
    np.add.at(n_tx, cell, 1)
    np.add.at(n_fraud, cell, tx["is_fraud"].to_numpy())
    np.add.at(n_sc2, cell, (tx["fraud_scenario"] == 2).to_numpy())
    # A terminal-day is compromised when any of its transactions is scenario 2; then all of
    # them are fraud (scenario 3 may override the label, not the fraud flag).
    compromised = n_sc2 > 0
    assert compromised.sum() > 100
    np.testing.assert_array_equal(n_fraud[compromised], n_tx[compromised])
    # Terminals busy every day: compromised runs last >= 28 days unless cut by the run's end.
    busy = (n_tx > 0).all(axis=1)
    assert busy.sum() > 50
    lengths = []
    for row in compromised[busy]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        lengths += [(lo, hi) for lo, hi in zip(edges[::2], edges[1::2], strict=True)]
    assert len(lengths) > 10
    assert all(hi - lo >= 28 or hi == 60 for lo, hi in lengths)
    # Outside compromises fraud is rare.
    assert n_fraud[busy][~compromised[busy]].sum() < 0.05 * n_tx[busy][~compromised[busy]].sum()


def test_terminal_fraud_mask_windows():
    compromised = np.array([[3], [0], [0], [1], [1]])  # day d -> terminal compromised that day
    terminal = np.array([3, 3, 3, 0, 0, 1, 1, 2])
    day = np.array([0, 2, 4, 0, 2, 2, 4, 0])
    got = sim.terminal_fraud_mask(terminal, day, compromised, n_terminals=4, window=2)
    # terminal 3: days 0-1; terminal 0: days 1-3; terminal 1: days 3-4 (cut at the end)
    np.testing.assert_array_equal(got, [True, False, False, False, True, False, True, False])


def test_customer_fraud_picks_a_third_within_the_window():
    rng = np.random.default_rng(0)
    customer = np.repeat([0, 1], 30)
    day = np.tile(np.repeat(np.arange(10), 3), 2)
    # customer 1 from day 0, customer 0 on the last day, customer 2 (no transactions) between
    compromised = np.array([[1]] + [[2]] * 8 + [[0]])
    picked = sim.customer_fraud_index(rng, customer, day, compromised, window=4)
    assert np.all(np.diff(picked) > 0)
    first, last = picked[customer[picked] == 1], picked[customer[picked] == 0]
    assert len(first) == 12 // 3 and (day[first] < 4).all()
    assert len(last) == 3 // 3 and (day[last] == 9).all()
    again = sim.customer_fraud_index(np.random.default_rng(1), customer, day, compromised, window=4)
    assert len(again) == len(picked)


def test_customers_use_terminals_within_radius_or_nearest(data):
    tx = data.transactions
    cxy = data.customers[["x", "y"]].to_numpy()
    txy = data.terminals[["x", "y"]].to_numpy()
    d2 = ((cxy[:, None, :] - txy[None, :, :]) ** 2).sum(-1)
    in_radius = d2 <= sim.RADIUS**2
    allowed = in_radius | (~in_radius.any(1, keepdims=True) & (d2 == d2.min(1, keepdims=True)))
    assert allowed[tx["customer_id"], tx["terminal_id"]].all()
    # Some customers have no terminal within 5 (400 terminals) and fall back to the nearest.
    assert (~in_radius.any(1)).any()
    offsets, ids = sim.available_terminals(cxy, txy)
    for c in range(0, 2000, 97):
        np.testing.assert_array_equal(ids[offsets[c] : offsets[c + 1]], np.flatnonzero(allowed[c]))


def test_rejects_empty_sizes():
    with pytest.raises(ValueError):
        sim.simulate(customers=0, terminals=10, days=5, start=START)


def test_a_datetime_start_shifts_every_payment_and_changes_no_draw():
    kw = dict(customers=200, terminals=300, days=4, seed=5)
    at_midnight = sim.simulate(start=START, **kw).transactions
    offset = dt.timedelta(hours=7, minutes=50)
    start = dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC) + offset
    shifted = sim.simulate(start=start, **kw).transactions
    pd.testing.assert_series_equal(shifted["event_timestamp"] - offset,
                                   at_midnight["event_timestamp"])
    others = [c for c in shifted.columns if c != "event_timestamp"]
    pd.testing.assert_frame_equal(shifted[others], at_midnight[others])
    with pytest.raises(ValueError, match="timezone"):
        sim.simulate(start=dt.datetime(2024, 3, 1, 7), **kw)  # noqa: DTZ001 - naive on purpose


def test_a_fractional_drift_day_starts_the_drift_at_that_time_of_day():
    kw = dict(customers=300, terminals=300, days=3, start=START, seed=6)
    clean = sim.simulate(**kw).transactions
    drifted = sim.simulate(drift_from_day=2.5, drift_amount=3.0, **kw).transactions
    cut = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=2.5)
    before = clean["event_timestamp"] < cut
    pd.testing.assert_frame_equal(drifted[before], clean[before])
    # Amounts after the cut are three times the clean ones (up to rounding to cents), fraud
    # scenarios 1 and 3 aside (they see the drifted amount).
    after = ~before & (drifted["fraud_scenario"] == 0) & (clean["fraud_scenario"] == 0)
    assert after.sum() > 50
    ratio = drifted.loc[after, "amount"] / clean.loc[after, "amount"]
    np.testing.assert_allclose(ratio[clean.loc[after, "amount"] > 1], 3.0, rtol=0.02)


def test_tx_scale_multiplies_each_customers_payments_and_keeps_the_customers():
    kw = dict(customers=300, terminals=200, days=20, start=START, seed=5)
    base, deep = sim.simulate(**kw), sim.simulate(tx_scale=10, **kw)
    pd.testing.assert_frame_equal(base.customers.drop(columns="mean_nb_tx_per_day"),
                                  deep.customers.drop(columns="mean_nb_tx_per_day"))
    np.testing.assert_allclose(deep.customers["mean_nb_tx_per_day"],
                               10 * base.customers["mean_nb_tx_per_day"])
    # Poisson counts: over 20 days the deep world holds ~10x the payments, customer by customer
    # (expected count = 20 * rate; the busiest customers are within a few percent).
    per_base = base.transactions.groupby("customer_id").size()
    per_deep = deep.transactions.groupby("customer_id").size()
    assert 9.5 < len(deep.transactions) / len(base.transactions) < 10.5
    busy = deep.customers.loc[deep.customers["mean_nb_tx_per_day"] > 20, "customer_id"]
    expected = 20 * deep.customers.set_index("customer_id").loc[busy, "mean_nb_tx_per_day"]
    assert ((per_deep.loc[busy] - expected).abs() < 5 * np.sqrt(expected)).all()
    assert per_deep.sum() > 9 * per_base.sum()
    with pytest.raises(ValueError, match="tx_scale"):
        sim.simulate(tx_scale=0, **kw)
