"""Sensors alert path: reading `XADD` -> alert in `rtml:alerts`, on one flow worker, open loop.

    .venv/bin/python -m benchmarks.sensors_alert_path [--machines 100 --hz 5 --duration 60]

A Valkey of its own (free port) and a sandbox copy of the Feast repo; `feast apply`; a robust-z
detector with a short warm-up (so its false alarms give plenty of alerts to time; latches bound
them to one per channel per quiet period); the real flow (`python -m bytewax.run`, one worker);
readings produced open loop at machines x 4 channels x hz per second by the kit's pacer, with a
+15 sigma spike every ~15 s per channel.

Latency per alert = the alert's stream entry time - its reading's stream entry time (both `XADD`
times on the same Redis clock, ms): it covers the read, parse, features, detector, latch and the
publish. Readings of the first `--warmup-s` seconds are not timed (the flow starting up and
catching up). Per-reading processing (features + detector + latch, no engine) is timed in this
process over the same readings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.record import RESULTS, Recorder
from pipelines.sensors.alerts import Latches
from pipelines.sensors.detect import Detector, Params
from pipelines.sensors.produce import produce
from pipelines.sensors.readings import Reading
from pipelines.sensors.streams import ALERT_STREAM
from rtml.features.online import apply_repo
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.runtime import flow_command, start_group, stop_group
from rtml.settings import REPO_ROOT, Settings

CHANNELS = ("temperature", "pressure", "vibration", "current")
BENCH_PARAMS = Params(kind="robust_z", warmup_readings=50, warmup_seconds=10.0)


def sandbox(root: Path, port: int) -> Settings:
    """A copy of the Feast repo pointing at the bench's Valkey, with the sensors views applied."""
    shutil.copytree(REPO_ROOT / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / ".feastignore", root / ".feastignore")
    text = (REPO_ROOT / "feature_store.yaml").read_text()
    (root / "feature_store.yaml").write_text(
        text.replace('"localhost:6379"', f'"localhost:{port}"'))
    return Settings(scenario="sensors", repo_root=root, redis_address=f"localhost:{port}")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rows(machines: int, hz: float, seconds: float, seed: int = 0
         ) -> list[tuple[str, str, float, float, str]]:
    """Readings in send order; `ts` is replaced by the send time (the pacer stamps it)."""
    rng = np.random.default_rng(seed)
    steps = int(seconds * hz)
    noise = rng.normal(0.0, 0.5, (steps, machines, len(CHANNELS)))
    phase = rng.integers(0, int(15 * hz), (machines, len(CHANNELS)))
    out = []
    for s in range(steps):
        for m in range(machines):
            for c, channel in enumerate(CHANNELS):
                value = 20.0 * (c + 1) + noise[s, m, c]
                if s > 20 * hz and (s + phase[m, c]) % int(15 * hz) == 0:
                    value += 7.5
                out.append((f"bm{m:03d}", channel, s / hz, round(float(value), 4), ""))
    return out


def processing_us(readings: list[tuple[str, str, float, float, str]]) -> dict[str, float]:
    """Per-reading features + detector + latch time, in this process (no engine, no Redis)."""
    det, latches, lat = Detector(params=BENCH_PARAMS), Latches(), []
    for machine, channel, ts, value, _ in readings:
        t0 = time.perf_counter()
        r = Reading(machine_id=machine, channel=channel, ts=1_764_590_400.0 + ts, value=value,
                    reading_id=f"{machine}-{channel}-{ts}")
        latches.judge(r, det.update(r))
        lat.append((time.perf_counter() - t0) * 1e6)
    a = np.array(lat)
    return {f"p{q}": round(float(np.percentile(a, q)), 1) for q in (50, 99, 99.9)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--hz", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup-s", type=float, default=20.0)
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args()
    rate = args.machines * len(CHANNELS) * args.hz
    readings = rows(args.machines, args.hz, args.duration)
    with tempfile.TemporaryDirectory() as tmp:
        s = sandbox(Path(tmp), free_port())
        start_embedded(s)
        rec = Recorder("sensors-alert-path", s, model=False)
        flow = None
        try:
            apply_repo(s)
            Detector(params=BENCH_PARAMS).save(s.artifacts_dir / "sensors" / "bench.zip")
            env = {"RTML_REPO_ROOT": str(s.repo_root), "RTML_REDIS_ADDRESS": s.redis_address,
                   "RTML_REDIS_EMBEDDED": "never", "FEAST_USAGE": "False"}
            cmd = flow_command(s, "pipelines.sensors.flow:get_flow()")
            flow = start_group(cmd, log=Path(tmp) / "flow.log", cwd=REPO_ROOT, env=env)
            time.sleep(8)  # Feast's import: the flow reads the backlog from the start anyway
            client = connect(s, decode_responses=True)
            t0_ms = int(client.time()[0]) * 1000 + int(client.time()[1]) // 1000
            with rec.window("produce"):
                sent = produce(address=s.redis_address, settings=s, readings=readings, rate=rate,
                               partitions=s.stream_partitions, progress=False)
            # Until the flow has caught up: the alert count stops moving for 3 s (30 s at most).
            seen, still, deadline = -1, 0, time.monotonic() + 30
            while still < 3 and time.monotonic() < deadline:
                time.sleep(1)
                n = client.xlen(ALERT_STREAM)
                still, seen = (still + 1, n) if n == seen else (0, n)
            if not seen:
                print((Path(tmp) / "flow.log").read_text()[-3000:])
            timed_from = t0_ms + args.warmup_s * 1000
            lat = []
            for entry_id, f in client.xrange(ALERT_STREAM):
                read_ms = int(f["reading_id"].rsplit("@", 1)[1].split("-")[0])
                if read_ms >= timed_from:
                    lat.append(int(entry_id.split("-")[0]) - read_ms)
            rss = _rss_mb(flow.pid)
        finally:
            if flow is not None:
                stop_group(flow)
            stop_embedded(s)
    a = np.array(lat or [np.nan])
    result = {"machines": args.machines, "channels": len(CHANNELS), "hz": args.hz,
              "target_rate": rate, "achieved_rate": round(sent["achieved_rate"]),
              "readings": sent["sent"], "alerts": seen, "alerts_timed": len(lat),
              "alert_ms": {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)}
              | {"max": float(a.max())},
              "processing_us": processing_us(readings), "flow_rss_mb": rss}
    print(json.dumps(result, indent=2))
    print(f"results: {rec.write(dict(result), out_dir=args.results_dir)}")
    return 0


def _rss_mb(pid: int) -> float | None:
    """Resident memory of the flow process group's leader (the single-worker flow)."""
    try:
        out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                             text=True).stdout.strip()
        return round(int(out) / 1024, 1) if out else None
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
