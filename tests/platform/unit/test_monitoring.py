"""Monitoring without servers: delayed labels, injected drift, notification, live metrics."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pandas as pd
import pytest

from monitoring.fraud.backtest import FEATURES, period_drift
from monitoring.fraud.labels import join_labels, publish_labels
from pipelines.fraud.simulate import simulate
from rtml.monitor.run import notify

NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


def _tx() -> pd.DataFrame:
    stamps = pd.to_datetime(["2026-03-01T10:00Z", "2026-03-08T11:00Z", "2026-03-08T13:00Z",
                             "2026-03-10T09:00Z"])
    return pd.DataFrame({"transaction_id": [1, 2, 3, 4], "event_timestamp": stamps,
                         "is_fraud": [1, 0, 1, 0]})


def test_a_label_is_visible_only_once_its_delay_has_passed_and_nothing_is_dropped():
    labels = publish_labels(_tx(), delay_s=2 * 86400)
    preds = pd.DataFrame({"transaction_id": ["tx-1", "2", "tx-3", "tx-4", "probe-9", "tx-2"],
                          "score": [0.9, 0.1, 0.8, 0.2, 0.5, 0.1]})
    joined, counts = join_labels(preds, labels, now=NOW)
    assert len(joined) == len(preds)
    # tx 2 (Mar 8 11:00 + 2d <= Mar 10 12:00) is visible twice; tx 3 (13:00) is not yet.
    assert joined["label"].fillna(-1).tolist() == [1, 0, -1, -1, -1, 0]
    assert counts.as_dict() == {"labelled": 3, "pending": 2, "unknown": 1}


def test_labels_with_no_delay_are_all_visible_and_a_negative_delay_is_refused():
    joined, counts = join_labels(pd.DataFrame({"transaction_id": ["4"]}),
                                 publish_labels(_tx(), delay_s=0), now=NOW)
    assert counts.labelled == 1 and joined["label"].iloc[0] == 0
    with pytest.raises(ValueError, match="delay_s"):
        publish_labels(_tx(), delay_s=-1)
    with pytest.raises(ValueError, match="is_fraud"):
        publish_labels(_tx().drop(columns="is_fraud"), delay_s=0)


def _sim(drift: float) -> pd.DataFrame:
    return simulate(customers=400, terminals=800, days=70, start=dt.date(2026, 1, 1), seed=3,
                    drift_from_day=60, drift_amount=drift).transactions


def test_drift_injection_is_deterministic_and_leaves_earlier_days_alone():
    clean, drifted, again = _sim(1.0), _sim(1.5), _sim(1.5)
    pd.testing.assert_frame_equal(drifted, again)
    before = drifted["day"] < 60
    pd.testing.assert_frame_equal(drifted[before], clean[before])
    ratio = drifted.loc[~before, "amount"].median() / clean.loc[~before, "amount"].median()
    assert ratio == pytest.approx(1.5, rel=0.05)
    with pytest.raises(ValueError, match="drift_from_day"):
        simulate(customers=5, terminals=5, days=3, start=dt.date(2026, 1, 1),
                 drift_from_day=3, drift_amount=2.0)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return _sim(1.5)


def _drift(tx: pd.DataFrame, current: tuple[int, int], out: Path):
    section = period_drift(tx, reference_days=(38, 52), current_days=current, features=FEATURES,
                           drift_share=0.25, out_dir=out)
    failed = [c["name"] for c in section.checks if c["status"] == "fail"]
    return section, failed


def test_injected_amount_drift_is_flagged(drifted, tmp_path):
    section, failed = _drift(drifted, (60, 67), tmp_path)
    assert {"tx_amount", "amount_vs_cust_mean_30d"} <= set(section.figures["drifted"])
    assert section.figures["drifted_share"] >= 0.25
    assert failed and "Share of Drifted Columns" in failed[0]
    assert (tmp_path / "feature_drift.html").stat().st_size > 1000


def test_a_clean_period_passes(drifted, tmp_path):
    section, failed = _drift(drifted, (53, 60), tmp_path)
    assert failed == []
    assert "tx_amount" not in section.figures["drifted"]


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_failed_run_is_posted_to_the_webhook_and_a_pass_is_not():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    summary = {"model": "fraud", "run_at": "2026-03-10T12:00:00+00:00", "status": "fail",
               "failed_checks": ["health: p99"]}
    try:
        assert notify({**summary, "status": "pass"}, webhook_url=url) == "pass"
        assert _Hook.received == []
        assert notify(summary, webhook_url=url) == "webhook"
        assert _Hook.received == [summary]
        assert notify(summary, webhook_url=None) == "logged"
    finally:
        server.shutdown()


def test_live_metrics_count_stages_fallbacks_and_feature_age():
    import prometheus_client as pc

    from rtml.metrics import record_request

    class D:
        def __init__(self, decision, fallback=False, reason=None):
            self.decision, self.fallback, self.fallback_reason = decision, fallback, reason

    def value(name, **labels):
        return pc.REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("rtml_fallbacks_total", service="t", reason="feature_timeout")
    record_request(service="t", timings_ms={"features": 1.0, "total": 2.0},
                   decisions=[D("approve", True, "feature_timeout: over 30 ms"), D("review")],
                   event_times=[{"customer_stats": 1000.0}], now_s=1600.0)
    assert value("rtml_fallbacks_total", service="t", reason="feature_timeout") == before + 1
    assert value("rtml_decisions_total", service="t", decision="review") >= 1
    assert value("rtml_stage_seconds_count", service="t", stage="total") >= 1
    assert value("rtml_feature_age_seconds_bucket", service="t", view="customer_stats",
                 le="900.0") >= 1
