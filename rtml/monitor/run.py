"""One monitoring run for any scenario: every report over the recent log, summary.json, dashboard.

`rtml monitor run --model <scenario>` calls `run_monitor` with the scenario's `MonitorSpec`
(which log columns it keeps, how its delayed labels join, which threshold flags a positive); the
exit status is the summary's status. Files: `reports/<model>/<UTC timestamp>/{feature_drift,
prediction_drift,quality,health,freshness_*}.{html,json}` and `summary.json`;
`reports/<model>/latest.json` is a copy of the newest summary; `reports/index.html` is the
dashboard page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import redis

from rtml.metrics import write_monitor_gauges
from rtml.monitor import reports
from rtml.monitor.dashboard import write_index
from rtml.monitor.data import LogData, load_log, load_reference
from rtml.monitor.freshness import freshness, view_specs
from rtml.redis import connect
from rtml.serving.card import CardError, ModelCard, load_card
from rtml.settings import Settings

log = logging.getLogger(__name__)
SUMMARY_SCHEMA = 1

# (logged predictions, the labels file, now) -> (predictions + nullable `label`, counts)
LabelJoin = Callable[..., tuple[pd.DataFrame, dict[str, Any]]]
# A scenario whose answers are not one score (a ranked list): its own sections in place of feature
# drift, prediction drift and quality, called as sections(ctx) -> (sections, label counts).
Sections = Callable[["MonitorContext"], tuple[list[reports.Section], dict[str, Any]]]


@dataclass(frozen=True)
class MonitorContext:
    """What a scenario's own sections get: the window of the log and where to write."""

    settings: Settings
    data: LogData
    now: datetime
    since: datetime
    out_dir: Path
    card: ModelCard
    redis_client: Any | None


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    """What a scenario tells the monitor: its log columns, its labels, what counts as positive.

    Everything else (drift, quality, latency, errors, freshness) is the same for every scenario:
    the feature list, thresholds and feature service come from the model's training reference,
    the limits from `RTML_MONITOR_*` settings.
    """

    name: str  # reports/<name>/, the reference under artifacts/<name>/
    log_columns: tuple[str, ...]  # the scenario's own log columns, kept for every row
    numeric_columns: tuple[str, ...] = ()  # those of them read as numbers
    join_labels: LabelJoin | None = None  # called as join_labels(predictions, labels, now=now)
    reference_label: str = "label"  # the label column of the training reference
    quality_threshold: str = ""  # the model's threshold (metrics.json) a positive is flagged at
    positives: str = "positives"  # what a positive is called in messages ("frauds")
    sections: Sections | None = None  # set: these replace drift and quality (the rest stays)


def _labels(settings: Settings, spec: MonitorSpec, sample: pd.DataFrame, now: datetime
            ) -> tuple[pd.DataFrame, dict[str, Any]]:
    if not settings.labels_path.exists():
        n = len(sample)
        return sample.assign(label=pd.array([pd.NA] * n, dtype="Int64")), {
            "labelled": 0, "pending": 0, "unknown": n, "note": f"no {settings.labels_path}"}
    labels = pd.read_parquet(settings.labels_path)
    assert spec.join_labels is not None
    return spec.join_labels(sample, labels, now=now)


