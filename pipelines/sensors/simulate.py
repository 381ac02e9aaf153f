"""A simulated plant: machines x channels, load cycles, autocorrelated noise, labelled faults.

Deterministic: one seed gives the same readings and windows on every machine (each key draws from
its own child of one `numpy.random.SeedSequence`, so adding a machine does not change the others).

The signal of one channel of one machine is a base level, plus the machine's load cycle times the
channel's gain (temperature follows load through a 60 s first-order lag), plus AR(1) noise
(phi 0.95) and white measurement noise. `NOISE[channel]` is the std of the two noises together:
fault magnitudes are in those units, so "barely visible" means "inside the noise", whatever the
load is doing.

The five injectors follow GutenTAG's taxonomy (written here from its descriptions) and each takes
a `level` in [0, 1], from barely visible (0) to obvious (1):

======== ============================================= ==========================
kind     what happens in the window                    magnitude
======== ============================================= ==========================
spike    one reading off by +-amp                      amp 3 to 15 sigma
shift    the level moves by amp for 30 to 180 s        amp 1.5 to 10 sigma
drift    a ramp from 0 to amp over 2 to 10 min         amp 3 to 15 sigma at the end
stuck    the value freezes at the window's first one   10 s to 2 min
burst    extra white noise for 10 to 60 s              std 1 to 6 sigma
======== ============================================= ==========================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.sensors.readings import CHANNELS

KINDS = ("spike", "shift", "drift", "stuck", "burst")
# channel: (base, gain with load, total noise std)
PROFILE = {"temperature": (40.0, 25.0, 0.3), "pressure": (4.0, 2.0, 0.05),
           "vibration": (1.0, 3.0, 0.15), "current": (5.0, 20.0, 0.4)}
NOISE = {c: p[2] for c, p in PROFILE.items()}
RATES_HZ = (1.0, 2.0, 5.0, 10.0)
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
AR_PHI = 0.95


@dataclass(frozen=True)
class Window:
    """One injected fault: where, when (epoch s, inclusive), what and how strong."""

    machine_id: str
    channel: str
    kind: str
    start: float
    end: float
    level: float  # 0 barely visible .. 1 obvious
    magnitude: float  # in the channel's units (amplitude, final drift, extra std; 0 for stuck)


@dataclass(frozen=True)
class Plant:
    """Readings (sorted by time) and the labelled windows injected into them."""

    readings: pd.DataFrame  # machine_id, channel, ts, value, reading_id, anomaly ("" or kind)
    windows: list[Window]
    rates: dict[str, float]  # machine -> Hz


def inject(kind: str, t: np.ndarray, x: np.ndarray, i0: int, *, level: float, sigma: float,
           rng: np.random.Generator) -> tuple[int, float]:
    """Inject one fault of `kind` into `x` from index `i0` (in place); returns (end index, mag).

    `t` are the readings' times (s): durations are in seconds whatever the sampling rate.
    """
    if kind == "spike":
        amp = sigma * (3.0 + 12.0 * level) * rng.choice((-1.0, 1.0))
        x[i0] += amp
        return i0, float(amp)
    if kind == "shift":
        amp = sigma * (1.5 + 8.5 * level) * rng.choice((-1.0, 1.0))
        i1 = _index_after(t, i0, rng.uniform(30.0, 180.0))
        x[i0:i1 + 1] += amp
        return i1, float(amp)
    if kind == "drift":
        amp = sigma * (3.0 + 12.0 * level) * rng.choice((-1.0, 1.0))
        i1 = _index_after(t, i0, rng.uniform(120.0, 600.0))
        span = max(t[i1] - t[i0], 1e-9)
        x[i0:i1 + 1] += amp * (t[i0:i1 + 1] - t[i0]) / span
        return i1, float(amp)
    if kind == "stuck":
        i1 = _index_after(t, i0, 10.0 + 110.0 * level)
        x[i0:i1 + 1] = x[i0]
        return i1, 0.0
    if kind == "burst":
        extra = sigma * (1.0 + 5.0 * level)
        i1 = _index_after(t, i0, rng.uniform(10.0, 60.0))
        x[i0:i1 + 1] += rng.normal(0.0, extra, i1 + 1 - i0)
        return i1, float(extra)
    raise ValueError(f"unknown anomaly kind {kind!r}; one of {', '.join(KINDS)}")


def _index_after(t: np.ndarray, i0: int, seconds: float) -> int:
    return int(min(np.searchsorted(t, t[i0] + seconds, side="right") - 1, len(t) - 1))


def normal_signal(channel: str, t: np.ndarray, load: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """One channel with no fault: base + gain x load (lagged for temperature) + noise."""
    base, gain, sigma = PROFILE[channel]
    driven = load
    if channel == "temperature":  # heat follows load through a 60 s first-order lag
        dt = np.diff(t, prepend=t[0])
        alpha = 1.0 - np.exp(-dt / 60.0)
        driven = np.empty_like(load)
        acc = load[0]
        for i, (a, v) in enumerate(zip(alpha, load, strict=True)):
            acc += a * (v - acc)
            driven[i] = acc
    # Two noises share the variance: AR(1) (slow wander, 70 %) and white measurement noise.
    ar_sd = sigma * np.sqrt(0.7)
    innov = rng.normal(0.0, ar_sd * np.sqrt(1 - AR_PHI ** 2), len(t))
    ar = np.empty(len(t))
    acc = rng.normal(0.0, ar_sd)
    for i, e in enumerate(innov):
        acc = AR_PHI * acc + e
        ar[i] = acc
    white = rng.normal(0.0, sigma * np.sqrt(0.3), len(t))
    return base + gain * driven + ar + white


def load_cycle(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A machine's load in [0.1, 0.9]: smoothed run/idle cycles of 5 to 20 minutes."""
    period = rng.uniform(300.0, 1200.0)
    phase = rng.uniform(0, 2 * np.pi)
    sharp = rng.uniform(1.0, 4.0)
    return 0.5 + 0.4 * np.tanh(sharp * np.sin(2 * np.pi * (t - t[0]) / period + phase)) / np.tanh(
        sharp)


