"""Event-level scores of a detector on a simulated plant: recall, false alarms per hour, delay.

What an operator sees is alerts, not flagged readings, so everything here is per event:

* An *incident* is a run of flagged readings on one machine/channel with no gap longer than
  `release_s` (the latch the alert path applies: one incident, one alert).
* A labelled window is *detected* when some reading of its key inside ``[start, end + grace_s]`` is
  flagged; its *delay* is that first flagged reading's time minus the window's start. The grace
  covers what a fault leaves in the features after it ends (a spike stays 10 s in the 10 s window,
  a shift's end is a step back).
* A *false alarm* is an incident that starts outside every ``[start, end + grace_s]`` of its key.

Because a window is detected exactly when the maximum score over its span reaches the threshold,
recall as a function of the threshold is exact from those maxima, and "at equal recall" means:
each detector at the highest threshold that still reaches the recall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.sensors.simulate import Window

GRACE_S = 60.0
RELEASE_S = 30.0


@dataclass(frozen=True)
class Layout:
    """A plant's readings grouped by key, once, for fast threshold sweeps."""

    key_of: np.ndarray  # key code per reading
    ts: np.ndarray
    keys: list[tuple[str, str]]
    window_key: np.ndarray  # key code per window
    window_idx: list[np.ndarray]  # reading indices inside [start, end + grace] per window
    in_window: np.ndarray  # bool per reading: inside some window (+ grace) of its own key
    hours: float  # scored plant time (h), after the warm-up
    machines: int


def layout(readings: pd.DataFrame, windows: Sequence[Window], *, scored_from: float,
           grace_s: float = GRACE_S) -> Layout:
    """Index the readings by key and window; `scored_from`: the epoch s scoring starts."""
    pairs = list(zip(readings["machine_id"], readings["channel"], strict=True))
    codes, uniques = pd.factorize(pd.Series(pairs, dtype=object))
    keys = [tuple(k) for k in uniques]
    ts = readings["ts"].to_numpy(dtype=float)
    code_of = {k: i for i, k in enumerate(keys)}
    in_window = np.zeros(len(ts), dtype=bool)
    window_idx, window_key = [], []
    by_key = {c: np.flatnonzero(codes == c) for c in range(len(keys))}
    for w in windows:
        c = code_of[(w.machine_id, w.channel)]
        rows = by_key[c]
        lo = np.searchsorted(ts[rows], w.start, side="left")
        hi = np.searchsorted(ts[rows], w.end + grace_s, side="right")
        idx = rows[lo:hi]
        window_idx.append(idx)
        window_key.append(c)
        in_window[idx] = True
    end = float(ts.max()) if len(ts) else scored_from
    return Layout(key_of=codes, ts=ts, keys=keys, window_key=np.array(window_key, dtype=int),
                  window_idx=window_idx, in_window=in_window,
                  hours=max(end - scored_from, 0.0) / 3600.0,
                  machines=len({k[0] for k in keys}))


def window_max(lay: Layout, scores: np.ndarray) -> np.ndarray:
    """The largest score inside each window (+ grace); -inf where the window holds no score."""
    out = np.full(len(lay.window_idx), -np.inf)
    for i, idx in enumerate(lay.window_idx):
        vals = scores[idx]
        vals = vals[~np.isnan(vals)]
        if len(vals):
            out[i] = vals.max()
    return out


def false_alarms(lay: Layout, flags: np.ndarray, *, release_s: float = RELEASE_S) -> int:
    """Incidents (latched runs of flags per key) that start outside every window of their key."""
    idx = np.flatnonzero(flags)
    if not len(idx):
        return 0
    order = np.lexsort((lay.ts[idx], lay.key_of[idx]))
    idx = idx[order]
    keys, ts = lay.key_of[idx], lay.ts[idx]
    new = np.ones(len(idx), dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]) | (np.diff(ts) > release_s)
    return int(np.count_nonzero(new & ~lay.in_window[idx]))


def threshold_for_recall(wmax: np.ndarray, recall: float) -> float | None:
    """The highest threshold at which at least `recall` of the windows are detected."""
    if not len(wmax):
        return None
    need = math.ceil(recall * len(wmax) - 1e-9)
    ranked = np.sort(wmax)[::-1]
    if need < 1:
        return float(ranked[0]) + 1e-9
    thr = ranked[need - 1]
    return None if not np.isfinite(thr) else float(thr)


def evaluate(lay: Layout, windows: Sequence[Window], scores: np.ndarray, threshold: float, *,
             release_s: float = RELEASE_S) -> dict:
    """Recall, false alarms (count, per plant-hour, per machine-hour), delays, per kind too."""
    flags = np.nan_to_num(scores, nan=-np.inf) >= threshold
    fa = false_alarms(lay, flags, release_s=release_s)
    per_kind: dict[str, dict] = {}
    detected = 0
    for w, idx in zip(windows, lay.window_idx, strict=True):
        hit = idx[flags[idx]]
        entry = per_kind.setdefault(w.kind, {"windows": 0, "detected": 0, "delays": []})
        entry["windows"] += 1
        if len(hit):
            detected += 1
            entry["detected"] += 1
            entry["delays"].append(float(lay.ts[hit].min() - w.start))
    kinds = {}
    for kind, e in sorted(per_kind.items()):
        kinds[kind] = {"windows": e["windows"], "detected": e["detected"],
                       "recall": e["detected"] / e["windows"],
                       "median_delay_s": float(np.median(e["delays"])) if e["delays"] else None}
    n = len(windows)
    return {"threshold": float(threshold), "windows": n, "detected": detected,
            "recall": detected / n if n else 0.0, "false_alarms": fa,
            "false_alarms_per_hour": fa / lay.hours if lay.hours else 0.0,
            "false_alarms_per_machine_hour":
                fa / (lay.hours * lay.machines) if lay.hours and lay.machines else 0.0,
            "hours": lay.hours, "machines": lay.machines, "per_kind": kinds}


def at_recall(lay: Layout, windows: Sequence[Window], scores: np.ndarray,
              recall: float) -> dict | None:
    """`evaluate` at the highest threshold reaching `recall`; None when it is unreachable."""
    thr = threshold_for_recall(window_max(lay, scores), recall)
    return None if thr is None else evaluate(lay, windows, scores, thr)
