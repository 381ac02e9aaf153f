"""Throughput at saturation: step the rate up until p99 leaves the budget, errors, or lag.

    rtml bench saturate                         # /score and /score_batch, the service at --url
    rtml bench saturate --compare-batching      # rtml with RTML_FRAUD__BATCHING=true, then false
    rtml bench saturate --target naive          # the per-request-SQL service, for comparison

Each step is an open-loop run (see `benchmarks.load`); the last step that kept p99 within the
budget, had no other errors and kept up with the offered rate is the saturation point, under two
rules for requests shed by admission control (503): **no shed** at all, and **up to 1% shed**.
Both are reported; the cost report (`rtml bench cost`) uses the no-shed one unless told
otherwise. Scored transactions per second divided by the server's worker processes is the
per-core figure. The load generator shares the machine, so on 2 cores the per-core figure is a
lower bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks import servers
from benchmarks.load import DEFAULT_SKEW, run_load, sample_requests, table
from benchmarks.naive_server import DEFAULT_DSN
from benchmarks.record import RESULTS, Recorder
from benchmarks.side_by_side import pg_port, prepare_naive, target_server, url_port
from rtml.serving.accel import xgboost_device
from rtml.settings import Settings

KEEP_UP = 0.95  # achieved / offered rate below this: the server (or client) fell behind
MAX_FALLBACK_SHARE = 0.01  # a fallback answer is a non-answer: more than 1% is overload
# A 503 from admission control is a refusal by design (a burst past RTML_FRAUD__MAX_INFLIGHT), not a
# failure: up to 1% shed still counts as serving the rate. Any other error fails the step.
MAX_SHED_SHARE = 0.01
MAX_STEPS_DOWN = 4  # a first step that fails is retried at lower rates this many times
# The two shed rules every run reports: name -> largest share of requests answered 503.
RULES = {"no_shed": 0.0, "shed_1pct": MAX_SHED_SHARE}
DEFAULT_RULE = "no_shed"  # what the cost report uses unless told otherwise


def step_ok(summary: dict[str, Any], *, budget_ms: float,
            max_shed: float = MAX_SHED_SHARE) -> bool:
    """Within budget at this rate: p99 under budget, no errors, few sheds/fallbacks, kept up."""
    lat = summary["latency_ms"]
    rows = summary["requests"] * summary.get("batch", 1)
    errors = dict(summary["errors"])
    shed = errors.pop("503", 0)
    return (not errors and summary["requests"] > 0
            and shed <= max_shed * summary["requests"]
            and lat.get("p99", float("inf")) <= budget_ms
            and summary["fallbacks"] <= MAX_FALLBACK_SHARE * rows
            and summary["achieved_rps"] >= KEEP_UP * summary["target_rps"])


def saturation_point(steps: list[dict[str, Any]], rule: str) -> dict[str, Any] | None:
    """The highest-rate step passing `rule` below every rate that failed it (None: no step).

    Works for the upward sequence (stops at the first failure) and for the step-down retry.
    """
    failed = [s["target_rps"] for s in steps if not s["ok_by_rule"][rule]]
    good = [s for s in steps if s["ok_by_rule"][rule]
            and all(s["target_rps"] < f for f in failed)]
    return max(good, key=lambda s: s["target_rps"]) if good else None


def find_saturation(settings: Settings, url: str, *, path: str, batch: int, start: float,
                    factor: float, step_s: float, budget_ms: float, max_steps: int = 12,
                    skew: float = DEFAULT_SKEW, rec: Recorder | None = None) -> dict[str, Any]:
    """Rates start, start*factor, ... until a step fails; the last good step is the answer.

    When the very first step fails, the rate steps down instead (start/factor, ...), so a start
    above capacity still finds a point rather than reporting nothing.
    """
    if factor <= 1 or start <= 0:
        raise ValueError("--start must be > 0 and --factor > 1")
    batch = batch if path.endswith("_batch") else 1
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    rate, down = start, 0
    for _ in range(max_steps + MAX_STEPS_DOWN):
        n = max(1, int(rate * step_s)) * batch
        reqs = sample_requests(settings, n, seed=int(rate), skew=skew)
        label = f"{path} {rate:.3g} rps x {batch}"
        with rec.window(label) if rec is not None else contextlib.nullcontext():
            r = asyncio.run(run_load(url, reqs, rate=rate, path=path, batch=batch, label=label))
        r["label"] = f"{rate:.3g} x {batch}"
        r["ok_by_rule"] = {k: step_ok(r, budget_ms=budget_ms, max_shed=v)
                           for k, v in RULES.items()}
        r["ok"] = r["ok_by_rule"]["shed_1pct"]  # steps on while the looser rule holds
        steps.append(r)
        if r["ok"]:
            best = r
            if down:  # stepped down to a rate that holds: that is the answer
                break
            rate *= factor
        elif best is None and down < MAX_STEPS_DOWN:
            rate, down = rate / factor, down + 1
        else:
            break
    workers = max(1, settings.serve_workers)
    rules = {}
    for rule, share in RULES.items():
        point = saturation_point(steps, rule)
        tx = point["scored_tx_per_s"] if point else 0.0
        rules[rule] = {"max_shed_share": share,
                       "saturation_rps": point["target_rps"] if point else None,
                       "scored_tx_per_s": tx, "tx_per_s_per_core": tx / workers}
    loose = rules["shed_1pct"]
    # The top-level figures are the <= 1% rule's, as in results written before both were kept.
    return {"path": path, "batch": batch, "budget_ms": budget_ms, "steps": steps,
            "rules": rules, "saturation_rps": loose["saturation_rps"],
            "scored_tx_per_s": loose["scored_tx_per_s"], "server_workers": workers,
            "tx_per_s_per_core": loose["tx_per_s_per_core"], "device": xgboost_device()}


def batch_size_metrics(url: str) -> list[str]:
    """The service's batch-size metric lines from /metrics (empty when it exposes none)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return []
    return [ln for ln in text.splitlines() if "batch_size" in ln and not ln.startswith("#")]


