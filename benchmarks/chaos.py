"""Redis killed under load: every answer must still be a decision, and scoring must come back.

    rtml bench chaos --rate 100 --before 10 --down 5 --after 20

The benchmark starts a Valkey of its own on a free port with a copy of the configured Redis's
keys (`benchmarks.resilience.own_redis`; the configured one is only read), a fraud service
reading from it, and open-loop load at `--rate`. After `--before` s it SIGKILLs that Valkey,
after `--down` s more restarts it on the same port and data, and keeps the load on for
`--after` s. It reports:

- failed requests (anything but a 200 with a decision: the target is 0);
- the share answered `fallback: true` while Redis was down (and their reasons);
- recovery: from the moment the restarted Valkey answers PING to the first normal (non-fallback)
  decision, and to "steady" (every later request normal);
- p50/p99 per phase (before, down, after).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.load import sample_requests
from benchmarks.record import RESULTS, Recorder
from benchmarks.resilience import Answer, Run, drive, latency, own_redis, print_progress, statuses
from rtml.settings import Settings


def reason_kind(reason: str | None) -> str:
    """`feature_store_unavailable: circuit open` or `…: ConnectionError` (no message detail)."""
    return ":".join((reason or "?").split(":")[:2]).strip()


def phases(run: Run) -> dict[str, tuple[float, float]]:
    """The phases (before, down, after) as (from, to) in run seconds, by when requests were due."""
    killed, back = run.marks["kill"][0], run.marks["restart"][1]
    end = max((a.due for a in run.answers), default=back)
    return {"before": (0.0, killed), "down": (killed, back), "after": (back, end + 1e-9)}


def recovery(answers: list[Answer], *, killed_at: float, back_at: float) -> dict[str, Any]:
    """Seconds from Redis answering again to the first normal decision and to steady normal.

    First: the earliest completion of a normal decision for a request due after the kill.
    Steady: the due time of the first request after the last fallback (every later one normal),
    and never before the first.
    None when no normal decision came after the kill.
    """
    since_kill = [a for a in answers if a.due >= killed_at and a.decision]
    normal = [a for a in since_kill if not a.fallback]
    if not normal:
        return {"first_normal_s": None, "steady_normal_s": None}
    first = min(a.done for a in normal) - back_at
    fallbacks = [i for i, a in enumerate(since_kill) if a.fallback]
    if not fallbacks:
        steady = first
    elif fallbacks[-1] + 1 < len(since_kill):
        steady = since_kill[fallbacks[-1] + 1].due - back_at
    else:
        steady = None  # the run ended on a fallback
    return {"first_normal_s": max(first, 0.0),
            "steady_normal_s": None if steady is None else max(steady, first, 0.0)}


def summarize(run: Run, *, rate: float) -> dict[str, Any]:
    """The figures of a chaos run (see the module docstring)."""
    spans = phases(run)
    out: dict[str, Any] = {"requests": len(run.answers), "statuses": statuses(run.answers),
                           "failed": sum(1 for a in run.answers if not a.decision),
                           "phases": {}, "marks_s": run.marks,
                           "achieved_rps": len(run.answers) / run.elapsed_s
                           if run.elapsed_s else 0.0, "target_rps": rate}
    for name, (lo, hi) in spans.items():
        mine = [a for a in run.answers if lo <= a.due < hi]
        fb = [a for a in mine if a.fallback]
        out["phases"][name] = {
            "seconds": hi - lo, "requests": len(mine),
            "failed": sum(1 for a in mine if not a.decision),
            "fallbacks": len(fb), "fallback_share": len(fb) / len(mine) if mine else None,
            "fallback_reasons": dict(Counter(reason_kind(a.reason) for a in fb)),
            "latency_ms": latency(mine)}
    out["recovery"] = recovery(run.answers, killed_at=spans["down"][0],
                               back_at=spans["after"][0])
    return out


def table(s: dict[str, Any]) -> str:
    """Markdown: one row per phase, then the recovery line."""
    lines = ["| phase | s | requests | failed | fallback share | p50 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name, p in s["phases"].items():
        lat = p["latency_ms"]
        share = "–" if p["fallback_share"] is None else f"{p['fallback_share']:.1%}"
        lines.append(f"| {name} | {p['seconds']:.1f} | {p['requests']} | {p['failed']} | {share} "
                     f"| {lat.get('p50', 0):.1f} | {lat.get('p99', 0):.1f} "
                     f"| {lat.get('max', 0):.1f} |")
    r = s["recovery"]

    def sec(v: float | None) -> str:
        return "never" if v is None else f"{v:.2f} s"

    lines.append(f"\nfailed requests: {s['failed']} of {s['requests']}; Redis back -> first "
                 f"normal decision {sec(r['first_normal_s'])}, steady normal "
                 f"{sec(r['steady_normal_s'])}")
    return "\n".join(lines)


def run(settings: Settings, *, rate: float, before: float, down: float, after: float,
        service: str, out_dir: Path = RESULTS, warm_s: float = 3.0,
        env: dict[str, str] | None = None) -> tuple[Path, dict[str, Any]]:
    """The chaos run; writes `chaos-*.json` and returns its path and summary."""
    rec = Recorder("chaos", settings)
    pool = sample_requests(settings, max(2000, int(rate * 30)), seed=13)
    with contextlib.ExitStack() as stack:
        t = time.perf_counter()
        own = stack.enter_context(own_redis(settings))
        print(f"  own Valkey at {own.address}: {own.keys:,} keys copied in "
              f"{time.perf_counter() - t:.1f}s")
        port = servers.Ports().take()
        url = stack.enter_context(servers.rtml_server(
            settings, service=service, port=port,
            env={"RTML_REDIS_ADDRESS": own.address, "RTML_REDIS_EMBEDDED": "never",
                 **(env or {})}))
        rec.add_port(port)
        rec.add_port(own.settings.redis_port)
        drive(url, pool, rate=rate, duration_s=warm_s)  # connections and lazy state
        with rec.window(f"chaos {rate:g} rps"):
            result = drive(url, pool, rate=rate, duration_s=before + down + after,
                           actions=[(before, "kill", own.kill),
                                    (before + down, "restart", own.restart)],
                           progress=print_progress)
        print()
    summary = summarize(result, rate=rate)
    out = rec.write({"service": service, "rate": rate, "before_s": before, "down_s": down,
                     "after_s": after, "own_redis_keys": own.keys, "summary": summary},
                    out_dir=out_dir)
    return out, summary
