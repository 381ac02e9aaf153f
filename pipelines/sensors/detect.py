"""The sensor anomaly detector: one class the flow, the service, the edge and training all run.

Per machine and channel a `Detector` keeps the rolling features (`features.RollingFeatures`) and a
learned picture of that key's normal: the recent distribution of six *deviations* that each anomaly
kind moves —

* ``value-mean_1m`` (spike), ``mean_10s-mean_1m`` (short level change), ``mean_1m-mean_1h``
  (level shift, slow drift), ``log_std_10s`` (stuck sensor: down; noise burst: up),
  ``roc_10s`` and ``roc_1m`` (steps and ramps) —

as their median and MAD over the key's recent readings (learned winsorised: an outlier enters
clipped to `learn_z`, so a spike teaches nothing while a lasting change becomes normal). Each
deviation becomes a robust z-score ``(d - median) / (1.4826 MAD)``, comparable across machines,
channels and units. That is what makes an unseen machine easy: it starts its own warm-up
(`warming_up=True`, never anomalous) and learns its normal online; nothing is keyed to a machine
seen in training.

A load change moves every channel of a machine at once, a sensor fault moves one: so before
scoring, each |z| is reduced by the machine's *context*, the median over its other channels of
their recent largest |z| (`Detector._in_context`). Without it the load cycles' transitions are
the detector's false alarms.

Scorers on top of the z-vector (`KINDS`), compared by `training/sensors/train.py`:

* ``robust_z``: the largest |z| (in context).
* ``hst``: River's HalfSpaceTrees, learning online, on the z-vector squashed into [0, 1]
  (``0.5 + 0.5 tanh(z / 8)``) because its half-spaces assume features in [0, 1].
* ``iforest``: an Isolation Forest fitted on simulated normal z-vectors, run through ONNX Runtime.
* ``static`` / ``static_roc``: the baselines plants use: fixed limits per key (frozen at the end of
  its warm-up, in robust units of the raw value), and those plus a limit on the 10 s rate of
  change. Per channel, without context: what a limit table in a plant does.

The model file (`save` / `load`) is a zip: ``detector.json`` (kind, threshold, parameters) plus
``iforest.onnx`` or ``hst.pkl`` when the kind needs one. Imports stay light: numpy, plus
onnxruntime or river only for the kind that needs it — never feast, bentoml, bytewax or redis.
"""

from __future__ import annotations

import json
import math
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.sensors.features import RollingFeatures
from pipelines.sensors.readings import Reading

KINDS = ("robust_z", "hst", "iforest", "static", "static_roc")
DEVIATIONS = ("value-mean_1m", "mean_10s-mean_1m", "mean_1m-mean_1h", "log_std_10s",
              "roc_10s", "roc_1m")
_VALUE, _ROC10 = len(DEVIATIONS), 4  # tracker columns: the deviations, then the raw value
# Seconds of a key's history before each column means something (the last: the raw value).
MATURE_S = (60.0, 60.0, 3600.0, 10.0, 10.0, 60.0, 0.0)
MIN_ROWS = 32  # mature rows a column needs before it has a z
# Context decay per deviation, in units of `context_tau_s`: the 1 h deviation of a channel that
# lags its load (temperature, by a minute) moves minutes after the others'.
_TAU_SHAPE = np.array([1.0, 1.0, 6.0, 1.0, 1.0, 3.0])
FORMAT_VERSION = 1
# artifacts/sensors/ of the repo this file is in (`rtml train sensors` writes there).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "sensors"
# Severity from the largest |z| (whatever the scorer): the same scale on every detector.
SEVERITY_Z = (12.0, 24.0)  # below the first: low; below the second: medium; else high


@dataclass(frozen=True)
class Verdict:
    """What the detector says about one reading."""

    score: float
    anomalous: bool
    severity: str  # "low" | "medium" | "high"
    drivers: dict[str, float]  # deviations that drove the score -> their robust z
    features: dict[str, float]  # the rolling features (and the value) as of this reading
    warming_up: bool


