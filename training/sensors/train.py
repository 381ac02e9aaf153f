"""`rtml train sensors`: simulate two plants, compare the detectors, save the one measured best.

No Feast here: the detector learns each machine's normal online, so what training fixes is the
scorer and its threshold (plus the Isolation Forest's trees and HST's warm start). Procedure:

1. Simulate a *fit* plant (seed s) and a *test* plant (seed s + 1): different machines, rates,
   load cycles and faults.
2. One pass of the shared step (`Detector.trace`) per plant; fit the Isolation Forest on the fit
   plant's normal readings (warm, outside every window) and export it to ONNX.
3. Per detector, the threshold is the highest one reaching `recall` of the fit plant's windows
   (equal recall: the comparison the issue asks for); then, with that threshold fixed, the test
   plant: recall, false alarms per hour, median delay per fault kind. Also the test plant's
   false alarms at several equal recalls, and the ratio to static limits + rate of change.
4. The detector with the fewest false alarms per hour at equal recall on the fit plant is saved
   (`artifacts/sensors/sensors-<kind>-<time>.zip`), its threshold frozen; `metrics.json` beside it;
   every detector with its own fixed threshold under `artifacts/sensors/all/`.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.sensors.detect import DEVIATIONS, KINDS, Detector, Params, Trace, new_hst
from pipelines.sensors.readings import Reading
from pipelines.sensors.simulate import Plant, simulate
from rtml.settings import Settings
from training.sensors import metrics as ev

RECALL = 0.8  # the operating point: 80 % of injected faults alerted
RECALLS = (0.5, 0.6, 0.7, 0.8, 0.9)
BASELINE = "static_roc"
QUIET_S = 3600.0  # faults after an hour: every window (and deviation) of a key has filled


def readings_of(plant: Plant) -> list[Reading]:
    """The plant's readings as `Reading`s, in time order."""
    r = plant.readings
    return [Reading(machine_id=m, channel=c, ts=t, value=v, reading_id=i) for m, c, t, v, i in
            zip(r["machine_id"], r["channel"], r["ts"], r["value"], r["reading_id"], strict=True)]


