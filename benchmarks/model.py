"""The fraud service's own model path for every benchmark target, so only the feature path differs.

The comparison servers (naive, stock) and the in-process floor load the model with the service's
code (`bentos.fraud.model.FraudModel`): the same backends chosen the same way
(`RTML_FRAUD__MODEL_BACKEND`, default `auto`: ONNX Runtime for single rows when training stored a
graph,
measured at start-up), reasons from TreeSHAP on one thread for flagged rows only, the same
thresholds. Before this they scored with native XGBoost and multi-threaded TreeSHAP, which made
rtml look better than its approach alone earns.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bentos.fraud.model import FraudModel
from rtml.settings import Settings


def load_model(settings: Settings) -> FraudModel:
    """`FraudModel.load` as the service calls it, then the service's first-call warm-up."""
    model = FraudModel.load(settings.model_tag, backend=settings.model_backend)
    warm = np.zeros((1, len(model.features)), dtype=np.float32)
    model.predict(warm)
    model.contributions(warm)
    return model


def answer(model: FraudModel, transaction_id: str, vector: list[float]) -> dict[str, Any]:
    """The service's answer for one row: score, decision, reasons for flagged rows."""
    x = np.asarray([vector], dtype=np.float32)
    score = float(model.predict(x)[0])
    reasons: list[dict[str, Any]] = []
    if score >= model.review_threshold:  # as the service: TreeSHAP only for flagged rows
        reasons = model.reasons(model.contributions(x)[0], vector)
    return {"transaction_id": transaction_id, "decision": model.decide(score),
            "score": round(score, 6), "fallback": False, "fallback_reason": None,
            "model_version": model.version, "reasons": reasons}


def answer_timed(model: FraudModel, transaction_id: str, values: dict[str, float], *,
                 t0: float, timings: dict[str, float], notes: dict[str, str]) -> dict[str, Any]:
    """Score `values` (feature name -> value); record the features/model stage times.

    `t0` is when the feature fetch started; it ended now. `notes["model"]` names the backend.
    """
    t1 = time.perf_counter()
    out = answer(model, transaction_id, [values[f] for f in model.features])
    timings["features"] = (t1 - t0) * 1000
    timings["model"] = (time.perf_counter() - t1) * 1000
    notes["model"] = model.backend_for(1)
    return out


def server_timing(timings: dict[str, float], notes: dict[str, str] | None = None) -> str:
    """`Server-Timing` value in the fraud service's format (`name;dur=ms[;desc=...]`)."""
    notes = notes or {}
    return ", ".join(f"{k};dur={v:.3f}" + (f";desc={notes[k]}" if k in notes else "")
                     for k, v in timings.items())
