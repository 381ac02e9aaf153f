"""`reports/index.html`: the page a person opens without Grafana.

Built from the runs' `summary.json` files only (no network, no JavaScript): charts are inline SVG
drawn by matplotlib, tables are plain HTML. Panels carry stable ids (`panel-latency`,
`panel-accuracy`, `panel-errors`, `panel-freshness`, `panel-runs`) that a test looks for.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS_LISTED = 20


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg"):]


def _latency_svg(health: dict[str, Any]) -> str:
    hist = health.get("latency_histogram")
    if not hist:
        return "<p>no latency figures</p>"
    edges, counts = hist["edges"], hist["counts"]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.stairs(counts, edges, fill=True, alpha=0.6)
    ax.set_xscale("log")
    for name, value in (("p95", health["latency_ms"].get("p95")),
                        ("p99", health["latency_ms"].get("p99"))):
        if value:
            ax.axvline(value, linestyle="--", color="black", linewidth=0.8)
            ax.text(value, max(counts) * 0.9, f" {name} {value:.1f} ms", fontsize=8)
    ax.axvline(health["limits"]["p99_ms"], color="red", linewidth=1, label="p99 limit")
    ax.set_xlabel("server-side latency (ms)")
    ax.set_ylabel("requests")
    ax.legend(fontsize=8)
    return _svg(fig)


def _accuracy_svg(by_day: list[dict[str, Any]], reference: dict[str, float]) -> str:
    if not by_day:
        return "<p>no labelled predictions yet (labels arrive after their delay)</p>"
    fig, ax = plt.subplots(figsize=(6, 2.8))
    days = [d["day"] for d in by_day]
    keys = [k for k in by_day[0] if k not in ("day", "rows", "positives")]
    for key in keys:  # precision, recall, pr_auc (a score); ndcg@10, hitrate@10... (a ranking)
        line = ax.plot(days, [d[key] for d in by_day], marker="o", label=key)[0]
        if key in reference:
            ax.axhline(reference[key], color=line.get_color(), linestyle=":", linewidth=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("on labelled predictions")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    return _svg(fig)


def _errors_svg(health: dict[str, Any]) -> str:
    buckets = health.get("by_bucket", {}).get("rows", [])
    if not buckets:
        return "<p>no requests</p>"
    fig, ax = plt.subplots(figsize=(6, 2.8))
    at = [b["at"][5:16].replace("T", " ") for b in buckets]
    err = [b["error_rate"] for b in buckets]
    ax.bar(at, [b["fallback_rate"] for b in buckets], label="fallback rate", alpha=0.5)
    ax.plot(at, err, color="red", marker=".", label="error rate")
    limit = health["limits"]["error_rate"]
    ax.axhline(limit, color="red", linestyle=":", linewidth=0.8)
    spikes = [(a, e) for a, e in zip(at, err, strict=True) if e > limit]
    if spikes:
        ax.scatter(*zip(*spikes, strict=True), color="red", s=60, zorder=3, label="spike")
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"share per {health['by_bucket']['freq']}")
    ax.legend(fontsize=8)
    step = max(1, len(at) // 12)
    ax.set_xticks(range(0, len(at), step), at[::step], rotation=45, fontsize=7)
    return _svg(fig)


def _freshness_table(views: dict[str, Any]) -> str:
    rows = []
    for name, v in views.items():
        req = v.get("request_age_s", {})
        cells = [name, v["refresh"], _age(req.get("p95")), _age(v.get("online_newest_age_s")),
                 _age(v.get("max_age_s"))]
        rows.append(f'<tr class="{v["status"]}">' + "".join(
            f"<td>{html.escape(str(c))}</td>" for c in cells) + f"<td>{v['status']}</td></tr>")
    head = ("<tr><th>view</th><th>refresh</th><th>p95 age at request</th>"
            "<th>newest online value</th><th>limit</th><th>status</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _runs_table(model: str, runs: list[tuple[str, dict[str, Any]]]) -> str:
    rows = []
    for stamp, s in runs:
        links = " ".join(f'<a href="{model}/{stamp}/{f}">{f.removesuffix(".html")}</a>'
                         for files in s.get("reports", {}).values() for f in files
                         if f.endswith(".html"))
        failed = html.escape("; ".join(s.get("failed_checks", [])) or "-")
        rows.append(f'<tr class="{s["status"]}"><td>{stamp}</td><td>{s["status"]}</td>'
                    f'<td>{s["predictions"]["total"]:,}</td><td>{failed}</td><td>{links}</td>'
                    f'<td><a href="{model}/{stamp}/summary.json">summary</a></td></tr>')
    return ("<table><tr><th>run (UTC)</th><th>status</th><th>predictions</th>"
            "<th>failed checks</th><th>reports</th><th></th></tr>" + "".join(rows) + "</table>")


def _tables(figures: dict[str, Any]) -> str:
    """Panels of the sections that bring their own table (`figures[name]["table"]`)."""
    out = []
    for name, f in figures.items():
        table = f.get("table") if isinstance(f, dict) else None
        if not table or not table.get("rows"):
            continue
        cols = list(table["rows"][0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join(
            f'<tr class="{html.escape(str(r.get("status", "")))}">' + "".join(
                f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
            for r in table["rows"])
        out.append(f'<section id="panel-{html.escape(name)}"><h3>'
                   f'{html.escape(table.get("title", name))}</h3>'
                   f"<table><tr>{head}</tr>{body}</table></section>")
    return "".join(out)


def _accuracy_days(runs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per-day quality across runs (newest run wins a day): labels keep arriving."""
    days: dict[str, dict[str, Any]] = {}
    for _, s in reversed(runs):  # oldest first, newer overwrite
        for d in s.get("figures", {}).get("quality", {}).get("by_day", []):
            days[d["day"]] = d
    return [days[k] for k in sorted(days)]


