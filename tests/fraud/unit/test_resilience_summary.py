"""Bookkeeping of the outage, overload and soak benchmarks, on hand-made answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks import chaos, overload, soak
from benchmarks.resilience import Answer, Run, group_rss_mb


def _ok(due: float, *, fallback: bool = False, took: float = 0.01) -> Answer:
    return Answer(due=due, done=due + took, status=200, fallback=fallback,
                  reason="feature_store_unavailable: ConnectionError: x" if fallback else None)


def _outage_run() -> Run:
    # 10 rps for 3 s; Redis killed at 1.0 s, answering again at 2.0 s; the first two requests
    # due after it still fall back (the breaker's probe interval), the rest are scored.
    answers = []
    for i in range(30):
        due = i / 10
        answers.append(_ok(due, fallback=1.0 <= due < 2.2))
    answers[5] = Answer(due=0.5, done=0.6, status=500)  # one failure, before the outage
    return Run(answers=answers, marks={"kill": (1.0, 1.0), "restart": (1.5, 2.0)},
               elapsed_s=3.0)


def test_chaos_phases_failures_fallback_share_and_recovery():
    s = chaos.summarize(_outage_run(), rate=10)
    assert s["failed"] == 1 and s["statuses"] == {"200": 29, "500": 1}
    before, down, after = (s["phases"][k] for k in ("before", "down", "after"))
    assert (before["requests"], down["requests"], after["requests"]) == (10, 10, 10)
    assert before["failed"] == 1 and down["fallback_share"] == 1.0
    assert down["fallback_reasons"] == {"feature_store_unavailable: ConnectionError": 10}
    assert after["fallbacks"] == 2
    # First normal decision: the request due at 2.2 s, done at 2.21 s; steady from then on.
    assert s["recovery"]["first_normal_s"] == pytest.approx(0.21)
    assert s["recovery"]["steady_normal_s"] == pytest.approx(0.21)


def test_chaos_recovery_is_never_when_the_run_ends_on_fallbacks():
    answers = [_ok(i / 10, fallback=i >= 10) for i in range(20)]
    assert chaos.recovery(answers, killed_at=1.0, back_at=1.5) == {
        "first_normal_s": None, "steady_normal_s": None}


def test_overload_counts_shed_with_retry_after_and_admitted_latency():
    shed = [Answer(due=i / 100, done=i / 100 + 0.002, status=503, retry_after="1",
                   sent=i / 100 + 0.001) for i in range(50)]
    admitted = [_ok(i / 100, took=0.020) for i in range(50, 100)]
    admitted[0] = _ok(0.5, fallback=True)
    run = Run(answers=shed + admitted + [Answer(due=1.0, done=1.1, status="ClientError")],
              elapsed_s=1.0)
    s = overload.summarize(run, rate=100, capacity=50, budget_ms=50)
    assert s["shed"] == 50 and s["shed_share"] == pytest.approx(50 / 101)
    assert s["shed_with_retry_after"] == 50
    assert s["shed_latency_ms"]["p50"] == pytest.approx(2.0)
    assert s["shed_latency_from_send_ms"]["p50"] == pytest.approx(1.0)
    assert s["admitted"] == 50 and s["admitted_fallbacks"] == 1
    assert s["admitted_latency_ms"]["max"] == pytest.approx(20.0)
    assert s["admitted_p99_within_budget"] is True
    assert s["other_failures"] == 1 and s["scored_rps"] == pytest.approx(49.0)


def test_soak_growth_ignores_the_warm_up_interval():
    assert soak.growth([100.0, 200.0, 210.0, 220.0]) == pytest.approx(0.10)
    assert soak.growth([100.0, 200.0]) is None  # nothing after warm-up to compare


def test_soak_intervals_take_their_own_requests_and_memory():
    answers = [_ok(i / 2, took=0.001 * (i + 1)) for i in range(8)]  # 2 rps for 4 s
    run = Run(answers=answers, elapsed_s=4.0,
              results={f"rss-{i}": {"service": 100.0 + i, "flow": 50.0} for i in range(3)})
    s = soak.summarize(run, every_s=2.0, intervals=2, rate=2)
    assert [r["requests"] for r in s["intervals"]] == [4, 4]
    assert s["intervals"][1]["latency_ms"]["max"] == pytest.approx(8.0)
    assert [r["service_rss_mb"] for r in s["intervals"]] == [101.0, 102.0]
    assert s["start_rss_mb"] == {"service": 100.0, "flow": 50.0}


def test_group_rss_counts_every_process_of_the_group():
    code = "import time; x = bytearray(64 * 2**20); x[::4096] = b'1' * len(x[::4096]); " \
           "time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while group_rss_mb(proc.pid) < 64:
            assert time.monotonic() < deadline, group_rss_mb(proc.pid)
            time.sleep(0.1)
        assert group_rss_mb(os.getpgid(0)) > 0  # this test's own group
    finally:
        proc.kill()
        proc.wait()
