"""The ranker's rows: each column on a hand-worked request, and an unknown user's defaults."""

import numpy as np
import pytest

from feature_repo.recs.specs import NEVER_SEEN_HOURS
from pipelines.recs.candidates import Candidate
from training.recs.features import ABSENT, FEATURE_NAMES, features_for

CANDS = [Candidate(5, "revisit", 1.2, (1.2, 0.3, 0.0, 0.0)),
         Candidate(8, "covisit", 0.7, (0.0, 0.7, 0.0, 0.5)),
         Candidate(99, "trending", 1.0, (0.0, 0.0, 0.0, 1.0))]
USER = {"user_events_7d": 12, "user_orders_30d": 2, "user_hours_since_last": 5.0,
        "user_top_categories": [3, 4], "user_category_shares": [0.75, 0.25],
        "user_recent_items": [7, 8]}
ITEMS = {5: {"item_category": 4, "item_price": 10.0, "item_clicks_7d": 30, "stock_level": 2.0,
             "trend_events_1h": 3.0},
         8: {"item_category": 3, "item_price": 40.0, "item_cart_rate_7d": 0.2,
             "stock_level": 9.0, "trend_events_1h": 0.0},
         6: {"item_category": 4, "item_price": 30.0}}
SESSION = {"session_items": [6, 5], "session_categories": [4], "session_length": 3}


def test_columns_hand_worked():
    x = features_for(CANDS, USER, ITEMS, SESSION)
    assert x.shape == (3, len(FEATURE_NAMES)) and x.dtype == np.float32
    row = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in x.tolist()]
    assert (row[0]["src_revisit"], row[1]["src_covisit"], row[2]["src_trending"]) == (1, 1, 1)
    assert row[0]["src_covisit"] == 0
    assert row[1]["score_trending"] == pytest.approx(0.5)
    assert (row[0]["session_pos"], row[1]["session_pos"]) == (1, ABSENT)
    assert (row[0]["history_pos"], row[1]["history_pos"]) == (ABSENT, 1)
    assert [r["candidate_rank"] for r in row] == [0, 1, 2]
    # session prices 30 (item 6) and 10 (item 5): median 20
    assert row[1]["item_price_vs_session"] == pytest.approx(2.0)
    assert row[0]["user_cat_rank"] == 1 and row[0]["user_cat_share"] == pytest.approx(0.25)
    assert row[1]["user_cat_rank"] == 0 and row[1]["user_cat_share"] == pytest.approx(0.75)
    assert row[0]["session_cat_rank"] == 0 and row[1]["session_cat_rank"] == ABSENT
    assert row[0]["session_cat_count"] == 2  # items 6 and 5 are both category 4
    assert (row[0]["stock_level"], row[1]["stock_level"], row[2]["stock_level"]) == (2, 9, 1)
    assert row[1]["item_cart_rate_7d"] == pytest.approx(0.2)
    assert all(r["user_events_7d"] == 12 and r["session_length"] == 3 for r in row)


def test_unknown_user_item_and_no_session_take_serving_defaults():
    x = features_for(CANDS, None, {}, None)
    row = dict(zip(FEATURE_NAMES, x[2].tolist(), strict=True))
    assert row["user_hours_since_last"] == NEVER_SEEN_HOURS
    assert row["user_cat_rank"] == ABSENT and row["session_pos"] == ABSENT
    assert row["item_clicks_7d"] == 0 and row["stock_level"] == 1 and row["session_length"] == 0
    assert features_for([], USER, ITEMS, SESSION).shape == (0, len(FEATURE_NAMES))
