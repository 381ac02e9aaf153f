"""Open-loop GET load on the recommendation service; the cache hit rates are measured, not set.

    python -m benchmarks.recs_load --url http://127.0.0.1:3000 --rate 100 --duration 20 \
        --skews 0.8,1.0,1.2

Request i is due at t0 + i/rate whatever earlier ones did; its latency counts from that due time
(no coordinated omission). Users are drawn by a Zipf law over the simulated shop's users ranked by
activity (`data/recs/users.parquet`), seeded: the skew sets how often the most active users (the
ones `rtml recs precompute --top N` gave an L2 entry) come back, so the L2 hit rate at each skew
is what the service reports per answer (`Server-Timing: cache;desc=l1|l2|miss`), counted here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

from benchmarks.load import percentiles
from rtml.serving.asgi import parse_server_timing
from rtml.settings import Settings


def draw_users(settings: Settings, n: int, *, skew: float, seed: int) -> np.ndarray:
    """`n` user ids, P(rank r) ∝ (r + 1)^-skew over users sorted by simulated activity."""
    users = pd.read_parquet(settings.data_dir / "recs" / "users.parquet",
                            columns=["user_id", "activity"])
    ranked = users.sort_values(["activity", "user_id"], ascending=[False, True])["user_id"]
    weights = (np.arange(len(ranked)) + 1.0) ** -skew
    rng = np.random.default_rng(seed)
    return rng.choice(ranked.to_numpy(), size=n, p=weights / weights.sum())


async def _one(session: aiohttp.ClientSession, url: str, user: int, k: int, due: float,
               out: list[dict[str, Any]]) -> None:
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    rec: dict[str, Any] = {}
    try:
        async with session.get(url, params={"user_id": str(user), "k": str(k)}) as resp:
            body = await resp.json(content_type=None)
            timing = parse_server_timing(resp.headers.get("Server-Timing"))
            rec.update(status=resp.status, cache=timing.get("cache", {}).get("desc", "none"),
                       stages={s: float(v["dur"]) for s, v in timing.items() if "dur" in v},
                       fallback=(body.get("fallback_reason") or "?").split(":")[0]
                       if body.get("fallback") else None, cold=body.get("cold_start"))
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        rec["status"] = type(exc).__name__
    rec["latency_ms"] = (time.perf_counter() - due) * 1000
    out.append(rec)


async def run(url: str, users: np.ndarray, *, rate: float, k: int = 10) -> dict[str, Any]:
    """Send one GET per user at `rate`/s; percentiles, cache outcomes, fallbacks, stages."""
    out: list[dict[str, Any]] = []
    gc.collect()
    gc.disable()
    try:
        connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=10)) as session:
            t0 = time.perf_counter() + 0.05
            await asyncio.gather(*(_one(session, f"{url}/recommendations", int(u), k,
                                        t0 + i / rate, out) for i, u in enumerate(users)))
    finally:
        gc.enable()
    ok = [r for r in out if r.get("status") == 200]
    caches = Counter(r["cache"] for r in ok)
    stages: dict[str, list[float]] = {}
    for r in ok:
        for s, v in r["stages"].items():
            stages.setdefault(s, []).append(v)
    return {
        "requests": len(out), "rate": rate,
        "latency_ms": percentiles([r["latency_ms"] for r in out]),
        "server_total_ms": percentiles(stages.get("total", [])),
        "errors": dict(Counter(str(r["status"]) for r in out if r.get("status") != 200)),
        "fallbacks": dict(Counter(r["fallback"] for r in ok if r["fallback"])),
        "cache": dict(caches),
        "l2_hit_rate": caches.get("l2", 0) / len(ok) if ok else 0.0,
        "l1_hit_rate": caches.get("l1", 0) / len(ok) if ok else 0.0,
        "cold_starts": sum(1 for r in ok if r.get("cold")),
        "stage_ms_p50": {s: float(np.median(v)) for s, v in stages.items()},
        "stage_ms_p99": {s: float(np.percentile(v, 99)) for s, v in stages.items()},
    }


def main() -> None:
    """Command line: one run per skew, a table, and the JSON to `--out`."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:3000")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--skews", default="0.8,1.0,1.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    s = Settings(scenario="recs")
    rows = []
    for skew in (float(x) for x in args.skews.split(",")):
        users = draw_users(s, int(args.rate * args.duration), skew=skew, seed=args.seed)
        r = asyncio.run(run(args.url, users, rate=args.rate))
        r.update(skew=skew, label=args.label)
        rows.append(r)
        lat = r["latency_ms"]
        print(f"{args.label:>10} skew {skew:.1f}: p50 {lat['p50']:.2f} p95 {lat['p95']:.2f} "
              f"p99 {lat['p99']:.2f} ms  L2 hit {r['l2_hit_rate']:.1%}  L1 hit "
              f"{r['l1_hit_rate']:.1%}  cold {r['cold_starts']}  fallbacks {r['fallbacks']}  "
              f"errors {r['errors']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
