"""*floor*: what one score costs with no HTTP at all — a raw Redis read and the model, in-process.

Per call: one pipelined HMGET per view of the model's FeatureService (rtml's `OnlineReader`,
blocking client), the vector in the model's column order, then the model: native XGBoost
`inplace_predict`, and ONNX Runtime too when training stored an ONNX graph with the model (its
custom objects, or an `.onnx` file in its folder). Calls run back to back in one thread; the
floor is the faster backend by median. Nothing a server could do on top of this is free, so this
bounds what rtml can reach.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import redis

from benchmarks.load import histogram, percentiles
from benchmarks.model import BenchModel, onnx_session
from rtml.features import OnlineReader, load_store
from rtml.settings import Settings


def _onnx_predict(session: Any) -> Any:
    name = session.get_inputs()[0].name

    def predict(x: np.ndarray) -> np.ndarray:
        out = session.run(None, {name: x})[-1]  # probabilities: the classifier's last output
        out = np.asarray(out)
        return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.ravel()

    return predict


def measure_floor(settings: Settings, requests: list[dict[str, Any]], *,
                  duration_s: float) -> dict[str, Any]:
    """Back-to-back calls over `requests` (cycled) for `duration_s`; per-call percentiles."""
    model = BenchModel.load(settings.fraud_model_tag)
    with warnings.catch_warnings():  # Feast's registry load warns about its own dependencies
        warnings.simplefilter("ignore")
        # Every declared no-history default is 0.0 (bentos/fraud/service.py DEFAULT_FEATURES).
        reader = OnlineReader(store=load_store(settings), service_name=model.feature_service,
                              defaults=dict.fromkeys(model.features, 0.0))
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port)
    backends = {"native": model.predict}
    if model.onnx is not None:
        backends["onnx"] = _onnx_predict(onnx_session(model.onnx))
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in requests]
    for row in rows[:50]:  # connection, predictor and allocator warm-up
        x = np.asarray([reader.vector(reader.read_sync(client, [row])[0])], dtype=np.float32)
        for predict in backends.values():
            predict(x)
    read_ms: list[float] = []
    model_ms: dict[str, list[float]] = {k: [] for k in backends}
    max_diff = 0.0
    t_end = time.perf_counter() + duration_s
    i = 0
    while time.perf_counter() < t_end:
        row = rows[i % len(rows)]
        i += 1
        t0 = time.perf_counter()
        x = np.asarray([reader.vector(reader.read_sync(client, [row])[0])], dtype=np.float32)
        read_ms.append((time.perf_counter() - t0) * 1000)
        scores = {}
        for name, predict in backends.items():
            t1 = time.perf_counter()
            scores[name] = float(predict(x)[0])
            model_ms[name].append((time.perf_counter() - t1) * 1000)
        if "onnx" in scores:
            max_diff = max(max_diff, abs(scores["onnx"] - scores["native"]))
    client.close()
    read = np.asarray(read_ms)
    per_backend = {name: read + np.asarray(ms) for name, ms in model_ms.items()}
    best = min(per_backend, key=lambda k: float(np.median(per_backend[k])))
    lat = per_backend[best]
    return {
        "label": "floor", "backend": best, "target_rps": 0.0,
        "achieved_rps": len(lat) / duration_s, "requests": len(lat),
        "latency_ms": percentiles(lat), "errors": {}, "fallbacks": 0, "fallback_reasons": {},
        "server_stage_ms_p50": {"features": float(np.median(read)),
                                "model": float(np.median(model_ms[best])),
                                "total": float(np.median(lat))},
        "server_stage_ms_p99": {"features": float(np.percentile(read, 99)),
                                "model": float(np.percentile(model_ms[best], 99)),
                                "total": float(np.percentile(lat, 99))},
        "backends": {name: {"model_ms": percentiles(ms), "total_ms": percentiles(per_backend[name])}
                     for name, ms in model_ms.items()},
        "onnx_max_abs_diff": max_diff if "onnx" in backends else None,
        "histogram": histogram(lat),
    }
