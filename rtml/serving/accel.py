"""Which device XGBoost should use: CUDA when a GPU is visible, the CPU otherwise."""

from __future__ import annotations

import functools


@functools.cache
def cuda_available() -> bool:
    """True when NVML reports at least one GPU and this XGBoost build has CUDA."""
    try:
        import pynvml
        import xgboost as xgb

        if not xgb.build_info().get("USE_CUDA"):
            return False
        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library: a CPU machine
        return False


def xgboost_device(preference: str = "auto") -> str:
    """`cuda` or `cpu` for XGBoost's `device` parameter."""
    if preference != "auto":
        return preference
    return "cuda" if cuda_available() else "cpu"
