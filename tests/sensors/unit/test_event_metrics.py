"""Event-level metrics of the training comparison, on a hand-built plant."""

import numpy as np
import pandas as pd
import pytest

from pipelines.sensors.simulate import Window
from training.sensors import metrics as ev


def plant():
    """Two keys at 1 Hz for 1000 s; one window per key."""
    ts = np.arange(1000.0)
    frame = pd.concat([pd.DataFrame({"machine_id": "m1", "channel": c, "ts": ts})
                       for c in ("temperature", "current")], ignore_index=True)
    frame = frame.sort_values("ts", kind="stable", ignore_index=True)
    windows = [Window("m1", "temperature", "shift", 100.0, 150.0, 0.5, 1.0),
               Window("m1", "current", "spike", 500.0, 500.0, 0.5, 3.0)]
    return frame, windows


def scores_at(frame, hits):
    """Score 1 at each (channel, ts) in `hits`, 0 elsewhere."""
    s = np.zeros(len(frame))
    for channel, t in hits:
        s[((frame.channel == channel) & (frame.ts == t)).to_numpy()] = 1.0
    return s


def test_recall_delay_and_false_alarms_with_latch_and_grace():
    frame, windows = plant()
    lay = ev.layout(frame, windows, scored_from=0.0)
    assert lay.hours == pytest.approx(999 / 3600) and lay.machines == 1
    hits = [("temperature", 112.0), ("temperature", 130.0),  # the shift, 12 s late
            ("temperature", 200.0),  # 50 s after the window: inside the 60 s grace
            ("temperature", 215.0),  # outside, but latched to the incident at 200
            ("temperature", 300.0), ("temperature", 320.0), ("temperature", 400.0),
            ("current", 130.0)]  # the other key's window is at 500: a false alarm here
    m = ev.evaluate(lay, windows, scores_at(frame, hits), 0.5)
    assert (m["windows"], m["detected"], m["recall"]) == (2, 1, 0.5)
    assert m["false_alarms"] == 3  # 300 (+320 latched) and 400 on temperature, 130 on current
    assert m["false_alarms_per_hour"] == pytest.approx(3 / (999 / 3600))
    assert m["per_kind"]["shift"] == {"windows": 1, "detected": 1, "recall": 1.0,
                                      "median_delay_s": 12.0}
    assert m["per_kind"]["spike"]["median_delay_s"] is None


def test_threshold_for_recall_is_exact_from_window_maxima():
    frame, windows = plant()
    lay = ev.layout(frame, windows, scored_from=0.0)
    s = np.zeros(len(frame))
    s[((frame.channel == "temperature") & (frame.ts == 120)).to_numpy()] = 7.0
    s[((frame.channel == "current") & (frame.ts == 530)).to_numpy()] = 3.0  # in the grace
    s[((frame.channel == "current") & (frame.ts == 800)).to_numpy()] = 5.0  # a false alarm
    assert ev.window_max(lay, s).tolist() == [7.0, 3.0]
    assert ev.threshold_for_recall(ev.window_max(lay, s), 0.5) == 7.0
    assert ev.threshold_for_recall(ev.window_max(lay, s), 1.0) == 3.0
    full = ev.at_recall(lay, windows, s, 1.0)
    half = ev.at_recall(lay, windows, s, 0.5)
    assert (full["recall"], full["false_alarms"]) == (1.0, 1)
    assert (half["recall"], half["false_alarms"]) == (0.5, 0)
    nothing = np.full(len(frame), np.nan)
    assert ev.at_recall(lay, windows, nothing, 0.5) is None
