"""The window engine: every statistic over several values, against brute-force recomputation.

The oracle here shares no code with `rtml.features.windows`: it keeps the raw events a key has
counted and recomputes each statistic from scratch (numpy for std) at the evaluation instant.
"""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from rtml.features import windows as w
from rtml.features.backfill import history

T0 = datetime(2024, 3, 1, 12, 0, 3, tzinfo=UTC)
WINDOWS = {"1m": 60, "5m": 300}
SPEC = w.WindowSpec(
    windows=WINDOWS,
    features={f"{value}_{stat}_{label}": (stat, label, value)
              for label in WINDOWS for value in ("x", "y")
              for stat in ("sum", "mean", "std", "min", "max", "last")}
    | {f"n_{label}": ("count", label) for label in WINDOWS},
    values=("x", "y"),
)


def _tile(t: datetime) -> int:
    return math.floor((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() / 10)


def brute(counted: list[tuple[int, datetime, dict[str, float]]], at: datetime) -> dict:
    """Every feature of SPEC as of `at` over `counted` (arrival index, event time, values)."""
    out: dict = {}
    now = _tile(at)
    for label, seconds in WINDOWS.items():
        inside = [e for e in counted if now - seconds // 10 < _tile(e[1]) <= now]
        out[f"n_{label}"] = len(inside)
        for value in ("x", "y"):
            xs = np.array([e[2][value] for e in inside])
            newest = max(inside, key=lambda e: (e[1], e[0])) if inside else None
            out[f"{value}_sum_{label}"] = float(xs.sum()) if inside else 0.0
            out[f"{value}_mean_{label}"] = float(xs.mean()) if inside else 0.0
            out[f"{value}_std_{label}"] = float(xs.std()) if inside else 0.0
            out[f"{value}_min_{label}"] = float(xs.min()) if inside else 0.0
            out[f"{value}_max_{label}"] = float(xs.max()) if inside else 0.0
            out[f"{value}_last_{label}"] = newest[2][value] if newest else 0.0
    return out


def assert_close(got: dict, want: dict) -> None:
    assert list(got) == list(SPEC.features)
    for name, value in want.items():
        if name.startswith("n_"):
            assert got[name] == value and isinstance(got[name], int), name
        else:
            assert isinstance(got[name], float), name
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def events(seed: int, n: int = 400) -> list[tuple[str, datetime, dict[str, float]]]:
    """Ids with replays, times up to 45 s out of order, two values (ties in time included)."""
    rng = random.Random(seed)
    base, out = T0, []
    for i in range(n):
        base += timedelta(seconds=rng.choice([0, 0.5, 2, 7, 10, 31, 90, 400]))
        at = base - timedelta(seconds=rng.randint(0, 45), microseconds=rng.randint(0, 999_999))
        if out and rng.random() < 0.05:
            at = out[-1][1]  # the same instant: "last" goes to the later arrival
        values = {"x": round(rng.uniform(-50, 300), 2), "y": rng.gauss(1000.0, 3.0)}
        out.append((f"e{i}", at, values))
        if rng.random() < 0.08:
            out.append(rng.choice(out))  # a replay of an id already delivered
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_statistic_after_each_event_and_at_decays_matches_brute_force(seed):
    state = w.WindowState(SPEC, allowed_lateness=timedelta(seconds=30))
    counted: list[tuple[int, datetime, dict[str, float]]] = []
    seen: set[str] = set()
    rng = random.Random(seed + 100)
    for i, (eid, at, values) in enumerate(events(seed)):
        before = state.watermark
        # A quiet spell first: timers fire at each expiry, the rows a stream emits.
        for row, when in w.decays(state, at):
            assert_close(row, brute(counted, when))
        out = w.on_event(state, eid, at, values, at)
        too_late = before is not None and at < before - timedelta(seconds=30)
        assert (out is not None) == (eid not in seen and not too_late), (i, eid)
        if out is None:
            continue
        seen.add(eid)
        counted.append((i, at, values))
        row, when = out
        assert when == state.watermark
        assert_close(row, brute(counted, when))
        probe = when + timedelta(seconds=rng.uniform(0, 400))  # any instant before the next event
        assert_close(state.values(probe), brute(counted, probe))
    # Replays of ids still held are duplicates; of ids whose tile has gone, expired.
    assert state.duplicates > 0 and state.expired > 0 and state.late_dropped > 0


def test_std_of_large_nearly_equal_values_keeps_its_precision():
    """1e9 + noise of 1e-3: a sum of squares minus a squared sum loses every digit of the spread."""
    spec = w.WindowSpec(windows={"5m": 300}, features={"s": ("std", "5m")}, values=("v",))
    state = w.WindowState(spec)
    rng = np.random.default_rng(7)
    xs = 1e9 + rng.normal(0, 1e-3, 200)
    for i, x in enumerate(xs):
        state.add_event(f"e{i}", T0 + timedelta(seconds=i), {"v": float(x)})
    at = T0 + timedelta(seconds=199)
    first = _tile(at) - 29
    kept = [x for i, x in enumerate(xs) if _tile(T0 + timedelta(seconds=i)) >= first]
    want = float(np.std(np.array(kept) - 1e9))  # shifted: exact in float64
    # Each value is only known to 1.2e-7 (its float64 spacing): 1e-4 of the spread, which bounds
    # what any unshifted float64 method can reach; the naive formula is off by orders of magnitude.
    assert state.values(at)["s"] == pytest.approx(want, rel=1e-5)
    arr = np.array(kept)
    naive = math.sqrt(abs(float((arr * arr).sum()) / len(arr) - float(arr.mean()) ** 2))
    assert naive != pytest.approx(want, rel=0.5)


def test_one_value_spec_reads_its_value_by_default_and_only_needed_accumulators_are_kept():
    spec = w.WindowSpec(windows={"1m": 60}, features={"n": ("count", "1m"), "hi": ("max", "1m")},
                        values=("amount",))
    assert spec.feature("hi") == ("max", "1m", "amount")
    assert spec.layout() == {("amount", "max"): 0}
    state = w.WindowState(spec)
    state.add_event("a", T0, {"amount": 3.0, "ignored": 1.0})
    state.add_event("b", T0, {"amount": -2.0})
    assert state.values(T0) == {"n": 2, "hi": 3.0}
    assert spec.dtype("n") == "int64" and spec.dtype("hi") == "float64"


@pytest.mark.parametrize("bad", [
    {"windows": {"w": 15}, "features": {"n": ("count", "w")}},
    {"windows": {"w": 60}, "features": {"n": ("median", "w", "v")}, "values": ("v",)},
    {"windows": {"w": 60}, "features": {"n": ("sum", "w2", "v")}, "values": ("v",)},
    {"windows": {"w": 60}, "features": {"n": ("sum", "w", "z")}, "values": ("v",)},
])
def test_spec_mistakes_are_refused_at_declaration(bad):
    with pytest.raises(ValueError):
        w.WindowSpec(**bad)


def test_frozen_snapshot_with_every_statistic_thaws_to_an_equal_behaving_state():
    evs = events(9, n=300)
    state = w.WindowState(SPEC, allowed_lateness=timedelta(seconds=30))
    for eid, at, values in evs[:150]:
        w.on_event(state, eid, at, values, at)
    frozen = pickle.loads(pickle.dumps(state.freeze()))
    thawed = w.WindowState(SPEC, allowed_lateness=timedelta(seconds=30)).thaw(frozen)
    assert thawed == state
    for eid, at, values in evs[150:]:
        assert w.on_event(thawed, eid, at, values, at) == w.on_event(state, eid, at, values, at)
    assert (thawed.duplicates, thawed.late_dropped) == (state.duplicates, state.late_dropped)


def test_history_point_in_time_equals_brute_force_for_several_values():
    """The backfill's "latest row at or before t" is every statistic as of t, decays included."""
    rng = random.Random(4)
    raw = sorted(((rng.randrange(3), (f"e{i}", T0 + timedelta(seconds=rng.uniform(0, 3600)),
                                      {"x": rng.uniform(0, 9), "y": rng.uniform(-1, 1)}))
                  for i in range(300)), key=lambda kv: kv[1][1])
    until = T0 + timedelta(hours=2)
    keys, stamps, columns = history(SPEC, raw, until=until)
    assert set(columns) == set(SPEC.features)
    for _ in range(200):
        key = rng.randrange(3)
        at = T0 + timedelta(seconds=rng.uniform(0, 7200))
        rows = [i for i, (k, s) in enumerate(zip(keys, stamps, strict=True))
                if k == key and s <= at]
        counted = [(i, t, v) for i, (k, (_, t, v)) in enumerate(raw) if k == key and t <= at]
        want = brute(counted, at)
        if not rows:
            assert not counted
            continue
        got = {name: columns[name][rows[-1]] for name in SPEC.features}
        assert_close(got, want)
    for key in range(3):  # strictly increasing per key, and decayed to empty by `until`
        mine = [s for k, s in zip(keys, stamps, strict=True) if k == key]
        assert mine == sorted(set(mine))
        assert columns["n_5m"][max(i for i, k in enumerate(keys) if k == key)] == 0
