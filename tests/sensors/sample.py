"""Seeded sample readings for the sensors runtime tests: calm channels with injected spikes.

Each machine channel is a level plus Gaussian noise at `hz`; after `warm_s` seconds of calm,
`spikes` readings per channel jump by 40 noise standard deviations, each `gap_s` apart (so each
is its own incident under latches with a shorter quiet period). The indices of the spikes are
returned, so a test knows what the detector should flag without asking the detector.
"""

from __future__ import annotations

import numpy as np

from pipelines.sensors.detect import Detector, Params

# The runtime tests check what happens to alerts, not how good a detector is: static limits
# (the same `Detector`, the plants' baseline) flag exactly the injected spikes on stationary
# noise, after a warm-up of seconds. (The robust-z scorer needs its windows settled first: with a
# warm-up shorter than the 1 h window it flags the 1 min mean wandering against the 1 h one.)
TEST_PARAMS = Params(kind="static", warmup_readings=40, warmup_seconds=10.0)


def detector() -> Detector:
    """A fresh detector with the tests' parameters."""
    return Detector(params=TEST_PARAMS)


def readings(*, machines: list[str], channels: list[str], seconds: float, hz: float = 4.0,
             warm_s: float = 30.0, spikes: int = 2, gap_s: float = 60.0, t0: float = 1.7e9,
             seed: int = 0) -> tuple[list[dict], set[tuple[str, str, float]]]:
    """Readings in time order, and the (machine, channel, ts) of every injected spike."""
    rng = np.random.default_rng(seed)
    n = int(seconds * hz)
    rows, spiked = [], set()
    for m_i, machine in enumerate(machines):
        for c_i, channel in enumerate(channels):
            base = 50.0 + 10 * m_i + c_i
            noise = rng.normal(0.0, 0.5, n)
            at = {int((warm_s + k * gap_s) * hz) + m_i + c_i for k in range(spikes)}
            for i in range(n):
                ts = t0 + i / hz
                value = base + noise[i]
                if i in at and i < n:
                    value += 20.0
                    spiked.add((machine, channel, ts))
                rows.append({"machine_id": machine, "channel": channel, "timestamp": ts,
                             "value": round(value, 6),
                             "reading_id": f"{machine}-{channel}-{i}"})
    rows.sort(key=lambda r: (r["timestamp"], r["machine_id"], r["channel"]))
    return rows, spiked
