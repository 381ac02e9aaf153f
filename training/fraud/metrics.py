"""Fraud metrics as a fraud team reads them.

Ranking quality, recall at a tolerable false-positive rate, and how many of the day's 100 most
suspicious cards an investigator would find compromised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr_max: float) -> float:
    """Share of frauds caught while flagging at most `fpr_max` of genuine transactions."""
    fpr, tpr, _ = roc_curve(y, score)
    ok = fpr <= fpr_max
    return float(tpr[ok].max()) if ok.any() else 0.0


def threshold_at_fpr(y: np.ndarray, score: np.ndarray, fpr_max: float) -> float:
    """Lowest score threshold whose false-positive rate stays within `fpr_max`."""
    genuine = np.sort(score[y == 0])
    if len(genuine) == 0:
        return float(np.max(score))
    k = int(np.floor(fpr_max * len(genuine)))
    if k >= len(genuine):  # every genuine payment may be flagged: flag everything
        return float(np.min(score))
    # Flag scores strictly above the (k+1)-th highest genuine score: at most k false positives.
    return float(np.nextafter(genuine[len(genuine) - 1 - k], np.inf))


def card_precision_at_k(frame: pd.DataFrame, score: np.ndarray, k: int = 100) -> float:
    """Mean over days of: of the k cards with the highest score that day, the share compromised.

    A card is compromised on a day when any of its transactions that day is fraud; a card's score
    that day is its highest transaction score. `frame` needs `day`, `customer_id` and `is_fraud`.
    """
    per_card = (
        frame.assign(score=score)
        .groupby(["day", "customer_id"], sort=False)
        .agg(score=("score", "max"), fraud=("is_fraud", "max"))
        .reset_index()
    )
    daily = [
        g.nlargest(k, "score")["fraud"].mean() for _, g in per_card.groupby("day", sort=True)
    ]
    return float(np.mean(daily)) if daily else 0.0


def evaluate(frame: pd.DataFrame, score: np.ndarray) -> dict[str, float]:
    """All four metrics for one scorer on one labelled period."""
    y = frame["is_fraud"].to_numpy()
    return {
        "roc_auc": float(roc_auc_score(y, score)),
        "average_precision": float(average_precision_score(y, score)),
        "recall_at_1pct_fpr": recall_at_fpr(y, score, 0.01),
        "card_precision_at_100": card_precision_at_k(frame, score, 100),
    }
