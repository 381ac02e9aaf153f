"""The benchmark harness's arithmetic: skewed sampling, percentiles, ratios, saturation, cost."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from benchmarks.cost import (
    Capacity,
    latest,
    load_capacity,
    plan,
    seed_table,
    units_needed,
)
from benchmarks.load import (
    HIST_EDGES_MS,
    customer_mix,
    draw_customers,
    histogram,
    percentiles,
    sample_requests,
)
from benchmarks.naive_server import REQUEST_FEATURES, sql_features
from benchmarks.saturate import step_ok
from benchmarks.side_by_side import ratio_table, ratios
from rtml.settings import Settings

CUSTOMERS = np.arange(1000, 3000)


def test_customer_draw_is_seeded():
    a = draw_customers(CUSTOMERS, 5000, skew=0.8, seed=3)
    assert np.array_equal(a, draw_customers(CUSTOMERS, 5000, skew=0.8, seed=3))
    assert not np.array_equal(a, draw_customers(CUSTOMERS, 5000, skew=0.8, seed=4))


def test_customer_draw_is_skewed():
    drawn = draw_customers(CUSTOMERS, 20_000, skew=0.8, seed=0)
    counts = sorted(Counter(drawn.tolist()).values(), reverse=True)
    top20 = sum(counts[:20]) / len(drawn)  # the busiest 1% of 2,000 customers
    assert top20 > 0.10  # ten times their uniform share (1%)
    assert set(drawn.tolist()) <= set(CUSTOMERS.tolist())
    # Zipf: rank 1 about (1000/1)**0.8 times rank 1000; far more than noise.
    assert counts[0] > 20 * counts[len(counts) // 2]


def test_zero_skew_gives_each_customer_once_while_they_last():
    drawn = draw_customers(CUSTOMERS, 2000, skew=0.0, seed=1)
    assert sorted(drawn.tolist()) == CUSTOMERS.tolist()
    more = draw_customers(CUSTOMERS, 2500, skew=0.0, seed=1)
    assert len(more) == 2500 and set(more[:2000].tolist()) == set(CUSTOMERS.tolist())


@pytest.fixture
def raw_settings(tmp_path) -> Settings:
    """A repo root with 30 days of transactions for 50 customers (fixed seed)."""
    rng = np.random.default_rng(11)
    n = 3000
    day = rng.integers(0, 30, n)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tx = pd.DataFrame({
        "transaction_id": np.arange(n), "customer_id": rng.integers(0, 50, n),
        "terminal_id": rng.integers(0, 80, n), "amount": rng.uniform(1, 200, n).round(2),
        "is_fraud": (rng.random(n) < 0.02).astype(np.int8), "day": day.astype(np.int32),
        "event_timestamp": [start + timedelta(days=int(d)) for d in day],
    })
    (tmp_path / "data" / "raw").mkdir(parents=True)
    tx.to_parquet(tmp_path / "data" / "raw" / "transactions.parquet", index=False)
    return Settings(scenario="fraud", repo_root=tmp_path)


def test_sampled_requests_are_held_out_transactions_of_the_drawn_customer(raw_settings):
    reqs = sample_requests(raw_settings, 400, seed=5, last_days=7)
    again = sample_requests(raw_settings, 400, seed=5, last_days=7)
    strip = [{k: v for k, v in r.items() if k != "timestamp"} for r in reqs]
    assert strip == [{k: v for k, v in r.items() if k != "timestamp"} for r in again]
    tx = pd.read_parquet(raw_settings.raw_dir / "transactions.parquet")
    held = tx[tx["day"] >= 23]
    real = set(zip(held["customer_id"], held["terminal_id"], held["amount"], strict=True))
    assert all((r["customer_id"], r["terminal_id"], r["amount"]) in real for r in reqs)
    assert len({r["transaction_id"] for r in reqs}) == 400  # unique ids, repeats included
    assert all(datetime.fromisoformat(r["timestamp"]).tzinfo is not None for r in reqs)


def test_customer_mix_reports_skew():
    reqs = [{"customer_id": 1}] * 90 + [{"customer_id": i} for i in range(2, 12)]
    mix = customer_mix(reqs)
    assert mix == {"distinct_customers": 11, "top1pct_share": 0.9}


def test_percentiles_and_max():
    got = percentiles(np.arange(1, 1001, dtype=float))
    assert got["p50"] == pytest.approx(500.5)
    assert got["p99.9"] == pytest.approx(999.001)
    assert got["max"] == 1000.0
    assert percentiles([]) == {}


def test_histogram_keeps_every_sample_in_log_bins():
    lat = [0.0001, 0.05, 0.5, 2.9, 3.1, 50_000.0]  # below and above the range: end bins
    h = histogram(lat)
    assert sum(h["counts"]) == len(lat)
    assert len(h["counts"]) == len(HIST_EDGES_MS) - 1
    assert h["counts"][0] == 1 and h["counts"][-1] == 1
    assert h["counts"][int(np.searchsorted(HIST_EDGES_MS, 3.0, side="right")) - 1] == 2


def _row(p50, p99):
    return {"latency_ms": {"p50": p50, "p99": p99, "p95": p99, "p99.9": p99, "max": p99}}


def test_ratios_against_rtml():
    rows = {"naive": _row(20.0, 400.0), "rtml": _row(2.0, 5.0), "floor": _row(0.5, 1.0)}
    got = ratios(rows)
    assert got["naive"] == {"p50": 10.0, "p99": 80.0}
    assert got["rtml"] == {"p50": 1.0, "p99": 1.0}
    assert got["floor"] == {"p50": 0.25, "p99": 0.2}
    text = ratio_table(rows)
    assert "| naive | 20.000 | 400.000 | 10.00× | 80.00× |" in text
    assert ratios({"naive": _row(1.0, 2.0)}) == {}  # nothing to compare against


def _step(p99=4.0, errors=None, fallbacks=0, achieved=100.0, target=100.0, requests=1000):
    return {"latency_ms": {"p99": p99}, "errors": errors or {}, "fallbacks": fallbacks,
            "achieved_rps": achieved, "target_rps": target, "requests": requests, "batch": 1}


def test_saturation_step_needs_budget_no_errors_few_sheds_and_fallbacks_and_keeping_up():
    assert step_ok(_step(), budget_ms=50)
    assert not step_ok(_step(p99=51.0), budget_ms=50)
    assert step_ok(_step(errors={"503": 10}), budget_ms=50)  # 1% shed by admission control
    assert not step_ok(_step(errors={"503": 11}), budget_ms=50)
    assert not step_ok(_step(errors={"500": 1}), budget_ms=50)
    assert step_ok(_step(fallbacks=10), budget_ms=50)  # 1%
    assert not step_ok(_step(fallbacks=11), budget_ms=50)
    assert not step_ok(_step(achieved=90.0), budget_ms=50)
    assert not step_ok(_step(requests=0), budget_ms=50)


def test_naive_sql_covers_every_feature_the_models_read():
    from feature_repo.fraud.feature_services import fraud_model_v1, fraud_model_v2

    for service in (fraud_model_v1, fraud_model_v2):
        names = [f.name for p in service.feature_view_projections for f in p.features]
        assert set(names) == set(sql_features()) & set(names) | set(REQUEST_FEATURES)
    assert len(sql_features()) == len(set(sql_features())) == 19


def test_units_needed():
    assert units_needed(300, hit_rate=0.0, per_unit=100) == 3
    assert units_needed(301, hit_rate=0.0, per_unit=100) == 4
    assert units_needed(300, hit_rate=0.6, per_unit=100) == 2  # 120/s to the model
    assert units_needed(11.6, hit_rate=0.0, per_unit=1000) == 1  # never zero machines
    with pytest.raises(ValueError, match="cache hit rate"):
        units_needed(10, hit_rate=1.0, per_unit=100)
    with pytest.raises(ValueError, match="capacity"):
        units_needed(10, hit_rate=0.0, per_unit=0)


def test_cost_plan_machines_and_dollars():
    rows = plan([Capacity("cpu", "core", 250.0), Capacity("gpu", "gpu", 5000.0)],
                per_day=1_000_000, peak=1000, hit_rate=0.3, cores_per_machine=2,
                core_hour_usd=0.05, gpu_hour_usd=0.5)
    by = {(r["backend"], r["workload"], r["cache_hit_rate"]): r for r in rows}
    assert len(rows) == 2 * 2 * 2
    peak = by[("cpu", "peak 1,000/s", 0.0)]
    assert (peak["units"], peak["machines"]) == (4, 2)
    assert peak["usd_per_day"] == pytest.approx(2 * 2 * 0.05 * 24)
    cached = by[("cpu", "peak 1,000/s", 0.3)]
    assert (cached["model_rate"], cached["units"], cached["machines"]) == (700.0, 3, 2)
    avg = by[("cpu", "1,000,000/day, average", 0.0)]
    assert avg["rate"] == pytest.approx(1_000_000 / 86_400)
    assert by[("gpu", "peak 1,000/s", 0.0)]["usd_per_day"] == pytest.approx(0.5 * 24)


def test_seed_table_recomputed_from_our_capacity():
    text = seed_table(Capacity("/score (CPU)", "core", 100.0), cores_per_machine=2,
                      core_hour_usd=0.05, gpu_hour_usd=0.5)
    # 300/s -> 3 cores -> 2 two-core machines -> 4 cores x $0.05 x 24 h.
    assert "300/s ÷ 100/s per core = 3 cores, 2 machines, $4.80/day" in text
    assert "120/s ÷ 100/s per core = 2 cores, 1 machine, $2.40/day" in text  # 60% cached
    assert "3 T4 GPUs = $1K/day" in text


def test_capacity_from_saturation_results(tmp_path):
    runs = [
        {"path": "/score", "batch": 1, "batching": True, "device": "cpu",
         "scored_tx_per_s": 400.0, "tx_per_s_per_core": 400.0},
        {"path": "/score_batch", "batch": 50, "batching": False, "device": "cuda",
         "scored_tx_per_s": 9000.0, "tx_per_s_per_core": 9000.0},
        {"path": "/score", "batch": 1, "batching": False, "device": "cpu",
         "scored_tx_per_s": 0.0, "tx_per_s_per_core": 0.0},  # never saturated: left out
    ]
    older = tmp_path / "saturate-20260101T000000Z.json"
    newer = tmp_path / "saturate-20260102T000000Z.json"
    newest = tmp_path / "saturate-20260103T000000Z.json"  # the naive service's: not a capacity
    older.write_text(json.dumps({"runs": [{**runs[0], "scored_tx_per_s": 0.0}]}))
    newer.write_text(json.dumps({"runs": runs}))
    newest.write_text(json.dumps({"runs": [{**runs[0], "target": "naive"}]}))
    assert latest(tmp_path) == newer
    # Written before both shed rules were kept: its figures are the <= 1% rule's only.
    with pytest.raises(ValueError, match="predates the two rules"):
        load_capacity(newer)
    caps = load_capacity(newer, rule="shed_1pct")
    assert [(c.unit, c.per_unit) for c in caps] == [("core", 400.0), ("gpu", 9000.0)]
    off = {**runs[0], "batching": False, "scored_tx_per_s": 300.0, "tx_per_s_per_core": 300.0}
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"runs": [off, *runs]}))
    assert len(load_capacity(both, rule="shed_1pct")) == 3
    # per endpoint and device, the better setting
    best = load_capacity(both, best_only=True, rule="shed_1pct")
    assert [(c.name, c.per_unit) for c in best] == [
        ("/score (CPU, batching on, 1 row/request)", 400.0),
        ("/score_batch (GPU, batching off, 50 rows/request)", 9000.0)]
    with pytest.raises(ValueError, match="no run reached"):
        load_capacity(older, rule="shed_1pct")
    with pytest.raises(FileNotFoundError, match="rtml bench saturate"):
        latest(tmp_path / "empty")
