"""The fraud model's answer for a transaction, computed without any of the service's code.

The booster file and `model.yaml` straight from the BentoML store folder (plain xgboost and
yaml, not `FraudModel`), the feature vector from Feast's own `get_online_features` of the model's
FeatureService (Feast computes the request features with its on-demand view), the score from the
booster, the decision from the thresholds stored with the model. A service answer that differs
has read other features, ordered them otherwise, or applied other cut-offs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
import yaml
from feast import FeatureStore


@dataclass(frozen=True)
class SavedModel:
    """One version of `fraud_model` as the BentoML store holds it on disk."""

    tag: str
    booster: xgb.Booster
    feature_service: str
    features: list[str]
    thresholds: dict[str, float]


def saved_model(bentoml_home: str | Path, name: str = "fraud_model") -> SavedModel:
    """The newest version of `name` in the store under `bentoml_home`."""
    root = Path(bentoml_home) / "models" / name
    version = (root / "latest").read_text().strip()
    info = yaml.safe_load((root / version / "model.yaml").read_text())
    booster = xgb.Booster()
    booster.load_model(str(root / version / "saved_model.ubj"))
    meta = info["metadata"]["model_card"]  # rtml.serving.card.CARD_KEY, read here by hand
    return SavedModel(tag=f"{name}:{version}", booster=booster,
                      feature_service=meta["feature_service"], features=list(meta["features"]),
                      thresholds={k: float(v) for k, v in meta["thresholds"].items()})


@dataclass(frozen=True)
class Expected:
    """What the service must answer: score, decision, and the views it had no row in."""

    score: float
    decision: str
    vector: dict[str, float]
    null_features: list[str]


def expected_answer(store: FeatureStore, model: SavedModel, tx: dict[str, Any]) -> Expected:
    """Score `tx` (customer_id, terminal_id, amount) as the model would with today's features."""
    online = store.get_online_features(
        features=store.get_feature_service(model.feature_service),
        entity_rows=[{"customer_id": tx["customer_id"], "terminal_id": tx["terminal_id"],
                      "amount": tx["amount"]}]).to_dict()
    raw = {name: online[name][0] for name in model.features}
    # A view with no row for the entity: the declared no-history value, 0 for every feature.
    nulls = [name for name, v in raw.items() if v is None]
    vector = {name: 0.0 if v is None else float(v) for name, v in raw.items()}
    # The request features by hand as well: the amount and its ratio to the 30-day mean.
    mean = vector["cust_mean_amount_30d"]
    assert vector["tx_amount"] == tx["amount"]
    assert vector["amount_vs_cust_mean_30d"] == pytest.approx(
        tx["amount"] / mean if mean > 0 else 0.0)
    x = np.asarray([[vector[n] for n in model.features]], dtype=np.float32)
    score = float(model.booster.inplace_predict(x)[0])
    decision = ("decline" if score >= model.thresholds["decline"]
                else "review" if score >= model.thresholds["review"] else "approve")
    return Expected(score=score, decision=decision, vector=vector, null_features=nulls)


def score_and_check(client: Any, store: FeatureStore, model: SavedModel, tx: dict[str, Any]
                    ) -> tuple[dict[str, Any], Expected]:
    """POST `tx` to /score; assert model, score and decision equal the independent answer.

    ONNX Runtime may serve the call: its score equals the booster's within the 1e-5 checked at
    training. A decision may differ only where the score sits on a threshold.
    """
    import pytest

    want = expected_answer(store, model, tx)
    body = client.post("/score", json=tx).json()
    assert body["fallback"] is False and body["model_version"] == model.tag
    assert body["score"] == pytest.approx(want.score, abs=2e-5), tx["transaction_id"]
    near_cut = min(abs(want.score - c) for c in model.thresholds.values()) < 2e-5
    assert body["decision"] == want.decision or near_cut, (tx["transaction_id"], want)
    return body, want
