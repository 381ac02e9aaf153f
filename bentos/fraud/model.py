"""The fraud model as served: the kit's booster plus decisions and reason codes.

Scores and contributions come from `rtml.serving.model.BoosterModel` (backends routed by call
size, exact TreeSHAP on the CPU); what they mean for a payment is decided here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtml.serving.model import BackendUnavailable, BoosterModel

__all__ = ["REASONS_PER_DECISION", "BackendUnavailable", "FraudModel"]

REASONS_PER_DECISION = 3


class FraudModel(BoosterModel):
    """The fraud booster with the review and decline cut-offs chosen at training time."""

    retrain_hint: ClassVar[str] = "retrain with `rtml train fraud`"

    @property
    def review_threshold(self) -> float:
        """Scores at or above go to a reviewer (and get reasons)."""
        return self.card.thresholds["review"]

    @property
    def decline_threshold(self) -> float:
        """Scores at or above are declined."""
        return self.card.thresholds["decline"]

    def decide(self, score: float) -> str:
        """Approve | review | decline from the thresholds chosen at training time."""
        if score >= self.decline_threshold:
            return "decline"
        if score >= self.review_threshold:
            return "review"
        return "approve"

    def reasons(self, contrib: np.ndarray, values: list[float]) -> list[dict[str, Any]]:
        """The features that pushed this score up the most (positive contributions only)."""
        return self.top_contributions(contrib, values, REASONS_PER_DECISION)
