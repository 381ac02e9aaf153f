"""Model backends side by side: one row and a batch of 64, the same trees, no HTTP.

    python -m benchmarks.backends            # after `rtml train fraud`; RTML_* as for serving

Times each backend the serving model can use here (XGBoost `inplace_predict`, ONNX Runtime on
one thread, XGBoost on CUDA when present) plus TreeSHAP reasons, and prints what
`RTML_FRAUD__MODEL_BACKEND=auto` would route where. Results to benchmarks/results/backends-*.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.record import RESULTS, Recorder
from bentos.fraud.model import FraudModel
from rtml.serving.accel import cuda_available
from rtml.serving.backends import Backend, NativeBackend, OnnxBackend
from rtml.settings import Settings


def _time(fn, repeat: int) -> dict[str, float]:
    """p50/p99 microseconds per call after a warm-up."""
    for _ in range(10):
        fn()
    out = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return {"p50_us": float(np.percentile(out, 50) * 1e6),
            "p99_us": float(np.percentile(out, 99) * 1e6)}


def main(settings: Settings, *, repeat: int, out_dir: Path = RESULTS) -> dict:
    """Measure, print a markdown table, write the JSON; returns the result."""
    rec = Recorder("backends", settings)
    model = FraudModel.load(settings.model_tag, backend="auto")
    from bentoml import models

    onnx = models.get(settings.model_tag).custom_objects.get("onnx")
    backends: list[Backend] = [NativeBackend.on(model.booster, "cpu")]
    if onnx is not None:
        backends.append(OnnxBackend(onnx))
    if cuda_available():
        backends.append(NativeBackend.on(model.booster, "cuda"))
    rng = np.random.default_rng(0)
    x = rng.gamma(1.0, 20.0, size=(64, len(model.features))).astype(np.float32)
    rows = []
    with rec.window("backends"):
        for b in backends:
            for n in (1, 64):
                xs = np.ascontiguousarray(x[:n])
                rows.append({"backend": b.name, "rows": n,
                             **_time(lambda b=b, xs=xs: b.predict(xs), repeat)})
        for n in (1, 64):
            xs = np.ascontiguousarray(x[:n])
            rows.append({"backend": "treeshap (reasons)", "rows": n,
                         **_time(lambda xs=xs: model.contributions(xs), max(50, repeat // 10))})
    result = {
        "cuda": cuda_available(), "model": model.version, "features": len(model.features),
        "trees": model.booster.num_boosted_rounds(), "results": rows,
        "auto": model.router.describe(),
    }
    print("| backend | rows | p50 µs | p99 µs | per row µs (p50) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['rows']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | "
              f"{r['p50_us'] / r['rows']:.1f} |")
    print(f"\nauto: {result['auto']}")
    print(f"-> {rec.write(dict(result), out_dir=out_dir)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    main(Settings(scenario="fraud"), repeat=args.repeat, out_dir=args.results_dir)
