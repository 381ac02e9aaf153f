"""Load-test bookkeeping: Server-Timing parsing and the per-rate summary."""

from __future__ import annotations

import pytest

from benchmarks.load import _model_backend, _server_timing, summarize
from rtml.serving.asgi import format_server_timing, parse_server_timing


def test_server_timing_parses_each_stage():
    got = _server_timing("features;dur=0.52, model;dur=0.31, total;dur=1.2")
    assert got == {"features": 0.52, "model": 0.31, "total": 1.2}


def test_server_timing_as_the_service_formats_it():
    """The header the fraud service writes (its own formatter), read back by the load generator."""
    header = format_server_timing({"features": 0.1234, "model": 0.5, "total": 2.0},
                                  {"model": "onnx", "cache": "hit"})
    assert header == ("features;dur=0.123, model;dur=0.500;desc=onnx, total;dur=2.000, "
                      "cache;desc=hit")
    assert _server_timing(header) == {"features": 0.123, "model": 0.5, "total": 2.0}
    assert parse_server_timing(header)["model"] == {"dur": "0.500", "desc": "onnx"}
    assert parse_server_timing(header)["cache"] == {"desc": "hit"}


@pytest.mark.parametrize("header", [None, "", "  ", ","])
def test_server_timing_empty(header):
    assert _server_timing(header) == {}


def test_server_timing_skips_metrics_without_duration():
    assert _server_timing("cache, total;dur=3") == {"total": 3.0}


def _rec(latency, status=200, *, fallback=False, reason=None, decision="approve", timing=None):
    # As `benchmarks.load._one` records an answer: decisions and fallback reasons per row.
    rec = {"latency_ms": latency, "status": status, "rows": 1}
    if status == 200:
        rec.update(decisions=[decision], fallback_reasons=[reason] if fallback else [],
                   timing=timing or {})
    elif fallback:  # a non-200 record carrying stale fields must not count as a fallback
        rec.update(fallback_reasons=[reason], timing=timing or {})
    return rec


@pytest.fixture
def results():
    # Latencies 1..100 ms. Statuses: 92 OK, 3 x 503, 2 x 500, 3 client timeouts.
    recs = []
    for i in range(1, 101):
        if i in (10, 20, 30):
            recs.append(_rec(float(i), 503, fallback=True, reason="breaker_open"))
        elif i in (40, 50):
            recs.append(_rec(float(i), 500))
        elif i in (60, 70, 80):
            recs.append(_rec(float(i), "TimeoutError"))
        elif i in (5, 15, 25, 35):
            recs.append(_rec(float(i), fallback=True, reason="features_timeout",
                             decision="review", timing={"total": 1.0}))
        elif i == 45:
            recs.append(_rec(float(i), fallback=True, reason="model_timeout",
                             timing={"total": 3.0}))
        elif i in (2, 3):
            recs.append(_rec(float(i), decision="decline", timing={"total": 2.0}))
        else:
            recs.append(_rec(float(i), timing={"total": 2.0, "model": 0.5}))
    return recs


def test_summary_percentiles(results):
    out = summarize(results, rate=50.0, elapsed=2.0)
    lat = out["latency_ms"]
    # Linear interpolation on the sorted values 1..100: the p-th percentile sits at position
    # p/100 * 99 (0-based), i.e. value 1 + 0.99 p.
    assert lat["p50"] == pytest.approx(50.5)
    assert lat["p95"] == pytest.approx(95.05)
    assert lat["p99"] == pytest.approx(99.01)
    assert lat["p99.9"] == pytest.approx(99.901)
    assert lat["max"] == 100.0
    assert out["requests"] == 100
    assert out["target_rps"] == 50.0
    assert out["achieved_rps"] == pytest.approx(50.0)


def test_summary_errors_grouped_by_status(results):
    out = summarize(results, rate=50.0, elapsed=2.0)
    assert out["errors"] == {"503": 3, "500": 2, "TimeoutError": 3}


def test_summary_fallbacks_only_among_ok(results):
    out = summarize(results, rate=50.0, elapsed=2.0)
    assert out["fallbacks"] == 5
    assert out["fallback_reasons"] == {"features_timeout": 4, "model_timeout": 1}
    # 92 answered: 4 review, 2 decline, the other 86 approve.
    assert out["decisions"] == {"review": 4, "decline": 2, "approve": 86}


def test_summary_stage_times_from_ok_answers(results):
    out = summarize(results, rate=50.0, elapsed=2.0)
    # totals: 4 x 1.0, 1 x 3.0, 87 x 2.0 -> median 2.0; "model" only on the plain approvals.
    assert out["server_stage_ms_p50"] == {"total": 2.0, "model": 0.5}
    assert out["server_stage_ms_p99"]["total"] == pytest.approx(2.0 + 0.09 * 1.0)


def test_summary_of_nothing():
    out = summarize([], rate=10.0, elapsed=0.0)
    assert out["requests"] == 0
    assert out["achieved_rps"] == 0.0
    assert out["errors"] == {} and out["fallbacks"] == 0
    assert out["latency_ms"] == {"max": 0.0}


def test_scored_rows_leave_out_errors_and_fallbacks(results):
    # 92 answered rows, 5 of them fallbacks: 87 scored in 2 s.
    out = summarize(results, rate=50.0, elapsed=2.0)
    assert out["scored_tx_per_s"] == pytest.approx(87 / 2.0)


def test_batch_answers_count_every_row():
    recs = [{"latency_ms": 5.0, "status": 200, "rows": 3, "timing": {},
             "decisions": ["approve", "approve", "review"],
             "fallback_reasons": ["model_overloaded"]}]
    out = summarize(recs, rate=1.0, elapsed=1.0)
    assert out["decisions"] == {"approve": 2, "review": 1}
    assert out["fallbacks"] == 1
    assert out["scored_tx_per_s"] == pytest.approx(2.0)


def test_model_backend_from_the_model_entry():
    assert _model_backend("features;dur=0.5, model;dur=0.01;desc=onnx, total;dur=1") == "onnx"
    assert _model_backend("features;dur=0.5, total;dur=1") is None
    assert _model_backend(None) is None


def test_summary_counts_what_the_server_says_it_ran():
    recs = [{"latency_ms": 1.0, "status": 200, "rows": 1, "timing": {}, "decisions": ["approve"],
             "fallback_reasons": [], "backend": b, "versions": [v]}
            for b, v in [("onnx", "m:1"), ("onnx", "m:1"), ("xgboost", "m:2")]]
    recs.append({"latency_ms": 1.0, "status": 503, "rows": 1, "backend": "onnx"})  # not counted
    out = summarize(recs, rate=1.0, elapsed=1.0)
    assert out["backends_used"] == {"onnx": 2, "xgboost": 1}
    assert out["model_versions"] == {"m:1": 2, "m:2": 1}
