"""NDCG@10, HitRate@10 and OTTO's Recall@20 on hand-computed cases."""

import math

import pytest

from training.recs.metrics import hitrate_at, ndcg_at, recall_at, summarize


def test_ndcg_hand_computed():
    # hits at ranks 1 and 3 (0-based 0, 2); truth of 3 -> ideal has 3 hits on top
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at([7, 1, 8, 2], {7, 8, 9}, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at([1, 2, 3], {1}, 10) == 1.0
    assert ndcg_at([2, 1], {1}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(list(range(10)) + [99], {99}, 10) == 0.0  # rank 11 is outside


def test_hitrate_and_otto_recall():
    assert hitrate_at([1, 2, 3], {3}, 10) == 1.0
    assert hitrate_at([1, 2, 3], {4}, 10) == 0.0
    assert recall_at([1, 2, 3], {1, 3, 4}, 20) == pytest.approx(2 / 3)
    truth = set(range(100, 130))  # 30 relevant: the denominator is min(20, 30)
    assert recall_at(list(range(100, 120)), truth, 20) == 1.0
    assert recall_at([100, 1, 2], truth, 20) == pytest.approx(1 / 20)


def test_summary_averages_requests_with_a_truth():
    got = summarize([[1, 2], [5], [9]], [{1}, {6}, set()])
    assert got == {"ndcg@10": 0.5, "hitrate@10": 0.5, "recall@20": 0.5, "requests": 2.0}
    with pytest.raises(ValueError):
        summarize([[1]], [set()])
