"""Fraud metrics and the label-delay time split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.fraud.metrics import card_precision_at_k, evaluate, recall_at_fpr, threshold_at_fpr
from training.fraud.train import make_split


def _fpr(y: np.ndarray, score: np.ndarray, threshold: float) -> float:
    """Share of genuine rows flagged when serving flags `score >= threshold` (FraudModel.decide)."""
    genuine = score[y == 0]
    return float((genuine >= threshold).mean())


def _data(seed: int, n: int = 2000, fraud_share: float = 0.05, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_share).astype(int)
    score = rng.normal(0.0, 1.0, n) + 1.5 * y
    if ties:  # scores from a coarse model: many genuine rows share the same value
        score = np.round(score, 1)
    return y, score


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("fpr_max", [0.0, 0.001, 0.01, 0.05, 0.2, 0.5])
@pytest.mark.parametrize("ties", [False, True])
def test_threshold_never_exceeds_fpr_and_is_tight(seed, fpr_max, ties):
    y, score = _data(seed, ties=ties)
    thr = threshold_at_fpr(y, score, fpr_max)
    assert _fpr(y, score, thr) <= fpr_max
    # Tight: the next representable threshold below would flag more genuine rows than allowed.
    lower = float(np.nextafter(thr, -np.inf))
    assert _fpr(y, score, lower) > fpr_max


def test_threshold_with_float32_scores_stays_within_fpr():
    # Scores come from XGBoost as float32; serving compares them as float64.
    y, score = _data(11)
    s32 = score.astype(np.float32)
    for fpr_max in (0.001, 0.01, 0.1):
        thr = threshold_at_fpr(y, s32, fpr_max)
        assert _fpr(y, s32.astype(np.float64), thr) <= fpr_max
        lower = np.nextafter(np.float32(thr), np.float32(-np.inf))
        assert _fpr(y, s32.astype(np.float64), float(lower)) > fpr_max


def test_threshold_zero_fpr_flags_no_genuine_but_catches_frauds_above_them():
    y = np.array([0, 0, 0, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.25, 0.9])
    thr = threshold_at_fpr(y, score, 0.0)
    assert 0.3 < thr <= 0.9
    assert _fpr(y, score, thr) == 0.0


def test_recall_at_fpr_perfectly_separable_is_one():
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(300, int), np.ones(30, int)]
    score = np.r_[rng.uniform(0.0, 0.4, 300), rng.uniform(0.6, 1.0, 30)]
    assert recall_at_fpr(y, score, 0.01) == 1.0
    assert recall_at_fpr(y, score, 0.0) == 1.0


def test_recall_at_fpr_reversed_is_zero():
    rng = np.random.default_rng(6)
    y = np.r_[np.zeros(300, int), np.ones(30, int)]
    score = np.r_[rng.uniform(0.6, 1.0, 300), rng.uniform(0.0, 0.4, 30)]
    assert recall_at_fpr(y, score, 0.01) == 0.0


def test_recall_at_fpr_matches_a_direct_count():
    # 100 genuine at 0..99, 10 frauds interleaved; fpr_max 0.05 allows 5 genuine above the cut:
    # genuine 95..99 flagged, so the cut sits just above 94 and frauds > 94 are caught.
    y = np.r_[np.zeros(100, int), np.ones(10, int)]
    score = np.r_[np.arange(100.0), np.array([10, 20, 50, 90, 94.5, 95.5, 96.5, 97.5, 200, 300])]
    # Frauds scoring above 94: 94.5, 95.5, 96.5, 97.5, 200, 300 -> 6 of 10.
    assert recall_at_fpr(y, score, 0.05) == pytest.approx(0.6)


def test_card_precision_at_k_by_hand():
    # k = 2. Day 0: card 1 max score 0.9 (one of its two tx is fraud -> compromised),
    # card 2 0.8 (genuine), card 3 0.1 (fraud, but ranked 3rd so outside the top 2).
    # Top 2 of day 0 = {1, 2}: 1 of 2 compromised -> 0.5.
    # Day 1: card 4 0.95 (fraud), card 3 0.7 (fraud), card 1 0.2 (genuine).
    # Top 2 of day 1 = {4, 3}: both compromised -> 1.0.
    # Mean over days = (0.5 + 1.0) / 2 = 0.75.
    frame = pd.DataFrame(
        {
            "day":         [0,   0,   0,   0,   1,   1,   1],
            "customer_id": [1,   1,   2,   3,   1,   3,   4],
            "is_fraud":    [0,   1,   0,   1,   0,   1,   1],
        }
    )
    score = np.array([0.9, 0.3, 0.8, 0.1, 0.2, 0.7, 0.95])
    assert card_precision_at_k(frame, score, k=2) == pytest.approx(0.75)
    # k larger than the cards of a day: every card that day counts.
    # Day 0: cards 1, 2, 3 -> 2/3 compromised; day 1: cards 1, 3, 4 -> 2/3. Mean 2/3.
    assert card_precision_at_k(frame, score, k=10) == pytest.approx(2 / 3)


def test_card_precision_uses_the_cards_highest_score():
    # Card 1's fraud tx scores low, but its other tx scores highest: the card ranks first.
    frame = pd.DataFrame({"day": [0, 0, 0], "customer_id": [1, 1, 2], "is_fraud": [1, 0, 0]})
    score = np.array([0.05, 0.99, 0.5])
    assert card_precision_at_k(frame, score, k=1) == 1.0


def test_evaluate_returns_four_metrics_in_unit_interval():
    rng = np.random.default_rng(9)
    n = 3000
    frame = pd.DataFrame(
        {
            "day": rng.integers(0, 5, n),
            "customer_id": rng.integers(0, 400, n),
            "is_fraud": (rng.random(n) < 0.05).astype(int),
        }
    )
    score = rng.normal(0, 1, n) + frame["is_fraud"].to_numpy()
    out = evaluate(frame, score)
    assert set(out) == {"roc_auc", "average_precision", "recall_at_1pct_fpr",
                        "card_precision_at_100"}
    for name, value in out.items():
        assert isinstance(value, float), name
        assert 0.0 <= value <= 1.0, (name, value)
    assert out["roc_auc"] > 0.6  # the score carries signal, so ranking beats chance


def test_split_has_label_delay_gap_and_no_overlap():
    for n_days, gap in [(90, 7), (120, 7), (90, 3), (200, 14)]:
        s = make_split(n_days, gap_days=gap)
        assert s.test[0] - s.valid[1] == gap
        assert s.test[1] == n_days
        assert s.train[0] == 30  # warm-up: 30-day windows are full from here on
        assert s.train[0] < s.train[1] <= s.valid[0] < s.valid[1] <= s.test[0] < s.test[1]
        assert s.test[1] - s.test[0] == 14
        assert s.valid[1] - s.valid[0] == 7


def test_split_too_few_days_raises():
    # 30 warm-up + 7 train + 7 valid + 7 gap + 14 test = 65 days is the minimum.
    assert make_split(65).train == (30, 37)
    with pytest.raises(ValueError):
        make_split(64)
    with pytest.raises(ValueError):
        make_split(20)
