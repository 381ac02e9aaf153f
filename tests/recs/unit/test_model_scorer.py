"""The served ranker: the training feature builder's columns into the booster, in card order."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from bentos.recs.model import scorer_for
from pipelines.recs.candidates import Candidate
from rtml.features.online import FeatureRow
from rtml.serving.backends import NativeBackend, Router
from rtml.serving.card import ModelCard
from rtml.serving.model import BoosterModel
from training.recs.features import FEATURE_NAMES, features_for


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (500, len(FEATURE_NAMES))).astype(np.float32)
    y = (x[:, FEATURE_NAMES.index("score_covisit")] + 0.3 * rng.normal(size=500) > 0)
    d = xgb.DMatrix(x, label=y.astype(np.float32), feature_names=FEATURE_NAMES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, d, 20)


def _model(booster: xgb.Booster, features: list[str]) -> BoosterModel:
    card = ModelCard(name="recs_model", version="recs_model:test",
                     feature_service="recs_ranker_v1", features=features,
                     thresholds={"mmr_lambda": 0.55})
    return BoosterModel(booster=booster, card=card,
                        router=Router({"xgboost": NativeBackend.on(booster, "cpu")}))


def test_scores_are_the_boosters_over_the_training_features(booster):
    scorer = scorer_for(_model(booster, list(FEATURE_NAMES)))
    assert scorer.version == "recs_model:test" and scorer.mmr_lambda == 0.55
    cands = [Candidate(7, "covisit", 0.9, (0.0, 0.9, 0.0, 0.0)),
             Candidate(3, "popular", 0.4, (0.0, 0.0, 0.4, 0.0)),
             Candidate(9, "revisit", 1.0, (1.0, 0.2, 0.0, 0.0))]
    items = {i: FeatureRow(values={"item_category": float(i % 2), "item_price": 10.0 + i,
                                   "item_clicks_7d": float(i), "trend_events_1h": 2.0,
                                   "stock_level": 5.0}) for i in (7, 3, 9)}
    user = {"user_events_7d": 4.0, "user_top_categories": [1, 0],
            "user_category_shares": [0.7, 0.3], "user_recent_items": [9]}
    session = {"session_items": [9], "session_categories": [1], "session_length": 2}
    got = scorer.score(cands, user, items, session)
    x = features_for(cands, user, {i: r.values for i, r in items.items()}, session)
    want = booster.predict(xgb.DMatrix(x, feature_names=FEATURE_NAMES))
    assert got == pytest.approx(want, abs=1e-6)
    assert len(set(np.round(got, 6))) > 1  # the rows differ: not one constant score


def test_a_model_trained_on_other_columns_is_refused(booster):
    with pytest.raises(ValueError, match="retrain"):
        scorer_for(_model(booster, list(reversed(FEATURE_NAMES))))
