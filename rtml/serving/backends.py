"""Where the fraud model's trees run: native XGBoost, ONNX Runtime, or XGBoost on a CUDA GPU.

The same trees cost very different amounts per call: `inplace_predict` pays ~0.3 ms of fixed
overhead whatever the batch, ONNX Runtime ~0.01 ms for one row but about as much as XGBoost for
64. So the choice is made per call size from costs measured at load time (`choose`), not fixed.
The ONNX graph is made at training time (`to_onnx`) and refused there unless it matches the
native booster within `ONNX_TOLERANCE` (`check_onnx`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import xgboost as xgb

ONNX_TOLERANCE = 1e-5
BACKENDS = ("auto", "xgboost", "onnx", "xgboost-gpu")
# Cost model points: the single-row path (`/score`) and a full adaptive batch.
PROBE_ROWS = (1, 64)


class Backend(Protocol):
    """Anything that turns rows (float32, model column order) into fraud probabilities."""

    name: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities, one per row of `x`."""
        ...


@dataclass
class NativeBackend:
    """XGBoost's own predictor; `device` is `cpu` or `cuda` (a copy of the booster on the GPU)."""

    booster: xgb.Booster
    name: str = "xgboost"

    @classmethod
    def on(cls, booster: xgb.Booster, device: str) -> NativeBackend:
        """A single-threaded copy on `device`: the serving box shares its cores with HTTP."""
        copy = booster.copy()
        copy.set_param({"device": device, "nthread": 1})
        return cls(copy, "xgboost-gpu" if device.startswith("cuda") else "xgboost")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """`inplace_predict`: no DMatrix built per call."""
        return np.asarray(self.booster.inplace_predict(x, validate_features=False))


class OnnxBackend:
    """ONNX Runtime on one thread, sequential: the box's other core runs the HTTP loop."""

    name = "onnx"

    def __init__(self, model: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Column 1 of the `probabilities` output (the converter's [p(0), p(1)] pairs)."""
        return self.session.run(["probabilities"], {self.input: x})[0][:, 1]


def to_onnx(booster: xgb.Booster, n_features: int) -> bytes:
    """The booster as a serialized ONNX graph with one float32 input of `n_features` columns.

    onnxmltools reads split features as `f<index>`, so a copy without the names is converted; the
    columns keep the model's order, which serving takes from the model metadata anyway.
    """
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    unnamed = booster.copy()
    unnamed.feature_names = None
    unnamed.feature_types = None
    graph = convert_xgboost(unnamed, initial_types=[("input", FloatTensorType([None, n_features]))])
    return graph.SerializeToString()


class OnnxMismatchError(RuntimeError):
    """The ONNX graph does not reproduce the booster's scores: never serve it."""


def check_onnx(booster: xgb.Booster, model: bytes, x: np.ndarray,
               tolerance: float = ONNX_TOLERANCE) -> float:
    """Largest |ONNX - native| over the rows of `x`; `OnnxMismatchError` above `tolerance`."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    native = np.asarray(booster.inplace_predict(x, validate_features=False), dtype=np.float64)
    onnx = OnnxBackend(model).predict(x).astype(np.float64)
    diff = float(np.max(np.abs(onnx - native))) if len(x) else 0.0
    if not diff <= tolerance:  # NaN fails too
        worst = int(np.nanargmax(np.abs(onnx - native)))
        raise OnnxMismatchError(
            f"ONNX export differs from native XGBoost by {diff:.3g} (> {tolerance:g}) on "
            f"{len(x)} rows; worst row {worst}: onnx {onnx[worst]:.8f}, native {native[worst]:.8f}")
    return diff


def measure(backend: Backend, x: np.ndarray, *, repeat: int) -> float:
    """Median seconds per call of `backend` on `x` (after one warm-up call)."""
    backend.predict(x)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        backend.predict(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class Router:
    """Sends each call to the backend whose measured cost line is lowest for its row count.

    Each backend's cost is modelled as `fixed + per_row * n` through its two measured points
    (1 row, 64 rows); for n rows the cheapest line wins. `costs` maps name -> (fixed, per_row)
    seconds; `cutover` lists (first row count, backend) in increasing row counts.
    """

    backends: dict[str, Backend]
    costs: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cutover: list[tuple[int, Backend]] = []
        for n in range(1, max(PROBE_ROWS) * 16 + 1):
            best = self._cheapest(n)
            if not self.cutover or self.cutover[-1][1] is not best:
                self.cutover.append((n, best))

    def _cheapest(self, n: int) -> Backend:
        if len(self.backends) == 1 or not self.costs:
            return next(iter(self.backends.values()))
        name = min(self.costs, key=lambda k: self.costs[k][0] + self.costs[k][1] * n)
        return self.backends[name]

    def pick(self, n: int) -> Backend:
        """The backend for a call of `n` rows."""
        chosen = self.cutover[0][1]
        for first, backend in self.cutover:
            if n < first:
                break
            chosen = backend
        return chosen

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities from the backend chosen for `len(x)` rows."""
        return self.pick(len(x)).predict(x)

    def describe(self) -> str:
        """`onnx for 1-40 rows, xgboost from 41` plus the measured costs, for the start-up log."""
        spans = []
        for i, (first, backend) in enumerate(self.cutover):
            last = self.cutover[i + 1][0] - 1 if i + 1 < len(self.cutover) else None
            rows = f"{first}-{last} rows" if last else f"{first}+ rows"
            spans.append(f"{backend.name} for {rows}")
        measured = "; ".join(f"{k}: {f * 1e3:.3f} ms + {r * 1e3:.4f} ms/row"
                             for k, (f, r) in self.costs.items())
        return ", ".join(spans) + (f" (measured {measured})" if measured else "")


def choose(backends: list[Backend], n_features: int, *, repeat: int = 50,
           seed: int = 0) -> Router:
    """Measure each backend at 1 and 64 rows of plausible input and route by the cheaper line.

    A few hundred milliseconds at start-up. Inputs are non-negative (counts, amounts, rates),
    so the trees walk realistic paths rather than all-zero ones.
    """
    if len(backends) == 1:
        return Router({backends[0].name: backends[0]})
    rng = np.random.default_rng(seed)
    lo, hi = PROBE_ROWS
    x = rng.gamma(1.0, 20.0, size=(hi, n_features)).astype(np.float32)
    costs = {}
    for b in backends:
        t1 = measure(b, x[:lo], repeat=repeat)
        t64 = measure(b, x, repeat=max(5, repeat // 4))
        per_row = max(0.0, (t64 - t1) / (hi - lo))
        costs[b.name] = (max(0.0, t1 - per_row), per_row)
    return Router({b.name: b for b in backends}, costs)
