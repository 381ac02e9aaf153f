"""Open-loop load on the fraud service: fixed arrival rate, latency from each intended start.

A closed loop (send, wait, send) slows down with the server and hides its stalls (coordinated
omission). Here request i is due at t0 + i/rate whether or not earlier ones have answered, and its
latency counts from that due time, so a stall shows up in every request it delays.

    rtml bench --rates 100,200 --duration 20      # after `make demo` (or its setup) has run
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

from rtml.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def sample_requests(settings: Settings, n: int, *, seed: int = 0, last_days: int = 14
                    ) -> list[dict[str, Any]]:
    """`n` transactions from the held-out period, one per customer while customers last."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    tx = tx[tx["day"] >= tx["day"].max() - last_days + 1]
    rng = np.random.default_rng(seed)
    first_per_customer = tx.sample(frac=1.0, random_state=seed).drop_duplicates("customer_id")
    picked = first_per_customer.head(n)
    if len(picked) < n:  # more requests than customers: repeat customers, still in random order
        extra = tx.iloc[rng.integers(0, len(tx), n - len(picked))]
        picked = pd.concat([picked, extra])
    now = datetime.now(UTC).isoformat()
    return [
        {"transaction_id": f"tx-{r.transaction_id}", "customer_id": int(r.customer_id),
         "terminal_id": int(r.terminal_id), "amount": float(r.amount), "timestamp": now,
         "_is_fraud": int(r.is_fraud)}
        for r in picked.itertuples()
    ]


def _server_timing(header: str | None) -> dict[str, float]:
    """`Server-Timing` entries (`name;dur=1.2;desc=...`) as name -> milliseconds."""
    out: dict[str, float] = {}
    for entry in (header or "").split(","):
        name, *params = (p.strip() for p in entry.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key == "dur":
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
    return out


async def _one(session: aiohttp.ClientSession, url: str, body: dict[str, Any], due: float,
               results: list[dict[str, Any]]) -> None:
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    payload = {k: v for k, v in body.items() if not k.startswith("_")}
    # How late the generator itself sent it: a busy client shows up here, not as server time.
    rec: dict[str, Any] = {"is_fraud": body.get("_is_fraud"),
                           "send_lag_ms": (time.perf_counter() - due) * 1000}
    try:
        async with session.post(url, json=payload) as resp:
            data = await resp.json(content_type=None)
            rec.update(status=resp.status, timing=_server_timing(resp.headers.get("Server-Timing")))
            if resp.status == 200:
                rec.update(decision=data["decision"], fallback=data["fallback"],
                           fallback_reason=data.get("fallback_reason"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        rec.update(status=type(exc).__name__)
    rec["latency_ms"] = (time.perf_counter() - due) * 1000
    results.append(rec)


async def run_load(url: str, requests: list[dict[str, Any]], *, rate: float,
                   progress: bool = True) -> dict[str, Any]:
    """Send `requests` to `url` + /score at `rate` per second; summarize what came back."""
    results: list[dict[str, Any]] = []
    # A gateway-sized keep-alive pool: new connections mid-run would measure TCP set-up.
    connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter() + 0.05
        tasks = [asyncio.create_task(_one(session, f"{url}/score", body, t0 + i / rate, results))
                 for i, body in enumerate(requests)]
        while progress and not all(t.done() for t in tasks):
            await asyncio.sleep(1.0)
            print(f"\r  {rate:g} rps: {len(results)}/{len(requests)} answered", end="", flush=True)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    if progress:
        print()
    return summarize(results, rate=rate, elapsed=elapsed)


def summarize(results: list[dict[str, Any]], *, rate: float, elapsed: float) -> dict[str, Any]:
    """Percentiles, errors by status, fallbacks, decisions and the server's stage times."""
    lat = np.array([r["latency_ms"] for r in results])
    ok = [r for r in results if r.get("status") == 200]
    stages: dict[str, list[float]] = {}
    for r in ok:
        for k, v in r.get("timing", {}).items():
            stages.setdefault(k, []).append(v)
    pct = {f"p{p:g}": float(np.percentile(lat, p)) for p in (50, 95, 99, 99.9)} if len(lat) else {}
    return {
        "target_rps": rate,
        "achieved_rps": len(results) / elapsed if elapsed > 0 else 0.0,
        "requests": len(results),
        "latency_ms": {**pct, "max": float(lat.max()) if len(lat) else 0.0},
        "client_send_lag_ms_p99": float(np.percentile([r.get("send_lag_ms", 0.0)
                                                       for r in results], 99)) if results else 0.0,
        "errors": dict(Counter(str(r["status"]) for r in results if r.get("status") != 200)),
        "fallbacks": sum(1 for r in ok if r.get("fallback")),
        "fallback_reasons": dict(Counter(r["fallback_reason"] for r in ok if r.get("fallback"))),
        "decisions": dict(Counter(r["decision"] for r in ok)),
        "server_stage_ms_p50": {k: float(np.median(v)) for k, v in stages.items()},
        "server_stage_ms_p99": {k: float(np.percentile(v, 99)) for k, v in stages.items()},
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of summaries."""
    head = ("| rate (rps) | achieved | p50 ms | p99 ms | p99.9 ms | max ms | errors | fallbacks "
            "| server total p50/p99 ms |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lat = r["latency_ms"]
        srv50 = r["server_stage_ms_p50"].get("total", float("nan"))
        srv99 = r["server_stage_ms_p99"].get("total", float("nan"))
        lines.append(
            f"| {r['target_rps']:g} | {r['achieved_rps']:.0f} | {lat['p50']:.2f} "
            f"| {lat['p99']:.2f} "
            f"| {lat['p99.9']:.2f} | {lat['max']:.1f} | {sum(r['errors'].values())} "
            f"| {r['fallbacks']} | {srv50:.2f} / {srv99:.2f} |")
    return "\n".join(lines)


def main(settings: Settings, *, url: str, duration: float, rates: list[float]) -> int:
    """Run each rate for `duration` seconds after a warm-up; write results; print the table."""
    rows = []
    asyncio.run(run_load(url, sample_requests(settings, 200, seed=99), rate=100, progress=False))
    for rate in rates:
        reqs = sample_requests(settings, int(rate * duration), seed=int(rate))
        rows.append(asyncio.run(run_load(url, reqs, rate=rate)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"score-{stamp}.json"
    out.write_text(json.dumps({"machine": {"cpus": __import__("os").cpu_count(),
                                           "python": platform.python_version()},
                               "url": url, "duration_s": duration, "runs": rows}, indent=2))
    print(table(rows))
    print(f"results: {out}")
    return 0 if all(not r["errors"] for r in rows) else 1
