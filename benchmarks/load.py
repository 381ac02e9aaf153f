"""Open-loop load on a scoring endpoint: fixed arrival rate, latency from each intended start.

A closed loop (send, wait, send) slows down with the server and hides its stalls (coordinated
omission). Here request i is due at t0 + i/rate whether or not earlier ones have answered, and its
latency counts from that due time, so a stall shows up in every request it delays.

    rtml bench --rates 100,200 --duration 20      # after `make demo` (or its setup) has run

Customers are drawn with a Zipf-like skew (a few card holders pay often, most rarely), seeded, so
two runs send the same requests and a cache sees the repeats real traffic would give it.
"""

from __future__ import annotations

import asyncio
import gc
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
from rtml.serving.asgi import parse_server_timing
from rtml.settings import Settings

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
# Zipf exponent of the customer draw: 0 = one distinct customer per request while they last.
# Around 1 is the classic web-traffic skew; card payments are flatter, so a bit under it.
DEFAULT_SKEW = 0.8
PERCENTILES = (50, 95, 99, 99.9)
# Log-spaced latency bins, 20 per decade from 1 us to 10 s: the histogram kept in the JSON.
HIST_EDGES_MS = np.logspace(-3, 4, 141)


def draw_customers(customers: np.ndarray, n: int, *, skew: float, seed: int) -> np.ndarray:
    """`n` customer ids: rank r (a seeded shuffle of `customers`) has weight 1 / r**skew.

    skew 0 gives each customer once, in random order, while they last (then uniform repeats).
    """
    rng = np.random.default_rng(seed)
    ranked = rng.permutation(np.asarray(customers))
    if skew <= 0:
        if n <= len(ranked):
            return ranked[:n]
        return np.concatenate([ranked, rng.choice(ranked, n - len(ranked))])
    weights = 1.0 / np.arange(1, len(ranked) + 1, dtype=np.float64) ** skew
    return ranked[rng.choice(len(ranked), size=n, p=weights / weights.sum())]