def run_monitor(settings: Settings, spec: MonitorSpec, *, now: datetime | None = None,
                redis_client: Any | None = None) -> dict[str, Any]:
    """Run every report once; write the files; return the summary (status pass | fail)."""
    t0 = time.perf_counter()
    model = spec.name
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    out_dir = settings.reports_dir / model / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    since = now - timedelta(days=settings.monitor_window_days)
    card = _card(settings, spec) if spec.sections else load_reference(
        settings.artifacts_dir, model).card
    data = load_log(settings.predictions_dir, since=since, sample_rows=settings.monitor_sample_rows,
                    columns=spec.log_columns, numeric=spec.numeric_columns)
    if spec.sections:
        sections, label_counts = spec.sections(MonitorContext(
            settings=settings, data=data, now=now, since=since, out_dir=out_dir, card=card,
            redis_client=redis_client))
    else:
        sections, label_counts = _score_sections(settings, spec, data, now, out_dir)
    sections += [
        reports.health(rows=data.rows, p95_ms=settings.monitor_p95_ms,
                       p99_ms=settings.monitor_p99_ms, error_rate=settings.monitor_error_rate,
                       fallback_rate=settings.monitor_fallback_rate, out_dir=out_dir),
    ]
    sections.append(_freshness(settings, card.feature_service, data.sample, out_dir, now,
                               redis_client))

    checks = [c for s in sections for c in s.checks]
    failed = [f"{c['section']}: {c['name']}" for c in checks if c["status"] == "fail"]
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "model": model,
        "model_versions": sorted(data.rows["model_version"].dropna().unique().tolist()),
        "reference_model": card.version or "",
        "feature_service": card.feature_service,
        "run_at": now.isoformat(timespec="seconds"),
        "status": "fail" if failed else "pass",
        "failed_checks": failed,
        "window": {"since": since.isoformat(timespec="seconds"),
                   "until": now.isoformat(timespec="seconds")},
        "predictions": {"total": data.total, "sampled": data.sampled,
                        "sample_rows": len(data.sample),
                        "note": (f"drift, quality and request-time freshness ran on a random "
                                 f"sample of {len(data.sample):,} of {data.total:,} rows; health "
                                 "figures use every row") if data.sampled else "no sampling"},
        "labels": label_counts,
        "checks": checks,
        "figures": {s.name: s.figures for s in sections},
        "reports": {s.name: s.files for s in sections},
        "seconds": 0.0,
    }
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    text = json.dumps(summary, indent=2, default=str) + "\n"
    (out_dir / "summary.json").write_text(text)
    (settings.reports_dir / model / "latest.json").write_text(text)
    write_monitor_gauges(summary, settings.reports_dir / model / "metrics.prom")
    write_index(settings.reports_dir)
    return summary


def _card(settings: Settings, spec: MonitorSpec) -> ModelCard:
    try:
        return load_card(settings.artifacts_dir / spec.name)
    except CardError as exc:
        raise FileNotFoundError(f"{exc} (train first: `rtml train {spec.name}`)") from exc


def _score_sections(settings: Settings, spec: MonitorSpec, data: LogData, now: datetime,
                    out_dir: Path) -> tuple[list[reports.Section], dict[str, Any]]:
    """Drift and quality of a model that answers one score per request (fraud's)."""
    ref = load_reference(settings.artifacts_dir, spec.name)
    sample, label_counts = _labels(settings, spec, data.sample, now)
    answered = sample[sample["score"].notna()]
    return [
        reports.feature_drift(current=answered, reference=ref.frame, features=ref.features,
                              drift_share=settings.monitor_drift_share, out_dir=out_dir),
        reports.prediction_drift(current=sample, reference=ref.frame, out_dir=out_dir),
        reports.quality(labelled=sample, reference=ref.frame,
                        threshold=ref.thresholds[spec.quality_threshold],
                        reference_label=spec.reference_label, positives=spec.positives,
                        max_drop=settings.monitor_quality_drop,
                        min_labels=settings.monitor_min_labels, out_dir=out_dir),
    ], label_counts


def _freshness(settings: Settings, service: str, sample: Any, out_dir: Path, now: datetime,
               client: Any | None) -> reports.Section:
    from rtml.features.online import load_store

    store = load_store(settings)
    specs = view_specs(store, service, stream_max_age_s=settings.monitor_stream_max_age_s,
                       batch_grace_h=settings.monitor_batch_grace_h)
    ages = sample[[c for c in sample.columns if c.startswith("age_s:")]]
    error = None
    if client is None:
        client = connect(settings, role="monitor")
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            client, error = None, f"{settings.redis_address}: {exc}"
    return freshness(specs=specs, request_ages=ages, client=client,
                     project=store.config.project, out_dir=out_dir, now_s=now.timestamp(),
                     redis_error=error)


def notify(summary: dict[str, Any], *, webhook_url: str | None, timeout_s: float = 5.0) -> str:
    """Tell someone about a failed run: POST the summary to the webhook, or log one line."""
    if summary["status"] == "pass":
        return "pass"
    brief = {k: summary[k] for k in ("model", "run_at", "status", "failed_checks")}
    if not webhook_url:
        log.warning("monitor %s FAILED at %s: %s (set RTML_MONITOR_WEBHOOK_URL to be notified)",
                    summary["model"], summary["run_at"], "; ".join(summary["failed_checks"]))
        return "logged"
    try:
        httpx.post(webhook_url, json=brief, timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("monitor: webhook %s failed (%s); failed checks: %s", webhook_url, exc,
                    "; ".join(summary["failed_checks"]))
        return "webhook_failed"
    return "webhook"
