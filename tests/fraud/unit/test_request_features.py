"""Serving's request-time features equal the Feast on-demand view that training reads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from feature_repo.fraud.request_features import ON_DEMAND, request_features
from feature_repo.fraud.transactions import transaction_request_features


def _offline(frame: pd.DataFrame) -> pd.DataFrame:
    """Run the view's own transformation (what `get_historical_features` applies)."""
    udf = transaction_request_features.feature_transformation.udf
    assert udf is transaction_request_features.udf
    return udf(frame.copy())


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(20240301)
    n = 500
    amount = rng.lognormal(3.5, 1.2, n).round(2)
    mean = rng.lognormal(3.5, 0.8, n)
    kind = rng.integers(0, 6, n)
    mean[kind == 0] = 0.0  # a customer whose window is all zero-amount (or a zero default)
    mean[kind == 1] = np.nan  # no history: the point-in-time join found no row
    mean[kind == 2] = rng.uniform(1e-9, 1e-3, (kind == 2).sum())  # tiny but positive
    return pd.DataFrame({"amount": amount, "cust_mean_amount_30d": mean})


def test_view_outputs_are_the_declared_schema(frame):
    out = _offline(frame)
    declared = [f.name for f in transaction_request_features.features]
    assert sorted(out.columns) == sorted(declared)
    assert len(out) == len(frame)


def test_serving_equals_offline_row_by_row(frame):
    offline = _offline(frame)
    for i, row in enumerate(frame.itertuples(index=False)):
        online = request_features(row.amount, row.cust_mean_amount_30d)
        for name, value in online.items():
            expected = float(offline[name].iloc[i])
            assert math.isfinite(value), (i, name, value)
            assert value == expected, (i, name, value, expected)


def test_frame_exercises_no_history_and_zero_mean(frame):
    # Guard the fixture itself: the parity above must cover both edge cases.
    mean = frame["cust_mean_amount_30d"]
    assert mean.isna().sum() > 10
    assert (mean == 0).sum() > 10


@pytest.mark.parametrize("mean", [None, 0.0, float("nan"), -3.0])
def test_no_usable_history_gives_ratio_zero_in_both(mean):
    online = request_features(80.0, mean)
    offline = _offline(pd.DataFrame({"amount": [80.0], "cust_mean_amount_30d": [mean]}))
    assert online == {"tx_amount": 80.0, "amount_vs_cust_mean_30d": 0.0}
    assert offline["amount_vs_cust_mean_30d"].iloc[0] == 0.0
    assert offline["tx_amount"].iloc[0] == 80.0


def test_ratio_is_amount_over_mean():
    assert request_features(150.0, 50.0)["amount_vs_cust_mean_30d"] == pytest.approx(3.0)


def test_serving_registry_uses_request_amount_and_read_mean():
    view = ON_DEMAND["transaction_request_features"]
    out = view({"amount": 30.0}, {"cust_mean_amount_30d": 60.0})
    assert out == {"tx_amount": 30.0, "amount_vs_cust_mean_30d": pytest.approx(0.5)}
    missing = view({"amount": 30.0}, {})
    assert missing["amount_vs_cust_mean_30d"] == 0.0
