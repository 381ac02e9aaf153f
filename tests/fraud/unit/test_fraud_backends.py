"""ONNX Runtime and XGBoost score the same trees alike; calls go to the cheapest backend.

The GPU path runs only where CUDA is (never in CI).
"""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from rtml.serving.accel import cuda_available
from rtml.serving.backends import (
    ONNX_TOLERANCE,
    NativeBackend,
    OnnxBackend,
    OnnxMismatchError,
    Router,
    check_onnx,
    choose,
    to_onnx,
)

N_FEATURES = 14
NAMES = [f"feature_{i}" for i in range(N_FEATURES)]  # named like the real model, not f0..f13


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts, amounts and rates like the fraud features; the label depends on a few of them."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.5, 30.0, (n, N_FEATURES)).astype(np.float32)
    x[:, 3] = rng.random(n)  # a rate in [0, 1]
    logit = 0.04 * x[:, 0] - 0.02 * x[:, 1] + 3.0 * x[:, 3] - 3.0
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return x, y


def _train(seed: int, rounds: int = 60) -> xgb.Booster:
    x, y = _data(seed, 4000)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "seed": seed,
              "nthread": 1, "tree_method": "hist", "subsample": 0.8}
    return xgb.train(params, xgb.DMatrix(x, label=y, feature_names=NAMES), rounds)


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    return _train(seed=0)


@pytest.fixture(scope="module")
def onnx_model(booster) -> bytes:
    return to_onnx(booster, N_FEATURES)


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    x, _ = _data(seed=99, n=5000)
    return x


def test_onnx_matches_native_on_held_out_rows(booster, onnx_model, held_out):
    native = NativeBackend.on(booster, "cpu").predict(held_out)
    onnx = OnnxBackend(onnx_model).predict(held_out)
    assert onnx.shape == native.shape == (len(held_out),)
    np.testing.assert_allclose(onnx, native, rtol=0, atol=ONNX_TOLERANCE)
    assert native.std() > 0.05  # the trees really split: a constant model would prove nothing
    assert check_onnx(booster, onnx_model, held_out) <= ONNX_TOLERANCE


@pytest.mark.parametrize("n", [1, 2, 64, 1000])
def test_onnx_matches_native_at_every_call_size(booster, onnx_model, held_out, n):
    rows = np.ascontiguousarray(held_out[-n:])
    np.testing.assert_allclose(OnnxBackend(onnx_model).predict(rows),
                               NativeBackend.on(booster, "cpu").predict(rows),
                               rtol=0, atol=ONNX_TOLERANCE)


def test_onnx_of_another_model_fails_the_check_loudly(booster, held_out):
    other = to_onnx(_train(seed=1, rounds=20), N_FEATURES)
    with pytest.raises(OnnxMismatchError, match="differs from native XGBoost"):
        check_onnx(booster, other, held_out)


class _Fixed:
    """A backend whose answer names it, so routing is visible in the output."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)


def test_router_sends_each_call_size_to_its_cheapest_line():
    small, big = _Fixed("onnx", 0.1), _Fixed("xgboost", 0.2)
    # onnx: 0.01 ms + 0.01 ms/row; xgboost: 0.3 ms + 0.001 ms/row -> equal near 32 rows
    router = Router({"onnx": small, "xgboost": big},
                    {"onnx": (1e-5, 1e-5), "xgboost": (3e-4, 1e-6)})
    assert router.pick(1) is small and router.pick(30) is small
    assert router.pick(34) is big and router.pick(10_000) is big
    assert router.predict(np.zeros((1, 3))).tolist() == [0.1]
    assert router.predict(np.zeros((64, 3))).tolist() == [0.2] * 64
    assert router.describe().startswith("onnx for 1-32 rows, xgboost for 33+ rows")


def test_one_backend_takes_every_call_without_measuring():
    only = _Fixed("xgboost", 0.5)
    router = choose([only], N_FEATURES)
    assert router.costs == {} and router.pick(1) is only and router.pick(5000) is only


def test_auto_choice_scores_like_native_whatever_it_picks(booster, onnx_model, held_out):
    router = choose([NativeBackend.on(booster, "cpu"), OnnxBackend(onnx_model)], N_FEATURES,
                    repeat=5)
    assert set(router.costs) == {"xgboost", "onnx"}
    for n in (1, 64, 700):
        rows = np.ascontiguousarray(held_out[:n])
        np.testing.assert_allclose(router.predict(rows), booster.inplace_predict(rows),
                                   rtol=0, atol=ONNX_TOLERANCE)


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible to XGBoost")
def test_gpu_booster_matches_cpu(booster, held_out):
    gpu = NativeBackend.on(booster, "cuda")
    assert gpu.name == "xgboost-gpu"
    np.testing.assert_allclose(gpu.predict(held_out),
                               NativeBackend.on(booster, "cpu").predict(held_out),
                               rtol=0, atol=ONNX_TOLERANCE)
