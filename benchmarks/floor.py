"""*floor*: what one score costs with no HTTP at all — a raw Redis read and the model, in-process.

Per call: one pipelined HMGET per view of the model's FeatureService (rtml's `OnlineReader`,
blocking client), the vector in the model's column order, then the fraud service's own model
code (`benchmarks.model`: the backend the service would choose for one row, TreeSHAP reasons on
one thread for flagged rows). Calls run back to back in one thread. Nothing a server could do on
top of this is free, so this bounds what rtml can reach.
"""

from __future__ import annotations

import gc
import time
import warnings
from typing import Any

import numpy as np

from benchmarks.load import histogram, percentiles
from benchmarks.model import answer, load_model
from feature_repo.fraud.request_features import ON_DEMAND
from rtml.features.online import OnlineReader, load_store
from rtml.redis import connect
from rtml.settings import Settings


def measure_floor(settings: Settings, requests: list[dict[str, Any]], *,
                  duration_s: float) -> dict[str, Any]:
    """Back-to-back calls over `requests` (cycled) for `duration_s`; per-call percentiles."""
    model = load_model(settings)
    with warnings.catch_warnings():  # Feast's registry load warns about its own dependencies
        warnings.simplefilter("ignore")
        # Every declared no-history default is 0.0 (bentos/fraud/service.py DEFAULT_FEATURES).
        reader = OnlineReader(store=load_store(settings), service_name=model.feature_service,
                              defaults=dict.fromkeys(model.features, 0.0), on_demand=ON_DEMAND)
    client = connect(settings)
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in requests]
    for row in rows[:50]:  # connection, predictor and allocator warm-up
        answer(model, row["transaction_id"], reader.vector(reader.read_sync(client, [row])[0]))
    read_ms: list[float] = []
    model_ms: list[float] = []
    decisions: dict[str, int] = {}
    gc.collect()
    gc.freeze()  # as every server here does after start-up (see benchmarks.httpapp)
    t_end = time.perf_counter() + duration_s
    i = 0
    while time.perf_counter() < t_end:
        row = rows[i % len(rows)]
        i += 1
        t0 = time.perf_counter()
        vector = reader.vector(reader.read_sync(client, [row])[0])
        t1 = time.perf_counter()
        decision = answer(model, row["transaction_id"], vector)["decision"]
        t2 = time.perf_counter()
        read_ms.append((t1 - t0) * 1000)
        model_ms.append((t2 - t1) * 1000)
        decisions[decision] = decisions.get(decision, 0) + 1
    gc.unfreeze()
    client.close()
    read, mod = np.asarray(read_ms), np.asarray(model_ms)
    lat = read + mod
    return {
        "label": "floor", "backend": model.backend_for(1), "backends_used": {
            model.backend_for(1): len(lat)}, "model_versions": {model.version: len(lat)},
        "target_rps": 0.0, "achieved_rps": len(lat) / duration_s, "requests": len(lat),
        "latency_ms": percentiles(lat), "errors": {}, "fallbacks": 0, "fallback_reasons": {},
        "decisions": decisions,
        "server_stage_ms_p50": {"features": float(np.median(read)),
                                "model": float(np.median(mod)), "total": float(np.median(lat))},
        "server_stage_ms_p99": {"features": float(np.percentile(read, 99)),
                                "model": float(np.percentile(mod, 99)),
                                "total": float(np.percentile(lat, 99))},
        "histogram": histogram(lat),
    }
