"""The detector: save/load round trips, unseen machines warming up, faults flagged, imports."""

import copy
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from pipelines.sensors.detect import (
    DEVIATIONS,
    KINDS,
    Detector,
    Params,
    load_detector,
    new_hst,
)
from pipelines.sensors.readings import Reading
from rtml.settings import REPO_ROOT

T0 = 1_767_225_600.0


def signal(machine="m1", channel="temperature", n=900, rate=2.0, seed=0, start=T0):
    """A noisy sine (a load cycle) at `rate` Hz."""
    rng = np.random.default_rng(seed)
    t = start + np.arange(n) / rate
    x = 50 + 5 * np.sin(2 * np.pi * (t - start) / 300) + rng.normal(0, 0.3, n)
    return [Reading(machine, channel, float(a), float(b), f"{machine}:{i}")
            for i, (a, b) in enumerate(zip(t, x, strict=True))]


@pytest.fixture(scope="module")
def onnx_model():
    from training.sensors.train import fit_iforest

    class _T:
        z = np.random.default_rng(1).normal(size=(3000, len(DEVIATIONS)))

    return fit_iforest(_T(), np.ones(3000, dtype=bool))  # type: ignore[arg-type]


def make(kind, onnx_model, threshold=None):
    params = Params(kind=kind) if threshold is None else Params(kind=kind, threshold=threshold)
    return Detector(params=params, onnx_model=onnx_model if kind == "iforest" else None,
                    hst=new_hst(0) if kind == "hst" else None)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_scores_the_same(kind, onnx_model, tmp_path):
    d = make(kind, onnx_model, threshold=3.5)
    d.card = {"trained_at": "x", "test": {"recall": 0.8}}
    for r in signal(n=700):
        d.update(r)
    path = d.save(tmp_path / "model.zip")
    back = Detector.load(path)
    assert back.params == d.params and back.card == d.card
    assert back.keys == {}  # per-key state is not saved: every deployment learns its own
    d.reset()
    later = signal(n=800, seed=2, start=T0 + 5000)
    a = [d.update(r) for r in later]
    b = [back.update(r) for r in later]
    assert [v.score for v in a] == [v.score for v in b]
    assert [v.anomalous for v in a] == [v.anomalous for v in b]


@pytest.mark.parametrize("kind", KINDS)
def test_update_and_the_training_trace_agree(kind, onnx_model):
    data = signal(n=800, seed=3) + signal("m2", "current", n=800, seed=4)
    data.sort(key=lambda r: r.ts)
    online = make(kind, onnx_model)
    verdicts = [online.update(r) for r in data]
    batch = make(kind, onnx_model)
    scores = batch.scores(batch.trace(data))
    want = np.array([np.nan if v.warming_up else v.score for v in verdicts])
    np.testing.assert_allclose(scores, want, rtol=1e-6, equal_nan=True)


def spiked(readings, at, by):
    out = list(readings)
    r = out[at]
    out[at] = Reading(r.machine_id, r.channel, r.ts, r.value + by, r.reading_id)
    return out


def test_an_unseen_machine_warms_up_then_is_learned_never_rejected():
    d = Detector()
    for r in signal("m1", n=900):
        d.update(r)
    assert d.warm_keys() == 1
    fresh = spiked(signal("m9", n=1200, seed=7, start=T0 + 450), 900, 6.0)
    verdicts = [d.update(r) for r in fresh]
    warm = [v.warming_up for v in verdicts]
    # Warm-up: 300 readings and 300 s, whichever is later (here the time: 600 readings at 2 Hz).
    assert all(warm[:601]) and not any(warm[601:])  # the 601st reading (300 s) ends it
    assert not any(v.anomalous for v in verdicts[:600])
    assert all(v.features["value"] == r.value for v, r in zip(verdicts, fresh, strict=True))
    flagged = [i for i, v in enumerate(verdicts) if v.anomalous]
    assert 900 in flagged  # the spike of 20 noise sigmas
    v = verdicts[900]
    assert set(v.drivers) & {"value-mean_1m", "roc_10s"} and v.severity in ("low", "medium", "high")
    assert v.score >= d.params.threshold
    assert d.warm_keys() == 2


