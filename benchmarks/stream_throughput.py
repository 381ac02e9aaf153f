"""Fresh-features flow on one worker: sustained throughput, event -> online latency, memory.

    .venv/bin/python -m benchmarks.stream_throughput            # after `make demo`'s setup
    .venv/bin/python -m benchmarks.stream_throughput --events 100000 --rate 5000 --customers 100000

One flow process (`rtml stream run`'s command line, one worker) is started and warmed up (Feast's
import alone takes seconds), then three phases run against it:

1. *throughput*: `--events` real transactions, stamped evenly over the last `--span-h` hours (2:
   a backlog, as after an outage), are `XADD`ed as fast as the producer can. Events/s = events
   / (last push of an event's rows - first `XADD`). The flow also re-emits a key whenever one of
   its tiles leaves a window; with events spread over more than the longest window (1 h) most of
   those expiries are already past and fire at once, so the flow writes more rows than events
   bring. *Rows written* counts every row that reached the online store (Redis `HSET` calls, from
   `INFO commandstats`: each pushed row is one `HSET` of its entity's hash, whichever writer),
   until the count has not moved for `--settle-s`; rows/s = rows written / (last write - first
   `XADD`). Rows written after the last event's rows can only be timers' (a lower bound of them).
2. *latency*: transactions produced open-loop at `--rate` for `--duration` s. The sink records,
   per push, a histogram of every event's lag (`XADD` -> readable through Feast) and the lags of
   the batch's oldest and newest event; `per_event` gives the percentiles from the histograms
   (to a bucket bound), the others weight each batch's oldest/newest lag by its events.
3. *memory*: `--customers` distinct customers (ids no generated customer uses) send one event each;
   the flow's RSS (`VmRSS`) and peak (`VmHWM`) are read from /proc once it has caught up.

Results go to benchmarks/results/stream-*.json, with the run's metadata (`benchmarks.record`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from benchmarks.record import RESULTS, Recorder
from pipelines.fraud.events import TxEvent, encode, partition_of, stream_key
from pipelines.fraud.produce import produce
from rtml.features.push import FRESHNESS_STREAM, LAG_BUCKETS_MS
from rtml.redis import connect
from rtml.runtime import flow_command
from rtml.settings import Settings


def hset_calls(client: redis.Redis) -> int:
    """`HSET` calls Redis has served since it started: one per row written to the store."""
    return int(client.info("commandstats").get("cmdstat_hset", {}).get("calls", 0))


def send_stamped(client: redis.Redis, rows: pd.DataFrame, *, first: datetime, last: datetime,
                 partitions: int, chunk: int = 2000) -> int:
    """`XADD` `rows` in event order as fast as possible, stamped evenly from `first` to `last`."""
    rows = rows.sort_values("event_timestamp", kind="stable")
    n = len(rows)
    step = (last - first) / max(1, n - 1)
    items = list(zip(rows["transaction_id"].astype(str), rows["customer_id"].astype("int64"),
                     rows["terminal_id"].astype("int64"), rows["amount"].astype(float),
                     strict=True))
    for i in range(0, n, chunk):
        with client.pipeline(transaction=False) as pipe:
            for j, (tid, customer, terminal, amount) in enumerate(items[i:i + chunk], start=i):
                event = TxEvent(transaction_id=tid, customer_id=int(customer),
                                terminal_id=int(terminal), amount=float(amount),
                                event_time=first + step * j)
                pipe.xadd(stream_key(partition_of(int(customer), partitions)), encode(event),
                          maxlen=1_000_000, approximate=True)
            pipe.execute()
    return n


def settle(client: redis.Redis, *, quiet_s: float, timeout_s: float
           ) -> tuple[int, float | None]:
    """Poll the `HSET` count until it has not moved for `quiet_s`.

    Returns the count and the epoch seconds it last moved (None: it never moved).
    """
    count, moved = hset_calls(client), None
    since = time.time()
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end and time.time() - (moved or since) < quiet_s:
        time.sleep(0.1)
        now = hset_calls(client)
        if now != count:
            count, moved = now, time.time()
    return count, moved


class FreshnessLog:
    """Reads the sink's freshness samples incrementally."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.last = client, "-"
        self.samples: list[dict[str, float]] = []

    def poll(self) -> list[dict[str, float]]:
        new = []
        for sid, fields in self.client.xrange(FRESHNESS_STREAM, min=self.last):
            sid = sid.decode()
            if sid == self.last:
                continue
            self.last = sid
            new.append({"at_ms": float(sid.split("-")[0]),
                        "events": float(fields.get(b"events", fields[b"rows"])),
                        "lag_ms": float(fields[b"lag_ms"]),
                        "lag_oldest_ms": float(fields.get(b"lag_oldest_ms", fields[b"lag_ms"])),
                        "hist": [int(x) for x in fields.get(b"lag_hist", b"").split(b",") if x]})
        self.samples += new
        return new

    def wait_for(self, events: int, *, quiet_s: float = 2.0, timeout_s: float = 600,
                 at_least: int | None = None) -> list[dict[str, float]]:
        """Samples until `events` event-rows were pushed (or quiet for `quiet_s` past `at_least`).

        `at_least` defaults to 99.9% of `events`. An event yields a customer row and a terminal
        row; under a backlog read from several partitions a terminal's events can arrive later
        than the allowed lateness and yield none, so a backlog waits for `at_least` = one row
        per event, then for quiet.
        """
        floor = 0.999 * events if at_least is None else at_least
        got: list[dict[str, float]] = []
        seen, t0, last_new = 0.0, time.monotonic(), time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            new = self.poll()
            if new:
                got += new
                seen += sum(s["events"] for s in new)
                last_new = time.monotonic()
                print(f"\r  pushed {seen:,.0f}/{events:,} event-rows", end="", file=sys.stderr)
            if seen >= events or (seen >= floor and time.monotonic() - last_new > quiet_s):
                break
            time.sleep(0.1)
        print(file=sys.stderr)
        return got


