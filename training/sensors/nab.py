"""NAB scoring (Numenta Anomaly Benchmark), written here from its published description.

The rules (Lavin & Ahmad 2015, "Evaluating real-time anomaly detection algorithms"; NAB's README):

* Each labelled anomaly has a window (NAB's `combined_windows.json`: 10 % of the file's length
  divided by the number of anomalies, centred on the label). `windows_from_labels` builds them
  from bare label times; files that ship windows are used as they are.
* The first 15 % of rows, capped at 750 (15 % of 5,000, as NAB's own scorer does) are
  probationary: a detector is still learning, nothing there is scored — neither detections nor
  windows lying wholly inside it.
* A window with at least one detection scores once, by its earliest detection at relative
  position p in [-1, 0) (-1: the window's first row): ``A_TP * sigma(p) / sigma(-1)`` with the
  scaled sigmoid ``sigma(p) = 2 / (1 + exp(5 p)) - 1`` (so the earliest detection earns exactly
  A_TP, one at the last row nearly nothing). A window with none costs ``-A_FN``.
* A detection outside every window costs ``A_FP * sigma(d)``, d its distance past the previous
  window's right edge in units of that window's width (minus one); sigma is -1 from d >= 3 and
  for detections before any window. So a detection just after a window costs almost nothing.
* Standard profile: A_TP = 1, A_FP = 0.11, A_FN = 1. Normalised score
  ``100 (S - S_null) / (S_perfect - S_null)``: S_null (no detections) = -A_FN per scored window,
  S_perfect = A_TP per scored window. Over several files the raw, null and perfect scores are
  summed before normalising (NAB's corpus score).

A *detection* is a row flagged by the detector. For the sensors detector that is an alert: the
first row of a latched incident (`alerts`), what the alert path would send.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

STANDARD = {"tp": 1.0, "fp": 0.11, "fn": 1.0}
PROBATION = 0.15
PROBATION_CAP_ROWS = 5000
OUTSIDE, PROBATIONARY = -1, -2


def scaled_sigmoid(p: float) -> float:
    """NAB's scaled sigmoid: 0.987 at p = -1, 0 at p = 0, -1 from p = 3 on."""
    if p >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def probation_rows(n: int, fraction: float = PROBATION) -> int:
    """Rows at the start of a file that are not scored: 15 % of the file, at most 750."""
    return int(min(math.floor(fraction * n), fraction * PROBATION_CAP_ROWS))


@dataclass(frozen=True)
class Weights:
    """Per row, what a detection there is worth, and which window (if any) it falls in."""

    value: np.ndarray  # weighted score of a detection at this row
    window: np.ndarray  # window number, OUTSIDE (-1) or PROBATIONARY (-2)
    scored_windows: int  # windows with at least one scored row


def row_weights(n: int, windows: Sequence[tuple[int, int]], *, costs: dict[str, float] = STANDARD,
                probation: int | None = None) -> Weights:
    """The NAB value of a detection at each row, for windows given as (first, last) row indices."""
    probation = probation_rows(n) if probation is None else probation
    value = np.empty(n)
    window = np.full(n, OUTSIDE, dtype=int)
    max_tp = scaled_sigmoid(-1.0)
    spans = sorted(windows)
    prev_right: int | None = None
    prev_width = 0
    k = 0
    for i in range(n):
        while k < len(spans) and spans[k][1] < i:
            prev_right, prev_width = spans[k][1], spans[k][1] - spans[k][0] + 1
            k += 1
        if k < len(spans) and spans[k][0] <= i <= spans[k][1]:
            left, right = spans[k]
            width = right - left + 1
            value[i] = scaled_sigmoid(-(right - i + 1) / width) * costs["tp"] / max_tp
            window[i] = k
        else:
            if prev_right is None:
                d = 3.0
            else:
                d = abs(prev_right - i) / max(prev_width - 1, 1)
            value[i] = scaled_sigmoid(d) * costs["fp"]
    window[:probation] = PROBATIONARY
    scored = len({int(w) for w in window if w >= 0})
    return Weights(value=value, window=window, scored_windows=scored)


@dataclass(frozen=True)
class Score:
    """One file's (or several files') NAB result at one threshold."""

    raw: float
    null: float
    perfect: float
    windows: int
    windows_detected: int
    false_positives: int

    @property
    def normalised(self) -> float:
        """100 (S - S_null) / (S_perfect - S_null); 0 = no detections, 100 = perfect."""
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.raw + other.raw, self.null + other.null, self.perfect + other.perfect,
                     self.windows + other.windows, self.windows_detected + other.windows_detected,
                     self.false_positives + other.false_positives)