@contextlib.contextmanager
def _service(settings: Settings, *, target: str, url: str, ports: servers.Ports,
             batching: bool | None, dsn: str, rec: Recorder, server: dict[str, Any],
             stock_mode: str, service: str, workers: int | None = None) -> Iterator[str]:
    if target != "rtml":  # naive or stock, started as in the side-by-side run
        table = prepare_naive(settings, dsn) if target == "naive" else ""
        name = f"stock-{stock_mode}" if target == "stock" else target
        with target_server(name, settings, url=url, ports=ports, dsn=dsn, table=table,
                           rec=rec, server=server) as u:
            yield u
        return
    if batching is None and workers is None and servers.answers(url):
        server.update(reused=url, note="its settings may differ from this environment's")
        rec.add_port(url_port(url))
        yield url
        return
    env = {} if batching is None else {"RTML_FRAUD__BATCHING": str(batching).lower()}
    if workers is not None:
        env["RTML_SERVE_WORKERS"] = str(workers)
    env = env or None
    server.update(reused=None, env_overrides=env or {})
    with servers.rtml_server(settings, service=service, port=ports.take(), env=env) as u:
        yield u


def run(settings: Settings, *, paths: list[str], budget_ms: float, start: float,
        batch_start: float, factor: float, step_s: float, batch: int, url: str,
        compare_batching: bool, port_base: int = 0, out_dir: Path = RESULTS,
        target: str = "rtml", dsn: str = DEFAULT_DSN, stock_mode: str = "pandas",
        service: str = "", workers: list[int] | None = None) -> int:
    """Saturation per path (and per batching setting); print tables; write the results JSON.

    `target` naive or stock measures those comparison services' /score instead (their per-core
    figure counts only their own process, not Postgres or `feast serve`: compare scored tx/s).
    `service`: the scenario's BentoML service, started for rtml when none answers at `url`.
    `workers`: start rtml once per count (`RTML_SERVE_WORKERS`), the throughput-vs-workers table.
    """
    if target not in ("rtml", "naive", "stock"):
        raise ValueError(f"--target {target!r}: one of rtml, naive, stock")
    if target != "rtml":
        if compare_batching:
            raise ValueError("--compare-batching: only for --target rtml")
        paths = [p for p in paths if p == "/score"] or ["/score"]
        if workers:
            raise ValueError("--workers: only for --target rtml")
    ports = servers.Ports(port_base)
    modes: list[bool | None] = [True, False] if compare_batching else [None]
    port = pg_port(dsn) if target == "naive" else None
    rec = Recorder("saturate", settings, ports=(port,) if port else ())
    runs = []
    for batching, n_workers in [(b, w) for b in modes for w in (workers or [None])]:
        server: dict[str, Any] = {}
        run_settings = (settings if n_workers is None else
                        settings.model_copy(update={"serve_workers": n_workers}))
        with _service(settings, target=target, url=url, ports=ports, batching=batching,
                      dsn=dsn, rec=rec, server=server, stock_mode=stock_mode,
                      service=service, workers=n_workers) as u:
            for path in paths:
                first = batch_start if path.endswith("_batch") else start
                res = find_saturation(run_settings, u, path=path, batch=batch, start=first,
                                      factor=factor, step_s=step_s, budget_ms=budget_ms,
                                      rec=rec)
                res["target"] = target
                res["server"] = dict(server)
                res["batching"] = (None if target != "rtml" else
                                   settings.batching if batching is None else batching)
                res["batch_size_metrics"] = batch_size_metrics(u)
                runs.append(res)
                print(table(res["steps"], first=f"{path} rate x rows"))
                for rule, r in res["rules"].items():
                    print(f"saturation {path} (batching {res['batching']}, {rule}): "
                          f"{r['scored_tx_per_s']:,.0f} scored tx/s, "
                          f"{r['tx_per_s_per_core']:,.0f} per core")
                print()
    out = rec.write({"runs": runs, "rules": {k: f"at most {v:.0%} of requests shed (503)"
                                             for k, v in RULES.items()},
                     "cost_uses": DEFAULT_RULE}, out_dir=out_dir)
    print(summary_table(runs))
    print(f"results: {out}")
    return 0


def summary_table(runs: list[dict[str, Any]]) -> str:
    """Markdown: one row per (target, path, batching), both shed rules side by side."""
    lines = ["| target | endpoint | batching | workers | rows/request | saturation rps, 0 shed "
             "| scored tx/s, 0 shed | saturation rps, ≤ 1% shed | scored tx/s, ≤ 1% shed "
             "| per core (0 shed) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        rules = r.get("rules") or {"shed_1pct": r, "no_shed": {}}
        cells = []
        for rule in ("no_shed", "shed_1pct"):
            x = rules.get(rule, {})
            sat = x.get("saturation_rps")
            cells += ["–" if sat is None else f"{sat:.3g}", f"{x.get('scored_tx_per_s', 0):,.0f}"]
        target = r.get("target", "rtml")
        if r.get("server", {}).get("odfv_mode"):
            target += f" ({r['server']['odfv_mode']})"
        lines.append(f"| {target} | {r['path']} | {r['batching']} "
                     f"| {r.get('server_workers', '–')} | {r['batch']} "
                     f"| {' | '.join(cells)} "
                     f"| {rules.get('no_shed', {}).get('tx_per_s_per_core', 0):,.0f} |")
    return "\n".join(lines)