_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}
section{border:1px solid #ccc;border-radius:6px;padding:.8em;margin:.8em 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:.8em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em}
.fail,.stale{background:#fde2e1}.pass,.fresh{background:#e3f6e5}.stopped{background:#fff4d6}svg{max-width:100%;height:auto}"""


def render(reports_dir: Path) -> str:
    """The whole page as a string."""
    parts = []
    for model_dir in sorted(p for p in reports_dir.iterdir() if p.is_dir()):
        runs = [(p.parent.name, json.loads(p.read_text()))
                for p in sorted(model_dir.glob("*/summary.json"), reverse=True)[:RUNS_LISTED]]
        if not runs:
            continue
        model = model_dir.name
        stamp, latest = runs[0]
        figures = latest["figures"]
        health = figures.get("health", {})  # a scenario without a prediction log has none
        unit = html.escape(latest.get("unit", "predictions"))
        quality = figures.get("quality", {})
        note = html.escape(latest["predictions"]["note"])
        labels = latest.get("labels", {})
        parts.append(f"""
<h2>{model}: <span class="{latest['status']}">{latest['status'].upper()}</span>
 (latest run {stamp}, {latest['predictions']['total']:,} {unit}; {note};
 labels: {labels.get('labelled', 0):,} labelled, {labels.get('pending', 0):,} pending,
 {labels.get('unknown', 0):,} unknown)</h2>
<div class="grid">
<section id="panel-latency"><h3>Latency histogram</h3>{_latency_svg(health)}</section>
<section id="panel-accuracy"><h3>Accuracy trend (delayed labels)</h3>
{_accuracy_svg(_accuracy_days(runs), quality.get("reference", {}))}</section>
<section id="panel-errors"><h3>Error and fallback rate (spikes in red)</h3>
{_errors_svg(health)}</section>
<section id="panel-freshness"><h3>Feature freshness</h3>
{_freshness_table(figures.get("freshness", {}).get("views", {}))}</section>
{_tables(figures)}
</div>
<section id="panel-runs"><h3>Latest runs</h3>{_runs_table(model, runs)}</section>""")
    body = "".join(parts) or "<p>no monitoring runs yet: <code>rtml monitor run</code></p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>rtml monitoring</title>"
            f"<style>{_CSS}</style></head><body><h1>rtml monitoring</h1>{body}</body></html>\n")


def write_index(reports_dir: Path) -> Path:
    """Regenerate `reports/index.html` from the summaries on disk."""
    out = reports_dir / "index.html"
    out.write_text(render(reports_dir))
    return out