def score(weights: Weights, detections: np.ndarray, *,
          costs: dict[str, float] = STANDARD) -> Score:
    """NAB's score of boolean `detections` (one per row)."""
    det = np.asarray(detections, dtype=bool)
    fp_rows = det & (weights.window == OUTSIDE)
    raw = float(weights.value[fp_rows].sum())
    scored = sorted({int(w) for w in weights.window if w >= 0})
    detected = 0
    for w in scored:
        hits = np.flatnonzero(det & (weights.window == w))
        if len(hits):
            detected += 1
            raw += float(weights.value[hits[0]])
        else:
            raw -= costs["fn"]
    n = len(scored)
    return Score(raw=raw, null=-costs["fn"] * n, perfect=costs["tp"] * n, windows=n,
                 windows_detected=detected, false_positives=int(fp_rows.sum()))


def best_threshold(weights: Weights, scores: np.ndarray, *, max_candidates: int = 400,
                   costs: dict[str, float] = STANDARD) -> tuple[float, Score]:
    """The threshold maximising this file's score: the *per-file-optimised* result.

    An upper bound a deployed detector cannot know in advance; reported beside the fixed one.
    """
    finite = np.unique(scores[np.isfinite(scores)])
    if len(finite) > max_candidates:
        finite = np.unique(np.quantile(finite, np.linspace(0, 1, max_candidates)))
    best: tuple[float, Score] | None = None
    for thr in [*finite, np.inf]:
        s = score(weights, np.nan_to_num(scores, nan=-np.inf) >= thr, costs=costs)
        if best is None or s.raw > best[1].raw:
            best = (float(thr), s)
    assert best is not None
    return best