def test_a_stuck_sensor_and_a_noise_burst_are_flagged_and_quiet_data_is_not():
    base = signal(n=1400, seed=11)
    quiet = Detector()
    assert not any(quiet.update(r).anomalous for r in base)
    stuck = list(base)
    for i in range(900, 960):
        stuck[i] = Reading(base[i].machine_id, base[i].channel, base[i].ts, base[900].value,
                           base[i].reading_id)
    d = Detector()
    hits = [i for i, r in enumerate(stuck) if d.update(r).anomalous]
    assert hits and 900 <= hits[0] <= 930
    rng = np.random.default_rng(5)
    burst = [Reading(r.machine_id, r.channel, r.ts, r.value + (rng.normal(0, 2.0)
                                                             if 900 <= i < 940 else 0.0),
                     r.reading_id) for i, r in enumerate(base)]
    d = Detector()
    hits = [i for i, r in enumerate(burst) if d.update(r).anomalous]
    assert hits and 900 <= hits[0] <= 920


def test_load_detector_picks_the_newest_and_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="rtml train sensors"):
        load_detector(root=tmp_path)
    Detector(Params(threshold=5.0)).save(tmp_path / "a.zip")
    time.sleep(0.01)
    newer = Detector(Params(kind="static_roc", threshold=9.0)).save(tmp_path / "b.zip")
    os.utime(newer, (time.time() + 5, time.time() + 5))
    assert load_detector(root=tmp_path).params.kind == "static_roc"
    assert load_detector(tmp_path / "a.zip").params.threshold == 5.0
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="not a sensors model file"):
        Detector.load(tmp_path / "junk.zip")
    with pytest.raises(ValueError, match="kind 'magic'"):
        Params(kind="magic")
    clone = copy.deepcopy(Detector())
    assert clone.params.kind == "robust_z"


def test_the_scoring_path_imports_no_server_package():
    """Edge mode runs without Feast, BentoML, Bytewax or Redis: the detector must not pull them."""
    code = ("import sys; from pipelines.sensors.detect import Detector; "
            "from pipelines.sensors.readings import parse_reading; d = Detector(); "
            "[d.update(parse_reading({'machine_id': 'm', 'channel': 'c', 'timestamp': 1e9 + i, "
            "'value': i % 7})) for i in range(400)]; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('feast', 'bentoml', 'bytewax', 'redis', 'pandas', 'river', 'onnxruntime')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def machine(step_on, spike_on=None, n=1500, rate=2.0, seed=0):
    """Four channels of one machine; a load change of 30 sigma over 20 s from reading 1000."""
    rng = np.random.default_rng(seed)
    out = []
    for c, channel in enumerate(("temperature", "pressure", "vibration", "current")):
        x = 10.0 * (c + 1) + rng.normal(0, 0.2, n)
        if channel in step_on:
            x[1000:] += 6.0 * np.clip((np.arange(n - 1000)) / 40.0, 0.0, 1.0)
        if channel == spike_on:
            x[1200] += 4.0
        out += [Reading("m1", channel, T0 + i / rate, float(x[i]), f"{channel}:{i}")
                for i in range(n)]
    return sorted(out, key=lambda r: (r.ts, r.channel))


def flagged(detector, readings):
    return {(r.channel, int(round((r.ts - T0) * 2))) for r in readings
            if detector.update(r).anomalous}


def test_a_load_change_on_every_channel_is_context_but_a_fault_on_one_is_not():
    channels = {"temperature", "pressure", "vibration", "current"}
    alone = flagged(Detector(), machine(step_on={"pressure"}))
    assert any(c == "pressure" and 1000 <= i <= 1040 for c, i in alone)  # one channel: a fault
    together = flagged(Detector(), machine(step_on=channels))
    assert not together  # every channel steps at once: the load changed
    blind = flagged(Detector(Params(context=False)), machine(step_on=channels))
    assert {c for c, _ in blind} == channels  # without context each channel alarms
    spike = flagged(Detector(), machine(step_on=channels, spike_on="current"))
    assert ("current", 1200) in spike  # a fault after the load change is still seen
