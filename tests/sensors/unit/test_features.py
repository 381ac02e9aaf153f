"""Rolling features against a brute-force numpy computation, and against the kit's tile engine."""

from datetime import UTC, datetime

import numpy as np
import pytest

from pipelines.sensors.features import SPEC, RollingFeatures, feature_names
from pipelines.sensors.readings import Reading
from rtml.features.windows import WindowState


def readings(n=4000, seed=5):
    rng = np.random.default_rng(seed)
    ts = 1_767_225_603.3 + np.cumsum(rng.exponential(1.2, n))  # irregular, ~80 min
    xs = 20 + np.cumsum(rng.normal(0, 0.3, n)) + rng.normal(0, 1, n)
    return ts, xs


def brute(ts, xs, i):
    """Every feature of reading i from the raw arrays (all earlier readings counted)."""
    t, x = ts[: i + 1], xs[: i + 1]
    now = ts[i]
    out = {}
    ring = t > now - 10.0
    tile = np.floor(t / 10).astype(int)
    current = int(np.floor(now / 10))
    masks = {"10s": ring, "1m": tile >= current - 5, "1h": tile >= current - 359}
    for w, m in masks.items():
        v, tt = x[m], t[m]
        out[f"mean_{w}"] = v.mean()
        out[f"std_{w}"] = v.std()
        out[f"min_{w}"] = v.min()
        out[f"max_{w}"] = v.max()
        dt = -(tt - now).mean()  # relative times: epoch seconds lose precision in a mean
        out[f"roc_{w}"] = (xs[i] - v.mean()) / dt if dt > 1e-9 else 0.0
    return out


def test_features_equal_a_brute_force_computation_at_every_reading():
    ts, xs = readings()
    f = RollingFeatures()
    checked = 0
    for i, (t, x) in enumerate(zip(ts, xs, strict=True)):
        got = f.update(Reading("m1", "vibration", float(t), float(x), f"r{i}"))
        if i % 7 and i < len(ts) - 3:  # every 7th reading, and the last ones
            continue
        want = brute(ts, xs, i)
        assert list(got) == feature_names()
        for name in feature_names():
            assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-7), (i, name)
        checked += 1
    assert checked > 500


def test_the_tiled_windows_equal_the_kits_engine():
    ts, xs = readings(n=1500, seed=9)
    f = RollingFeatures()
    kit = WindowState(SPEC)
    origin = ts[0]
    for i, (t, x) in enumerate(zip(ts, xs, strict=True)):
        got = f.update(Reading("m1", "current", float(t), float(x), f"r{i}"))
        when = datetime.fromtimestamp(float(t), UTC)
        kit.add_event(f"r{i}", when, {"value": float(x), "t": float(t - origin)})
        want = kit.values(when)
        for w in ("1m", "1h"):
            for stat in ("mean", "std", "min", "max"):
                assert got[f"{stat}_{w}"] == pytest.approx(want[f"{stat}_{w}"], rel=1e-9,
                                                           abs=1e-9)


def test_a_replayed_reading_is_not_counted_twice_and_a_late_one_joins_its_tile():
    f = RollingFeatures()
    base = 1_767_225_600.0
    for k in range(30):
        f.update(Reading("m", "pressure", base + k, float(k), f"r{k}"))
    once = f.update(Reading("m", "pressure", base + 30, 30.0, "r30"))
    again = f.update(Reading("m", "pressure", base + 30, 30.0, "r30"))
    assert again == once and f.duplicates == 1
    # A reading 25 s late: counted in its own tile (still inside the minute), not in the ring.
    late = f.update(Reading("m", "pressure", base + 5.5, 1000.0, "late"))
    assert late["max_1m"] == 1000.0 and late["max_10s"] == 30.0
    # Older than the hour: dropped.
    f.update(Reading("m", "pressure", base - 4000, 5.0, "ancient"))
    assert f.late_dropped == 1


def test_first_reading_and_constant_signal():
    f = RollingFeatures()
    got = f.update(Reading("m", "current", 1_767_225_600.0, 7.0))
    assert got["mean_1h"] == got["min_10s"] == 7.0 and got["std_1m"] == 0.0
    assert got["roc_10s"] == got["roc_1h"] == 0.0
    for k in range(1, 50):
        got = f.update(Reading("m", "current", 1_767_225_600.0 + k, 7.0))
    assert got["std_10s"] == 0.0 and got["roc_1m"] == 0.0