def fit_iforest(trace: Trace, normal: np.ndarray, *, seed: int = 0,
                max_rows: int = 50_000) -> bytes:
    """An Isolation Forest on normal z-vectors, as ONNX (input `z`, float32 [n, 6])."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import IsolationForest

    rows = trace.z[normal]
    rng = np.random.default_rng(seed)
    if len(rows) > max_rows:
        rows = rows[rng.choice(len(rows), max_rows, replace=False)]
    model = IsolationForest(n_estimators=100, max_samples=512, random_state=seed)
    model.fit(rows.astype(np.float32))
    onx = to_onnx(model, initial_types=[("z", FloatTensorType([None, len(DEVIATIONS)]))],
                  target_opset={"": 17, "ai.onnx.ml": 3})
    return onx.SerializeToString()


def train(settings: Settings, *, service_name: str | None = None, seeds: list[int] | None = None,
          machines: int = 6, hours: float = 2.5, rate_hz: float | None = 2.0,
          recall: float = RECALL, out_dir: Path | None = None) -> dict[str, Any]:
    """Simulate, compare the five detectors, save the best; returns the metrics.

    `service_name` is unused (no feature service is read: features are computed from readings);
    `seeds`: the first is the fit plant's seed (default 0).
    """
    seed = seeds[0] if seeds else 0
    out_dir = out_dir or settings.artifacts_dir / "sensors"
    t0 = time.perf_counter()
    plants = {name: simulate(machines=machines, hours=hours, seed=s, rate_hz=rate_hz,
                             quiet_s=QUIET_S)
              for name, s in (("fit", seed), ("test", seed + 1))}
    traces, layouts = {}, {}
    for name, plant in plants.items():
        traces[name] = Detector().trace(readings_of(plant))
        scored_from = float(plant.readings["ts"].min()) + QUIET_S
        layouts[name] = ev.layout(plant.readings, plant.windows, scored_from=scored_from)
    t_trace = time.perf_counter() - t0
    fit_normal = ~traces["fit"].warming & ~layouts["fit"].in_window
    onnx_model = fit_iforest(traces["fit"], fit_normal, seed=seed)

    results: dict[str, dict[str, Any]] = {}
    detectors: dict[str, Detector] = {}
    for kind in KINDS:
        det = Detector(params=Params(kind=kind),
                       onnx_model=onnx_model if kind == "iforest" else None,
                       hst=new_hst(seed) if kind == "hst" else None)
        t1 = time.perf_counter()
        fit_scores = det.scores(traces["fit"])
        hst_after_fit = copy.deepcopy(det.hst)
        test_scores = det.scores(traces["test"])
        thr = ev.threshold_for_recall(ev.window_max(layouts["fit"], fit_scores), recall)
        if thr is None:
            thr = float("inf")
        fit_eval = ev.evaluate(layouts["fit"], plants["fit"].windows, fit_scores, thr)
        test_eval = ev.evaluate(layouts["test"], plants["test"].windows, test_scores, thr)
        equal = {f"{r:.1f}": ev.at_recall(layouts["test"], plants["test"].windows, test_scores, r)
                 for r in RECALLS}
        results[kind] = {
            "threshold": thr, "fit": fit_eval, "test": test_eval,
            "test_equal_recall": {r: None if e is None else
                                  {k: e[k] for k in ("threshold", "recall", "false_alarms",
                                                     "false_alarms_per_hour")}
                                  for r, e in equal.items()},
            "score_seconds": time.perf_counter() - t1,
        }
        detectors[kind] = Detector(params=Params(kind=kind, threshold=thr),
                                   onnx_model=onnx_model if kind == "iforest" else None,
                                   hst=hst_after_fit if kind == "hst" else None)
    for res in results.values():
        res["fa_ratio_vs_baseline"] = _ratios(res, results[BASELINE])
    best = min(KINDS, key=lambda k: (results[k]["fit"]["false_alarms_per_hour"],
                                     -results[k]["fit"]["recall"]))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    model_path = out_dir / f"sensors-{best}-{stamp}.zip"
    m: dict[str, Any] = {
        "scenario": "sensors", "chosen": best, "threshold": results[best]["threshold"],
        "recall_target": recall, "baseline": BASELINE, "model_path": str(model_path),
        "device": "cpu",
        "plants": {name: {"seed": s, "machines": machines, "hours": hours,
                          "rate_hz": rate_hz or "1-10", "readings": len(p.readings),
                          "windows": len(p.windows)}
                   for (name, p), s in zip(plants.items(), (seed, seed + 1), strict=True)},
        "rules": {"grace_s": ev.GRACE_S, "latch_release_s": ev.RELEASE_S, "quiet_s": QUIET_S},
        "trace_seconds": t_trace, "detectors": results,
    }
    # Every detector with its fixed threshold under all/ (for `nab-score --model`), the chosen
    # one at the top, where `load_detector` looks.
    for kind, det in detectors.items():
        det.card = {k: m[k] for k in ("scenario", "chosen", "recall_target", "plants",
                                      "rules")} | {
            "kind": kind, "threshold": results[kind]["threshold"], "trained_at": stamp,
            "test": {k: results[kind]["test"][k] for k in ("recall", "false_alarms_per_hour")}}
        det.save(out_dir / "all" / f"sensors-{kind}-{stamp}.zip")
    detectors[best].save(model_path)
    m["all_models"] = str(out_dir / "all")
    (out_dir / "metrics.json").write_text(json.dumps(m, indent=1, default=_jsonable))
    return m


def _ratios(res: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """False alarms per hour relative to the baseline's, at each equal recall on the test plant."""
    out: dict[str, float | None] = {}
    for r, e in res["test_equal_recall"].items():
        b = base["test_equal_recall"][r]
        if e is None or b is None:
            out[r] = None
        elif b["false_alarms_per_hour"] == 0:
            out[r] = 0.0 if e["false_alarms_per_hour"] == 0 else float("inf")
        else:
            out[r] = e["false_alarms_per_hour"] / b["false_alarms_per_hour"]
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
