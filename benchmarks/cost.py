"""What serving a volume costs, from our own measured throughput (`rtml bench cost`).

The seed article prices 1 M predictions/day as "300 requests/sec = 3 T4 GPUs = $1K/day", and
60% cached as 1.2 GPUs. Two things are off there: 1 M a day is 11.6 a second on average (300/s is a
peak, 26x the mean), and a tree model's capacity per core is measured, not assumed. This module
takes the scored transactions/s per core (and per GPU where a run measured one) from the latest
`rtml bench saturate` results that were not discarded and recomputes the table: units (cores or
GPUs) = ceil(rate x (1 - cache hit rate) / capacity per unit), machines = ceil(cores / cores per
machine). Capacity is the saturation point under one shed rule, `no_shed` by default (the rate
served without refusing anyone; `shed_1pct` allows up to 1% answered 503), named in the output.
Prices are options with plain defaults, stated in the output, never hidden in the numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECONDS_PER_DAY = 86_400
RULE_NAMES = {"no_shed": "0 requests shed", "shed_1pct": "up to 1% of requests shed (503)"}


@dataclass(frozen=True)
class Capacity:
    """Measured scoring capacity of one unit (a core, or a GPU)."""

    name: str
    unit: str  # "core" | "gpu"
    per_unit: float  # scored predictions per second per unit


def _is_rtml(run: dict[str, Any]) -> bool:
    return run.get("target", "rtml") == "rtml"


def latest(results_dir: Path) -> Path:
    """The newest saturate-*.json measuring rtml and not discarded (names sort by UTC stamp)."""
    for path in sorted(results_dir.glob("saturate-*.json"), reverse=True):
        data = json.loads(path.read_text())
        if not data.get("discarded") and any(_is_rtml(r) for r in data.get("runs", [])):
            return path
    raise FileNotFoundError(f"no saturate-*.json of rtml in {results_dir} that was not "
                            "discarded: run `rtml bench saturate` first")


def _by_rule(run: dict[str, Any], rule: str) -> dict[str, Any]:
    """The run's figures under `rule`; a file from before both rules were kept has `shed_1pct`."""
    if "rules" in run:
        return {**run, **run["rules"][rule]}
    if rule != "shed_1pct":
        return {**run, "scored_tx_per_s": 0.0, "tx_per_s_per_core": 0.0}
    return run


def load_capacity(path: Path, *, best_only: bool = False, rule: str = "no_shed"
                  ) -> list[Capacity]:
    """One capacity per (endpoint, batching, device) run that reached a saturation point.

    `best_only`: per (endpoint, device) only the better batching setting — what one would deploy.
    `rule`: which saturation point counts (`RULE_NAMES`).
    """
    if rule not in RULE_NAMES:
        raise ValueError(f"--rule {rule!r}: one of {', '.join(RULE_NAMES)}")
    data: dict[str, Any] = json.loads(Path(path).read_text())
    runs = [_by_rule(r, rule) for r in data.get("runs", []) if _is_rtml(r)]
    runs = [r for r in runs if r.get("scored_tx_per_s")]
    if best_only:
        best: dict[tuple, dict[str, Any]] = {}
        for r in runs:
            key = (r["path"], r.get("device"))
            if key not in best or r["scored_tx_per_s"] > best[key]["scored_tx_per_s"]:
                best[key] = r
        runs = list(best.values())
    out = []
    for r in runs:
        if not r.get("scored_tx_per_s"):
            continue
        gpu = r.get("device") == "cuda"
        batching = "batching on" if r.get("batching") else "batching off"
        rows = f"{r['batch']} row{'s' if r['batch'] > 1 else ''}/request"
        name = f"{r['path']} ({'GPU' if gpu else 'CPU'}, {batching}, {rows})"
        per = r["scored_tx_per_s"] if gpu else r["tx_per_s_per_core"]
        out.append(Capacity(name=name, unit="gpu" if gpu else "core", per_unit=float(per)))
    if not out:
        raise ValueError(f"{path}: no run reached a saturation point under {RULE_NAMES[rule]}"
                         + ("" if any("rules" in r for r in data.get("runs", [])) or
                            rule == "shed_1pct" else " (the file predates the two rules: "
                            "try --rule shed_1pct)"))
    return out


SEED_RATE, SEED_HIT = 300.0, 0.6  # the article's "300 requests/sec" and "60% hit"


def seed_table(capacity: Capacity, *, cores_per_machine: int, core_hour_usd: float,
               gpu_hour_usd: float) -> str:
    """The article's cost lines next to the same lines from our measured capacity."""
    price = gpu_hour_usd if capacity.unit == "gpu" else core_hour_usd

    def ours(rate: float) -> str:
        units = units_needed(rate, hit_rate=0.0, per_unit=capacity.per_unit)
        machines = units if capacity.unit == "gpu" else math.ceil(units / cores_per_machine)
        per_machine = 1 if capacity.unit == "gpu" else cores_per_machine
        usd = machines * per_machine * price * 24
        return (f"{rate:,.0f}/s ÷ {capacity.per_unit:,.0f}/s per {capacity.unit} = {units} "
                f"{capacity.unit}{'s' if units > 1 else ''}, {machines} machine"
                f"{'s' if machines > 1 else ''}, ${usd:,.2f}/day")

    return "\n".join([
        f"| seed article (1 M predictions/day) | the article | ours: {capacity.name} |",
        "|---|---|---|",
        f"| every prediction to the model | 300 requests/s = 3 T4 GPUs = $1K/day "
        f"| {ours(SEED_RATE)} |",
        f"| cached, 60% hit | 1.2 GPUs = $400/day | {ours(SEED_RATE * (1 - SEED_HIT))} |",
        "| edge inference | $0/day (amortized hardware) | in-process scoring (the *floor* "
        "target): no serving machines |",
    ])


