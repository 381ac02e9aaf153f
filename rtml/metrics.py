"""Live Prometheus metrics beyond BentoML's own: stages, fallbacks, feature age, stream lag.

BentoML serves `/metrics` from prometheus_client's multiprocess collector; its workers set
`PROMETHEUS_MULTIPROC_DIR` only after importing the service module, so the metrics here are
created lazily on first use (inside a worker), never at import time. The stream process has no
BentoML: `serve_stream_metrics(port)` starts prometheus_client's own HTTP endpoint there.

Names (Grafana: monitoring/fraud/grafana/rtml-fraud.json):
  rtml_stage_seconds{service,stage}            histogram: features | model | total
  rtml_decisions_total{service,decision}       counter
  rtml_fallbacks_total{service,reason}         counter: reason = fallback kind (before ':')
  rtml_batch_size                              histogram: rows per model call
  rtml_l1_cache_lookups_total{result}          counter: hit | miss (one per feature row)
  rtml_feature_age_seconds{service,view}       histogram: age of the value served, per view
  rtml_api_key_requests_total{service,key,outcome}  counter: key id (sha256 prefix) | none |
                                               unknown; outcome accepted | missing | refused
  rtml_stream_lag_seconds                      histogram: XADD -> readable in Feast
  rtml_stream_events_total{view,outcome}       counter: counted | duplicate | late | expired
  rtml_monitor_*                               gauges written by `rtml monitor run` (textfile)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0)
AGE_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 2 * 86400, 7 * 86400)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


@cache
def _metrics() -> dict[str, Any]:
    import prometheus_client as pc

    return {
        "stage": pc.Histogram("rtml_stage_seconds", "Request stage latency",
                              ["service", "stage"], buckets=STAGE_BUCKETS),
        "decisions": pc.Counter("rtml_decisions_total", "Decisions answered",
                                ["service", "decision"]),
        "fallbacks": pc.Counter("rtml_fallbacks_total", "Fallback answers by reason",
                                ["service", "reason"]),
        "batch_size": pc.Histogram(
            "rtml_batch_size", "rows per model call (adaptive batches and /score_batch requests)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)),
        "l1_cache": pc.Counter("rtml_l1_cache_lookups", "L1 cache lookups, one per feature row",
                               ["result"]),
        "age": pc.Histogram("rtml_feature_age_seconds", "Age of served feature values",
                            ["service", "view"], buckets=AGE_BUCKETS),
        "lag": pc.Histogram("rtml_stream_lag_seconds", "Stream event to readable in Feast",
                            buckets=LAG_BUCKETS),
        "api_keys": pc.Counter("rtml_api_key_requests",
                               "Scoring requests by API key id (rtml.serving.auth.key_id)",
                               ["service", "key", "outcome"]),
        "events": pc.Counter("rtml_stream_events", "Stream events per window view by outcome",
                             ["view", "outcome"]),
    }


def record_api_key(*, service: str, key: str, outcome: str) -> None:
    """One request past the API-key check: which key (its id, never the key), what happened."""
    _metrics()["api_keys"].labels(service=service, key=key, outcome=outcome).inc()


def record_request(*, service: str, timings_ms: Mapping[str, float],
                   decisions: Iterable[Any], event_times: Iterable[Mapping[str, float]],
                   now_s: float | None = None) -> None:
    """One scored request: stage times, each decision, fallbacks, feature ages. Never raises."""
    try:
        m = _metrics()
        for stage, ms in timings_ms.items():
            m["stage"].labels(service, stage).observe(ms / 1000)
        for d in decisions:
            m["decisions"].labels(service, d.decision).inc()
            if d.fallback:
                reason = (d.fallback_reason or "unknown").split(":")[0]
                m["fallbacks"].labels(service, reason).inc()
        now_s = time.time() if now_s is None else now_s
        for times in event_times:
            for view, ts in times.items():
                m["age"].labels(service, view).observe(max(0.0, now_s - ts))
    except Exception:  # noqa: BLE001 - metrics must never fail a request
        pass


def record_stream_lag(lag_s: float) -> None:
    """One streamed event: its XADD to its windows readable in Feast (observed after the push)."""
    _metrics()["lag"].observe(max(0.0, lag_s))


@cache
def stream_event_counter(view: str, outcome: str) -> Any:
    """The counter child for one (view, outcome): counted | duplicate | late | expired."""
    return _metrics()["events"].labels(view, outcome)


def serve_stream_metrics(port: int) -> None:
    """Expose this process's metrics on http://0.0.0.0:port/metrics (the stream process)."""
    import prometheus_client as pc

    _metrics()
    pc.start_http_server(port)


def write_monitor_gauges(summary: Mapping[str, Any], path: Any) -> None:
    """The last monitoring run as Prometheus gauges (node_exporter textfile collector format)."""
    import prometheus_client as pc

    registry = pc.CollectorRegistry()
    model = summary["model"]

    def gauge(name: str, doc: str, value: float | None, **labels: str) -> None:
        if value is None:
            return
        g = pc.Gauge(name, doc, ["model", *labels], registry=registry)
        g.labels(model, *labels.values()).set(float(value))

    figures = summary["figures"]
    gauge("rtml_monitor_pass", "1 when the last run passed",
          1.0 if summary["status"] == "pass" else 0.0)
    gauge("rtml_monitor_last_run_timestamp_seconds", "When the last run ran",
          time.time())
    current = figures.get("quality", {}).get("current", {})
    g = pc.Gauge("rtml_monitor_quality", "Quality on labelled predictions",
                 ["model", "metric"], registry=registry)
    for metric, value in current.items():
        g.labels(model, metric).set(value)
    drift = figures.get("feature_drift", {}).get("drifted_share")
    gauge("rtml_monitor_drifted_share", "Share of drifted features", drift)
    age = pc.Gauge("rtml_monitor_online_newest_age_seconds", "Newest online value age per view",
                   ["model", "view"], registry=registry)
    for view, info in figures.get("freshness", {}).get("views", {}).items():
        if info.get("online_newest_age_s") is not None:
            age.labels(model, view).set(info["online_newest_age_s"])
    pc.write_to_textfile(str(path), registry)


def serving_metrics() -> tuple[Any, Any]:
    """(batch-size histogram, L1 cache lookup counter) for the fraud service's own calls.

    BentoML's `bentoml_service_adaptive_batch_size` covers `batchable=True` APIs only; the fraud
    service drives CorkDispatcher itself, so it records its batch sizes here.
    """
    m = _metrics()
    return m["batch_size"], m["l1_cache"]
