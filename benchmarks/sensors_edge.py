"""Edge mode on this machine: start time, peak memory, per-reading processing time.

    .venv/bin/python -m benchmarks.sensors_edge [--model PATH] [--readings 100000]

Each figure comes from a real `rtml edge run` process (the command a device runs):

* start: wall time of a run over a one-line input (interpreter, imports, model load, exit);
* RSS: the peak resident set (`ru_maxrss` of that child, from `wait4`) of the full run;
* processing: the run's own per-reading percentiles (parse + features + detector + latch + sink),
  from its `--json` summary; readings/s = readings / the run's loop time.

Readings: one machine's four channels at 10 Hz (seeded noise, a spike every 30 s per channel).
`--model` defaults to a robust-z detector with the default parameters written to a temp file, so
the numbers do not depend on a trained model being present.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.record import RESULTS, Recorder
from pipelines.sensors.detect import Detector
from rtml.settings import REPO_ROOT, Settings

RTML = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin" / "rtml"


def write_readings(path: Path, n: int, *, hz: float = 10.0, seed: int = 0) -> None:
    """`n` readings of one machine's four channels, JSON lines, time order."""
    rng = np.random.default_rng(seed)
    channels = ("temperature", "pressure", "vibration", "current")
    t0 = 1_764_590_400.0
    with open(path, "w") as f:
        for i in range(n):
            ch = i % 4
            step = i // 4
            value = 20.0 * (ch + 1) + rng.normal(0, 0.5)
            if step % int(30 * hz) == int(15 * hz):
                value += 15.0
            f.write(json.dumps({"machine_id": "edge-1", "channel": channels[ch],
                                "timestamp": t0 + step / hz, "value": round(value, 4)}) + "\n")


def run_edge(model: Path, source: Path, work: Path) -> tuple[float, float, dict]:
    """(wall s, peak RSS MB, --json summary) of one `rtml edge run`."""
    for name in ("alerts.jsonl", "outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm"):
        (work / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(RTML), "edge", "run", "--model", str(model), "--input",
                             str(source), "--alerts", str(work / "alerts.jsonl"), "--outbox",
                             str(work / "outbox.sqlite"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"rtml edge run failed ({status}): {out[-500:]}")
    return wall, usage.ru_maxrss / 1024, json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--starts", type=int, default=5, help="start-time runs (median reported)")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args()
    rec = Recorder("sensors-edge", Settings(scenario="sensors"), model=False)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or Detector().save(work / "robust_z.zip")
        one, many = work / "one.jsonl", work / "many.jsonl"
        write_readings(one, 1)
        write_readings(many, args.readings)
        with rec.window("edge"):
            starts = sorted(run_edge(model, one, work)[0] for _ in range(args.starts))
            wall, rss, summary = run_edge(model, many, work)
    result = {"model": str(args.model or "Detector() defaults (robust_z)"),
              "start_s_median": round(starts[len(starts) // 2], 3),
              "start_s_max": round(starts[-1], 3), "rss_mb_peak": round(rss, 1),
              "readings": summary["readings"], "alerts": summary["alerts"],
              "readings_per_s": round(summary["readings"] / summary["seconds"]),
              "process_p50_us": summary["process_p50_us"],
              "process_p99_us": summary["process_p99_us"],
              "process_max_us": round(summary["process_max_us"], 1), "wall_s": round(wall, 2)}
    print(json.dumps(result, indent=2))
    print(f"results: {rec.write(dict(result), out_dir=args.results_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