def rss_mb(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return {name: round(int(fields[key].split()[0]) / 1024, 1)
            for name, key in (("rss_mb", "VmRSS"), ("peak_rss_mb", "VmHWM"))}


def weighted_percentiles(values: list[float], weights: list[float],
                         qs: tuple[float, ...] = (50, 99, 100)) -> dict[str, float]:
    """Percentiles of `values` where each value counts `weight` times."""
    order = np.argsort(values)
    v, w = np.asarray(values)[order], np.asarray(weights)[order]
    cum = np.cumsum(w) / w.sum()
    return {("max" if q == 100 else f"p{q:g}"): round(float(v[min(np.searchsorted(cum, q / 100),
                                                                   len(v) - 1)]), 1)
            for q in qs}


def histogram_percentiles(samples: list[dict], qs: tuple[float, ...] = (50, 90, 99, 99.9)
                          ) -> dict[str, str]:
    """Per-event lag percentiles from the summed per-push histograms, as "<= bound ms"."""
    total = [sum(col) for col in zip(*(x["hist"] for x in samples if x["hist"]), strict=True)]
    n, out = sum(total), {}
    bounds = [*LAG_BUCKETS_MS, float("inf")]
    for q in qs:
        cum = 0
        for bound, count in zip(bounds, total, strict=True):
            cum += count
            if cum >= q / 100 * n:
                out[f"p{q:g}"] = f"<= {bound:g} ms" if bound != float("inf") else "> 10 s"
                break
    return out


def main() -> int:
    """Start one flow, run the three phases, print and save the numbers."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="throughput backlog")
    parser.add_argument("--span-h", type=float, default=2.0,
                        help="backlog event times spread over this many hours before now")
    parser.add_argument("--settle-s", type=float, default=3.0,
                        help="rows written: stop counting once no row was written this long")
    parser.add_argument("--rate", type=float, default=5000, help="latency phase events/s")
    parser.add_argument("--duration", type=float, default=30, help="latency phase seconds")
    parser.add_argument("--customers", type=int, default=100_000, help="memory phase")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--flow", default="pipelines.fraud.flow:get_flow()",
                        help="the Bytewax flow (these events are the fraud scenario's)")
    args = parser.parse_args()
    s = Settings(scenario="fraud")
    rec = Recorder("stream", s, model=False)
    client = connect(s)
    client.delete(*[stream_key(i) for i in range(s.stream_partitions)], FRESHNESS_STREAM)
    shutil.rmtree(s.state_dir / "recovery", ignore_errors=True)
    tx = pd.read_parquet(s.raw_dir / "transactions.parquet",
                         columns=["transaction_id", "event_timestamp", "customer_id",
                                  "terminal_id", "amount"])
    n_latency = int(args.rate * args.duration) + 1
    if len(tx) < args.events + n_latency + 1:
        raise SystemExit(f"need {args.events + n_latency + 1:,} transactions, have {len(tx):,}")
    log = FreshnessLog(client)

    def send(rows: pd.DataFrame, rate: float = float("inf")) -> dict:
        return produce(address=s.redis_address, transactions=rows, rate=rate,
                       duration=None, partitions=s.stream_partitions, progress=True)

    t_start = time.perf_counter()
    proc = subprocess.Popen(flow_command(s, args.flow), cwd=s.repo_root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict = {"writer": s.stream_writer, "snapshot_s": s.stream_snapshot_s,
                    "partitions": s.stream_partitions, "workers": 1}
    try:
        now = datetime.now(UTC)
        first = now - timedelta(hours=args.span_h)
        print("warm-up: one event, wait until it is readable", file=sys.stderr)
        send_stamped(client, tx.iloc[:1], first=now, last=now, partitions=s.stream_partitions)
        log.wait_for(2, quiet_s=0)
        result["startup_s"] = round(time.perf_counter() - t_start, 1)
        result["rss_after_warmup"] = rss_mb(proc.pid)

        print(f"throughput: backlog of {args.events:,} events stamped over the last "
              f"{args.span_h:g} h", file=sys.stderr)
        with rec.window("throughput (backlog)"):
            hset0 = hset_calls(client)
            first_xadd_ms = time.time() * 1000
            sent = send_stamped(client, tx.iloc[1:1 + args.events], first=first, last=now,
                                partitions=s.stream_partitions)
            produced_s = time.time() - first_xadd_ms / 1000
            # Windows are evaluated at the wall clock: an event already older than the longest
            # window (1 h) when it arrives is read and dropped (expired), and writes no row.
            live = int(sent * max(0.0, min(1.0, 1 / args.span_h))) if args.span_h > 1 else sent
            samples = log.wait_for(2 * live, at_least=int(0.98 * live))
            events_done_ms = max(x["at_ms"] for x in samples)
            hset_events = hset_calls(client)
            hset_end, last_write = settle(client, quiet_s=args.settle_s, timeout_s=120)
        seconds = (events_done_ms - first_xadd_ms) / 1000
        rows_seconds = seconds if last_write is None else max(
            seconds, last_write - first_xadd_ms / 1000)
        written = hset_end - hset0
        result["throughput"] = {
            "events": sent, "event_span_h": args.span_h, "produced_per_s": round(sent / produced_s),
            "seconds": round(seconds, 2), "events_per_s": round(sent / seconds),
            "pushes": len(samples),
            "event_rows_emitted": int(sum(x["events"] for x in samples)),
            "event_rows_expected": 2 * live,  # customer + terminal rows of the unexpired events
            "rows_written": written, "rows_seconds": round(rows_seconds, 2),
            "rows_written_per_s": round(written / rows_seconds),
            "rows_written_after_last_event": hset_end - hset_events,
            "note": "rows_written: HSET calls on the online store (events' and timers' rows "
                    "after the sink's latest-per-key merge); rows_written_after_last_event: "
                    "written once every event's rows were in, so by timers only (a lower bound)"}

        print(f"latency: {args.rate:,.0f} events/s for {args.duration:.0f} s", file=sys.stderr)
        rows = tx.iloc[1 + args.events:1 + args.events + n_latency]
        with rec.window("latency"):
            out = send(rows, rate=args.rate)
            samples = log.wait_for(2 * out["sent"])
        weights = [x["events"] for x in samples]
        result["latency"] = {
            "rate": args.rate, "achieved_rate": round(out["achieved_rate"]),
            "events": out["sent"], "pushes": len(samples),
            "per_event": histogram_percentiles(samples),
            "oldest_in_batch_ms": weighted_percentiles([x["lag_oldest_ms"] for x in samples],
                                                       weights),
            "newest_in_batch_ms": weighted_percentiles([x["lag_ms"] for x in samples], weights)}

        print(f"memory: {args.customers:,} distinct customers", file=sys.stderr)
        ids = np.arange(args.customers, dtype="int64")
        fresh = pd.DataFrame({"transaction_id": [f"mem-{i}" for i in ids],
                              "event_timestamp": pd.Timestamp.now(tz="UTC"),
                              "customer_id": 50_000_000 + ids, "terminal_id": ids % 10_000,
                              "amount": 10.0 + (ids % 97)})
        with rec.window("memory"):
            out = send(fresh)
            log.wait_for(2 * out["sent"])
        result["memory"] = {"customers": args.customers, **rss_mb(proc.pid)}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    print(json.dumps(result, indent=2))
    out_path = rec.write(result, out_dir=args.results_dir)
    print(f"results: {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
