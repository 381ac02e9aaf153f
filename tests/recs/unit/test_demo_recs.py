"""`rtml demo recs` prints: the lift table read from metrics.json, and the load's figures."""

from __future__ import annotations

import json

from rtml.cli.scenarios import REGISTRY
from rtml.demo.recs import lift_table, load_lines

# metrics.json as `rtml train recs` writes it (only the keys the table reads, plus noise).
METRICS = json.loads("""{
  "seeds": [0, 1, 2],
  "popularity":   {"ndcg@10": 0.0125, "hitrate@10": 0.0400, "recall@20": 0.0610, "ild@10": 0.9},
  "revisit":      {"ndcg@10": 0.1010, "hitrate@10": 0.1500, "recall@20": 0.1700},
  "covisitation": {"ndcg@10": 0.1000, "hitrate@10": 0.2000, "recall@20": 0.2500},
  "ranker":       {"ndcg@10": 0.1250, "hitrate@10": 0.2300, "recall@20": 0.3000},
  "ranker_mmr":   {"ndcg@10": 0.1200, "hitrate@10": 0.2250, "recall@20": 0.2900},
  "in_stock_share": 1.0,
  "lift": {"ndcg@10_vs_covisitation": 99, "ndcg@10_vs_popularity": 99}
}""")


def test_lift_table_rows_are_the_file_values_and_the_lift_is_their_ratio():
    lines = lift_table(METRICS)
    assert lines[0].split() == ["method", "ndcg@10", "hitrate@10", "recall@20"]
    rows = {ln.split()[0]: [float(x) for x in ln.split()[1:]] for ln in lines[1:6]}
    assert rows == {
        "popularity": [0.0125, 0.04, 0.061], "revisit": [0.101, 0.15, 0.17],
        "covisitation": [0.1, 0.2, 0.25], "ranker": [0.125, 0.23, 0.3],
        "ranker_mmr": [0.12, 0.225, 0.29]}
    # 0.125 / 0.1 and 0.125 / 0.0125, computed here, not read from the file's "lift"
    assert "x1.25 over co-visitation" in lines[6]
    assert "x10.00 over popularity" in lines[6]
    assert "in-stock share 1.000" in lines[6]


def test_load_lines_report_percentiles_fallback_share_and_hit_rates():
    summary = {"requests": 200, "rate": 50.0,
               "latency_ms": {"p50": 3.0, "p95": 7.5, "p99": 12.25},
               "errors": {}, "fallbacks": {"budget": 3, "feature_store_unavailable": 1},
               "cache": {"l2": 120, "miss": 70, "l1": 10}, "l2_hit_rate": 0.6,
               "l1_hit_rate": 0.05, "cold_starts": 2}
    text = "\n".join(load_lines(summary))
    assert "p50 3.00 ms, p95 7.50 ms, p99 12.25 ms" in text
    assert "fallbacks: 2.0% of answers" in text  # 4 of 200 answered
    assert "L2 hit 60.0%, L1 hit 5.0%" in text
    assert "errors:    0" in text


def test_registry_names_the_recs_demo_and_monitor():
    recs = REGISTRY.get("recs")
    assert recs.load("demo").__module__ == "rtml.demo.recs"
    assert recs.load("monitor").name == "recs"
