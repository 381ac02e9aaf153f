"""The model card: the contract a model was trained under, written once and read everywhere.

Training writes it into the BentoML model's metadata (key `model_card`) and beside the reference
sample (`artifacts/<scenario>/card.json`); serving, monitoring and benchmarks read it through
`load_card`, so no reader indexes a metadata dict by string and a missing or renamed field fails
at load with the field's name, not as a KeyError deep inside a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CARD_KEY = "model_card"
CARD_FILE = "card.json"
CARD_SCHEMA = 1


class CardError(RuntimeError):
    """A model or artifacts folder without a readable card (say which, and how to get one)."""


class ModelCard(BaseModel):
    """What a served model needs to be used correctly, and what it was measured to do."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = CARD_SCHEMA
    name: str = Field(description="BentoML model name, e.g. fraud_model")
    version: str | None = Field(None, description="BentoML tag; set once the model is saved")
    feature_service: str = Field(description="the Feast FeatureService the model was trained on")
    features: list[str] = Field(min_length=1, description="model column order (never sorted)")
    thresholds: dict[str, float] = Field(default_factory=dict,
                                         description="score cut-offs chosen at training time")
    periods: dict[str, tuple[str, str]] = Field(
        default_factory=dict, description="data periods: name -> (first day, last day), UTC")
    metrics: dict[str, float] = Field(default_factory=dict, description="held-out metrics")
    baselines: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="held-out metrics of the baselines, by name")
    backends: list[str] = Field(default_factory=list,
                                description="serving backends the saved artifacts allow")
    trained_at: str | None = None
    device: str | None = None

    def to_metadata(self) -> dict[str, Any]:
        """The BentoML metadata entry: JSON types, no None (BentoML refuses None values)."""
        return {CARD_KEY: self.model_dump(mode="json", exclude_none=True)}


def _from_metadata(meta: dict[str, Any], tag: str) -> ModelCard:
    if CARD_KEY not in meta:
        raise CardError(f"{tag} carries no model card (saved before cards existed): retrain it")
    return ModelCard.model_validate({**meta[CARD_KEY], "version": tag})


def load_card(source: str | Path | Any) -> ModelCard:
    """The card of a model: a BentoML tag or `bentoml.Model`, or a card file / artifacts folder.

    A tag is looked up in the BentoML store (`bentoml.exceptions.NotFound` when absent); the
    card's `version` is always the concrete tag it was read from.
    """
    try:
        if isinstance(source, Path):
            path = source / CARD_FILE if source.is_dir() else source
            if not path.exists():
                raise CardError(f"no model card {path} (train first)")
            return ModelCard.model_validate_json(path.read_text())
        if isinstance(source, str):
            import bentoml

            source = bentoml.models.get(source)
        return _from_metadata(dict(source.info.metadata), str(source.tag))
    except ValidationError as exc:
        raise CardError(f"model card of {source}: {exc}") from exc


def write_card(card: ModelCard, folder: Path) -> Path:
    """`folder/card.json`, what monitoring reads beside the reference sample."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / CARD_FILE
    out.write_text(card.model_dump_json(indent=2) + "\n")
    return out
