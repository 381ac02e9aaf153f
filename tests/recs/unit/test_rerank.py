"""MMR re-ranking, the last stock check and intra-list diversity on hand-worked cases."""

import pytest

from pipelines.recs.rerank import final_in_stock, intra_list_diversity, mmr

ITEMS = [10, 11, 12, 13, 14]
SCORES = [0.9, 0.85, 0.8, 0.4, 0.1]
CATS = [1, 1, 1, 2, 3]


def test_lambda_one_is_the_ranker_order():
    assert mmr(ITEMS, SCORES, CATS, k=5, lam=1.0) == ITEMS


def test_lambda_zero_takes_each_category_once_before_repeating():
    # every pick penalises its category; ties go to the higher score
    assert mmr(ITEMS, SCORES, CATS, k=5, lam=0.0) == [10, 13, 14, 11, 12]


def test_a_middle_lambda_hand_computed():
    # relevance scaled to [0, 1]: 10 -> 1, 11 -> .9375, 12 -> .875, 13 -> .375, 14 -> 0
    # lam .5: pick 10; then 11: .469 - .5 = -.031, 12: -.0625, 13: .1875, 14: 0 -> 13;
    # then 11 (-.031) vs 12 (-.0625) vs 14 (0) -> 14; then 11, then 12.
    assert mmr(ITEMS, SCORES, CATS, k=5, lam=0.5) == [10, 13, 14, 11, 12]
    # lam .8: after 10: 11 .75 - .2 = .55, 13 .3 -> 11; then 12 .5 vs 13 .3 -> 12, 13, 14.
    assert mmr(ITEMS, SCORES, CATS, k=3, lam=0.8) == [10, 11, 12]


def test_edges():
    assert mmr([], [], [], k=3, lam=0.5) == []
    assert mmr([1, 2], [0.5, 0.5], [1, 1], k=5, lam=0.7) == [1, 2]
    with pytest.raises(ValueError, match="lam"):
        mmr(ITEMS, SCORES, CATS, k=2, lam=1.5)


def test_final_in_stock_drops_sold_out_and_refills_from_backup():
    stock = {10: 0, 11: 3, 12: 0, 13: 1, 14: 1, 15: 2}
    got = final_in_stock([10, 11, 12, 13], lambda i: stock[i] > 0, backup=[11, 12, 14, 15], k=4)
    assert got == [11, 13, 14, 15]


def test_intra_list_diversity():
    assert intra_list_diversity([1, 1, 1]) == 0.0
    assert intra_list_diversity([1, 2, 3]) == 1.0
    assert intra_list_diversity([1, 1, 2, 3]) == pytest.approx(5 / 6)  # 1 same pair of 6
    assert intra_list_diversity([4]) == 0.0