def sample_requests(settings: Settings, n: int, *, seed: int = 0, last_days: int = 14,
                    skew: float = DEFAULT_SKEW) -> list[dict[str, Any]]:
    """`n` held-out transactions for customers drawn with `skew`, stamped now."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet",
                         columns=["transaction_id", "customer_id", "terminal_id", "amount",
                                  "is_fraud", "day"])
    tx = tx[tx["day"] >= tx["day"].max() - last_days + 1].reset_index(drop=True)
    rng = np.random.default_rng(seed + 1)
    by_customer = tx.groupby("customer_id").indices  # customer -> row positions
    ids = draw_customers(np.fromiter(by_customer, dtype=np.int64), n, skew=skew, seed=seed)
    rows = [by_customer[c][rng.integers(len(by_customer[c]))] for c in ids]
    now = datetime.now(UTC).isoformat()
    picked = tx.iloc[rows]
    return [
        {"transaction_id": f"tx-{r.transaction_id}-{i}", "customer_id": int(r.customer_id),
         "terminal_id": int(r.terminal_id), "amount": float(r.amount), "timestamp": now,
         "_is_fraud": int(r.is_fraud)}
        for i, r in enumerate(picked.itertuples())
    ]


def customer_mix(requests: list[dict[str, Any]]) -> dict[str, float]:
    """How skewed a sample is: distinct customers and the share the busiest 1% of them send."""
    counts = sorted(Counter(r["customer_id"] for r in requests).values(), reverse=True)
    if not counts:
        return {"distinct_customers": 0, "top1pct_share": 0.0}
    top = max(1, len(counts) // 100)
    return {"distinct_customers": len(counts), "top1pct_share": sum(counts[:top]) / len(requests)}


def _server_timing(header: str | None) -> dict[str, float]:
    """`Server-Timing` entries (`name;dur=1.2;desc=...`) as name -> milliseconds."""
    out: dict[str, float] = {}
    for name, params in parse_server_timing(header).items():
        try:
            out[name] = float(params["dur"])
        except (KeyError, ValueError):
            pass
    return out


def _model_backend(header: str | None) -> str | None:
    """The model backend the server says it ran (`model;dur=0.1;desc=onnx`), or None.

    Recorded per request: what ran, measured, rather than assumed from the server's settings.
    """
    return parse_server_timing(header).get("model", {}).get("desc")


def _payload(bodies: list[dict[str, Any]], path: str) -> Any:
    clean = [{k: v for k, v in b.items() if not k.startswith("_")} for b in bodies]
    return {"transactions": clean} if path.endswith("_batch") else clean[0]


async def _one(session: aiohttp.ClientSession, url: str, bodies: list[dict[str, Any]],
               due: float, results: list[dict[str, Any]]) -> None:
    delay = due - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    # How late the generator itself sent it: a busy client shows up here, not as server time.
    rec: dict[str, Any] = {"rows": len(bodies), "send_lag_ms": (time.perf_counter() - due) * 1000}
    try:
        async with session.post(url, json=_payload(bodies, url)) as resp:
            data = await resp.json(content_type=None)
            header = resp.headers.get("Server-Timing")
            rec.update(status=resp.status, timing=_server_timing(header),
                       backend=_model_backend(header))
            if resp.status == 200:
                answers = data if isinstance(data, list) else [data]
                rec.update(decisions=[a["decision"] for a in answers],
                           versions=[a.get("model_version") for a in answers],
                           fallback_reasons=[a.get("fallback_reason") or "unknown"
                                             for a in answers if a.get("fallback")])
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        rec.update(status=type(exc).__name__)
    rec["done_at"] = time.perf_counter()
    rec["latency_ms"] = (rec["done_at"] - due) * 1000
    results.append(rec)


def _progress_line(label: str, results: list[dict[str, Any]], total: int, t0: float) -> str:
    errors = sum(1 for r in results if r.get("status") != 200)
    lat = [r["latency_ms"] for r in results[-2000:]]
    p99 = f"{np.percentile(lat, 99):.2f} ms" if lat else "-"
    return (f"\r  {label}: {time.perf_counter() - t0:5.1f}s  {len(results)}/{total} answered, "
            f"{errors} errors, recent p99 {p99}   ")


async def run_load(url: str, requests: list[dict[str, Any]], *, rate: float,
                   path: str = "/score", batch: int = 1, label: str = "",
                   progress: bool = True, timeout_s: float = 10.0) -> dict[str, Any]:
    """POST `requests` to `url` + `path` at `rate` requests/s (`batch` rows each); summarize.

    The generator holds a task per request from the start; CPython's full collections walking
    them paused it for ~100 ms at a time, and the burst it sent afterwards looked like server
    stalls (and tripped admission control). No collection while the clock runs; one before.
    """
    gc.collect()
    gc.disable()
    try:
        return await _run_load(url, requests, rate=rate, path=path, batch=batch, label=label,
                               progress=progress, timeout_s=timeout_s)
    finally:
        gc.enable()


async def _run_load(url: str, requests: list[dict[str, Any]], *, rate: float, path: str,
                    batch: int, label: str, progress: bool, timeout_s: float) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    groups = [requests[i:i + batch] for i in range(0, len(requests), batch)]
    # A gateway-sized keep-alive pool: new connections mid-run would measure TCP set-up.
    connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    label = label or f"{rate:g} rps"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter() + 0.05
        tasks = [asyncio.create_task(_one(session, f"{url}{path}", g, t0 + i / rate, results))
                 for i, g in enumerate(groups)]
        while progress and not all(t.done() for t in tasks):
            await asyncio.sleep(1.0)
            print(_progress_line(label, results, len(groups), t0), end="", flush=True)
        await asyncio.gather(*tasks)
        # Up to the last answer, not to the progress loop's next tick.
        elapsed = max((r["done_at"] for r in results), default=t0) - t0
    if progress:
        print()
    out = summarize(results, rate=rate, elapsed=elapsed)
    out.update(path=path, batch=batch, customers=customer_mix(requests))
    return out


def histogram(latencies_ms: Any) -> dict[str, list]:
    """Counts over the fixed log-spaced bins (values outside are clipped into the end bins)."""
    lat = np.clip(np.asarray(latencies_ms, dtype=np.float64), HIST_EDGES_MS[0], HIST_EDGES_MS[-1])
    counts, _ = np.histogram(lat, bins=HIST_EDGES_MS)
    return {"edges_ms": [float(e) for e in HIST_EDGES_MS], "counts": counts.tolist()}


def percentiles(latencies_ms: Any) -> dict[str, float]:
    """p50/p95/p99/p99.9 and max (linear interpolation); empty input gives an empty dict."""
    lat = np.asarray(latencies_ms, dtype=np.float64)
    if not len(lat):
        return {}
    return {**{f"p{p:g}": float(np.percentile(lat, p)) for p in PERCENTILES},
            "max": float(lat.max())}


def summarize(results: list[dict[str, Any]], *, rate: float, elapsed: float) -> dict[str, Any]:
    """Percentiles, errors by status, fallbacks, decisions and the server's stage times."""
    lat = [r["latency_ms"] for r in results]
    ok = [r for r in results if r.get("status") == 200]
    stages: dict[str, list[float]] = {}
    for r in ok:
        for k, v in r.get("timing", {}).items():
            stages.setdefault(k, []).append(v)
    reasons = Counter(x for r in ok for x in r.get("fallback_reasons", []))
    # Scored: answered from the model, not a fallback `approve`.
    rows_ok = sum(r.get("rows", 1) for r in ok) - sum(reasons.values())
    return {
        "target_rps": rate,
        "achieved_rps": len(results) / elapsed if elapsed > 0 else 0.0,
        "scored_tx_per_s": rows_ok / elapsed if elapsed > 0 else 0.0,
        "requests": len(results),
        "latency_ms": percentiles(lat) or {"max": 0.0},
        "client_send_lag_ms_p99": float(np.percentile([r.get("send_lag_ms", 0.0)
                                                       for r in results], 99)) if results else 0.0,
        "client_send_lag_ms_max": max((r.get("send_lag_ms", 0.0) for r in results), default=0.0),
        "errors": dict(Counter(str(r["status"]) for r in results if r.get("status") != 200)),
        "fallbacks": sum(reasons.values()),
        "fallback_reasons": dict(reasons),
        "decisions": dict(Counter(d for r in ok for d in r.get("decisions", []))),
        # What the server said it ran: the model backend per request, the model per answer.
        "backends_used": dict(Counter(str(r.get("backend")) for r in ok)),
        "model_versions": dict(Counter(str(v) for r in ok for v in r.get("versions", []))),
        "server_stage_ms_p50": {k: float(np.median(v)) for k, v in stages.items()},
        "server_stage_ms_p99": {k: float(np.percentile(v, 99)) for k, v in stages.items()},
        "histogram": histogram(lat),
    }


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None or value != value else format(value, fmt)


