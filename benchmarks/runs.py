"""docs/runs.md: every results file in benchmarks/results/, one row each, generated, never edited.

    python -m benchmarks.runs            # rewrite docs/runs.md from benchmarks/results/*.json

A run of record is any file in benchmarks/results/; none is left out. Each row says when and on
what the run was measured (commit, model, settings, cores, load, the CPU other processes used)
and whether it counts: *record*, *discarded* with the reason (`benchmarks.record`'s rule), or
*no metadata* for files written before every results file carried it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.record import DISCARD_OTHERS_SHARE, RESULTS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "runs.md"


def _ms(x: Any) -> str:
    return "–" if x is None else f"{x:.2f}"


def _side_by_side(d: dict[str, Any]) -> str:
    parts = []
    for name, r in d.get("targets", {}).items():
        err = sum(r.get("errors", {}).values())
        parts.append(f"{name} {_ms(r['latency_ms'].get('p99'))}" + (f" ({err} errors)" if err
                                                                     else ""))
    best = f"; better stock: {d['stock_best']}" if d.get("stock_best") else ""
    return f"{d.get('rate_rps', 0):g} rps, p99 ms: " + ", ".join(parts) + best


def _score(d: dict[str, Any]) -> str:
    return "p99 ms: " + ", ".join(
        f"{r.get('label') or r['target_rps']} rps {_ms(r['latency_ms'].get('p99'))}"
        for r in d.get("runs", []))


def _saturate(d: dict[str, Any]) -> str:
    parts = []
    for r in d.get("runs", []):
        rules = r.get("rules")
        if rules:
            fig = "/".join("–" if rules[k]["saturation_rps"] is None
                           else f"{rules[k]['saturation_rps']:.3g}" for k in ("no_shed",
                                                                              "shed_1pct"))
        else:
            sat = r.get("saturation_rps")
            fig = f"{'–' if sat is None else format(sat, '.3g')} (≤ 1% shed only)"
        mode = r.get("server", {}).get("odfv_mode")
        parts.append(f"{r.get('target', 'rtml')}{f' ({mode})' if mode else ''} {r['path']}"
                     f"{'' if r.get('batching') is None else ' batching ' + str(r['batching'])}"
                     f": {fig}")
    return "rps, 0 shed / ≤ 1% shed: " + "; ".join(parts)


def _stream(d: dict[str, Any]) -> str:
    if "throughput" not in d:  # the first format: one backlog phase, start-up included
        return (f"{d.get('events_per_s_incl_startup', 0):,} events/s incl. start-up; "
                f"{d.get('rows_pushed', 0):,} rows pushed")
    t, lat, mem = d.get("throughput", {}), d.get("latency", {}), d.get("memory", {})
    rows = (f", {t['rows_written_per_s']:,} rows written/s" if "rows_written_per_s" in t else "")
    span = f" over {t['event_span_h']:g} h" if "event_span_h" in t else " (stamped now)"
    return (f"{t.get('events_per_s', 0):,} events/s{span}{rows}; lag p99 "
            f"{lat.get('per_event', {}).get('p99', '–')}; RSS {mem.get('rss_mb', '–')} MB; "
            f"writer {d.get('writer', '?')}")


def headline(d: dict[str, Any]) -> str:
    """The run's main figures in one line (by kind)."""
    kind = d.get("kind", "")
    try:
        if kind == "side-by-side":
            return _side_by_side(d)
        if kind == "score":
            return _score(d)
        if kind == "saturate":
            return _saturate(d)
        if kind == "stream":
            return _stream(d)
        if kind == "cost":
            return f"rule {d.get('rule')}, from {Path(d.get('source', '')).name}"
        if kind == "claim-writer":
            return (f"direct {d['direct_us_per_row']} µs/row, FeatureStore.push "
                    f"{d['push_us_per_row']} µs/row ({d['push_over_direct']}×)")
        if kind == "claim-log":
            return (f"{d['bytes_per_entry']:.0f} B/entry, {d['mb_at_cap']} MB at "
                    f"{d['cap']:,} entries")
        if kind == "claim-monitor":
            return (f"{d['predictions']:,} predictions: monitor run {d['monitor_seconds']} s "
                    f"({d['monitor_wall_s']} s wall)")
        if kind == "backends" or "results" in d:
            return f"model {d.get('model')}; auto: {d.get('auto', '')}"[:160]
        if "mode" in d:  # benchmarks.serving
            return (f"{d['mode']} {d.get('rate') or d.get('concurrency')}: "
                    f"{d.get('ok_per_s')} ok/s, accepted p99 {d.get('accepted_ms', {}).get('p99')}"
                    f" ms, shed {d.get('shed')} {d.get('label', '')}")
    except (KeyError, TypeError, ValueError) as exc:
        return f"(unreadable: {type(exc).__name__})"
    return ""


