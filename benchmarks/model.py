"""The same trained model for every benchmark target, loaded straight from the BentoML store.

The comparison servers (naive, stock) and the in-process floor score with exactly the booster,
feature order and thresholds the fraud service serves; only the way features reach it differs.
Loaded here rather than through `bentos/fraud` so the harness measures the service without
depending on its internals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import xgboost as xgb

REASONS = 3


@dataclass
class BenchModel:
    """Booster, its contract (feature service, ordered features, thresholds) and an ONNX twin.

    The ONNX twin is what training stored with the model, when it did: a serialized graph in the
    model's custom objects (`onnx`), or an `.onnx` file in the model's folder.
    """

    booster: xgb.Booster
    version: str
    feature_service: str
    features: list[str]
    review: float
    decline: float
    onnx: bytes | Path | None

    @classmethod
    def load(cls, tag: str) -> BenchModel:
        """From the BentoML model store (the newest `fraud_model` for `fraud_model:latest`)."""
        ref = bentoml.models.get(tag)
        booster = bentoml.xgboost.load_model(ref)
        booster.set_param({"nthread": 1})  # as served: one request, one core
        meta: dict[str, Any] = ref.info.metadata
        files = sorted(Path(ref.path).rglob("*.onnx"))
        onnx = ref.custom_objects.get("onnx") or (files[0] if files else None)
        return cls(booster=booster, version=str(ref.tag), feature_service=meta["feature_service"],
                   features=list(meta["features"]), review=float(meta["thresholds"]["review"]),
                   decline=float(meta["thresholds"]["decline"]), onnx=onnx)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Native XGBoost scores for rows of `x` (float32, columns in `features` order)."""
        return np.asarray(self.booster.inplace_predict(x, validate_features=False))

    def decide(self, score: float) -> str:
        """Approve | review | decline with the thresholds stored at training time."""
        if score >= self.decline:
            return "decline"
        return "review" if score >= self.review else "approve"

    def answer_timed(self, transaction_id: str, values: dict[str, float], *, t0: float,
                     timings: dict[str, float]) -> dict[str, Any]:
        """Score `values` (feature name -> value) and record the features/model stage times.

        `t0` is when the feature fetch started; it ended now.
        """
        t1 = time.perf_counter()
        x = np.asarray([[values[f] for f in self.features]], dtype=np.float32)
        answer = self.answer(transaction_id, x)
        timings["features"] = (t1 - t0) * 1000
        timings["model"] = (time.perf_counter() - t1) * 1000
        return answer

    def answer(self, transaction_id: str, x: np.ndarray) -> dict[str, Any]:
        """The fraud service's answer shape for one row, reasons (TreeSHAP) for flagged rows."""
        score = float(self.predict(x)[0])
        reasons: list[dict[str, Any]] = []
        if score >= self.review:  # the same extra work the service does for flagged rows
            contrib = self.booster.predict(xgb.DMatrix(x, feature_names=self.features),
                                           pred_contribs=True, validate_features=False)[0]
            order = np.argsort(-contrib[:-1])[:REASONS]
            reasons = [{"feature": self.features[i], "value": float(x[0, i]),
                        "contribution": round(float(contrib[i]), 4)}
                       for i in order if contrib[i] > 0]
        return {"transaction_id": transaction_id, "decision": self.decide(score),
                "score": round(score, 6), "fallback": False, "fallback_reason": None,
                "model_version": self.version, "reasons": reasons}


def onnx_session(model: bytes | Path) -> Any:
    """An ONNX Runtime session tuned for single rows (one thread, no spinning)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def server_timing(timings: dict[str, float]) -> str:
    """`Server-Timing` value in the fraud service's format (`name;dur=ms`)."""
    return ", ".join(f"{k};dur={v:.3f}" for k, v in timings.items())
