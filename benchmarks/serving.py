"""Serving-settings experiments against a running fraud service: saturation, overload, cache.

    python -m benchmarks.serving saturate --concurrency 32 --duration 15
    python -m benchmarks.serving open --rate 800 --duration 15          # e.g. 2x saturation
    python -m benchmarks.serving open --rate 200 --repeat-share 0.5     # a repeated-request load

`saturate` is closed-loop (N clients back to back): the most /score the service answers per
second. `open` sends request i at t0 + i/rate whatever came back (no coordinated omission) and
splits the answers: accepted (200) latency percentiles, shed (503) count and how fast the 503s
came, other errors, L1 cache hits (from `Server-Timing: cache;desc=`), backends used. Results to
benchmarks/results/serving-*.json. `rtml bench` is the side-by-side harness; this one varies
one server setting at a time (start the server with the RTML_* variables under test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

from benchmarks.record import RESULTS, Recorder
from benchmarks.side_by_side import url_port
from rtml.serving.asgi import parse_server_timing
from rtml.settings import Settings


def requests_for(settings: Settings, n: int, *, repeat_share: float, seed: int = 0
                 ) -> list[dict[str, Any]]:
    """`n` held-out transactions; `repeat_share` of them exact repeats of an earlier one."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet",
                         columns=["transaction_id", "customer_id", "terminal_id", "amount", "day"])
    tx = tx[tx["day"] >= tx["day"].max() - 13].sample(n=n, random_state=seed, replace=len(tx) < n)
    now = datetime.now(UTC).isoformat()
    out = [{"transaction_id": f"tx-{r.transaction_id}", "customer_id": int(r.customer_id),
            "terminal_id": int(r.terminal_id), "amount": float(r.amount), "timestamp": now}
           for r in tx.itertuples()]
    rng = np.random.default_rng(seed)
    for i in range(1, n):
        if rng.random() < repeat_share:  # a retry / duplicate of a recent request (within ~2 s)
            out[i] = out[int(rng.integers(max(0, i - 400), i))]
    return out


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    rec: dict[str, Any] = {}
    try:
        async with session.post(url, json=body) as resp:
            data = await resp.json(content_type=None)
            rec = {"status": resp.status, "retry_after": resp.headers.get("Retry-After"),
                   "timing": parse_server_timing(resp.headers.get("Server-Timing"))}
            if resp.status == 200:
                rec["fallback"] = data["fallback"]
            elif resp.status == 503:
                rec["reason"] = data.get("reason")
    except (aiohttp.ClientError, TimeoutError) as exc:
        rec = {"status": type(exc).__name__}
    rec["service_ms"] = (time.perf_counter() - t0) * 1000
    return rec


def summarize(recs: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """Accepted latency percentiles, shed and error counts, cache hits, backends."""
    def pct(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        return {f"p{p:g}": round(float(np.percentile(values, p)), 2)
                for p in (50, 95, 99, 99.9)} | {"max": round(max(values), 2)}

    ok = [r for r in recs if r["status"] == 200]
    shed = [r for r in recs if r["status"] == 503]
    cache = Counter(r["timing"].get("cache", {}).get("desc", "off") for r in ok)
    totals = [float(r["timing"]["total"]["dur"]) for r in ok if "total" in r["timing"]]
    return {
        "requests": len(recs), "elapsed_s": round(elapsed, 2),
        "answered_per_s": round(len(recs) / elapsed, 1),
        "ok_per_s": round(len(ok) / elapsed, 1),
        "accepted_ms": pct([r["latency_ms"] for r in ok]),
        "server_total_ms": pct(totals),
        "shed": len(shed), "shed_ms": pct([r["latency_ms"] for r in shed]),
        "shed_with_retry_after": sum(1 for r in shed if r.get("retry_after")),
        "errors": dict(Counter(str(r["status"]) for r in recs if r["status"] not in (200, 503))),
        "fallbacks": sum(1 for r in ok if r.get("fallback")),
        "cache": dict(cache),
        "backends": dict(Counter(r["timing"].get("model", {}).get("desc", "?") for r in ok)),
    }


async def open_loop(url: str, bodies: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Request i due at t0 + i/rate; latency counted from its due time."""
    recs: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        t0 = time.perf_counter() + 0.05

        async def one(i: int, body: dict[str, Any]) -> None:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            rec = await _post(session, f"{url}/score", body)
            rec["latency_ms"] = (time.perf_counter() - due) * 1000
            recs.append(rec)

        await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
        elapsed = time.perf_counter() - t0
    return {"mode": "open", "rate": rate, **summarize(recs, elapsed)}


async def closed_loop(url: str, bodies: list[dict[str, Any]], concurrency: int,
                      duration: float) -> dict[str, Any]:
    """`concurrency` clients, each sending its next request as soon as the last one answers."""
    recs: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        t0 = time.perf_counter()
        end = t0 + duration

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                rec = await _post(session, f"{url}/score", bodies[i % len(bodies)])
                rec["latency_ms"] = rec["service_ms"]
                recs.append(rec)
                i += concurrency

        await asyncio.gather(*(client(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"mode": "closed", "concurrency": concurrency, **summarize(recs, elapsed)}


def main() -> None:
    """Parse, warm up, run, print and save."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["open", "saturate"])
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--repeat-share", type=float, default=0.0)
    p.add_argument("--label", default="", help="what the server was started with")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    a = p.parse_args()
    settings = Settings(scenario="fraud")
    # The server under test runs apart (started by hand with the RTML_* under test): its CPU
    # counts as this run's, found by its port; its settings are what --label says.
    rec = Recorder("serving", settings, ports=(url_port(a.url),))
    n = int(a.rate * a.duration) if a.mode == "open" else 20_000
    bodies = requests_for(settings, n, repeat_share=a.repeat_share, seed=int(a.rate))
    asyncio.run(open_loop(a.url, requests_for(settings, 300, repeat_share=0, seed=1), 100))
    with rec.window(a.mode):
        result = (asyncio.run(open_loop(a.url, bodies, a.rate)) if a.mode == "open" else
                  asyncio.run(closed_loop(a.url, bodies, a.concurrency, a.duration)))
    result |= {"label": a.label, "repeat_share": a.repeat_share,
               "at": datetime.now(UTC).isoformat(timespec="seconds")}
    print(json.dumps(result, indent=1))
    print(f"results: {rec.write(result, out_dir=a.results_dir)}")


if __name__ == "__main__":
    main()