def table(rows: list[dict[str, Any]], *, first: str = "rate (rps)") -> str:
    """Markdown table of summaries (first column: `label` when present, else the rate)."""
    head = (f"| {first} | achieved | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | errors "
            "| fallbacks | server total p50/p99 ms |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lat = r["latency_ms"]
        srv50 = r["server_stage_ms_p50"].get("total")
        srv99 = r["server_stage_ms_p99"].get("total")
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        lines.append(
            f"| {r.get('label') or format(r['target_rps'], 'g')} | {r['achieved_rps']:.0f} "
            f"| {_f(lat.get('p50'))} | {_f(lat.get('p95'))} | {_f(lat.get('p99'))} "
            f"| {_f(lat.get('p99.9'))} | {_f(lat.get('max'), '.1f')} | {errors} "
            f"| {r['fallbacks']} | {_f(srv50)} / {_f(srv99)} |")
    return "\n".join(lines)


def main(settings: Settings, *, url: str, duration: float, rates: list[float],
         skew: float = DEFAULT_SKEW, out_dir: Path = RESULTS,
         hist: Path | None = DOCS_IMG / "latency-hist.png", service: str = "") -> int:
    """Run each rate for `duration` seconds after a warm-up; write results; print the table.

    Uses the service answering at `url`, or starts `bentoml serve <service>` (and stops it) when
    none does (`service`: the scenario's, from the registry).
    """
    import contextlib

    from benchmarks import servers
    from benchmarks.report import plot_histograms

    rows = []
    rec = Recorder("score", settings)
    started = False
    with contextlib.ExitStack() as stack:
        if servers.answers(url):
            rec.add_port(int(url.rsplit(":", 1)[1].split("/")[0]))
        else:
            if not service:
                raise servers.ServerError(f"nothing answers at {url} and no service to start")
            url = stack.enter_context(servers.rtml_server(settings, service=service,
                                                          port=servers.Ports().take()))
            started = True
            print(f"  rtml: nothing answered at the given --url; started bentoml serve at {url}")
        asyncio.run(run_load(url, sample_requests(settings, 200, seed=99, skew=skew), rate=100,
                             progress=False))
        for rate in rates:
            reqs = sample_requests(settings, int(rate * duration), seed=int(rate), skew=skew)
            with rec.window(f"/score {rate:g} rps"):
                rows.append(asyncio.run(run_load(url, reqs, rate=rate,
                                                 label=f"/score {rate:g} rps")))
            rows[-1]["label"] = f"{rate:g}"
    out = rec.write({"url": url, "server": "started by the harness" if started else
                     "already running at --url (its settings may differ from this environment's)",
                     "duration_s": duration, "skew": skew, "runs": rows}, out_dir=out_dir)
    print(table(rows))
    if hist is not None:
        plot_histograms({f"/score {r['label']} rps": r["histogram"] for r in rows}, hist,
                        title="rtml /score latency (open loop, client side)")
        print(f"histogram: {hist}")
    print(f"results: {out}")
    return 0 if all(not r["errors"] for r in rows) else 1