def simulate(*, machines: int = 6, hours: float = 1.5, seed: int = 0,
             rate_hz: float | None = None, anomalies_per_hour: float = 2.0,
             kinds: Sequence[str] = KINDS, channels: Sequence[str] = CHANNELS,
             start: float = START, quiet_s: float = 900.0) -> Plant:
    """Readings of `machines` machines for `hours`, with faults injected and labelled.

    `rate_hz`: every machine's rate (default: each draws one of 1, 2, 5, 10 Hz).
    `anomalies_per_hour`: faults per machine and channel per hour, at random instants after
    `quiet_s` (the detectors' warm-up; nothing there is scored), at least a minute apart, kinds
    in turn from a random first, levels uniform in [0, 1].
    """
    if machines < 1 or hours <= 0:
        raise ValueError("need at least one machine and a positive duration")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown anomaly kind {kind!r}; one of {', '.join(KINDS)}")
    root = np.random.SeedSequence(seed)
    frames: list[pd.DataFrame] = []
    windows: list[Window] = []
    rates: dict[str, float] = {}
    duration = hours * 3600.0
    for m, machine_seq in enumerate(root.spawn(machines)):
        machine = f"m{m:03d}"
        mrng = np.random.default_rng(machine_seq)
        rate = float(rate_hz) if rate_hz is not None else float(mrng.choice(RATES_HZ))
        rates[machine] = rate
        t = start + mrng.uniform(0, 1.0 / rate) + np.arange(int(duration * rate)) / rate
        load = load_cycle(t, mrng)
        for channel, seq in zip(channels, machine_seq.spawn(len(channels)), strict=True):
            rng = np.random.default_rng(seq)
            x = normal_signal(channel, t, load, rng)
            label = np.full(len(t), "", dtype=object)
            n_faults = rng.poisson(anomalies_per_hour * max(duration - quiet_s, 0.0) / 3600.0)
            starts = np.sort(rng.uniform(t[0] + quiet_s, t[-1] - 60.0, n_faults)) \
                if n_faults and duration > quiet_s + 60 else np.array([])
            first_kind = int(rng.integers(len(kinds)))
            free_from = -np.inf
            for j, at in enumerate(starts):
                if at < free_from:
                    continue
                kind = kinds[(first_kind + j) % len(kinds)]
                level = float(rng.uniform())
                i0 = int(np.searchsorted(t, at))
                i1, mag = inject(kind, t, x, i0, level=level, sigma=NOISE[channel], rng=rng)
                label[i0:i1 + 1] = kind
                windows.append(Window(machine_id=machine, channel=channel, kind=kind,
                                      start=float(t[i0]), end=float(t[i1]), level=level,
                                      magnitude=mag))
                free_from = t[i1] + 60.0
            frames.append(pd.DataFrame({
                "machine_id": machine, "channel": channel, "ts": t, "value": x,
                "reading_id": [f"{machine}:{channel}:{k}" for k in range(len(t))],
                "anomaly": label}))
    readings = pd.concat(frames, ignore_index=True)
    readings = readings.sort_values(["ts", "machine_id", "channel"], kind="stable",
                                    ignore_index=True)
    windows.sort(key=lambda w: (w.start, w.machine_id, w.channel))
    return Plant(readings=readings, windows=windows, rates=rates)


def write(plant: Plant, out_dir: Path) -> dict[str, Path]:
    """`readings.parquet` and `windows.json` (with the rates) under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"readings": out_dir / "readings.parquet", "windows": out_dir / "windows.json"}
    plant.readings.to_parquet(paths["readings"], index=False)
    paths["windows"].write_text(json.dumps(
        {"rates_hz": plant.rates, "windows": [asdict(w) for w in plant.windows]}, indent=1))
    return paths


def read(out_dir: Path) -> Plant:
    """What `write` wrote."""
    meta = json.loads((out_dir / "windows.json").read_text())
    return Plant(readings=pd.read_parquet(out_dir / "readings.parquet"),
                 windows=[Window(**w) for w in meta["windows"]], rates=meta["rates_hz"])


def generate(out_dir: Path, *, machines: int = 6, hours: float = 1.5, seed: int = 0,
             rate_hz: float | None = None, anomalies_per_hour: float = 2.0) -> list[str]:
    """`rtml data generate --scenario sensors`: simulate and write; lines saying what was made."""
    plant = simulate(machines=machines, hours=hours, seed=seed, rate_hz=rate_hz,
                     anomalies_per_hour=anomalies_per_hour)
    paths = write(plant, out_dir)
    kinds = {k: sum(w.kind == k for w in plant.windows) for k in KINDS}
    rates = sorted(set(plant.rates.values()))
    return [f"{len(plant.readings):,} readings from {machines} machines x "
            f"{plant.readings['channel'].nunique()} channels over {hours:g} h at "
            f"{', '.join(f'{r:g}' for r in rates)} Hz (seed {seed}) -> {paths['readings']}",
            f"{len(plant.windows)} labelled faults ("
            + ", ".join(f"{n} {k}" for k, n in kinds.items()) + f") -> {paths['windows']}"]