@dataclass(frozen=True)
class Trace:
    """The scorer-independent part of scoring many readings (`Detector.trace`)."""

    warming: np.ndarray  # bool per reading
    z: np.ndarray  # (n, 6) robust z of the deviations; NaN while warming up
    static: np.ndarray  # the static-limits score (NaN while warming up)
    static_roc: np.ndarray  # static limits + rate of change


@dataclass(frozen=True, kw_only=True)
class Params:
    """Knobs fixed at training time and stored in the model file."""

    kind: str = "robust_z"
    threshold: float = 8.0
    warmup_readings: int = 300  # a key scores nothing before this many readings ...
    warmup_seconds: float = 300.0  # ... and this much time (a load cycle is 5 to 20 min)
    history: int = 2048  # normal deviation vectors kept per key for the median/MAD
    refit_every: int = 128  # readings between two refits of the same column (8 when young)
    context: bool = True  # discount what the machine's other channels do at the same time
    context_tau_s: float = 20.0  # how long a channel's excursion stays in its machine's context
    context_floor: float = 4.0  # a quiet machine's channels peak around this |z|: not context
    context_weight: float = 1.5
    learn_z: float = 4.0  # deviations join the key's normal clipped to this many robust sigmas
    z_clip: float = 1e3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: one of {', '.join(KINDS)}")


class _Key:
    """One machine and channel: its windows, its normal deviations, its frozen static limits.

    Each deviation has an age at which it means something (`MATURE_S`: the 1 h deviation only
    once the key has an hour of readings; before that it compares a minute with a shorter and
    shorter past). Until then its z is 0 and its history holds nothing. The median and MAD of
    one column are refitted at a time, in turn, so no single reading pays for a full refit
    (the p99 of the per-reading cost stays near its mean).
    """

    __slots__ = ("rolling", "buf", "n", "filled", "first_ts", "median", "scale", "ready",
                 "mature_at", "next_col", "since", "static", "warm")

    def __init__(self, params: Params) -> None:
        cols = len(DEVIATIONS) + 1
        self.rolling = RollingFeatures()
        self.buf = np.zeros((params.history, cols))
        self.n = 0  # readings seen
        self.filled = 0  # rows written to buf (ring)
        self.first_ts: float | None = None
        self.median = np.zeros(cols)
        self.scale = np.ones(cols)
        self.ready = np.zeros(cols, dtype=bool)  # enough mature history for a z
        self.mature_at: list[int | None] = [None] * cols  # `filled` when the column matured
        self.next_col = 0
        self.since = 0
        self.static: tuple[float, float, float, float] | None = None  # med, scale, roc med, scale
        self.warm = True

    def add(self, row: np.ndarray, age: float) -> None:
        for i, mature in enumerate(MATURE_S):
            if self.mature_at[i] is None and age >= mature:
                self.mature_at[i] = self.filled
        self.buf[self.filled % len(self.buf)] = row
        self.filled += 1
        self.since += 1

    def refit_column(self, i: int) -> None:
        start = self.mature_at[i]
        if start is None:
            return
        count = self.filled - start
        size = len(self.buf)
        if count < MIN_ROWS:
            self.ready[i] = False
            return
        col = self.buf[:, i] if count >= size and self.filled >= size else \
            self.buf[np.arange(start, self.filled) % size, i]
        med = float(np.median(col))
        dev = np.abs(col - med)
        # The larger of two Gaussian-consistent spreads: the MAD, and the 95th percentile of
        # the deviations / 1.96. A load cycle makes some deviations bimodal (idle, running),
        # where the MAD sees only one mode and every switch would be an outlier.
        k = int(0.95 * (len(dev) - 1))
        mad = max(float(np.median(dev)) * 1.4826, float(np.partition(dev, k)[k]) / 1.96)
        # A MAD of 0 (quantised or constant data) must not make every change infinitely odd.
        floor = max(0.1 * float(col.std()), 1e-6 * (1.0 + abs(med)))
        self.median[i] = med
        self.scale[i] = max(mad, floor)
        self.ready[i] = True

    def refit(self) -> None:
        for i in range(len(self.median)):
            self.refit_column(i)
        self.since = 0

    def tick(self, every: int) -> None:
        """Refit the next column once `every` rows have come in since the last one."""
        if self.since >= every:
            self.refit_column(self.next_col)
            self.next_col = (self.next_col + 1) % len(self.median)
            self.since = 0


