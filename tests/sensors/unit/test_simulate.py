"""The plant simulator: each injector against a hand-checked expectation, labels, determinism."""

import numpy as np
import pytest

from pipelines.sensors import simulate as sim

RATE = 5.0
T = 1_000_000.0 + np.arange(0, 3000) / RATE  # 10 minutes at 5 Hz
SIGMA = 0.5


def flat():
    return np.zeros(len(T))


def run(kind, level, seed=0, i0=500):
    x = flat()
    end, mag = sim.inject(kind, T, x, i0, level=level, sigma=SIGMA,
                          rng=np.random.default_rng(seed))
    return x, end, mag


@pytest.mark.parametrize("level", [0.0, 0.5, 1.0])
def test_spike_moves_exactly_one_reading_by_3_to_15_sigma(level):
    x, end, mag = run("spike", level)
    assert end == 500 and np.count_nonzero(x) == 1
    assert x[500] == mag and abs(mag) == pytest.approx(SIGMA * (3 + 12 * level))


@pytest.mark.parametrize("level", [0.0, 1.0])
def test_shift_adds_a_constant_for_30_to_180_seconds(level):
    x, end, mag = run("shift", level)
    assert abs(mag) == pytest.approx(SIGMA * (1.5 + 8.5 * level))
    assert np.all(x[500:end + 1] == mag) and not x[:500].any() and not x[end + 1:].any()
    assert 30.0 - 1 / RATE <= T[end] - T[500] <= 180.0


def test_drift_is_a_ramp_from_zero_to_its_magnitude():
    x, end, mag = run("drift", 0.3)
    assert abs(mag) == pytest.approx(SIGMA * (3 + 12 * 0.3))
    assert x[500] == 0.0 and x[end] == pytest.approx(mag)
    steps = np.diff(x[500:end + 1])
    assert np.allclose(steps, steps[0])  # linear in time (regular sampling)
    assert 120.0 - 1 / RATE <= T[end] - T[500] <= 600.0 and not x[end + 1:].any()


@pytest.mark.parametrize(("level", "seconds"), [(0.0, 10.0), (1.0, 120.0)])
def test_stuck_freezes_the_first_value_for_10_s_to_2_min(level, seconds):
    x = np.sin(np.arange(len(T)) / 7.0)
    before = x.copy()
    end, mag = sim.inject("stuck", T, x, 500, level=level, sigma=SIGMA,
                          rng=np.random.default_rng(0))
    assert mag == 0.0 and np.all(x[500:end + 1] == before[500])
    assert T[end] - T[500] == pytest.approx(seconds, abs=1 / RATE)
    assert np.array_equal(x[end + 1:], before[end + 1:])


def test_burst_adds_zero_mean_noise_of_1_to_6_sigma():
    x, end, mag = run("burst", 1.0, i0=100)
    assert mag == pytest.approx(6 * SIGMA)
    part = x[100:end + 1]
    assert 10.0 - 1 / RATE <= T[end] - T[100] <= 60.0
    assert part.std() == pytest.approx(mag, rel=0.25) and abs(part.mean()) < 4 * mag / np.sqrt(
        len(part))
    assert not x[:100].any() and not x[end + 1:].any()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown anomaly kind 'wobble'"):
        run("wobble", 0.5)


def test_same_seed_same_plant_and_labels_match_windows():
    a = sim.simulate(machines=2, hours=0.5, seed=3, quiet_s=300.0, anomalies_per_hour=6.0)
    b = sim.simulate(machines=2, hours=0.5, seed=3, quiet_s=300.0, anomalies_per_hour=6.0)
    c = sim.simulate(machines=2, hours=0.5, seed=4, quiet_s=300.0, anomalies_per_hour=6.0)
    assert a.readings.equals(b.readings) and a.windows == b.windows
    assert not a.readings["value"].equals(c.readings["value"])
    r = a.readings
    assert r["ts"].is_monotonic_increasing and r["reading_id"].is_unique
    assert set(r["channel"]) == set(sim.CHANNELS) and len(a.windows) >= 4
    labelled = 0
    for w in a.windows:
        rows = r[(r.machine_id == w.machine_id) & (r.channel == w.channel)
                 & (r.ts >= w.start) & (r.ts <= w.end)]
        assert (rows["anomaly"] == w.kind).all() and len(rows) >= 1
        assert w.start >= r["ts"].min() + 300.0  # after the quiet start
        labelled += len(rows)
    assert labelled == int((r["anomaly"] != "").sum())
    # Each machine's rate is one of the plant rates, and its readings are evenly spaced.
    for machine, rate in a.rates.items():
        ts = r[(r.machine_id == machine) & (r.channel == "pressure")]["ts"].to_numpy()
        assert rate in sim.RATES_HZ and np.allclose(np.diff(ts), 1.0 / rate)


def test_write_and_read_round_trip(tmp_path):
    plant = sim.simulate(machines=1, hours=0.3, seed=1, quiet_s=60.0, rate_hz=1.0)
    lines = sim.generate(tmp_path, machines=1, hours=0.3, seed=1, rate_hz=1.0)
    back = sim.read(tmp_path)
    assert back.windows == sim.simulate(machines=1, hours=0.3, seed=1, rate_hz=1.0).windows
    assert len(back.readings) == len(plant.readings) == 4 * 1080
    assert "4,320 readings from 1 machines" in lines[0]
