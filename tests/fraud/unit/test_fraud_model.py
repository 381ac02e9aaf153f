"""`FraudModel` around a tiny booster trained here: decisions, scores, contributions, reasons."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from bentos.fraud.model import REASONS_PER_DECISION, FraudModel
from rtml.serving.backends import NativeBackend, Router
from rtml.serving.card import ModelCard

FEATURES = ["f0_amount_ratio", "f1", "f2", "f3", "f4"]


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(1234)
    n = 3000
    x = rng.normal(0.0, 1.0, (n, len(FEATURES))).astype(np.float32)
    # Feature 0 drives the label; the others are noise.
    p = 1.0 / (1.0 + np.exp(-(3.0 * x[:, 0] - 2.0)))
    y = (rng.random(n) < p).astype(np.float32)
    dtrain = xgb.DMatrix(x, label=y, feature_names=FEATURES)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0,
              "nthread": 1, "device": "cpu", "tree_method": "hist"}
    return xgb.train(params, dtrain, num_boost_round=30)


@pytest.fixture
def model(booster) -> FraudModel:
    card = ModelCard(name="fraud_model", version="fraud_model:test", feature_service="svc",
                     features=list(FEATURES), thresholds={"review": 0.3, "decline": 0.8})
    return FraudModel(booster=booster, card=card,
                      router=Router({"xgboost": NativeBackend.on(booster, "cpu")}))


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    rng = np.random.default_rng(99)
    return rng.normal(0.0, 1.5, (64, len(FEATURES))).astype(np.float32)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "approve"),
        (float(np.nextafter(0.3, 0.0)), "approve"),
        (0.3, "review"),
        (0.5, "review"),
        (float(np.nextafter(0.8, 0.0)), "review"),
        (0.8, "decline"),
        (1.0, "decline"),
    ],
)
def test_decide_at_threshold_boundaries(model, score, expected):
    assert model.decide(score) == expected


def test_decide_accepts_numpy_float32_scores(model):
    assert model.decide(np.float32(0.9)) == "decline"
    assert model.decide(np.float32(0.1)) == "approve"


def test_predict_scores_match_booster(model, booster, rows):
    scores = model.predict(rows)
    expected = booster.inplace_predict(rows)
    assert scores.shape == (len(rows),)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, np.asarray(expected, dtype=np.float64), rtol=0, atol=1e-7)
    assert np.all((scores > 0) & (scores < 1))


def test_contributions_sum_to_the_margin(model, rows):
    scores, contribs = model.predict(rows), model.contributions(rows)
    assert contribs.shape == (len(rows), len(FEATURES) + 1)  # bias column last
    margin = np.log(scores / (1.0 - scores))
    np.testing.assert_allclose(contribs.sum(axis=1), margin, atol=1e-4)


def test_single_row_predict(model, rows):
    scores, contribs = model.predict(rows[:1]), model.contributions(rows[:1])
    all_scores, all_contribs = model.predict(rows), model.contributions(rows)
    assert scores[0] == pytest.approx(all_scores[0], abs=1e-7)
    np.testing.assert_allclose(contribs[0], all_contribs[0], atol=1e-6)


def test_reasons_name_feature_zero_first_for_extreme_value(model):
    x = np.zeros((1, len(FEATURES)), dtype=np.float32)
    x[0, 0] = 4.0  # far in the fraud direction of the only informative feature
    scores, contribs = model.predict(x), model.contributions(x)
    values = [float(v) for v in x[0]]
    reasons = model.reasons(contribs[0], values)
    assert scores[0] > 0.5
    assert reasons[0]["feature"] == FEATURES[0]
    assert reasons[0]["value"] == 4.0
    assert reasons[0]["contribution"] == pytest.approx(float(contribs[0][0]), abs=1e-4)


def test_reasons_on_real_contributions_are_positive_sorted_and_few(model, rows):
    contribs = model.contributions(rows)
    for row, c in zip(rows, contribs, strict=True):
        reasons = model.reasons(c, [float(v) for v in row])
        assert len(reasons) <= REASONS_PER_DECISION == 3
        names = [r["feature"] for r in reasons]
        assert len(set(names)) == len(names)
        raw = [float(c[FEATURES.index(name)]) for name in names]
        assert all(v > 0 for v in raw)
        assert raw == sorted(raw, reverse=True)
        got = [r["contribution"] for r in reasons]
        # They are the largest positive feature contributions (bias never counts).
        positive = sorted((v for v in c[:-1] if v > 0), reverse=True)[:3]
        assert got == pytest.approx([round(float(v), 4) for v in positive])


def test_reasons_by_hand(model):
    # contributions per feature, then a large bias that must never be named
    contrib = np.array([0.5, -1.0, 2.0, 0.1, 0.3, 9.0])
    values = [10.0, 11.0, 12.0, 13.0, 14.0]
    reasons = model.reasons(contrib, values)
    assert [r["feature"] for r in reasons] == [FEATURES[2], FEATURES[0], FEATURES[4]]
    assert [r["value"] for r in reasons] == [12.0, 10.0, 14.0]
    assert [r["contribution"] for r in reasons] == [2.0, 0.5, 0.3]


def test_reasons_drop_non_positive(model):
    contrib = np.array([-0.5, 0.0, 0.2, -0.1, -3.0, 1.0])
    reasons = model.reasons(contrib, [0.0] * 5)
    assert [r["feature"] for r in reasons] == [FEATURES[2]]
    assert model.reasons(np.array([-1.0, -2.0, 0.0, -0.1, -0.2, 5.0]), [0.0] * 5) == []