def deviations(f: Mapping[str, float], x: float) -> list[float]:
    """The six deviations (see the module docstring) from one reading's features."""
    eps = 1e-9 + 1e-7 * abs(f["mean_1h"])
    return [x - f["mean_1m"], f["mean_10s"] - f["mean_1m"], f["mean_1m"] - f["mean_1h"],
            math.log(f["std_10s"] + eps), f["roc_10s"], f["roc_1m"]]


def squash(z: np.ndarray) -> np.ndarray:
    """Robust z into [0, 1] for the scorers that assume bounded inputs (HST)."""
    return 0.5 + 0.5 * np.tanh(z / 8.0)


@dataclass
class Detector:
    """Stateful per machine and channel; learns online; one file for every path that scores."""

    params: Params = field(default_factory=Params)
    card: dict[str, Any] = field(default_factory=dict)  # training metrics, provenance
    onnx_model: bytes | None = None
    hst: Any = None
    keys: dict[tuple[str, str], _Key] = field(default_factory=dict)
    # machine -> channel -> (time, decaying peak of its largest |z|): the machine's context
    machines: dict[str, dict[str, tuple[float, np.ndarray]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._session: Any = None
        if self.params.kind == "iforest":
            if self.onnx_model is None:
                raise ValueError("an iforest detector needs its ONNX model")
            self._session = _onnx_session(self.onnx_model)
        if self.params.kind == "hst" and self.hst is None:
            self.hst = new_hst()

    # -- scoring ---------------------------------------------------------------------------------
    def update(self, reading: Reading) -> Verdict:
        """Count `reading`, score it against its key's normal, and learn from it if normal."""
        feats, row, zd = self._step(reading)
        if zd is None:
            return Verdict(score=0.0, anomalous=False, severity="low", drivers={},
                           features=feats, warming_up=True)
        score = self._score(self.keys[reading.key], row, zd)
        anomalous = score >= self.params.threshold
        zmax = float(np.max(np.abs(zd)))
        severity = "low" if zmax < SEVERITY_Z[0] else "medium" if zmax < SEVERITY_Z[1] else "high"
        return Verdict(score=score, anomalous=bool(anomalous), severity=severity,
                       drivers=_drivers(zd) if anomalous else {}, features=feats,
                       warming_up=False)

    def _step(self, reading: Reading) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
        """Features, the raw row and its robust z (None while warming up); learns if normal.

        What every scorer shares. Learning depends on the robust z only (`learn_z`), never on
        the scorer's own threshold, so a key's normal — and so every score — is the same whatever
        threshold is set: training sweeps thresholds over one pass.
        """
        key = self.keys.get(reading.key)
        if key is None:
            key = self.keys[reading.key] = _Key(self.params)
        feats = key.rolling.update(reading)
        x = reading.value
        feats["value"] = x
        row = np.empty(len(DEVIATIONS) + 1)
        row[: len(DEVIATIONS)] = deviations(feats, x)
        row[_VALUE] = x
        key.n += 1
        if key.first_ts is None:
            key.first_ts = reading.ts
        p = self.params
        age = reading.ts - key.first_ts
        if key.warm:
            key.add(row, age)
            key.tick(8)
            if key.n >= p.warmup_readings and age >= p.warmup_seconds:
                key.refit()
                key.warm = False
                key.static = (float(key.median[_VALUE]), float(key.scale[_VALUE]),
                              float(key.median[_ROC10]), float(key.scale[_ROC10]))
            return feats, row, None
        z = np.where(key.ready, np.clip((row - key.median) / key.scale, -p.z_clip, p.z_clip),
                     0.0)
        zd = z[: len(DEVIATIONS)]
        # Learn winsorised: a deviation beyond learn_z enters the history clipped to that bound.
        # One spike then moves nothing, while a change that persists (a new load regime, a
        # cycle longer than the warm-up) piles up at the bound and widens the MAD until it is
        # normal: a key never stays in permanent alarm.
        bound = p.learn_z * key.scale
        key.add(np.where(key.ready, np.clip(row, key.median - bound, key.median + bound), row),
                age)
        key.tick(max(p.refit_every // len(key.median), 1) if key.ready.all() else 8)
        if p.context:
            zd = self._in_context(reading, zd)
        return feats, row, zd

    def _in_context(self, reading: Reading, zd: np.ndarray) -> np.ndarray:
        """The z-vector less what the machine's other channels are doing right now.

        A load change moves every channel of a machine at once; a sensor fault moves one. So
        each |z| is reduced by the machine's context: the median, over its other channels, of
        their |z| of the same deviation (peaks decaying with `context_tau_s` x `_TAU_SHAPE`: a
        transition stays as long as it stays in the windows). One other channel's own fault
        does not move a median.
        """
        own = np.abs(zd)
        chans = self.machines.setdefault(reading.machine_id, {})
        decay = _TAU_SHAPE * self.params.context_tau_s
        t = reading.ts
        others = [peak * np.exp(-max(t - at, 0.0) / decay)
                  for ch, (at, peak) in chans.items() if ch != reading.channel]
        prev = chans.get(reading.channel)
        mine = own if prev is None else np.maximum(
            own, prev[1] * np.exp(-max(t - prev[0], 0.0) / decay))
        chans[reading.channel] = (t, mine)
        if not others:
            return zd
        ctx = np.median(np.array(others), axis=0)
        p = self.params
        # Only activity above a quiet machine's (its channels' peaks of noise) is context; it
        # is weighted above 1 because channels' z-scales differ by their own noise estimates.
        excess = p.context_weight * np.maximum(ctx - p.context_floor, 0.0)
        if not excess.any():
            return zd
        return np.sign(zd) * np.maximum(np.abs(zd) - excess, 0.0)

    def trace(self, readings: Iterable[Reading]) -> Trace:
        """The shared part of scoring for many readings (training's one pass over a data set).

        Per reading: warming up?, the robust z, and the two static baselines' scores. `scores`
        turns a trace into any scorer's scores exactly as `update` would have.
        """
        warm: list[bool] = []
        zs: list[np.ndarray] = []
        static: list[float] = []
        static_roc: list[float] = []
        nan_z = np.full(len(DEVIATIONS), np.nan)
        for reading in readings:
            _, row, zd = self._step(reading)
            warm.append(zd is None)
            zs.append(nan_z if zd is None else zd)
            limits, rate = (np.nan, np.nan) if zd is None else \
                _static(self.keys[reading.key], row)
            static.append(limits)
            static_roc.append(max(limits, rate))
        return Trace(warming=np.array(warm, dtype=bool),
                     z=np.array(zs).reshape(-1, len(DEVIATIONS)),
                     static=np.array(static), static_roc=np.array(static_roc))

    def scores(self, trace: Trace) -> np.ndarray:
        """This detector's score for every reading of `trace` (NaN while warming up)."""
        kind = self.params.kind
        if kind == "robust_z":
            return np.abs(trace.z).max(axis=1)
        if kind in ("static", "static_roc"):
            return getattr(trace, kind).copy()
        out = np.full(len(trace.z), np.nan)
        ok = ~trace.warming
        if kind == "iforest":
            if ok.any():
                res = self._session.run(None, {"z": trace.z[ok].astype(np.float32)})
                out[ok] = -np.asarray(res[-1], dtype=float).ravel()
            return out
        for i in np.flatnonzero(ok):
            x = dict(zip(DEVIATIONS, squash(trace.z[i]).tolist(), strict=True))
            out[i] = self.hst.score_one(x)
            self.hst.learn_one(x)
        return out

    def _score(self, key: _Key, row: np.ndarray, zd: np.ndarray) -> float:
        kind = self.params.kind
        if kind == "robust_z":
            return float(np.max(np.abs(zd)))
        if kind in ("static", "static_roc"):
            limits, rate = _static(key, row)
            return limits if kind == "static" else max(limits, rate)
        if kind == "hst":
            x = dict(zip(DEVIATIONS, squash(zd).tolist(), strict=True))
            s = float(self.hst.score_one(x))
            self.hst.learn_one(x)
            return s
        out = self._session.run(None, {"z": zd.astype(np.float32)[None, :]})
        return -float(np.asarray(out[-1]).ravel()[0])

    def warm_keys(self) -> int:
        """How many machine/channel keys have finished their warm-up."""
        return sum(not k.warm for k in self.keys.values())

    def reset(self) -> None:
        """Forget every key (the trained parts stay): for scoring a new data set."""
        self.keys.clear()
        self.machines.clear()

    # -- the model file --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model file (kind, threshold, parameters, trained parts; no per-key state)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("detector.json", json.dumps(
                {"format": FORMAT_VERSION, "params": asdict(self.params), "card": self.card},
                indent=2, default=str))
            if self.onnx_model is not None:
                z.writestr("iforest.onnx", self.onnx_model)
            if self.params.kind == "hst" and self.hst is not None:
                z.writestr("hst.pkl", pickle.dumps(self.hst))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Detector:
        """Read a model file written by `save`."""
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as z:
                meta = json.loads(z.read("detector.json"))
                names = set(z.namelist())
                onnx_model = z.read("iforest.onnx") if "iforest.onnx" in names else None
                hst = pickle.loads(z.read("hst.pkl")) if "hst.pkl" in names else None  # noqa: S301
        except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a sensors model file ({exc})") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: model format {meta.get('format')}, "
                             f"this code reads {FORMAT_VERSION}")
        return cls(params=Params(**meta["params"]), card=meta.get("card", {}),
                   onnx_model=onnx_model, hst=hst)


def _static(key: _Key, row: np.ndarray) -> tuple[float, float]:
    """(distance to the frozen limits, to the frozen rate-of-change limit), robust units."""
    med, scale, roc_med, roc_scale = key.static  # type: ignore[misc]
    return (float(abs(row[_VALUE] - med) / scale), float(abs(row[_ROC10] - roc_med) / roc_scale))


def _drivers(zd: np.ndarray, top: int = 3) -> dict[str, float]:
    order = np.argsort(-np.abs(zd))[:top]
    return {DEVIATIONS[i]: round(float(zd[i]), 3) for i in order if abs(zd[i]) >= 1.0}


def new_hst(seed: int = 0) -> Any:
    """A fresh HalfSpaceTrees over the squashed z-vector (limits [0, 1] per feature)."""
    from river.anomaly import HalfSpaceTrees

    return HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=seed,
                          limits={name: (0.0, 1.0) for name in DEVIATIONS})


def _onnx_session(model: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def newest_model(root: str | Path = DEFAULT_MODEL_DIR) -> Path:
    """The newest `*.zip` model file under `root` (what `rtml train sensors` writes)."""
    root = Path(root)
    found = sorted(root.glob("*.zip"), key=lambda p: (p.stat().st_mtime, p.name))
    if not found:
        raise FileNotFoundError(f"no sensors model under {root}/; train one: rtml train sensors")
    return found[-1]


def load_detector(path: str | Path | None = None, *, root: str | Path | None = None) -> Detector:
    """The detector in `path`, or the newest trained one under `root` (default artifacts/sensors).

    No silent default when nothing is trained: `FileNotFoundError` says how to train one
    (`Detector()` is the untrained robust-z detector, for a caller that wants it explicitly).
    """
    if path is not None:
        return Detector.load(path)
    return Detector.load(newest_model(root if root is not None else DEFAULT_MODEL_DIR))