def row(path: Path) -> dict[str, str]:
    """The table cells for one results file."""
    d = json.loads(path.read_text())
    kind = d.get("kind") or path.name.split("-20")[0]
    d.setdefault("kind", kind)
    meta = d.get("meta")
    cells = {"file": f"[{path.name}](../benchmarks/results/{path.name})", "kind": kind,
             "headline": headline(d).replace("|", "\\|")}
    if not meta:
        cores = (d.get("machine") or {}).get("cpus")
        return {**cells, "commit": "–", "model": str(d.get("model") or "–"), "settings": "–",
                "machine": f"{cores} cores" if cores else "not recorded",
                "others": "not measured",
                "status": "no metadata (before the metadata rule)"}
    git, mach, model = meta["git"], meta["machine"], meta.get("model") or {}
    serving = meta["settings"]["serving"]
    stream = meta["settings"]["streaming"]
    settings = (f"writer {stream['stream_writer']}" if kind == "stream" else
                f"backend {serving['model_backend']}, batching {serving['batching']}, "
                f"inflight {serving['max_inflight']}, workers {serving['serve_workers']}")
    others = mach.get("others_share_max")
    status = (f"**discarded**: {d['discarded']}" if d.get("discarded") else
              "record" if d.get("of_record", True) else "not of record (written elsewhere)")
    return {**cells,
            "commit": f"{(git.get('commit') or '?')[:9]}{' (dirty)' if git.get('dirty') else ''}",
            "model": (model.get("version") or "–").replace("fraud_model:", ""),
            "settings": settings,
            "machine": (f"{mach['cores']} cores, load {mach['load_1m_before']} → "
                        f"{mach['load_1m_after']}"),
            "others": "–" if others is None else f"{others:.0%}", "status": status}


COLUMNS = ("file", "kind", "status", "commit", "model", "settings", "machine", "others",
           "headline")
HEADERS = ("results file", "kind", "status", "commit", "model", "server settings",
           "machine (1-min load before → after)", "others' CPU (max window)", "headline")


def render(results_dir: Path) -> str:
    """The whole docs/runs.md text."""
    files = sorted(results_dir.glob("*.json"))
    rows = [row(p) for p in files]
    discarded = sum(1 for r in rows if r["status"].startswith("**discarded"))
    legacy = sum(1 for r in rows if r["status"].startswith("no metadata"))
    lines = [
        "# Benchmark runs", "",
        "Generated by `python -m benchmarks.runs` from every file in `benchmarks/results/` "
        "(do not edit by hand; `benchmarks/records.sh` rewrites it after the runs of record).",
        "",
        f"**Discard rule**: a run during which other processes used more than "
        f"{DISCARD_OTHERS_SHARE:.0%} of the machine's CPU in any measured window (measured "
        "from `/proc/stat` against the benchmark's own processes' `/proc/<pid>/stat`, see "
        "`benchmarks/cpu.py`) is marked *discarded* in its results file; it stays listed here. "
        "Files from before the metadata rule carry no machine measurement and are listed as "
        "such. The headline is the run's main figures; the file has everything.",
        "",
        f"{len(rows)} runs: {len(rows) - discarded - legacy} with metadata and kept, "
        f"{discarded} discarded, {legacy} without metadata.", "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Write docs/runs.md (or --out) from the results folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=DOCS)
    a = p.parse_args()
    a.out.write_text(render(a.results_dir))
    print(f"{a.out}: {len(list(a.results_dir.glob('*.json')))} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