def units_needed(rate: float, *, hit_rate: float, per_unit: float) -> int:
    """Whole units to score `rate` predictions/s when `hit_rate` of them come from a cache."""
    if not 0 <= hit_rate < 1:
        raise ValueError(f"cache hit rate {hit_rate}: must be in [0, 1)")
    if per_unit <= 0:
        raise ValueError(f"capacity {per_unit}: must be > 0")
    return max(1, math.ceil(rate * (1 - hit_rate) / per_unit - 1e-9))


def plan(capacities: list[Capacity], *, per_day: float, peak: float, hit_rate: float,
         cores_per_machine: int, core_hour_usd: float, gpu_hour_usd: float
         ) -> list[dict[str, Any]]:
    """Rows for every (capacity, workload, cache) combination."""
    rows = []
    workloads = [(f"{per_day:,.0f}/day, average", per_day / SECONDS_PER_DAY),
                 (f"peak {peak:,.0f}/s", peak)]
    for cap in capacities:
        for label, rate in workloads:
            for hit in sorted({0.0, hit_rate}):
                units = units_needed(rate, hit_rate=hit, per_unit=cap.per_unit)
                if cap.unit == "gpu":
                    machines, usd = units, units * gpu_hour_usd * 24
                else:
                    machines = math.ceil(units / cores_per_machine)
                    usd = machines * cores_per_machine * core_hour_usd * 24
                rows.append({"backend": cap.name, "workload": label, "rate": rate,
                             "cache_hit_rate": hit, "model_rate": rate * (1 - hit),
                             "per_unit": cap.per_unit, "unit": cap.unit, "units": units,
                             "machines": machines, "usd_per_day": usd})
    return rows


def report(capacities: list[Capacity], *, per_day: float, peak: float, hit_rate: float,
           cores_per_machine: int, core_hour_usd: float, gpu_hour_usd: float,
           rule: str = "no_shed") -> str:
    """The markdown table, the seed's claim next to it, and the assumptions."""
    rows = plan(capacities, per_day=per_day, peak=peak, hit_rate=hit_rate,
                cores_per_machine=cores_per_machine, core_hour_usd=core_hour_usd,
                gpu_hour_usd=gpu_hour_usd)
    lines = ["| backend (measured) | workload | pred/s | cache hit | pred/s to the model "
             "| capacity per unit | units | machines | $/day |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['workload']} | {r['rate']:,.1f} | {r['cache_hit_rate']:.0%} "
            f"| {r['model_rate']:,.1f} | {r['per_unit']:,.0f}/s per {r['unit']} "
            f"| {r['units']} {r['unit']}{'s' if r['units'] > 1 else ''} | {r['machines']} "
            f"| ${r['usd_per_day']:,.2f} |")
    single = [c for c in capacities if c.name.startswith("/score ")] or capacities
    lines += [
        "",
        seed_table(max(single, key=lambda c: c.per_unit), cores_per_machine=cores_per_machine,
                   core_hour_usd=core_hour_usd, gpu_hour_usd=gpu_hour_usd),
        "",
        f"1,000,000 predictions/day is {1e6 / SECONDS_PER_DAY:.1f}/s on average; the article's "
        "300/s is a peak (26x the mean).",
        f"Capacity rule: the saturation point with {RULE_NAMES.get(rule, rule)}.",
        f"Assumptions: {cores_per_machine} cores per machine at ${core_hour_usd}/core-hour, "
        f"${gpu_hour_usd}/GPU-hour; capacity per core is the saturation throughput divided by "
        "the server's worker processes, measured with the load generator on the same machine "
        "(a lower bound). At least one unit per row: a service that exists costs a machine.",
    ]
    return "\n".join(lines)


def write(settings: Any, *, source: Path, capacities: list[Capacity], rule: str, text: str,
          out_dir: Path, **options: Any) -> Path:
    """The cost table as a results file; a discarded source run makes this one discarded too."""
    from benchmarks.record import Recorder

    src = json.loads(Path(source).read_text())
    rec = Recorder("cost", settings, model=False)
    reason = (f"derived from a discarded run ({Path(source).name}: {src['discarded']})"
              if src.get("discarded") else None)
    payload = {"source": str(source), "source_model": (src.get("meta") or {}).get("model"),
               "rule": rule, "rule_text": RULE_NAMES[rule],
               "capacities": [c.__dict__ for c in capacities], "options": options,
               "rows": plan(capacities, **options), "table": text}
    if reason:
        payload["discarded"] = reason
    return rec.write(payload, out_dir=out_dir)
