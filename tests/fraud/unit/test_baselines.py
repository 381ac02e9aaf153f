"""The competitive baselines: the hand-written rule set's ranking and the logistic regression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score
from typer.testing import CliRunner

from rtml.cli import app
from training.fraud.baselines import fit_logistic, logistic_score, rule_signals, rules_score

QUIET = {"tx_amount": 40.0, "amount_vs_cust_mean_30d": 1.0, "cust_tx_count_1d": 2,
         "cust_tx_count_30d": 60, "term_fraud_rate_7d": 0.0, "term_fraud_rate_30d": 0.01}


def _rows(*changes: dict) -> pd.DataFrame:
    return pd.DataFrame([{**QUIET, **c} for c in changes])


def test_each_rule_fires_at_its_threshold_and_not_below():
    frame = _rows({}, {"tx_amount": 200.0}, {"tx_amount": 199.99},
                  {"amount_vs_cust_mean_30d": 3.0}, {"amount_vs_cust_mean_30d": 2.9},
                  {"cust_tx_count_1d": 6}, {"cust_tx_count_1d": 5},  # usual day: 60 / 30 = 2
                  {"term_fraud_rate_30d": 0.2}, {"term_fraud_rate_7d": 0.19})
    fired = (rule_signals(frame) >= 1).sum(axis=1).tolist()
    assert fired == [0, 1, 0, 1, 0, 1, 0, 1, 0]


def test_a_new_customer_counts_one_payment_a_day_as_usual():
    # No 30-day history: a burst is measured against one payment a day, not divided by zero.
    frame = _rows({"cust_tx_count_30d": 0, "cust_tx_count_1d": 3},
                  {"cust_tx_count_30d": 0, "cust_tx_count_1d": 2})
    assert (rule_signals(frame)["day_burst"] >= 1).tolist() == [True, False]


def test_more_rules_fired_rank_higher_then_the_stronger_signal():
    frame = _rows({},  # nothing fires
                  {"tx_amount": 210.0},  # one rule, just over
                  {"tx_amount": 1900.0, "amount_vs_cust_mean_30d": 2.0},  # one rule, far over
                  {"tx_amount": 210.0, "term_fraud_rate_7d": 0.3})  # two rules
    score = rules_score(frame)
    assert np.argsort(score).tolist() == [0, 1, 2, 3]
    assert score[0] < 1 <= score[1] < score[2] < 2 <= score[3] < 3


def test_the_last_hour_rule_is_used_only_where_the_streamed_feature_is_served():
    v1 = _rows({})
    v2 = _rows({"cust_tx_count_1h": 3}, {"cust_tx_count_1h": 2})
    assert "hour_burst" not in rule_signals(v1)
    assert (rule_signals(v2)["hour_burst"] >= 1).tolist() == [True, False]
    assert rules_score(v2)[0] >= 1 > rules_score(v2)[1]


def test_logistic_regression_is_standardized():
    # Two equally informative features, one on a scale of millions: unscaled, lbfgs leaves the
    # big one nearly unused (AP 0.45 here); standardized, the fit ranks as the true logit does.
    rng = np.random.default_rng(5)
    n = 4000
    a, b = rng.normal(0.0, 1.0, n), rng.normal(0.0, 1.0, n)
    logit = 2.0 * a + 2.0 * b - 3.0
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"big": a * 1e6 + 5e6, "small": b, "is_fraud": y})
    features = ["big", "small"]
    train, test = frame.iloc[:3000], frame.iloc[3000:]
    score = logistic_score(fit_logistic(train, features), test, features)
    assert score.shape == (len(test),) and np.all((score >= 0) & (score <= 1))
    best = average_precision_score(test["is_fraud"], logit[3000:])
    assert average_precision_score(test["is_fraud"], score) == pytest.approx(best, abs=0.01)


@pytest.mark.parametrize("seeds", ["a,b", "0,0", ","])
def test_train_refuses_bad_seeds_naming_the_option(seeds):
    out = CliRunner().invoke(app, ["train", "fraud", "--seeds", seeds])
    assert out.exit_code == 2
    assert "--seeds" in out.output and "Traceback" not in out.output
