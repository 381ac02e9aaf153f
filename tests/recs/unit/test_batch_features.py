"""Nightly views on hand-built histories: co-visitation weights, profiles, item stats."""

import pandas as pd
import pytest

from pipelines.recs import batch_features as bf
from pipelines.recs import covisit

D = pd.Timestamp("2024-05-21", tz="UTC")  # the snapshot: rows stamped D see events before D
NOON = D - pd.Timedelta(hours=12)
ITEMS = pd.DataFrame({"item_id": [0, 1, 2, 3], "category": [7, 7, 8, 9], "brand": [1, 1, 2, 3],
                      "price": [10.0, 20.0, 30.0, 40.0]})


def _events(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "session_id", "type", "ts"])
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    frame["quantity"] = 1
    return frame


def test_co_visit_weights_follow_type_recency_lag_and_window():
    s = pd.Timedelta(seconds=1)
    events = _events([
        (1, 0, 10, "click", NOON), (1, 1, 10, "cart", NOON + s), (1, 2, 10, "click", NOON + 2 * s),
        (1, 2, 10, "click", NOON + 3 * s),  # the same item again: no self pair
        (2, 0, 11, "click", D - pd.Timedelta(days=20)),  # outside the 14-day window
        (2, 3, 11, "order", D - pd.Timedelta(days=20) + s),
        (3, 0, 12, "click", D + s), (3, 3, 12, "click", D + 2 * s),  # after the snapshot
    ])
    snap = covisit.snapshot(covisit.pairs(bf.user_events(events, ITEMS)), D)
    got = {r.item_id: dict(zip(r.covisit_items, r.covisit_weights, strict=True))
           for r in snap.itertuples()}

    def decay(later):  # halves every 7 days before D
        return 0.5 ** ((D - later).total_seconds() / 86400 / 7)

    # 0 -> 1: the neighbour was carted (6); 0 -> 2 at lag 2 and lag 3 (two events of item 2)
    assert got[0][1] == pytest.approx(6 * decay(NOON + s))
    assert got[0][2] == pytest.approx(decay(NOON + 2 * s) + decay(NOON + 3 * s))
    assert got[1] == pytest.approx({0: decay(NOON + s), 2: decay(NOON + 2 * s)
                                    + decay(NOON + 3 * s)})
    assert got[2] == pytest.approx({0: decay(NOON + 2 * s) + decay(NOON + 3 * s),
                                    1: 6 * decay(NOON + 2 * s) + 6 * decay(NOON + 3 * s)})
    assert 3 not in got and 3 not in got[0]  # too old, or after the snapshot
    assert list(snap.loc[snap["item_id"] == 0, "covisit_items"].iloc[0]) == [1, 2]  # heaviest first


def test_profile_and_item_stats_see_only_events_before_the_snapshot():
    h = pd.Timedelta(hours=1)
    events = _events([
        (1, 0, 1, "click", D - 8 * 24 * h), (1, 1, 1, "cart", D - 8 * 24 * h + h),
        (1, 2, 2, "click", D - 2 * h), (1, 2, 2, "order", D - h),
        (1, 3, 3, "click", D + h),  # tomorrow's: invisible
    ])
    ev = bf.user_events(events, ITEMS)
    prof = bf.user_profile(ev, D).set_index("user_id").loc[1]
    assert (prof.user_events_1d, prof.user_events_7d, prof.user_carts_7d,
            prof.user_orders_30d, prof.user_sessions_7d) == (2, 2, 0, 1, 1)
    assert prof.user_hours_since_last == pytest.approx(1.0)
    # category weights: 7 -> click + cart = 7, 8 -> click + order = 4
    assert list(prof.user_top_categories) == [7, 8]
    assert list(prof.user_category_shares) == pytest.approx([7 / 11, 4 / 11])
    assert list(prof.user_recent_items) == [2, 1, 0]
    stats = bf.item_stats(ev, ITEMS, D).set_index("item_id")
    counts = ["item_clicks_1d", "item_clicks_7d", "item_orders_7d"]
    assert stats.loc[2, counts].tolist() == [1, 1, 1]
    assert stats.loc[0, "item_clicks_7d"] == 0 and stats.loc[3, "item_clicks_1d"] == 0
    assert (stats["event_timestamp"] == D).all()


def test_written_files_follow_the_view_schemas(tmp_path):
    from feature_repo.recs.specs import NIGHTLY
    from rtml.features.specs import parquet_schema

    events = _events([(1, 0, 1, "click", NOON), (1, 1, 1, "cart", NOON + pd.Timedelta(1, "s"))])
    paths = bf.write(bf.nightly(events, ITEMS, [D]), tmp_path)
    import pyarrow.parquet as pq

    for view in NIGHTLY:
        assert pq.read_schema(paths[view.name]).remove_metadata() == parquet_schema(view)
    empty = bf.ensure_sources(tmp_path / "other")
    assert len(empty) == len(NIGHTLY)
