"""Twice the capacity on /score: what is shed, how fast, and what the admitted requests get.

    rtml bench overload --factor 2 --duration 20               # measures capacity first
    rtml bench overload --factor 2 --duration 20 --capacity 400

Capacity is the no-shed saturation point of `benchmarks.saturate` (p99 within the budget, no
request shed, kept up), measured here on the service this run starts unless `--capacity` gives
it. Then open-loop load at `factor` x capacity for `duration` s. Reported: the shed share (503
from admission control, each must carry `Retry-After`), how fast a shed request is answered
(client side, from when it was due, so the generator's own lag is in it: the server-side cost
of a refusal is far below), the admitted answers' p99 against the budget, and their fallback
share (a fallback is admitted but not scored).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.load import sample_requests
from benchmarks.record import RESULTS, Recorder
from benchmarks.resilience import Run, drive, latency, print_progress, statuses
from benchmarks.saturate import find_saturation
from rtml.settings import Settings


def summarize(run: Run, *, rate: float, capacity: float, budget_ms: float) -> dict[str, Any]:
    """Shed share and latency, admitted latency and fallbacks, other failures."""
    a = run.answers
    shed = [x for x in a if x.status == 503]
    admitted = [x for x in a if x.decision]
    other = [x for x in a if x.status != 503 and not x.decision]
    fb = [x for x in admitted if x.fallback]
    adm_lat = latency(admitted)
    return {"capacity_rps": capacity, "offered_rps": rate, "requests": len(a),
            "achieved_rps": len(a) / run.elapsed_s if run.elapsed_s else 0.0,
            "statuses": statuses(a),
            "shed": len(shed), "shed_share": len(shed) / len(a) if a else 0.0,
            "shed_with_retry_after": sum(1 for x in shed if x.retry_after),
            "shed_latency_ms": latency(shed),
            "shed_latency_from_send_ms": latency(shed, from_send=True),
            "admitted": len(admitted), "admitted_latency_ms": adm_lat,
            "admitted_p99_within_budget": adm_lat.get("p99", float("inf")) <= budget_ms,
            "admitted_fallbacks": len(fb),
            "admitted_fallback_reasons": dict(Counter((x.reason or "?").split(":")[0]
                                                      for x in fb)),
            "scored_rps": (len(admitted) - len(fb)) / run.elapsed_s if run.elapsed_s else 0.0,
            "other_failures": len(other), "budget_ms": budget_ms}


def table(s: dict[str, Any]) -> str:
    """Markdown: one row."""
    shed, adm = s["shed_latency_ms"], s["admitted_latency_ms"]
    sent = s["shed_latency_from_send_ms"]
    return ("| capacity rps | offered rps | shed share | shed p50 / p99 ms "
            "| shed p50 / p99 ms from send | Retry-After "
            "| admitted p50 / p99 ms | admitted fallbacks | scored rps | other failures |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {s['capacity_rps']:.0f} | {s['offered_rps']:.0f} | {s['shed_share']:.1%} "
            f"| {shed.get('p50', 0):.2f} / {shed.get('p99', 0):.2f} "
            f"| {sent.get('p50', 0):.2f} / {sent.get('p99', 0):.2f} "
            f"| {s['shed_with_retry_after']}/{s['shed']} "
            f"| {adm.get('p50', 0):.1f} / {adm.get('p99', 0):.1f} "
            f"| {s['admitted_fallbacks']} | {s['scored_rps']:.0f} | {s['other_failures']} |")


def run(settings: Settings, *, factor: float, duration: float, capacity: float | None,
        url: str, service: str, budget_ms: float = 50.0, start: float = 100.0,
        step_s: float = 5.0, out_dir: Path = RESULTS,
        env: dict[str, str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Capacity (given or measured), then `factor` x it; writes `overload-*.json`."""
    rec = Recorder("overload", settings)
    measured: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        if servers.answers(url) and not env:
            rec.add_port(int(url.rsplit(":", 1)[1].split("/")[0]))
        else:
            port = servers.Ports().take()
            url = stack.enter_context(servers.rtml_server(settings, service=service, port=port,
                                                          env=env))
            rec.add_port(port)
        if capacity is None:
            measured = find_saturation(settings, url, path="/score", batch=1, start=start,
                                       factor=1.5, step_s=step_s, budget_ms=budget_ms, rec=rec)
            capacity = measured["rules"]["no_shed"]["saturation_rps"] or start
            print(f"  capacity (no shed, p99 <= {budget_ms:g} ms): {capacity:.0f} rps")
        rate = factor * capacity
        pool = sample_requests(settings, max(2000, int(rate * min(duration, 30))), seed=17)
        with rec.window(f"overload {rate:.0f} rps"):
            result = drive(url, pool, rate=rate, duration_s=duration, progress=print_progress)
        print()
    summary = summarize(result, rate=rate, capacity=capacity, budget_ms=budget_ms)
    out = rec.write({"service": service, "factor": factor, "duration_s": duration,
                     "capacity_measured": measured is not None,
                     "capacity_steps": [{k: v for k, v in s.items() if k != "histogram"}
                                        for s in (measured or {}).get("steps", [])],
                     "summary": summary}, out_dir=out_dir)
    return out, summary
