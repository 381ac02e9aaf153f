"""Ten minutes at half capacity with the stream running: does memory or latency creep?

    rtml bench soak --minutes 10                    # capacity measured first (saturate, no shed)
    rtml bench soak --minutes 10 --capacity 400     # or given

Starts the fraud service, the fresh-features flow (`rtml stream run`) and the event producer
(`rtml stream produce`) against the configured Redis, then drives /score open loop at
`share` x capacity. Every `--every` s (a minute by default) it samples the resident memory of the
service's process group (workers included) and of the flow's, and takes the p99 of the requests
due in that interval. Growth is measured after the first interval (warm-up: lazy state, caches,
allocator arenas): (last - first after warm-up) / first after warm-up; the target is <= 10%.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.load import sample_requests
from benchmarks.record import RESULTS, Recorder
from benchmarks.resilience import Run, drive, group_rss_mb, latency, print_progress, statuses
from benchmarks.saturate import find_saturation
from rtml import runtime
from rtml.settings import Settings

GROWTH_TARGET = 0.10


@contextlib.contextmanager
def group(name: str, cmd: list[str], *, settings: Settings, log: Path,
          ready_url: str | None = None, timeout_s: float = 180) -> Iterator[subprocess.Popen]:
    """A process group of `cmd` (ready when `ready_url` answers, if given); stopped on exit."""
    proc = runtime.start_group(cmd, log=log, cwd=settings.repo_root)
    try:
        if ready_url:
            runtime.wait_ready(proc, ready_url, timeout_s=timeout_s, name=name, log=log,
                               refused=True, error=servers.ServerError)
        elif proc.poll() is not None:
            raise servers.ServerError(f"{name} exited at once; log: {log}")
        yield proc
    finally:
        runtime.stop_group(proc)


def growth(samples: list[float]) -> float | None:
    """(last - first) / first over the samples after warm-up (the first one dropped)."""
    after = samples[1:]
    if len(after) < 2 or after[0] <= 0:
        return None
    return (after[-1] - after[0]) / after[0]


def summarize(run: Run, *, every_s: float, intervals: int, rate: float) -> dict[str, Any]:
    """Per interval: requests, failures, fallbacks, p99, RSS of service and flow."""
    rows = []
    for i in range(intervals):
        lo, hi = i * every_s, (i + 1) * every_s
        mine = [a for a in run.answers if lo <= a.due < hi]
        rss = run.results.get(f"rss-{i + 1}") or {}
        rows.append({"interval": i + 1, "requests": len(mine),
                     "failed": sum(1 for a in mine if not a.decision),
                     "fallbacks": sum(1 for a in mine if a.fallback),
                     "latency_ms": latency(mine),
                     "service_rss_mb": rss.get("service"), "flow_rss_mb": rss.get("flow")})
    service = [r["service_rss_mb"] for r in rows if r["service_rss_mb"] is not None]
    flow = [r["flow_rss_mb"] for r in rows if r["flow_rss_mb"] is not None]
    p99 = [r["latency_ms"].get("p99") for r in rows if r["latency_ms"]]
    g_s, g_f = growth(service), growth(flow)
    return {"rate": rate, "every_s": every_s, "intervals": rows,
            "requests": len(run.answers), "statuses": statuses(run.answers),
            "failed": sum(1 for a in run.answers if not a.decision),
            "service_rss_growth": g_s, "flow_rss_growth": g_f,
            "growth_target": GROWTH_TARGET,
            "growth_within_target": None if g_s is None or g_f is None
            else max(g_s, g_f) <= GROWTH_TARGET,
            "p99_after_warmup_ms": {"min": min(p99[1:]), "max": max(p99[1:])}
            if len(p99) > 1 else None,
            "start_rss_mb": run.results.get("rss-0")}


def table(s: dict[str, Any]) -> str:
    """Markdown: one row per interval, then the growth line."""
    lines = [f"| interval ({s['every_s']:g} s) | requests | failed | fallbacks | p50 ms "
             "| p99 ms | service RSS MB | flow RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for r in s["intervals"]:
        lat = r["latency_ms"]
        lines.append(f"| {r['interval']} | {r['requests']} | {r['failed']} | {r['fallbacks']} "
                     f"| {lat.get('p50', 0):.1f} | {lat.get('p99', 0):.1f} "
                     f"| {r['service_rss_mb'] or 0:.0f} | {r['flow_rss_mb'] or 0:.0f} |")

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:+.1%}"

    lines.append(f"\nRSS growth after warm-up: service {pct(s['service_rss_growth'])}, flow "
                 f"{pct(s['flow_rss_growth'])} (target <= {GROWTH_TARGET:.0%})")
    return "\n".join(lines)


def run(settings: Settings, *, minutes: float, share: float, capacity: float | None,
        every_s: float, stream_rate: float, service: str, flow: str, budget_ms: float = 50.0,
        out_dir: Path = RESULTS) -> tuple[Path, dict[str, Any]]:
    """The soak; writes `soak-*.json`. `service`, `flow`: the scenario's, from the registry."""
    rec = Recorder("soak", settings)
    duration = minutes * 60
    intervals = max(1, int(round(duration / every_s)))
    logs = settings.state_dir / "bench"
    bin_rtml = str(runtime.BIN / "rtml")
    measured = None
    with contextlib.ExitStack() as stack:
        port = servers.Ports().take()
        url = f"http://127.0.0.1:{port}"
        svc = stack.enter_context(group(
            "rtml (bentoml serve)", runtime.serve_command(service, port=port), settings=settings,
            log=logs / f"soak-serve-{port}.log", ready_url=f"{url}/readyz"))
        rec.add_port(port)
        if capacity is None:
            measured = find_saturation(settings, url, path="/score", batch=1, start=100.0,
                                       factor=1.5, step_s=5.0, budget_ms=budget_ms, rec=rec)
            capacity = measured["rules"]["no_shed"]["saturation_rps"] or 100.0
            print(f"  capacity (no shed, p99 <= {budget_ms:g} ms): {capacity:.0f} rps")
        flow = stack.enter_context(group("flow", runtime.flow_command(settings, flow, name="fraud"),
                                         settings=settings,
                                         log=logs / "soak-flow.log"))
        stack.enter_context(group(
            "producer", [bin_rtml, "stream", "produce", "--rate", f"{stream_rate:g}",
                         "--duration", f"{duration + 30:g}"],
            settings=settings, log=logs / "soak-producer.log"))

        def rss() -> dict[str, float]:
            return {"service": group_rss_mb(svc.pid), "flow": group_rss_mb(flow.pid)}

        rate = share * capacity
        pool = sample_requests(settings, max(2000, int(rate * 60)), seed=23)
        actions = [(i * every_s, f"rss-{i}", rss) for i in range(intervals + 1)]
        with rec.window(f"soak {rate:.0f} rps"):
            result = drive(url, pool, rate=rate, duration_s=duration, actions=actions,
                           progress=print_progress)
        print()
        if flow.poll() is not None:
            print(f"  the flow exited ({flow.returncode}); log: {logs / 'soak-flow.log'}")
    summary = summarize(result, every_s=every_s, intervals=intervals, rate=rate)
    summary["capacity_rps"] = capacity
    out = rec.write({"service": service, "minutes": minutes, "share": share,
                     "stream_rate": stream_rate, "capacity_measured": measured is not None,
                     "summary": summary}, out_dir=out_dir)
    return out, summary
