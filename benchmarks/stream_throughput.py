"""Fresh-features flow throughput and freshness on one worker.

    .venv/bin/python -m benchmarks.stream_throughput --events 100000

Fills the transaction streams first (a backlog), then starts the flow and times how long it takes
to push every event's windows into Feast: sustained events/s on one worker. The sink's freshness
samples (`XADD` -> readable in Feast) are summarized too; during a backlog they measure queueing,
so read the p50 with that in mind. Results go to benchmarks/results/stream-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import redis

from pipelines.feast_push import FRESHNESS_STREAM
from pipelines.produce import produce
from rtml.cli import stream_command
from rtml.events import stream_key
from rtml.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    """Backlog, then drain through the flow; print and save the numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    s = Settings()
    client = redis.Redis(host=s.redis_host, port=s.redis_port)
    client.delete(*[stream_key(i) for i in range(s.stream_partitions)], FRESHNESS_STREAM)
    shutil.rmtree(s.state_dir / "recovery", ignore_errors=True)
    tx = pd.read_parquet(s.raw_dir / "transactions.parquet").tail(args.events)
    out = produce(host=s.redis_host, port=s.redis_port, transactions=tx, rate=1e9, duration=None,
                  partitions=s.stream_partitions, progress=False)
    events = out["sent"]
    print(f"backlog: {events:,} events produced at {out['achieved_rate']:,.0f}/s")
    t0 = time.perf_counter()
    proc = subprocess.Popen(stream_command(s), cwd=s.repo_root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pushed, last, last_push = 0, "-", t0
        # A row per view per event; done once 99.9% are pushed and nothing arrived for 2 s.
        while time.perf_counter() - t0 < 600:
            for sid, fields in client.xrange(FRESHNESS_STREAM, min=last):
                if sid != last:
                    pushed += int(fields[b"rows"])
                    last, last_push = sid, time.perf_counter()
            if pushed >= 2 * events * 0.999 and time.perf_counter() - last_push > 2:
                break
            time.sleep(0.2)
        seconds = last_push - t0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lags = sorted(float(f[b"lag_ms"]) for _, f in client.xrange(FRESHNESS_STREAM))
    result = {"events": events, "rows_pushed": pushed, "seconds_incl_startup": round(seconds, 2),
              "events_per_s_incl_startup": round(events / seconds), "pushes": len(lags),
              "lag_ms_p50_during_backlog": lags[len(lags) // 2] if lags else None}
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"stream-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
