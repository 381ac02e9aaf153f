"""Open-loop GET load on the recommendation service; the cache hit rates are measured, not set.

    python -m benchmarks.recs_load --url http://127.0.0.1:3000 --rate 100 --duration 20 \
        --skews 0.8,1.0,1.2
    rtml bench --scenario recs --rates 100 --duration 30 --skews 0.8,1.0,1.2   # results file

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


def outcome(status: int, headers: Any, body: dict[str, Any]) -> dict[str, Any]:
    """What one answer says: status, cache tier (`Server-Timing` `cache` desc), stages, fallback."""
    timing = parse_server_timing(headers.get("Server-Timing"))
    return {"status": status, "cache": timing.get("cache", {}).get("desc", "none"),
            "stages": {s: float(v["dur"]) for s, v in timing.items() if "dur" in v},
            "fallback": (body.get("fallback_reason") or "?").split(":")[0]
            if body.get("fallback") else None, "cold": body.get("cold_start")}


def sample_requests(settings: Settings, n: int, *, seed: int = 0, skew: float = 1.0
                    ) -> list[dict[str, Any]]:
    """The registry's `bench_requests`: `n` GET query strings (users drawn as `draw_users`)."""
    return [{"user_id": int(u), "k": 10}
            for u in draw_users(settings, n, skew=skew, seed=seed)]


async def _one(session: aiohttp.ClientSession, url: str, user: int, k: int, due: float,
               out: list[dict[str, Any]]) -> None:
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    rec: dict[str, Any] = {}
    try:
        async with session.get(url, params={"user_id": str(user), "k": str(k)}) as resp:
            body = await resp.json(content_type=None)
            rec.update(outcome(resp.status, resp.headers, body))
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        rec["status"] = type(exc).__name__
    rec["latency_ms"] = (time.perf_counter() - due) * 1000
    out.append(rec)


def summarize(out: list[dict[str, Any]], *, rate: float) -> dict[str, Any]:
    """Percentiles; the cache tiers' hit rates and the fallback share over answered requests.

    A fallback answer counts as a miss whatever its `cache` desc says: it was not served from
    a cache. Rates are shares of the 200 answers (errors are counted apart).
    """
    ok = [r for r in out if r.get("status") == 200]
    caches = Counter("fallback" if r["fallback"] else r["cache"] for r in ok)
    stages: dict[str, list[float]] = {}
    for r in ok:
        for s, v in r["stages"].items():
            stages.setdefault(s, []).append(v)
    fallbacks = Counter(r["fallback"] for r in ok if r["fallback"])
    return {
        "requests": len(out), "rate": rate,
        "latency_ms": percentiles([r["latency_ms"] for r in out]),
        "server_total_ms": percentiles(stages.get("total", [])),
        "errors": dict(Counter(str(r["status"]) for r in out if r.get("status") != 200)),
        "fallbacks": dict(fallbacks),
        "fallback_share": sum(fallbacks.values()) / len(ok) if ok else 0.0,
        "cache": dict(caches),
        "l2_hit_rate": caches.get("l2", 0) / len(ok) if ok else 0.0,
        "l1_hit_rate": caches.get("l1", 0) / len(ok) if ok else 0.0,
        "cold_starts": sum(1 for r in ok if r.get("cold")),
        "stage_ms_p50": {s: float(np.median(v)) for s, v in stages.items()},
        "stage_ms_p99": {s: float(np.percentile(v, 99)) for s, v in stages.items()},
    }


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
    return summarize(out, rate=rate)


# The service's settings per configuration `rtml bench --scenario recs` measures.
CONFIGS: dict[str, dict[str, str]] = {
    "cache off": {"RTML_RECS__CACHE": "false", "RTML_RECS__ENTITY_CACHE": "false"},
    "L2 on": {"RTML_RECS__CACHE": "false", "RTML_RECS__ENTITY_CACHE": "true"},
}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per configuration, rate and skew."""
    lines = ["| config | rate | skew | p50 ms | p95 ms | p99 ms | fallback | L1 hit | L2 hit "
             "| errors |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat = r["latency_ms"]
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        lines.append(f"| {r['config']} | {r['rate']:g} | {r['skew']:.1f} "
                     f"| {lat.get('p50', 0):.2f} | {lat.get('p95', 0):.2f} "
                     f"| {lat.get('p99', 0):.2f} | {r['fallback_share']:.1%} "
                     f"| {r['l1_hit_rate']:.1%} | {r['l2_hit_rate']:.1%} | {errors} |")
    return "\n".join(lines)


def bench(settings: Settings, *, url: str, rates: list[float], duration: float,
          skews: list[float], out_dir: Path, service: str,
          configs: tuple[str, ...] = tuple(CONFIGS)) -> int:
    """`rtml bench --scenario recs`: every configuration x rate x skew; a results file.

    A service already answering at `url` is measured as it runs (one configuration, its own
    settings); otherwise the harness starts `bentoml serve` once per configuration.
    """
    import contextlib

    from benchmarks import servers
    from benchmarks.record import Recorder

    rec = Recorder("recs", settings)
    rows: list[dict[str, Any]] = []
    given = servers.answers(url)
    targets = ["as running at --url"] if given else list(configs)
    for label in targets:
        with contextlib.ExitStack() as stack:
            if given:
                rec.add_port(int(url.rsplit(":", 1)[1].split("/")[0]))
                target = url
            else:
                port = servers.Ports().take()
                target = stack.enter_context(servers.rtml_server(
                    settings, service=service, port=port, env=CONFIGS[label]))
                rec.add_port(port)
            asyncio.run(run(target, draw_users(settings, 200, skew=1.0, seed=99), rate=100.0))
            for rate in rates:
                for skew in skews:
                    users = draw_users(settings, int(rate * duration), skew=skew,
                                       seed=int(rate))
                    with rec.window(f"{label} {rate:g} rps skew {skew:g}"):
                        r = asyncio.run(run(target, users, rate=rate))
                    r.update(config=label, skew=skew, settings=CONFIGS.get(label, {}))
                    rows.append(r)
                    print(table([r]).splitlines()[-1], flush=True)
    out = rec.write({"url": url, "server": "already running at --url" if given else
                     "started by the harness, once per configuration", "duration_s": duration,
                     "runs": rows}, out_dir=out_dir)
    print(table(rows))
    print(f"results: {out}")
    return 0 if all(not r["errors"] for r in rows) else 1


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
