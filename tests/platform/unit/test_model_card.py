"""The model card: one loader for the BentoML metadata and the artifacts file, typed on read."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rtml.serving.card import CARD_KEY, CardError, ModelCard, load_card, write_card

CARD = ModelCard(name="m", feature_service="svc_v1", features=["z_last", "a_first", "m_mid"],
                 thresholds={"review": 0.2, "decline": 0.7},
                 periods={"train": ("2026-01-01", "2026-01-31")},
                 metrics={"average_precision": 0.61}, backends=["xgboost", "onnx"])


def _saved(metadata: dict, tag: str = "m:abc123") -> SimpleNamespace:
    """What `bentoml.models.get` returns, as far as the loader reads it."""
    return SimpleNamespace(tag=tag, info=SimpleNamespace(metadata=metadata))


def test_metadata_round_trip_keeps_feature_order_and_sets_the_version():
    # The metadata travels as JSON in model.yaml: go through JSON as BentoML does.
    meta = json.loads(json.dumps(CARD.to_metadata()))
    card = load_card(_saved(meta))
    assert card.features == ["z_last", "a_first", "m_mid"]  # never sorted
    assert card.version == "m:abc123"
    assert card.thresholds == {"review": 0.2, "decline": 0.7}
    assert card.periods["train"] == ("2026-01-01", "2026-01-31")
    assert card.model_copy(update={"version": None}) == CARD


def test_metadata_is_what_bentoml_accepts():
    # BentoML's own check, run by `save_model` (internal: pinned with the batcher's version).
    from bentoml._internal.utils import validate_metadata

    validate_metadata(CARD.to_metadata())  # version None, trained_at None: left out, not None


def test_file_round_trip_from_the_artifacts_folder(tmp_path):
    written = CARD.model_copy(update={"version": "m:v9"})
    path = write_card(written, tmp_path / "fraud")
    assert path.name == "card.json"
    assert load_card(tmp_path / "fraud") == written
    assert load_card(path) == written


def test_a_model_saved_without_a_card_says_to_retrain():
    with pytest.raises(CardError, match="m:old.*no model card.*retrain"):
        load_card(_saved({"features": ["a"], "feature_service": "s"}, tag="m:old"))


def test_a_missing_file_says_train_first(tmp_path):
    with pytest.raises(CardError, match="train first"):
        load_card(tmp_path)


def test_a_card_without_features_is_refused_naming_the_field():
    meta = CARD.to_metadata()
    meta[CARD_KEY]["features"] = []
    with pytest.raises(CardError, match="features"):
        load_card(_saved(meta))
