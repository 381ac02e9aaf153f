"""The recs load test's accounting: hit rates come from each answer's `Server-Timing` cache desc.

Answers are given the header the service writes (`format_server_timing`, as `RecsService`
calls it) and the body fields it sets; the expected shares are counted here by hand.
"""

from __future__ import annotations

import pytest

from benchmarks.recs_load import outcome, summarize
from rtml.serving.asgi import format_server_timing


def _answer(cache: str | None, *, fallback: str | None = None, total: float = 5.0,
            status: int = 200) -> dict:
    timings = {"cache": 0.4, "candidates": 0.6, "features": 2.0, "total": total}
    notes = {"cache": cache} if cache is not None else {}
    body = {"fallback": fallback is not None, "cold_start": False,
            "fallback_reason": fallback}
    rec = outcome(status, {"Server-Timing": format_server_timing(timings, notes)}, body)
    rec["latency_ms"] = total + 1.0
    return rec


def test_hit_rates_and_fallback_share_are_counted_from_the_answers():
    out = ([_answer("l2") for _ in range(5)] + [_answer("l1") for _ in range(3)]
           + [_answer("miss") for _ in range(2)]
           # a fallback after the L2 read: served from no cache, counted as a fallback
           + [_answer("l2", fallback="budget: features ran past the 80 ms request budget")]
           + [{"status": "ClientConnectorError", "latency_ms": 10_000.0}])
    r = summarize(out, rate=100.0)
    answered = 11  # the error is not an answer
    assert r["requests"] == 12
    assert r["l2_hit_rate"] == pytest.approx(5 / answered)
    assert r["l1_hit_rate"] == pytest.approx(3 / answered)
    assert r["fallback_share"] == pytest.approx(1 / answered)
    assert r["fallbacks"] == {"budget": 1}
    assert r["cache"] == {"l2": 5, "l1": 3, "miss": 2, "fallback": 1}
    assert r["errors"] == {"ClientConnectorError": 1}
    assert r["stage_ms_p50"]["features"] == 2.0


def test_an_answer_without_a_cache_desc_is_no_hit():
    r = summarize([_answer(None), _answer("miss")], rate=1.0)
    assert r["cache"] == {"none": 1, "miss": 1}
    assert r["l1_hit_rate"] == r["l2_hit_rate"] == r["fallback_share"] == 0.0