# -- files ---------------------------------------------------------------------------------------
def read_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, values) of a NAB-format CSV (`timestamp,value`, UTC)."""
    frame = pd.read_csv(path)
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} "
                         "(NAB format is timestamp,value)")
    ts = pd.to_datetime(frame["timestamp"], utc=True).astype("int64").to_numpy() / 1e9
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        bad = int(np.flatnonzero(np.isnan(values))[0])
        raise ValueError(f"{path}: row {bad + 2}: value is not a number")
    return ts, values


def windows_for(path: str | Path, windows_json: str | Path) -> list[tuple[float, float]]:
    """The file's windows (epoch s) from NAB's JSON, matched by file name.

    NAB's keys are `<category>/<file>.csv`; any folder part is ignored.
    """
    table = json.loads(Path(windows_json).read_text())
    name = Path(path).name
    found = [v for k, v in table.items() if Path(k).name == name]
    if not found:
        raise KeyError(f"{name}: not in {windows_json} (it has {', '.join(sorted(table))})")
    return [(_epoch(a), _epoch(b)) for a, b in found[0]]


def _epoch(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").value / 1e9


def to_rows(ts: np.ndarray, windows: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """Windows in time -> (first row at or after start, last row at or before end)."""
    out = []
    for start, end in windows:
        lo = int(np.searchsorted(ts, start, side="left"))
        hi = int(np.searchsorted(ts, end, side="right")) - 1
        if lo <= hi:
            out.append((lo, hi))
    return out


def windows_from_labels(ts: np.ndarray, labels: Sequence[float], *,
                        fraction: float = 0.10) -> list[tuple[int, int]]:
    """NAB's windows for bare labels: width 10 % of the file / number of labels, centred."""
    if not labels:
        return []
    width = int(fraction * len(ts) / len(labels))
    out = []
    for label in labels:
        centre = int(np.searchsorted(ts, label))
        out.append((max(centre - width // 2, 0), min(centre + width // 2, len(ts) - 1)))
    return out


# -- detectors -----------------------------------------------------------------------------------
def windowed_gaussian(values: np.ndarray, *, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's windowed-Gaussian baseline: ``1 - Q(|x - mean| / std)`` over the last `window` values.

    The Gaussian is refitted every `step` values once the window is full; 0 for the first value.
    """
    out = np.zeros(len(values))
    mean = std = None
    data: list[float] = []
    pending: list[float] = []
    for i, x in enumerate(values):
        if mean is not None:
            z = abs(x - mean) / std if std > 0 else (0.0 if x == mean else math.inf)
            out[i] = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        if len(data) < window:
            data.append(float(x))
            mean, std = float(np.mean(data)), float(np.std(data))
        else:
            pending.append(float(x))
            if len(pending) == step:
                data = data[step:] + pending
                pending = []
                mean, std = float(np.mean(data)), float(np.std(data))
    return out


def alerts(flags: np.ndarray, *, release_rows: int) -> np.ndarray:
    """The first flagged row of each incident (flags no more than `release_rows` apart)."""
    flags = np.asarray(flags, dtype=bool)
    out = np.zeros(len(flags), dtype=bool)
    last = -(10 ** 12)
    for i in np.flatnonzero(flags):
        if i - last > release_rows:
            out[i] = True
        last = i
    return out


def replay_times(ts: np.ndarray, *, real_time: bool = False) -> np.ndarray:
    """The times the detector sees: by default one row per second (the median spacing -> 1 s).

    The detector's windows (10 s, 1 min, 1 h) are sized for plant sensors at 1 to 10 Hz; NAB's
    files are sampled every 5 minutes to an hour, where every window but the hour would hold one
    reading. Replaying a file at one row per second is a fixed rule for every file (never tuned
    per file); `real_time` keeps the file's own timestamps.
    """
    if real_time or len(ts) < 2:
        return ts
    spacing = float(np.median(np.diff(ts)))
    return ts[0] + (ts - ts[0]) / spacing if spacing > 0 else ts


RELEASE_ROWS = 30  # the alert latch (30 s at one row per second): one alert per incident


def detector_scores(detector: object, ts: np.ndarray, values: np.ndarray, *, name: str,
                    real_time: bool = False) -> np.ndarray:
    """The sensors detector's score for every row (NaN while it warms up), fresh state."""
    from pipelines.sensors.detect import Detector
    from pipelines.sensors.readings import Reading

    assert isinstance(detector, Detector)
    detector.reset()
    times = replay_times(ts, real_time=real_time)
    trace = detector.trace(Reading(machine_id=name, channel="value", ts=float(t), value=float(v),
                                   reading_id=str(i))
                           for i, (t, v) in enumerate(zip(times, values, strict=True)))
    return detector.scores(trace)


def evaluate_file(csv: str | Path, windows_json: str | Path, detector: object, *,
                  real_time: bool = False) -> dict:
    """The detector on one NAB file: at its fixed threshold and per-file-optimised.

    Beside it the windowed-Gaussian baseline, per-file-optimised (its most favourable reading).
    """
    ts, values = read_csv(csv)
    spans = to_rows(ts, windows_for(csv, windows_json))
    weights = row_weights(len(ts), spans)
    scores = detector_scores(detector, ts, values, name=Path(csv).stem, real_time=real_time)
    threshold = detector.params.threshold  # type: ignore[attr-defined]
    flags = np.nan_to_num(scores, nan=-np.inf) >= threshold
    fixed = score(weights, alerts(flags, release_rows=RELEASE_ROWS))
    # Optimised over thresholds, detections still being alerts (the latch is part of the system).
    best_thr, best = _best_alerts(weights, scores, also=(threshold,))
    gauss = windowed_gaussian(values)
    g_thr, g_best = best_threshold(weights, gauss)
    raised = alerts(flags, release_rows=RELEASE_ROWS)
    detected_rows = [int(np.flatnonzero(raised & (weights.window == w))[0])
                     for w in range(len(spans)) if (raised & (weights.window == w)).any()]
    return {
        "file": str(csv), "rows": len(ts), "probation_rows": probation_rows(len(ts)),
        "detector": detector.params.kind, "threshold": threshold,  # type: ignore[attr-defined]
        "score": fixed.normalised, "windows": fixed.windows,
        "windows_detected": fixed.windows_detected, "false_positives": fixed.false_positives,
        "detections_in_windows_at": [pd.Timestamp(ts[i], unit="s", tz="UTC").isoformat()
                                     for i in detected_rows],
        "raw": fixed.raw,
        "per_file_optimised": {"score": best.normalised, "threshold": best_thr,
                               "windows_detected": best.windows_detected,
                               "false_positives": best.false_positives},
        "windowed_gaussian_per_file_optimised": {
            "score": g_best.normalised, "threshold": g_thr,
            "windows_detected": g_best.windows_detected,
            "false_positives": g_best.false_positives},
        "_parts": {"fixed": fixed, "optimised": best, "gaussian": g_best},
    }


def _best_alerts(weights: Weights, scores: np.ndarray, *, also: Sequence[float] = (),
                 max_candidates: int = 300) -> tuple[float, Score]:
    finite = np.unique(scores[np.isfinite(scores)])
    if len(finite) > max_candidates:
        finite = np.unique(np.quantile(finite, np.linspace(0, 1, max_candidates)))
    finite = np.unique(np.concatenate([finite, np.asarray(also, dtype=float)]))
    best: tuple[float, Score] | None = None
    for thr in [*finite, np.inf]:
        flags = np.nan_to_num(scores, nan=-np.inf) >= thr
        s = score(weights, alerts(flags, release_rows=RELEASE_ROWS))
        if best is None or s.raw > best[1].raw:
            best = (float(thr), s)
    assert best is not None
    return best
