"""What the fraud model must beat: the baselines a fraud team would otherwise deploy.

Ranking by amount alone catches exactly the simulator's first scenario (large payments), so it
is only a floor. Two competitors sit beside it, each scored on the same held-out period:

* a **rule set** an analyst would write by hand: a large amount, or an amount far above the
  customer's usual, or a burst of payments, or a terminal with known fraud. Its thresholds are
  round numbers chosen up front, never fitted. It returns a ranking score (rules fired, then how
  far over its threshold the strongest signal is), so average precision is defined;
* a **logistic regression** on the model's own features, standardized, fitted on the same
  training split: a linear model where XGBoost learns interactions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

LARGE_AMOUNT = 200.0  # flag any payment above this
AMOUNT_VS_MEAN = 3.0  # ...or this many times the customer's 30-day mean
DAY_BURST = 3.0  # ...or a day with this many times the customer's usual daily count
HOUR_BURST = 3.0  # ...or this many payments in the last hour (streamed features only)
RISKY_TERMINAL = 0.2  # ...or a terminal whose known (label-delayed) fraud rate is above this


def rule_signals(frame: pd.DataFrame) -> pd.DataFrame:
    """Each rule's signal divided by its threshold (>= 1: the rule fires), from service features.

    Uses only features both fraud services serve; the last-hour rule only where the frame has
    the streamed `cust_tx_count_1h`.
    """
    usual_day = np.maximum(frame["cust_tx_count_30d"].to_numpy(float) / 30.0, 1.0)
    signals = {
        "large_amount": frame["tx_amount"].to_numpy(float) / LARGE_AMOUNT,
        "amount_vs_mean": frame["amount_vs_cust_mean_30d"].to_numpy(float) / AMOUNT_VS_MEAN,
        "day_burst": frame["cust_tx_count_1d"].to_numpy(float) / usual_day / DAY_BURST,
        "risky_terminal": np.maximum(frame["term_fraud_rate_7d"].to_numpy(float),
                                     frame["term_fraud_rate_30d"].to_numpy(float))
        / RISKY_TERMINAL,
    }
    if "cust_tx_count_1h" in frame:
        signals["hour_burst"] = frame["cust_tx_count_1h"].to_numpy(float) / HOUR_BURST
    return pd.DataFrame(signals, index=frame.index).fillna(0.0)


def rules_score(frame: pd.DataFrame) -> np.ndarray:
    """Rules fired, plus a tie-break in [0, 1): the strongest signal's size, capped at 10x.

    A payment that fires two rules ranks above every payment that fires one; within a count,
    the further over its threshold, the higher.
    """
    signals = rule_signals(frame).to_numpy()
    fired = (signals >= 1.0).sum(axis=1)
    strongest = np.clip(signals.max(axis=1), 0.0, 10.0)
    return fired + strongest / 10.0 * 0.999


def fit_logistic(frame: pd.DataFrame, features: list[str], *, seed: int = 0) -> Pipeline:
    """Standardized logistic regression on the model's features and training rows."""
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(frame[features].to_numpy(dtype=np.float64), frame["is_fraud"].to_numpy())
    return model


def logistic_score(model: Pipeline, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Fraud probability of each row."""
    return model.predict_proba(frame[features].to_numpy(dtype=np.float64))[:, 1]
