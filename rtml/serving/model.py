"""A served XGBoost booster: its card, its backends routed by call size, exact contributions.

Scores come from the backend chosen for the call size (`rtml.serving.backends`); contributions
always come from the native booster on the CPU, the one predictor with exact TreeSHAP
(`pred_contribs`). What a score means (decisions, reason codes) is the scenario's to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import bentoml
import numpy as np
import xgboost as xgb

from rtml.serving.accel import cuda_available
from rtml.serving.backends import Backend, NativeBackend, OnnxBackend, Router, choose
from rtml.serving.card import ModelCard, load_card


class BackendUnavailable(RuntimeError):
    """The configured model backend cannot run here (no ONNX export, no GPU)."""


def _candidates(ref: bentoml.Model, booster: xgb.Booster, backend: str, hint: str
                ) -> list[Backend]:
    onnx = ref.custom_objects.get("onnx") if backend in ("auto", "onnx") else None
    candidates: list[Backend] = []
    if backend in ("auto", "xgboost"):
        candidates.append(NativeBackend.on(booster, "cpu"))
    if backend in ("auto", "onnx"):
        if onnx is None and backend == "onnx":
            raise BackendUnavailable(f"{ref.tag} was saved without an ONNX export ({hint})")
        if onnx is not None:
            candidates.append(OnnxBackend(onnx))
    if backend in ("auto", "xgboost-gpu"):
        if cuda_available():
            candidates.append(NativeBackend.on(booster, "cuda"))
        elif backend == "xgboost-gpu":
            raise BackendUnavailable("model_backend xgboost-gpu, but no CUDA GPU is "
                                     "visible to this XGBoost build")
    if not candidates:
        raise BackendUnavailable(f"unknown model backend {backend!r}")
    return candidates


@dataclass
class BoosterModel:
    """A booster plus the card it was trained under and the router over its backends."""

    booster: xgb.Booster
    card: ModelCard
    router: Router
    # Ends the message when a backend asked for is missing from the saved model.
    retrain_hint: ClassVar[str] = "retrain it"

    @classmethod
    def load(cls, tag: str, *, backend: str = "auto") -> Self:
        """Load from the BentoML model store; raises `bentoml.exceptions.NotFound` when absent.

        `backend`: auto (measure what is available, route by call size), xgboost, onnx or
        xgboost-gpu. A backend that was asked for and cannot run raises `BackendUnavailable`.
        """
        ref = bentoml.models.get(tag)
        card = load_card(ref)
        booster = bentoml.xgboost.load_model(ref)
        booster.set_param({"device": "cpu", "nthread": 1})
        router = choose(_candidates(ref, booster, backend, cls.retrain_hint), len(card.features))
        return cls(booster=booster, card=card, router=router)

    @property
    def version(self) -> str:
        """The concrete BentoML tag (what the prediction log and the cache key record)."""
        return self.card.version or self.card.name

    @property
    def feature_service(self) -> str:
        """The FeatureService serving reads, as trained."""
        return self.card.feature_service

    @property
    def features(self) -> list[str]:
        """Column order of every row given to the model."""
        return self.card.features

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Score of each row of `x` (columns in `self.features` order)."""
        return np.asarray(self.router.predict(x), dtype=np.float64)

    def backend_for(self, n: int) -> str:
        """Name of the backend a call of `n` rows goes to (for Server-Timing)."""
        return self.router.pick(n).name

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Exact per-feature contributions (TreeSHAP; bias column last) for rows of `x`.

        About 3x a prediction: ask only for the rows that need an explanation.
        """
        # nthread=1: by default the DMatrix is built with every core's OpenMP thread, which on a
        # busy 2-core box cost ~6 ms a row in contention against ~0.5 ms on one thread.
        return self.booster.predict(xgb.DMatrix(x, feature_names=self.features, nthread=1),
                                    pred_contribs=True, validate_features=False)

    def warm_up(self) -> None:
        """Pay the first-call costs (predictor set-up) before traffic does."""
        warm = np.zeros((1, len(self.features)), dtype=np.float32)
        self.predict(warm)
        self.contributions(warm)

    def top_contributions(self, contrib: np.ndarray, values: list[float], k: int
                          ) -> list[dict[str, float | str]]:
        """The `k` features that pushed this score up the most (positive contributions only)."""
        order = np.argsort(-contrib[:-1])[:k]
        return [{"feature": self.features[i], "value": values[i],
                 "contribution": round(float(contrib[i]), 4)}
                for i in order if contrib[i] > 0]
